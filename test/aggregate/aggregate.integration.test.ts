/**
 * The live aggregate on the harness's real CouchDB: blobs posted over HTTP
 * are counted once, survive restarts, replays, outages and rebuilds, and the
 * query API answers what a recompute from the stored blobs answers.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { FeedFollower } from '../../src/aggregate/runtime/follower.js';
import { couchChangesReader, type ChangesReader } from '../../src/aggregate/runtime/feed.js';
import { queryKpis, type KpiQuery } from '../../src/aggregate/model/query.js';
import { rebuild } from '../../src/aggregate/runtime/rebuild.js';
import { recomputeKpis } from '../../src/aggregate/model/recompute.js';
import { defaultSegmentConfig } from '../../src/aggregate/model/segments.js';
import { AggregateState, defaultRetention } from '../../src/aggregate/model/state.js';
import { seededRandom, simulateSession, USER_AGENTS } from '../../src/simulate/generator.js';
import { StoreUnavailableError, type Store, type StoreRequest } from '../../src/store/store.js';
import { startTestApp, storedBlobs, uniqueDbName, type TestApp, postSessions } from '../harness/app.js';
import { waitUntil } from '../harness/process.js';
import { TcpProxy } from '../harness/tcp-proxy.js';
import type { FactsInput } from '../../src/aggregate/model/facts.js';
import { type KpiAnswer, HOUR } from '../../src/contract/kpis.js';

const silent = pino({ level: 'silent' });
const NOW = Date.now();

/** Simulated sessions spread over the last `hours`, as blobs to post. */
function sessions(seed: number, n: number, hours = 6): { blob: Record<string, unknown>; userAgent: string }[] {
  const random = seededRandom(seed);
  return Array.from({ length: n }, (_, i) => simulateSession(random, { now: NOW - hours * HOUR + (i * hours * HOUR) / n }));
}

const post = (t: TestApp, items: { blob: Record<string, unknown>; userAgent?: string }[]) =>
  postSessions(t, items, { perRequest: 50, userAgent: USER_AGENTS[0]! });

/** A rebuild of a test app's databases, 100 changes a batch (its store given apart). */
const rebuildSettings = (t: TestApp) => ({
  blobsDb: t.store.blobsDb,
  stateDb: `${t.store.blobsDb}_aggregates`,
  segments: defaultSegmentConfig,
  retention: defaultRetention,
  batchSize: 100,
  log: silent,
});

const counted = (t: TestApp) => t.app.aggregates.status().counted;
const waitCounted = (t: TestApp, n: number) => waitUntil(() => counted(t) >= n, 30_000, `${n} blobs counted (have ${counted(t)})`);

async function expectMatchesRecompute(t: TestApp, query: KpiQuery): Promise<KpiAnswer> {
  const res = await t.app.inject({
    url: `/api/kpis?from=${query.from}&to=${query.to}&bucket=${query.bucket}${query.segment ? `&segment=${query.segment}` : ''}`,
  });
  expect(res.statusCode).toBe(200);
  const answer = res.json() as KpiAnswer;
  const blobs = (await storedBlobs(t.store)) as unknown as FactsInput[];
  const sizes = new AggregateState(defaultSegmentConfig, defaultRetention);
  sizes.watermark = answer.watermark;
  expect(answer).toEqual(JSON.parse(JSON.stringify(recomputeKpis(blobs, defaultSegmentConfig, query, (time) => sizes.sizeFor(time)))));
  return answer;
}

const window = (bucket: KpiQuery['bucket'], segment?: KpiQuery['segment']): KpiQuery => ({ from: NOW - 7 * HOUR, to: NOW + HOUR, bucket, segment });
const fastFeed = { feedLongpollMs: 1000, checkpointEveryMs: 200, checkpointEveryChanges: 100 };

