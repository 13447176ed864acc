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
  /**
   * Database of the deploy markers and of the ingest runs' arrival records
   * (src/deploys/arrivals.ts), read to tell the blobs that arrived after a
   * deploy. Unset: no arrival buckets are kept.
   */
  deploysDb?: string;
  segments: SegmentConfig;
  retention: RetentionConfig;
  /** Changes read per `_changes` request. */
  batchSize: number;
  log: Log;
}

/** The database of the deploy markers and the arrival records. */
export const deploysDbOf = (config: Config): string => `${config.dbName}_deploys`;

/** The aggregate's settings from kpi-live's configuration. */
export function aggregateSettings(config: Config, store: Store, log: Log): AggregateSettings {
  return {
    store,
    blobsDb: store.blobsDb,
    stateDb: config.aggregatesDb ?? `${config.dbName}_aggregates`,
    deploysDb: deploysDbOf(config),
    segments: loadSegmentConfig(config.segmentsFile),
    retention: { tenMinuteHours: config.tenMinuteHours, hourlyDays: config.hourlyDays },
    batchSize: config.feedBatchSize,
    log,
  };
}
