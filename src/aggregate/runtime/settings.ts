import type { Config } from '../../config/config.js';
import type { Log } from '../../log.js';
import type { Store } from '../../store/store.js';
import { loadSegmentConfig, type SegmentConfig } from '../model/segments.js';
import type { RetentionConfig } from '../model/state.js';

/** What both the live aggregator and a rebuild work from. */
export interface AggregateSettings {
  store: Store;
  /** Database of the blobs (followed). */
  blobsDb: string;
  /** Database of the checkpoint. */
  stateDb: string;
  segments: SegmentConfig;
  retention: RetentionConfig;
  /** Changes read per `_changes` request. */
  batchSize: number;
  log: Log;
}

/** The aggregate's settings from kpi-live's configuration. */
export function aggregateSettings(config: Config, store: Store, log: Log): AggregateSettings {
  return {
    store,
    blobsDb: store.blobsDb,
    stateDb: config.aggregatesDb ?? `${config.dbName}_aggregates`,
    segments: loadSegmentConfig(config.segmentsFile),
    retention: { tenMinuteHours: config.tenMinuteHours, hourlyDays: config.hourlyDays },
    batchSize: config.feedBatchSize,
    log,
  };
}
