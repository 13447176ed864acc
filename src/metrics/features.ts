/**
 * Metrics of the store, the aggregate, the follower lease, retention and
 * alerts, read at scrape through what each feature already publishes for
 * `/health` and the API (`app.store`, `app.aggregates.status()`,
 * `app.leadership.status()`, `app.retention.status()`, `app.alerts.list()`):
 * nothing is added to their paths, and none of their internals is touched.
 * Registered after them.
 *
 * The store is asked once per scrape, as `/health` asks it: one ping (at
 * most 2 s), and while writes fail, at most one small probe write.
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';

import { type BucketCount } from '../aggregate/model/state.js';
import type { StoreErrorKind } from '../store/store.js';
import { monotonic, type Reading } from './registry.js';
import { BUCKET_SIZES, DAY, HOUR, MINUTE } from '../contract/kpis.js';

/** The aggregate's phases; the gauge lists each (and any other it meets), 1 for the current one. */
const PHASES: readonly string[] = ['starting', 'catching-up', 'live', 'retrying', 'failed', 'stopped', 'standby'];
const STORE_ERROR_KINDS: readonly StoreErrorKind[] = ['connection', 'timeout', 'unavailable', 'client'];

const seconds = (ms: number) => ms / 1000;

const DURATION_UNITS: readonly (readonly [string, number])[] = [
  ['d', DAY],
  ['h', HOUR],
  ['m', MINUTE],
  ['s', 1000],
];

/**
 * A bucket size (ms) as a label value: a whole number of the largest unit
 * that divides it (`10m`, `1h`, `1d`, as the query API names them; `90s`,
 * `1500ms` for a size the state does not make today).
 *
 * @example
 * durationLabel(600_000); // '10m'
 */
export function durationLabel(ms: number): string {
  for (const [unit, length] of DURATION_UNITS) if (ms > 0 && ms % length === 0) return `${ms / length}${unit}`;
  return `${ms}ms`;
}

/**
 * The readings of `kpi_aggregate_buckets`: each size the state keeps
 * (10 minutes, an hour, a day), 0 while it holds none, so their series stay
 * put; then any other size it holds, smallest first.
 */
export function bucketReadings(counts: readonly BucketCount[]): Reading[] {
  const standard = Object.values(BUCKET_SIZES).sort((a, b) => a - b);
  const count = new Map(counts.map((c) => [c.size, c.count]));
  const others = counts.map((c) => c.size).filter((size) => !standard.includes(size));
  return [...standard, ...others].map((size) => ({ labels: { size: durationLabel(size) }, value: count.get(size) ?? 0 }));
}

