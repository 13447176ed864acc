/**
 * `kpi-live serve` killed with SIGKILL again and again under dialog load, at
 * moments drawn from a printed seed (`KPI_FAULT_SEED=<n>` repeats them), and
 * started again each time: every acknowledged blob is stored, and once the
 * last instance has caught up, its KPIs equal a rebuild from the stored
 * blobs, each counted once. Checkpoints are frequent, so kills land before,
 * during and after them.
 */
import { randomInt } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { seededRandom } from '../../src/simulate/generator.js';
import { freeLoopbackPort } from '../../src/store/embedded.js';
import { dropDb, uniqueDbName } from '../harness/app.js';
import { startMarkedLoad } from '../harness/marked-load.js';
import { startServiceProcess, waitUntil, type ServiceProcess } from '../harness/process.js';
import { expectServiceEqualsRebuild, missingMarkers, openHarnessStore, storedCount, storedMarkers } from '../harness/verify.js';

const KILLS = 4;
/** A kill comes this long after the service answers again (ms, drawn from the seed). */
const KILL_AFTER = { min: 100, max: 1500 };

const dbName = uniqueDbName('sigkill');
afterAll(async () => {
  for (const suffix of ['', '_aggregates', '_deploys']) await dropDb(`${dbName}${suffix}`);
});

describe('kpi-live serve killed with SIGKILL at random moments under load', () => {
  it('loses no acknowledged blob, and after the last restart equals a rebuild', async () => {
    const seed = Number(process.env.KPI_FAULT_SEED ?? randomInt(2 ** 31));
    console.log(`sigkill: seed ${seed} (KPI_FAULT_SEED=${seed} repeats these kill moments)`);
    const random = seededRandom(seed);
    const port = await freeLoopbackPort();
    const url = `http://127.0.0.1:${port}`;
    const env = {
      COUCHDB_URL: inject('couchUrl'),
      KPI_DB: dbName,
      PORT: String(port),
      LOG_LEVEL: 'info',
      KPI_RATE_LIMIT_MAX: '1000000',
      KPI_CHECKPOINT_MS: '100',
      KPI_CHECKPOINT_CHANGES: '30',
      KPI_FEED_LONGPOLL_MS: '1000',
      KPI_FEED_BATCH: '25',
      // a restart after SIGKILL waits for the dead instance's lease to expire
      KPI_LEASE_TTL_MS: '3000',
    };
    const start = async () => {
      const service = startServiceProcess(['serve'], env);
      await service.waitForLog((l) => l.msg === 'kpi-live listening');
      return service;
    };

    let service: ServiceProcess = await start();
    const load = startMarkedLoad({ url: () => url, concurrency: 16, prefix: 'sigkill', seed, timeoutMs: 30_000 });
    const moments: number[] = [];
    try {
      for (let kill = 0; kill < KILLS; kill++) {
        const after = KILL_AFTER.min + Math.floor(random() * (KILL_AFTER.max - KILL_AFTER.min));
        moments.push(after);
        await new Promise((r) => setTimeout(r, after));
        service.child.kill('SIGKILL');
        await service.exited;
        service = await start();
      }
      const acked = load.acked.length;
      await waitUntil(() => load.acked.length >= acked + 100, 30_000, 'blobs stored by the last instance');
    } finally {
      await load.stop();
    }

    const store = await openHarnessStore(dbName);
    try {
      const stored = await storedMarkers(store);
      console.log(
        `sigkill: ${KILLS} kills at ${moments.join(', ')} ms after each start; ${load.sent} requests, answers ${JSON.stringify(load.statuses)}; ` +
          `${load.acked.length} acknowledged, ${storedCount(stored)} stored`,
      );
      expect(missingMarkers(load.acked, stored)).toEqual([]);
      expect(load.acked.length).toBeGreaterThan(100);
      // a killed service leaves no answer half-sent: only 200s and refused connections
      expect(Object.keys(load.statuses).filter((s) => s !== '200' && s !== 'network')).toEqual([]);

      await expectServiceEqualsRebuild(url, store, storedCount(stored), { segments: ['os', 'emailType'], timeoutMs: 60_000, what: 'the last instance' });
    } finally {
      await store.close();
      service.child.kill('SIGTERM');
      await service.exited;
    }
  }, 120_000);
});