describe('aggregates from HTTP ingest', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(fastFeed);
    await post(t, sessions(1, 400));
    await waitCounted(t, 400);
  });
  afterAll(async () => {
    await t.close();
  });

  it('answers /api/kpis exactly as a recompute from the stored blobs, for every bucket size and segmentation', async () => {
    const all = await expectMatchesRecompute(t, window('10m'));
    expect(all.series[0]!.total.dialogs).toBe(400);
    expect(all.series[0]!.total.newUserFunnel[0]!.count).toBeGreaterThan(0);
    await expectMatchesRecompute(t, window('1h', 'os'));
    await expectMatchesRecompute(t, window('1d', 'locale'));
    await expectMatchesRecompute(t, window('1h', 'emailType'));
  });

  it('serves funnels and CSV', async () => {
    const funnel = await t.app.inject({ url: `/api/funnels/new-user?from=${NOW - 7 * HOUR}&to=${NOW + HOUR}&segment=browser` });
    expect(funnel.statusCode).toBe(200);
    const body = funnel.json() as { series: { segment: string; steps: { step: number; count: number }[] }[] };
    expect(body.series.map((s) => s.steps.map((x) => x.step))).toEqual(body.series.map(() => [1, 2, 3, 4]));
    const kpis = (await t.app.inject({ url: `/api/kpis?from=${NOW - 7 * HOUR}&to=${NOW + HOUR}&bucket=1h` })).json() as KpiAnswer;
    const csv = await t.app.inject({ url: `/api/kpis?from=${NOW - 7 * HOUR}&to=${NOW + HOUR}&bucket=1h&format=csv` });
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
    const lines = csv.body.trim().split('\n');
    expect(lines[0]).toMatch(/^segment,start,end,dialogs,/);
    expect(lines).toHaveLength(1 + kpis.series[0]!.points.length);
    expect(Number(lines[1]!.split(',')[3])).toBe(kpis.series[0]!.points[0]!.kpis.dialogs);
    const funnelCsv = await t.app.inject({ url: `/api/funnels/password-reset?format=csv` });
    expect(funnelCsv.body.split('\n')[0]).toBe('segment,step,name,count,estimate,conversion_from_start,conversion_from_previous,drop_off');
  });

  it.each([
    ['/api/kpis?bucket=5m', 400, 'query.bucket'],
    ['/api/kpis?segment=planet', 400, 'query.segment'],
    [`/api/kpis?from=${NOW}&to=${NOW - 1}`, 400, 'query.to'],
    ['/api/kpis?from=0&to=86400000000&bucket=10m', 400, 'query.from'],
    ['/api/funnels/checkout', 404, 'name'],
  ])('refuses %s', async (url, status, field) => {
    const res = await t.app.inject({ url });
    expect(res.statusCode).toBe(status);
    expect(res.json().field).toBe(field);
  });

  it('shows the aggregate in /health', async () => {
    const health = (await t.app.inject('/health')).json() as { aggregate: { phase: string; lagSeconds: number } };
    expect(health.aggregate.phase).toBe('live');
    expect(health.aggregate.lagSeconds).toBe(0);
  });
});

