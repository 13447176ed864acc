/**
 * Retention as a Fastify plugin: runs {@link Retention} for the app's
 * lifetime (a pass once the app is ready, then every
 * `KPI_RETENTION_INTERVAL_MINUTES`), and exposes `app.retention` for
 * `/health`. Expired blobs go only once the aggregate has counted and
 * checkpointed them. Stops before the store closes.
 *
 * Passes run only on the instance that holds the aggregate follower lease
 * (`app.leadership`): one pass per store, waiting on the aggregate that
 * instance runs. A new holder starts its own schedule with a pass.
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/config.js';
import type { Subscription } from 'rxjs';
import { Retention, retentionCutoff, type RetentionPass, type RetentionStatus } from './retention.js';

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
  const options = {
    store: app.store,
    db: app.store.blobsDb,
    retentionDays: config.retentionDays,
    intervalMs: config.retentionIntervalMinutes * 60_000,
    log: app.log,
    aggregate: () => app.aggregates.status(),
    maxBlobAgeMs: config.maxBlobAgeHours * 60 * 60_000,
  };
  if (config.retentionDays * 24 < config.maxBlobAgeHours) {
    // allowed (retention leaves such a blob until the aggregate has counted it), but it is stored only to be removed
    app.log.warn(
      { retentionDays: config.retentionDays, maxBlobAgeHours: config.maxBlobAgeHours },
      'KPI_MAX_BLOB_AGE_HOURS accepts blobs that KPI_RETENTION_DAYS has already expired',
    );
  }
  // one runner per time this instance holds the lease; the last one stays for its status
  let runner: Retention | undefined;
  let holding = false;
  let stopped = false;
  let leadership: Subscription | undefined;
  const standbyStatus = (): RetentionStatus => ({
    ...(runner?.status ?? { lastRunAt: null, removed: 0, removedTotal: 0, purged: null, purge: 'unknown', cutoff: null, passes: { ok: 0, failed: 0 } }),
    running: false,
    lastError: null,
    nextRunAt: null,
  });
  const notHolding = (): RetentionPass => ({
    cutoff: retentionCutoff(Date.now(), config.retentionDays),
    removed: 0,
    purged: null,
    ms: 0,
    skipped: 'this instance does not hold the aggregate follower lease: the holder runs retention',
  });
  app.decorate('retention', {
    status: () => (holding || stopped ? (runner?.status ?? standbyStatus()) : standbyStatus()),
    runNow: () => (runner && (holding || stopped) ? runner.runNow() : Promise.resolve(notHolding())),
  } satisfies RetentionControl);
  app.addHook('onReady', async () => {
    leadership = app.leadership.leader$.subscribe((leader) => {
      if (stopped || leader === holding) return;
      holding = leader;
      if (leader) {
        runner = new Retention(options);
        runner.start();
      } else void runner?.stop();
    });
  });
  const stop = async () => {
    stopped = true;
    leadership?.unsubscribe();
    await runner?.stop();
  };
  // whichever comes first: the store waits for its users' drains, and the app's close
  app.store.beforeClose(stop);
  app.addHook('onClose', stop);
}

export default fp(retention, { name: 'kpi-retention', dependencies: ['kpi-store', 'kpi-aggregates'], fastify: '5.x' });
