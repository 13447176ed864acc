/**
 * Two kpi-live instances in this process on one store (the harness's), one
 * database: the first is elected at once and follows the feed; the second
 * stands by and answers from the published aggregate. The follower is then
 * cut off from the store (a proxy in front of it closes): it stops following
 * at its fence, before the standby takes the lease, and the standby takes
 * over within the bound while blobs keep flowing through it. After that, a
 * graceful close hands the lease over at once. Every acknowledged blob is
 * stored and the aggregate equals a rebuild: nothing lost, nothing counted
 * twice. Retention runs and alert webhooks post only on the lease holder.
 */
import { startReceiver, type Receiver } from '../harness/webhook-receiver.js';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { queryKpis } from '../../src/aggregate/model/query.js';

import type { LeaseStatus } from '../../src/cluster/elector.js';
import { leaseTimings } from '../../src/cluster/lease.js';
import { dropDb, nowTimestamp, startTestApp, TEST_TOKEN, uniqueDbName, type TestApp } from '../harness/app.js';
import { startMarkedLoad } from '../harness/marked-load.js';
import { waitUntil } from '../harness/process.js';
import { TcpProxy } from '../harness/tcp-proxy.js';
import { missingMarkers, rebuiltState, storedCount, storedMarkers } from '../harness/verify.js';
import { type KpiAnswer, HOUR } from '../../src/contract/kpis.js';

const TTL = 3000;
const timings = leaseTimings(TTL);
/** The bound: ttl + the renew interval + a margin (the skew margin, Date readings, a poll). */
const TAKEOVER_BOUND_MS = TTL + timings.renewMs + 5000;
const bearer = { authorization: `Bearer ${TEST_TOKEN}` };

const dbName = uniqueDbName('cluster');
const settings = {
  dbName,
  leaseTtlMs: TTL,
  feedLongpollMs: 1000,
  checkpointEveryMs: 200,
  checkpointEveryChanges: 100,
  thresholds: JSON.stringify({ bounceRate: { max: 0.5 } }),
  alertMinDialogs: 10,
};

