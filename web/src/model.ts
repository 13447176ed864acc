/**
 * The dashboard's data model, one module per concern under model/ (the live
 * answer, tiles, the view in the URL, times, thresholds and funnels, the
 * deploy comparison's statistics, axis ticks), all pure and unit-tested,
 * and the contract's types and numbers the components use.
 */
import {
  bucketForRange,
  MAX_RANGE_MS,
  OTHER,
  TEN_MINUTES,
  type BucketName,
  type Dimension,
  type FunnelStep,
  type KpiAnswer,
  type KpiPoint,
  type KpiSeries,
  type Kpis,
  type ThresholdKey,
  type Thresholds,
} from '../../src/contract/kpis.js';
import type { AlertsBody, AlertState } from '../../src/alerts/types.js';
// The one definition of what a tile shows, shared with the service's alerts (pure, types only).
import type { Deploy } from '../../src/deploys/types.js';
import type { ServerMessage, Subscription } from '../../src/contract/stream.js';

export type {
  AlertsBody,
  AlertState,
  BucketName,
  Deploy,
  Dimension,
  FunnelStep,
  KpiAnswer,
  KpiPoint,
  KpiSeries,
  Kpis,
  ServerMessage,
  Subscription,
  ThresholdKey,
  Thresholds,
};

export { bucketForRange, MAX_RANGE_MS, OTHER, TEN_MINUTES };

export * from './model/live.js';
export * from './model/tiles.js';
export * from './model/view.js';
export * from './model/time.js';
export * from './model/thresholds.js';
export * from './model/stats.js';
export * from './model/ticks.js';
