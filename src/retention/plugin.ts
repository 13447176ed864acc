/**
 * Retention as a Fastify plugin: runs {@link Retention} for the app's
 * lifetime (a pass once the app is ready, then every
 * `KPI_RETENTION_INTERVAL_MINUTES`), and exposes `app.retention` for
 * `/health`. Expired blobs go only once the aggregate has counted and
 * checkpointed them. Stops before the store closes.
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/config.js';
import { Retention, type RetentionPass, type RetentionStatus } from './retention.js';

/** What other features may use of retention. */
export interface RetentionControl {
  status(): RetentionStatus;
  /** One pass now (after any pass in progress). */
  runNow(): Promise<RetentionPass>;
}

declare module 'fastify' {
  interface FastifyInstance {
    retention: RetentionControl;
  }
}

async function retention(app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  const runner = new Retention({
    store: app.store,
    db: app.store.blobsDb,
    retentionDays: config.retentionDays,
    intervalMs: config.retentionIntervalMinutes * 60_000,
    log: app.log,
    aggregate: () => app.aggregates.status(),
    maxBlobAgeMs: config.maxBlobAgeHours * 60 * 60_000,
  });
  if (config.retentionDays * 24 < config.maxBlobAgeHours) {
    // allowed (retention leaves such a blob until the aggregate has counted it), but it is stored only to be removed
    app.log.warn(
      { retentionDays: config.retentionDays, maxBlobAgeHours: config.maxBlobAgeHours },
      'KPI_MAX_BLOB_AGE_HOURS accepts blobs that KPI_RETENTION_DAYS has already expired',
    );
  }
  app.decorate('retention', { status: () => runner.status, runNow: () => runner.runNow() } satisfies RetentionControl);
  app.addHook('onReady', async () => runner.start());
  // whichever comes first: the store waits for its users' drains, and the app's close
  app.store.beforeClose(() => runner.stop());
  app.addHook('onClose', async () => runner.stop());
}

export default fp(retention, { name: 'kpi-retention', dependencies: ['kpi-store', 'kpi-aggregates'], fastify: '5.x' });