async function featureMetrics(app: FastifyInstance): Promise<void> {
  const m = app.metrics;

  // store
  let reachable = false;
  let writable = false;
  m.beforeScrape(async () => {
    reachable = await app.store.ping();
    const writes = reachable ? await app.store.checkWrites() : app.store.writeHealth();
    writable = reachable && !writes.failing;
  });
  m.gauge('kpi_store_info', 'Always 1; kind says which store is in use (embedded or external).', () => [{ labels: { kind: app.store.kind }, value: 1 }], [
    'kind',
  ]);
  m.gauge('kpi_store_reachable', '1 when the store answered a ping at this scrape, else 0.', () => (reachable ? 1 : 0));
  m.gauge('kpi_store_writable', '1 when the store answers and its latest writes succeeded, else 0.', () => (writable ? 1 : 0));
  m.counterFrom(
    'kpi_store_request_errors_total',
    'Failed store requests by kind: connection, timeout, unavailable (5xx, 429, 408), client (other 4xx, often expected: 404, 409).',
    () => {
      const errors = app.store.requestErrors();
      return STORE_ERROR_KINDS.map((kind) => ({ labels: { kind }, value: errors[kind] }));
    },
    ['kind'],
  );

  // aggregate
  const status = () => app.aggregates.status();
  m.gauge(
    'kpi_aggregate_phase',
    'The phase of the aggregate: 1 for the current one, 0 for the others.',
    () => {
      const phase: string = status().phase;
      return [...PHASES, ...(PHASES.includes(phase) ? [] : [phase])].map((p) => ({ labels: { phase: p }, value: p === phase ? 1 : 0 }));
    },
    ['phase'],
  );
  m.gauge('kpi_aggregate_lag_changes', 'Changes of the feed still to read (absent when the store does not say).', () => status().lagChanges ?? undefined);
  m.gauge('kpi_aggregate_lag_seconds', 'Seconds since the aggregate was last caught up with the feed (0 while live).', () => status().lagSeconds);
  // The aggregate's totals start again from 0 when it is replaced (a reload, a
  // change of role between follower and standby): kept monotonic here.
  m.counterFrom(
    'kpi_aggregate_counted_total',
    'Changes counted into the aggregate by this instance.',
    monotonic(() => status().counted),
  );
  m.counterFrom(
    'kpi_aggregate_duplicates_total',
    'Changes read again and not counted twice.',
    monotonic(() => status().duplicates),
  );
  m.counterFrom(
    'kpi_aggregate_deletions_total',
    'Deletions read on the feed and left alone (removing a blob never subtracts it).',
    monotonic(() => status().deletions),
  );
  m.gauge('kpi_aggregate_checkpoint_age_seconds', 'Seconds since the last checkpoint was saved (absent before the first).', () => {
    const at = status().lastCheckpointAt;
    return at === null ? undefined : Math.max(0, seconds(Date.now() - at));
  });
  m.gauge('kpi_aggregate_watermark_timestamp_seconds', 'Time of the latest blob counted, in seconds since the Unix epoch.', () => seconds(status().watermark));
  m.gauge(
    'kpi_aggregate_applied_ranges',
    "Size of the aggregate's record of counted blobs: id ranges (a few per ingest run; it grows with runs, not with blobs).",
    () => status().applied.ranges,
  );
  m.gauge('kpi_aggregate_applied_runs', 'Ingest runs in the record of counted blobs.', () => status().applied.runs);
  m.gauge('kpi_aggregate_buckets', 'Time buckets the aggregate holds in memory, by size (10m, 1h, 1d).', () => bucketReadings(status().buckets), ['size']);

  // the follower lease
  const lease = () => app.leadership.status();
  m.gauge('kpi_lease_follower', '1 while this instance holds the aggregate follower lease, else 0.', () => (lease().role === 'follower' ? 1 : 0));
  m.counterFrom(
    'kpi_lease_takeovers_total',
    'Times this instance took the aggregate follower lease.',
    monotonic(() => lease().takeovers),
  );
  m.gauge(
    'kpi_lease_expires_in_seconds',
    "Seconds left on the holder's follower lease by the store's clock, as last seen (absent when nobody holds it or the time is unknown).",
    () => {
      const ms = lease().expiresInMs;
      return ms === null ? undefined : seconds(ms);
    },
  );

  // retention
  const retention = () => app.retention.status();
  m.counterFrom(
    'kpi_retention_removed_total',
    'Expired blobs removed since start.',
    monotonic(() => retention().removedTotal),
  );
  const passesOk = monotonic(() => retention().passes.ok);
  const passesFailed = monotonic(() => retention().passes.failed);
  m.counterFrom(
    'kpi_retention_passes_total',
    'Retention passes ended, by outcome: ok, or failed (the store failed, or expired blobs were left behind).',
    () => [
      { labels: { outcome: 'ok' }, value: passesOk() ?? 0 },
      { labels: { outcome: 'failed' }, value: passesFailed() ?? 0 },
    ],
    ['outcome'],
  );
  m.gauge('kpi_retention_running', '1 while a retention pass runs.', () => (retention().running ? 1 : 0));
  m.gauge('kpi_retention_last_pass_timestamp_seconds', 'When the last completed retention pass ended (absent before the first).', () => {
    const at = retention().lastRunAt;
    return at === null ? undefined : seconds(at);
  });
  m.gauge('kpi_retention_last_pass_error', '1 when the last retention pass failed or left expired blobs behind, else 0.', () =>
    retention().lastError === null ? 0 : 1,
  );

  // alerts
  const webhook = () => app.alerts.list().webhook;
  m.gauge(
    'kpi_alerts_breached',
    'Thresholds breached now, by key: 1 breached, 0 not (ok or not judged).',
    () => app.alerts.list().alerts.map((a) => ({ labels: { key: a.key }, value: a.state === 'breached' ? 1 : 0 })),
    ['key'],
  );
  m.counterFrom(
    'kpi_alerts_webhook_sent_total',
    'Alert transitions the webhook took (2xx).',
    monotonic(() => webhook()?.delivered),
  );
  m.counterFrom(
    'kpi_alerts_webhook_failed_total',
    'Alert transitions given up after their last attempt failed.',
    monotonic(() => webhook()?.failed),
  );
  m.counterFrom(
    'kpi_alerts_webhook_dropped_total',
    'Alert transitions dropped unsent (queue full, or shutdown).',
    monotonic(() => webhook()?.dropped),
  );
  m.gauge('kpi_alerts_webhook_queued', 'Alert transitions waiting to be sent.', () => webhook()?.queued);
}

export default fp(featureMetrics, {
  name: 'kpi-metrics-features',
  dependencies: ['kpi-metrics', 'kpi-store', 'kpi-aggregates', 'kpi-retention', 'kpi-alerts'],
  fastify: '5.x',
});
