/**
 * Two `kpi-live serve` processes on one store and one database, under dialog
 * load spread over both. The first is elected and follows the feed; the
 * second stands by and answers `/api/kpis` from the published aggregate.
 * The follower is killed with SIGKILL (no release, no last checkpoint): the
 * standby takes the lease within the bound (ttl + the renew interval + a
 * margin) and follows the feed from the checkpoint while blobs keep flowing.
 * Every acknowledged blob is stored, and the aggregate equals a rebuild:
 * nothing lost, nothing counted twice. The store goes on answering others
 * right after the kill. Every wait has a bound that names its step, so a
 * failure says where it stopped rather than ending at the test's timeout.
 */
import { afterAll, describe, expect, inject, it, onTestFailed } from 'vitest';

import type { LeaseStatus } from '../../src/cluster/elector.js';
import { leaseTimings } from '../../src/cluster/lease.js';
import { dropDb, uniqueDbName } from '../harness/app.js';
import { startMarkedLoad } from '../harness/marked-load.js';
import { failoverServiceEnv, startServiceProcess, waitUntil, within, type ServiceProcess } from '../harness/process.js';
import { expectServiceEqualsRebuild, missingMarkers, openHarnessStore, storedCount, storedMarkers } from '../harness/verify.js';
import { type KpiAnswer, HOUR } from '../../src/contract/kpis.js';

const TTL = 3000;
const timings = leaseTimings(TTL);
const TAKEOVER_BOUND_MS = TTL + timings.renewMs + 5000;

const dbName = uniqueDbName('failover');
afterAll(async () => {
  for (const suffix of ['', '_aggregates', '_deploys', '_alerts']) await dropDb(`${dbName}${suffix}`);
});

interface Health {
  lease: LeaseStatus & { following: boolean };
  aggregate: { phase: string; lagSeconds: number };
}

describe('the follower process killed with SIGKILL, a standby process on the same store', () => {
  it('takes over within the bound; nothing acknowledged is lost, and the aggregate equals a rebuild', async () => {
    const env = failoverServiceEnv(inject('couchUrl'), dbName, TTL);
    const urls: string[] = [];
    const health = (i: number) => getJson<Health>(`${urls[i]}/health`, `GET /health of instance ${i}`);
    const start = async (i: number) => {
      const service = startServiceProcess(['serve'], env);
      urls[i] = await within(`instance ${i} to listen`, 30_000, service.listening());
      return service;
    };
    const store = await within('opening the harness store', 10_000, openHarnessStore(dbName));
    const first: ServiceProcess = await start(0);
    const second: ServiceProcess = await start(1);
    // a failure says what the surviving instance last logged
    onTestFailed(() => {
      const lines = second.logs.filter((l) => Number(l.level) >= 40).slice(-20);
      console.log(`failover: the second instance's last warnings and errors:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`);
    });
    let firstDead = false;
    let turn = 0;
    const load = startMarkedLoad({
      url: () => urls[firstDead ? 1 : turn++ % 2]!,
      concurrency: 8,
      prefix: 'failover',
      seed: 31,
      timeoutMs: 20_000,
    });
    try {
      expect((await health(0)).lease).toMatchObject({ role: 'follower', takeovers: 1 });
      expect((await health(1)).lease).toMatchObject({ role: 'standby', holder: (await health(0)).lease.instanceId });

      // the standby answers from the published aggregate before any takeover
      const kpisOf = (i: number, w = window()) =>
        getJson<KpiAnswer>(`${urls[i]}/api/kpis?from=${w.from}&to=${w.to}&bucket=10m`, `GET /api/kpis of instance ${i}`);
      await waitUntil(async () => ((await kpisOf(1)).series[0]?.total.dialogs ?? 0) >= 100, 15_000, 'the standby to serve 100 dialogs');
      expect((await health(1)).lease.role).toBe('standby');

      const killedAt = Date.now();
      firstDead = true;
      first.child.kill('SIGKILL');
      await within('the killed follower to exit', 5000, first.exited);
      // the store is not wedged by the requests the killed process held (a feed longpoll, bulk writes)
      await within('the store to answer a read after the SIGKILL', 5000, store.request({ db: dbName, path: '_all_docs', qs: { limit: 1 }, timeoutMs: 5000 }));
      let leaseAt = 0;
      await waitUntil(
        async () => {
          const h = await health(1);
          if (h.lease.role === 'follower' && leaseAt === 0) leaseAt = Date.now();
          return leaseAt > 0 && h.lease.following && h.aggregate.phase === 'live';
        },
        TAKEOVER_BOUND_MS + 15_000,
        'the standby to take over and catch up',
      );
      const takeoverMs = leaseAt - killedAt;
      const liveMs = Date.now() - killedAt;
      console.log(
        `failover: lease taken ${takeoverMs} ms after SIGKILL, following live after ${liveMs} ms ` +
          `(bound ${TAKEOVER_BOUND_MS} ms = ttl ${TTL} + renew ${timings.renewMs} + 5000)`,
      );
      expect(takeoverMs).toBeLessThanOrEqual(TAKEOVER_BOUND_MS);
      // by the store's clock (Date headers) or by an unchanged revision: never a guess
      const acquired = await within(
        "the new follower's lease log line",
        5000,
        second.waitForLog((l) => l.msg === 'aggregate follower lease acquired', 5000),
      );
      console.log(`failover: takeover rule: ${String(acquired.reason)}`);
      expect(acquired.reason).toMatch(/^expired \((store clock|unchanged)\)$/);
      expect((await health(1)).lease).toMatchObject({ role: 'follower', takeovers: 1 });
      const acked = load.acked.length;
      await waitUntil(() => load.acked.length >= acked + 100, 15_000, 'blobs after the takeover');
    } finally {
      await within('the load to stop (each request is bounded at 20 s)', 25_000, load.stop());
    }

    try {
      const stored = await within('reading the stored markers', 30_000, storedMarkers(store));
      console.log(
        `failover: ${load.sent} requests, answers ${JSON.stringify(load.statuses)}; ${load.acked.length} acknowledged, ${storedCount(stored)} stored`,
      );
      expect(missingMarkers(load.acked, stored)).toEqual([]);
      expect(Object.keys(load.statuses).filter((s) => s !== '200' && s !== 'network')).toEqual([]);
      await expectServiceEqualsRebuild(urls[1]!, store, storedCount(stored), { segments: ['os'], timeoutMs: 30_000, what: 'the new follower' });
    } finally {
      await within('closing the harness store', 5000, store.close());
      second.child.kill('SIGTERM');
      await within('the second instance to stop on SIGTERM', 15_000, second.exited);
    }
  }, 120_000);
});

/** A service that does not answer within 10 s fails the step that asked, by name, instead of holding the test to its timeout. */
function getJson<T>(url: string, step: string): Promise<T> {
  return within(
    step,
    10_000,
    fetch(url, { signal: AbortSignal.timeout(10_000) }).then((r) => r.json() as Promise<T>),
  );
}

function window() {
  return { from: Date.now() - 2 * HOUR, to: Date.now() + HOUR, bucket: '10m' as const };
}