describe('aggregates across restarts, replays, late blobs, outages and rebuilds', () => {
  const dbName = uniqueDbName('agg');
  const apps: TestApp[] = [];
  const start = async (extra: Record<string, unknown> = {}) => {
    const t = await startTestApp({ ...fastFeed, dbName, ...extra });
    apps.push(t);
    return t;
  };
  afterAll(async () => {
    for (const t of apps.slice(0, -1)) await t.app.close().catch(() => undefined);
    await apps.at(-1)?.close();
  });

  it('resumes from the checkpoint after a restart and counts later blobs once', async () => {
    const first = await start();
    await post(first, sessions(2, 300));
    await waitCounted(first, 300);
    const before = await expectMatchesRecompute(first, window('1h'));
    await first.app.close();

    const second = await start();
    // loaded, not recounted: nothing was read again
    expect(counted(second)).toBe(0);
    expect(((await second.app.inject(`/api/kpis?from=${NOW - 7 * HOUR}&to=${NOW + HOUR}&bucket=1h`)).json() as KpiAnswer).series).toEqual(before.series);
    await post(second, sessions(3, 100));
    await waitCounted(second, 100);
    const after = await expectMatchesRecompute(second, window('1h'));
    expect(after.series[0]!.total.dialogs).toBe(400);
  });

  it('a replay of the feed from 0, and from an older position, into a running aggregator changes nothing', async () => {
    const t = apps.at(-1)!;
    const base = couchChangesReader(t.store, t.store.blobsDb, { limit: 37, longpollMs: 500 });
    const positions: unknown[] = [];
    const rewinds = [0];
    const reader: ChangesReader = async (since, signal, wait) => {
      const batch = await base(since, signal, wait);
      positions.push(batch.lastSeq);
      if (batch.caughtUp && rewinds.length > 0) {
        const to = rewinds.shift()!;
        if (rewinds.length === 0 && positions.length > 3) rewinds.push(-1);
        return { ...batch, lastSeq: to === -1 ? positions[Math.floor(positions.length / 2)] : to };
      }
      return batch;
    };
    const aggregator = new FeedFollower({
      store: t.store,
      blobsDb: t.store.blobsDb,
      stateDb: `${t.store.blobsDb}_replay`,
      segments: defaultSegmentConfig,
      retention: defaultRetention,
      batchSize: 37,
      longpollMs: 500,
      checkpointEveryChanges: 1_000_000,
      checkpointEveryMs: 60_000,
      log: silent,
      reader,
    });
    await aggregator.start();
    await waitUntil(() => aggregator.status.counted >= 400, 30_000, 'first pass');
    const firstPass = JSON.stringify(aggregator.state.toJSON());
    await waitUntil(() => aggregator.status.duplicates >= 400 + 200, 30_000, 'the replays');
    expect(aggregator.status.counted).toBe(400);
    expect(JSON.stringify(aggregator.state.toJSON())).toBe(firstPass);
    await aggregator.stop();
  });

  it('a late blob updates its own old bucket and is announced as a change of that bucket', async () => {
    const t = apps.at(-1)!;
    const changes: string[][] = [];
    const sub = t.app.aggregates.changes$.subscribe((c) => changes.push(c.keys));
    const late = NOW - 30 * HOUR;
    const before = counted(t);
    await post(t, [{ blob: { timestamp: late, event_stream: [['screen.rp_info', 5]] } }]);
    await waitCounted(t, before + 1);
    sub.unsubscribe();
    const bucket = Math.floor(late / 600_000) * 600_000;
    expect(changes.flat()).toContain(`${bucket}/600000`);
    const answer = (await t.app.inject(`/api/kpis?from=${bucket}&to=${bucket + 600_000}&bucket=10m`)).json() as KpiAnswer;
    expect(answer.series[0]!.points).toEqual([expect.objectContaining({ start: bucket })]);
    expect(answer.series[0]!.total.dialogs).toBe(1);
  });

  it('a rebuild whose _changes reads time out tries them again, and counts exactly as one that never met a timeout', async () => {
    const t = apps.at(-1)!;
    const settings = { ...rebuildSettings(t), dryRun: true };
    let timeouts = 2;
    const slow: Store = {
      ...t.store,
      request: <T>(req: StoreRequest) =>
        req.path === '_changes' && timeouts-- > 0 ? Promise.reject(new StoreUnavailableError('store timed out', true)) : t.store.request<T>(req),
    };
    const despite = await rebuild({ ...settings, store: slow });
    expect(timeouts).toBeLessThan(0); // both timeouts were met
    const plain = await rebuild({ ...settings, store: t.store });
    expect(despite.counted).toBe(plain.counted);
    expect(despite.changesRead).toBe(plain.changesRead);
    expect(JSON.stringify(despite.state.toJSON())).toBe(JSON.stringify(plain.state.toJSON()));
  });

  it('rebuild gives exactly the live aggregate, and a running service reloads from the rebuilt checkpoint', async () => {
    const t = apps.at(-1)!;
    const live = t.app.aggregates.kpis(window('1h', 'os'));
    const rebuilt = await rebuild({ ...rebuildSettings(t), store: t.store });
    expect(rebuilt.counted).toBe(401);
    for (const query of [window('10m'), window('1h', 'os'), window('1d', 'emailType'), { from: NOW - 40 * HOUR, to: NOW, bucket: '10m' as const }]) {
      expect(queryKpis(rebuilt.state, query)).toEqual(t.app.aggregates.kpis(query));
    }
    expect(live.series.length).toBeGreaterThan(1);
    // the running service's next checkpoint meets the replaced one, reloads from it, and goes on
    await post(t, sessions(4, 10));
    await waitUntil(
      () => t.app.aggregates.kpis(window('1h')).series[0]!.total.dialogs === 410 && t.app.aggregates.status().phase === 'live',
      20_000,
      'the new blobs',
    );
    await expectMatchesRecompute(t, window('1h', 'os'));
  });
});

describe('aggregates through a store outage', () => {
  let proxy: TcpProxy;
  let t: TestApp;
  beforeAll(async () => {
    proxy = await TcpProxy.inFrontOf(inject('couchUrl'));
    t = await startTestApp({ ...fastFeed, couchdbUrl: proxy.urlFor(inject('couchUrl')), couchdbTimeoutMs: 2000 });
  });
  afterAll(async () => {
    await proxy.open().catch(() => undefined);
    await t.close();
    await proxy.cut();
  });

  it('retries while the store is away and catches up, counting everything once', async () => {
    await post(t, sessions(5, 100));
    await waitCounted(t, 100);
    await proxy.cut();
    await waitUntil(() => t.app.aggregates.status().phase === 'retrying', 20_000, 'the aggregate to notice');
    expect(t.app.aggregates.status().lastError).toMatch(/store/);
    await proxy.open();
    await post(t, sessions(6, 100));
    await waitCounted(t, 200);
    const answer = await expectMatchesRecompute(t, window('10m'));
    expect(answer.series[0]!.total.dialogs).toBe(200);
  });
});
