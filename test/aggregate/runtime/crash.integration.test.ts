/**
 * The whole service killed with SIGKILL under simulator load, then started
 * again: nothing acknowledged is lost, and once caught up its KPIs equal a
 * rebuild from the stored blobs (nothing lost, nothing counted twice).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { simulate } from '../../../src/simulate/run.js';
import { freeLoopbackPort } from '../../../src/store/embedded.js';
import { dropDb, uniqueDbName } from '../../harness/app.js';
import { startServiceProcess, waitUntil } from '../../harness/process.js';
import { expectServiceEqualsRebuild, openHarnessStore } from '../../harness/verify.js';

const dbName = uniqueDbName('crash');
afterAll(async () => {
  await dropDb(dbName);
  await dropDb(`${dbName}_aggregates`);
  await dropDb(`${dbName}_deploys`);
});

describe('kpi-live serve killed with SIGKILL under load', () => {
  it('loses no acknowledged blob and, after a restart, equals a rebuild', async () => {
    const port = await freeLoopbackPort();
    const env = {
      COUCHDB_URL: inject('couchUrl'),
      KPI_DB: dbName,
      PORT: String(port),
      KPI_RATE_LIMIT_MAX: '1000000',
      KPI_CHECKPOINT_MS: '150',
      KPI_CHECKPOINT_CHANGES: '40',
      KPI_FEED_LONGPOLL_MS: '1000',
      KPI_FEED_BATCH: '25',
      // a restart after SIGKILL waits for the dead instance's lease to expire
      KPI_LEASE_TTL_MS: '3000',
    };
    const url = `http://127.0.0.1:${port}`;
    const first = startServiceProcess(['serve'], { ...env, LOG_LEVEL: 'info' });
    await first.waitForLog((l) => l.msg === 'kpi-live listening');

    const load = simulate({ url, rate: 400, durationSeconds: 2, seed: 11, progress: false, concurrency: 16 });
    // kill it mid-stream, after some checkpoints have been written
    await waitUntil(
      async () => {
        const health = (await fetch(`${url}/health`).then((r) => r.json())) as { aggregate: { lastCheckpointAt: number | null; counted: number } };
        return health.aggregate.lastCheckpointAt !== null && health.aggregate.counted > 100;
      },
      20_000,
      'checkpoints under load',
    );
    first.child.kill('SIGKILL');
    const during = await load;
    expect(during.accepted).toBeGreaterThan(100);
    expect(during.failed).toBeGreaterThan(0);

    const second = startServiceProcess(['serve'], { ...env, LOG_LEVEL: 'info' });
    await second.waitForLog((l) => l.msg === 'kpi-live listening');
    const after = await simulate({ url, rate: 200, durationSeconds: 1, seed: 12, progress: false });
    expect(after.accepted).toBe(after.sent);

    const store = await openHarnessStore(dbName);
    try {
      const info = await store.request<{ doc_count: number }>({ db: dbName });
      const stored = info.doc_count - 1; // the design document
      expect(stored).toBeGreaterThanOrEqual(during.accepted + after.accepted);

      await expectServiceEqualsRebuild(url, store, stored, { segments: ['os', 'emailType'], timeoutMs: 30_000, what: 'the restarted aggregate' });
    } finally {
      await store.close();
      second.child.kill('SIGTERM');
      await second.exited;
    }
  });
});