const urlOf = (t: TestApp) => `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
const lease = async (t: TestApp) => ((await t.app.inject('/health')).json() as { lease: LeaseStatus & { following: boolean } }).lease;
const window = () => ({ from: Date.now() - 2 * HOUR, to: Date.now() + HOUR, bucket: '10m' as const });
const kpis = async (t: TestApp, w = window()) =>
  (await t.app.inject({ url: `/api/kpis?from=${w.from}&to=${w.to}&bucket=10m`, headers: bearer })).json() as KpiAnswer;
const dialogs = async (t: TestApp) => (await kpis(t)).series[0]?.total.dialogs ?? 0;

describe('two instances on one store: election, standby, failover', () => {
  let proxy: TcpProxy;
  let receiver: Receiver<{ kind: string }>;
  let a: TestApp; // through the proxy: the one cut off
  let b: TestApp;
  /** When each instance's role changed (ms), as the leadership interface told it. */
  const roleChanges: { who: 'a' | 'b'; leader: boolean; at: number }[] = [];

  beforeAll(async () => {
    proxy = await TcpProxy.inFrontOf(inject('couchUrl'));
    receiver = await startReceiver<{ kind: string }>();
    a = await startTestApp(
      { ...settings, couchdbUrl: proxy.urlFor(inject('couchUrl')), couchdbTimeoutMs: 2000, alertWebhookUrl: receiver.url },
      { listen: true },
    );
    b = await startTestApp({ ...settings, alertWebhookUrl: receiver.url }, { listen: true });
    a.app.leadership.leader$.subscribe((leader) => roleChanges.push({ who: 'a', leader, at: Date.now() }));
    b.app.leadership.leader$.subscribe((leader) => roleChanges.push({ who: 'b', leader, at: Date.now() }));
  });
  afterAll(async () => {
    await proxy.open().catch(() => undefined);
    await b?.app.close().catch(() => undefined);
    await a?.app.close().catch(() => undefined);
    await proxy.cut();
    await receiver.close();
    for (const suffix of ['', '_aggregates', '_deploys', '_alerts']) await dropDb(`${dbName}${suffix}`);
  });

  it('elects the first instance at once; the second stands by and serves the published aggregate', async () => {
    expect(await lease(a)).toMatchObject({ role: 'follower', following: true, mode: 'auto', takeovers: 1, holder: a.app.leadership.instanceId });
    expect(await lease(b)).toMatchObject({ role: 'standby', following: false, takeovers: 0, holder: a.app.leadership.instanceId });
    expect(a.app.leadership.isLeader()).toBe(true);
    expect(b.app.leadership.isLeader()).toBe(false);

    // blobs through both (ingest is stateless); the standby counts them from the published checkpoint
    const post = async (t: TestApp, bounced: number, engaged: number) => {
      const shown: [string, number] = ['screen.rp_info', 100];
      const data = [
        ...Array.from({ length: bounced }, () => ({ timestamp: nowTimestamp(), event_stream: [shown] })),
        ...Array.from({ length: engaged }, () => ({ timestamp: nowTimestamp(), event_stream: [shown, ['screen.pick_email', 900]] })),
      ];
      const res = await t.app.inject({ method: 'POST', url: '/wsapi/interaction_data', payload: { data } });
      expect(res.statusCode).toBe(200);
    };
    await post(a, 10, 2);
    await post(b, 8, 0);
    await waitUntil(async () => (await dialogs(b)) === 20, 10_000, 'the standby to serve 20 dialogs from the published aggregate');
    expect(b.app.aggregates.status()).toMatchObject({ phase: 'live', counted: 0 }); // it read none of them from the feed
    expect((await b.app.inject('/health')).json()).toMatchObject({ status: 'ok', lease: { role: 'standby' }, aggregate: { phase: 'live' } });
    const w = window();
    await waitUntil(async () => JSON.stringify(await kpis(a, w)) === JSON.stringify(await kpis(b, w)), 10_000, 'both to answer alike');

    // retention: the holder's passes only
    await waitUntil(() => a.app.retention.status().lastRunAt !== null, 10_000, "the holder's first retention pass");
    expect(b.app.retention.status().lastRunAt).toBeNull();
    expect(await b.app.retention.runNow()).toMatchObject({ removed: 0, skipped: expect.stringMatching(/does not hold/) });

    // alerts: both judge the breach (18 of 20 bounced); one post
    const judged = async (t: TestApp) =>
      ((await t.app.inject({ url: '/api/alerts', headers: bearer })).json() as { alerts: { key: string; state: string }[] }).alerts.find(
        (x) => x.key === 'bounceRate',
      )?.state;
    await waitUntil(async () => (await judged(a)) === 'breached' && (await judged(b)) === 'breached', 30_000, 'both to judge the breach');
    await waitUntil(() => receiver.received.length >= 1, 10_000, 'the breached post');
    const [ra, rb] = [a.app.alerts.rounds(), b.app.alerts.rounds()];
    await waitUntil(() => a.app.alerts.rounds() > ra && b.app.alerts.rounds() > rb, 20_000, 'another judging round on both');
    expect(receiver.received.map((e) => e.kind)).toEqual(['breached']);
  }, 60_000);

  it('a follower cut off from the store stops following before the standby takes over, within the bound; blobs keep flowing', async () => {
    const load = startMarkedLoad({ url: () => urlOf(b), concurrency: 4, prefix: 'cluster', seed: 7, timeoutMs: 20_000 });
    try {
      await waitUntil(() => load.acked.length >= 50, 10_000, 'load before the cut');
      const cutAt = Date.now();
      await proxy.cut();
      await waitUntil(() => b.app.leadership.isLeader(), TAKEOVER_BOUND_MS + 5000, 'the standby to take the lease');
      const takeoverMs = Date.now() - cutAt;
      const stoppedA = roleChanges.find((c) => c.who === 'a' && !c.leader && c.at >= cutAt);
      const startedB = roleChanges.find((c) => c.who === 'b' && c.leader)!;
      console.log(
        `cluster: the cut-off follower stopped ${stoppedA!.at - cutAt} ms after the cut, the standby took the lease after ${takeoverMs} ms ` +
          `(bound ${TAKEOVER_BOUND_MS} ms: ttl ${TTL} + renew ${timings.renewMs} + 5000)`,
      );
      expect(stoppedA!.at).toBeLessThan(startedB.at); // fenced first
      expect(a.app.leadership.isLeader()).toBe(false);
      expect(['stopped', 'retrying']).toContain(a.app.aggregates.status().phase); // it reads the feed no more
      expect(takeoverMs).toBeLessThanOrEqual(TAKEOVER_BOUND_MS);
      await waitUntil(async () => (await lease(b)).following && b.app.aggregates.status().phase === 'live', 10_000, 'the new follower to catch up');
      const acked = load.acked.length;
      await waitUntil(() => load.acked.length >= acked + 50, 10_000, 'blobs after the takeover');

      // back on the store, the old follower stands by and serves what the new one publishes
      await proxy.open();
      await waitUntil(async () => (await lease(a)).role === 'standby' && (await lease(a)).holder === b.app.leadership.instanceId, 15_000, 'a to stand by');
    } finally {
      await load.stop();
    }
    expect(Object.keys(load.statuses).filter((s) => s !== '200')).toEqual([]);
    const stored = await storedMarkers(b.store);
    expect(missingMarkers(load.acked, stored)).toEqual([]);
    const total = storedCount(stored);
    await waitUntil(async () => (await dialogs(b)) === total && (await dialogs(a)) === total, 20_000, `both to count ${total} blobs`);
    const rebuilt = await rebuiltState(b.store);
    expect(rebuilt.counted).toBe(total);
    const w = window();
    for (const t of [a, b]) expect(await kpis(t, w)).toEqual(JSON.parse(JSON.stringify(queryKpis(rebuilt.state, w))));
    // each transition posted once across the failover: breached and cleared alternate
    const kinds = receiver.received.map((e) => e.kind);
    expect(kinds).toEqual(kinds.map((_, i) => (i % 2 === 0 ? 'breached' : 'cleared')));
  }, 60_000);

  it('a graceful close gives the lease up: the standby takes over at once', async () => {
    const closedAt = Date.now();
    await b.app.close();
    await waitUntil(() => a.app.leadership.isLeader(), 5000, 'a to take the released lease');
    const handoverMs = Date.now() - closedAt;
    console.log(`cluster: graceful handover in ${handoverMs} ms`);
    expect(handoverMs).toBeLessThan(timings.pollMs + 2000);
    await waitUntil(async () => (await lease(a)).following && a.app.aggregates.status().phase === 'live', 10_000, 'a to follow the feed');
    const rebuilt = await rebuiltState(a.store);
    const w = window();
    expect(await kpis(a, w)).toEqual(JSON.parse(JSON.stringify(queryKpis(rebuilt.state, w))));
  }, 30_000);
});
