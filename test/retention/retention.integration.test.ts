/**
 * Retention on the harness's CouchDB: expired raw blobs go from the store and
 * from the read API, recent ones stay, and the aggregate counts what it
 * counted before, live, after a rebuild, and in the running service that
 * reloads the rebuilt checkpoint. A store outage shows in /health and the
 * next interval tries again; closing the app stops retention.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { queryKpis, type KpiQuery } from '../../src/aggregate/model/query.js';
import { rebuild } from '../../src/aggregate/runtime/rebuild.js';
import { recomputeKpis } from '../../src/aggregate/model/recompute.js';
import { defaultSegmentConfig } from '../../src/aggregate/model/segments.js';

import type { FactsInput } from '../../src/aggregate/model/facts.js';
import { readHorizon } from '../../src/retention/horizon.js';
import { Retention } from '../../src/retention/retention.js';
import { seededRandom, simulateSession } from '../../src/simulate/generator.js';
import { blobDocId, newRunId } from '../../src/store/blob-ids.js';
import { StoreRequestError, type StoreRequest } from '../../src/store/store.js';
import { nowTimestamp, startTestApp, storedBlobs, type TestApp, postSessions, whileTrafficFlows } from '../harness/app.js';
import { waitUntil } from '../harness/process.js';
import { TcpProxy } from '../harness/tcp-proxy.js';
import { type KpiAnswer, DAY, HOUR, MINUTE } from '../../src/contract/kpis.js';

const silent = pino({ level: 'silent' });
const NOW = Date.now();
/** An hour four days ago; retention reaches 25 minutes into it, so its cutoff (a 10-minute bucket) is at :20. */
const STRADDLED_HOUR = Math.floor((NOW - 4 * DAY) / HOUR) * HOUR;
const CUTOFF = STRADDLED_HOUR + 20 * MINUTE;
const RETENTION_DAYS = (NOW - (STRADDLED_HOUR + 25 * MINUTE)) / DAY;
/** KPI windows end before the blobs the tests post as ongoing traffic. */
const UNTIL = NOW - 30 * MINUTE;

type Item = { blob: Record<string, unknown>; userAgent: string };

/** Simulated sessions at the given times. */
function sessionsAt(seed: number, times: number[]): Item[] {
  const random = seededRandom(seed);
  return times.map((now) => simulateSession(random, { now }));
}

const spread = (n: number, from: number, to: number) => Array.from({ length: n }, (_, i) => from + ((to - from) * i) / n);

const expired = sessionsAt(1, [...spread(60, NOW - 10 * DAY, NOW - 5 * DAY), STRADDLED_HOUR, STRADDLED_HOUR + 10 * MINUTE]);
const retained = sessionsAt(2, [STRADDLED_HOUR + 40 * MINUTE, STRADDLED_HOUR + 50 * MINUTE, ...spread(60, NOW - 3 * DAY, NOW - HOUR)]);

const post = (t: TestApp, items: Item[]) => postSessions(t, items);

/**
 * Runs `work` while dialogs keep sending blobs of "now", as in production:
 * the feed keeps moving, so the aggregate soon reads past whatever retention
 * listed (on a quiet feed it would take up to two longpolls).
 */
/** Posts one ongoing blob (outside the KPI windows) and waits until the aggregate counted it: it has read the feed past everything before. */
async function readPastNow(t: TestApp): Promise<void> {
  const counted = t.app.aggregates.status().counted;
  await post(t, [
    {
      blob: { timestamp: nowTimestamp(), event_stream: [['screen.rp_info', 7]] },
      userAgent: 'Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0',
    },
  ]);
  await waitUntil(() => t.app.aggregates.status().counted > counted, 20_000, 'a blob posted after the passes counted');
}

const queries: KpiQuery[] = [
  { from: NOW - 12 * DAY, to: UNTIL, bucket: '1d' },
  { from: NOW - 12 * DAY, to: UNTIL, bucket: '1h', segment: 'os' },
  { from: STRADDLED_HOUR, to: STRADDLED_HOUR + HOUR, bucket: '1h', segment: 'locale' },
];
const seriesOf = (t: TestApp) => queries.map((q) => t.app.aggregates.kpis(q).series);
const dialogsIn = (answer: Pick<KpiAnswer, 'series'>) => answer.series.find((s) => s.segment === 'all')?.total.dialogs ?? 0;
const counted = (t: TestApp) => t.app.aggregates.status().counted;
/** Expired blobs a test writes straight to the store: more than a page of them. */
const WRITTEN_DIRECTLY = 1100;

const retentionConfig = {
  retentionDays: RETENTION_DAYS,
  // blobs days old are accepted, as a dialog's backlog would be
  maxBlobAgeHours: 720,
  feedLongpollMs: 1000,
  checkpointEveryMs: 200,
  checkpointEveryChanges: 100,
};

describe('retention of raw blobs', () => {
  let t: TestApp;
  let expiredIds: string[];
  let before: KpiAnswer['series'][];

  beforeAll(async () => {
    t = await startTestApp(retentionConfig);
    // the pass at start finds nothing yet; the next one is an hour away
    await waitUntil(() => t.app.retention.status().lastRunAt !== null, 10_000, 'the pass at start');
    await post(t, [...expired, ...retained]);
    await waitUntil(() => counted(t) >= expired.length + retained.length, 30_000, 'every blob counted');
    expiredIds = (await storedBlobs(t.store)).filter((b) => (b.timestamp as number) < CUTOFF).map((b) => b._id as string);
    before = seriesOf(t);
  });
  afterAll(async () => {
    await t.close();
  });

  it('removes the expired blobs from the store and the read API, keeps the recent ones, and the KPIs stay', async () => {
    expect(expiredIds).toHaveLength(expired.length);
    expect(dialogsIn({ series: before[0]! })).toBe(expired.length + retained.length);
    const pass = await whileTrafficFlows(t, () => t.app.retention.runNow());
    expect(pass).toMatchObject({ cutoff: CUTOFF, removed: expired.length });
    expect(pass.error).toBeUndefined();
    expect(pass.skipped).toBeUndefined();

    const stored = (await storedBlobs(t.store)).filter((b) => (b.timestamp as number) < UNTIL);
    expect(stored).toHaveLength(retained.length);
    expect(stored.every((b) => (b.timestamp as number) >= CUTOFF)).toBe(true);
    const read = await t.app.inject(`/wsapi/interaction_data?start=0&end=${UNTIL}`);
    expect(read.statusCode).toBe(200);
    expect((read.json() as { timestamp: number }[]).map((b) => b.timestamp).sort()).toEqual(stored.map((b) => b.timestamp).sort());
    expect((await t.app.inject(`/wsapi/interaction_data?start=0&end=${CUTOFF}`)).json()).toEqual([]);
    expect((await t.app.inject(`/wsapi/interaction_data/count?start=0&end=${UNTIL}`)).json()).toMatchObject({ count: retained.length });

    // the running aggregator reads the deletions on its feed (those not purged first) and subtracts nothing
    await readPastNow(t);
    const purges = t.app.retention.status().purge === 'supported';
    if (!purges) await waitUntil(() => t.app.aggregates.status().deletions >= expired.length, 20_000, 'the deletions on the feed');
    expect(seriesOf(t)).toEqual(before);
    const answer = await t.app.inject(`/api/kpis?from=${queries[1]!.from}&to=${queries[1]!.to}&bucket=1h&segment=os`);
    expect((answer.json() as KpiAnswer).series).toEqual(JSON.parse(JSON.stringify(before[1])));
    const health = (await t.app.inject('/health')).json() as { retention: Record<string, unknown>; aggregate: { deletions: number } };
    expect(health.retention).toMatchObject({ removed: expired.length, cutoff: CUTOFF, lastError: null, running: false });
    if (!purges) expect(health.aggregate.deletions).toBeGreaterThanOrEqual(expired.length);
    expect(await readHorizon(t.store, t.store.blobsDb)).toBe(CUTOFF);
  });

  it('purges the tombstones where the store can, and detects that the embedded store cannot', async () => {
    const status = t.app.retention.status();
    const gone = await t.store.request({ db: t.store.blobsDb, path: encodeURIComponent(expiredIds[0]!) }).catch((err: unknown) => err);
    expect(gone).toBeInstanceOf(StoreRequestError);
    expect((gone as StoreRequestError).statusCode).toBe(404);
    // a tombstone stays on the feed until it is purged
    const feed = await t.store.request<{ results: { id: string; deleted?: boolean }[] }>({ db: t.store.blobsDb, path: '_changes' });
    const tombstones = feed.results.filter((change) => expiredIds.includes(change.id));
    if (inject('couchKind') === 'embedded') {
      expect(status).toMatchObject({ purge: 'unsupported', purged: null });
      expect(tombstones).toHaveLength(expired.length);
      expect(tombstones.every((change) => change.deleted)).toBe(true);
    } else {
      expect(status).toMatchObject({ purge: 'supported', purged: expired.length });
      expect(tombstones).toEqual([]);
    }
  });

  it('runs one pass at a time, in bounded writes, and a pass after it finds nothing', async () => {
    // expired blobs written straight to the store (ids as ingest gives them), more than a page of them
    const run = newRunId();
    const docs = Array.from({ length: WRITTEN_DIRECTLY }, (_, i) => {
      const timestamp = Math.floor((NOW - 6 * DAY + i * MINUTE) / 600_000) * 600_000;
      return { _id: blobDocId(timestamp, run, i), timestamp, event_stream: [['screen.rp_info', 3]] };
    });
    for (let i = 0; i < docs.length; i += 500)
      await t.store.request({ method: 'POST', db: t.store.blobsDb, path: '_bulk_docs', body: { docs: docs.slice(i, i + 500) } });
    const total = expired.length + retained.length + docs.length;
    await waitUntil(() => t.app.aggregates.kpis(queries[0]!).series[0]!.total.dialogs === total, 20_000, 'the new blobs counted');
    const withThem = seriesOf(t);

    // watch the store's deletion writes while three passes are asked for at once
    const request = t.store.request.bind(t.store);
    let inFlight = 0;
    let most = 0;
    const sizes: number[] = [];
    (t.store as { request: typeof request }).request = async <T>(req: StoreRequest): Promise<T> => {
      const docsOf = (req.body as { docs?: { _deleted?: boolean }[] } | undefined)?.docs;
      const deleting = req.db === t.store.blobsDb && req.path === '_bulk_docs' && docsOf?.every((d) => d._deleted);
      if (!deleting) return request<T>(req);
      sizes.push(docsOf!.length);
      most = Math.max(most, ++inFlight);
      try {
        return await request<T>(req);
      } finally {
        inFlight -= 1;
      }
    };
    try {
      const passes = await whileTrafficFlows(t, () => Promise.all([t.app.retention.runNow(), t.app.retention.runNow(), t.app.retention.runNow()]));
      expect(passes.map((p) => p.removed)).toEqual([docs.length, 0, 0]);
      expect(passes.every((p) => !p.error && !p.skipped)).toBe(true);
      expect(most).toBe(1);
      expect(Math.max(...sizes)).toBeLessThanOrEqual(500);
    } finally {
      (t.store as { request: typeof request }).request = request;
    }
    // where the store purges, a purged tombstone leaves the feed, so the aggregate
    // may never read it: a blob posted after the passes, once counted, shows the
    // feed was read past every deletion
    await readPastNow(t);
    if (t.app.retention.status().purge !== 'supported')
      await waitUntil(() => t.app.aggregates.status().deletions >= expired.length + docs.length, 20_000, 'the deletions on the feed');
    expect(seriesOf(t)).toEqual(withThem);
  });

  it('leaves an expired blob written while a pass runs for the next pass', async () => {
    const timestamp = Math.floor((NOW - 7 * DAY) / 600_000) * 600_000;
    const late = { _id: blobDocId(timestamp, newRunId(), 0), timestamp, event_stream: [['screen.rp_info', 4]] };
    const request = t.store.request.bind(t.store);
    let written = false;
    (t.store as { request: typeof request }).request = async <T>(req: StoreRequest): Promise<T> => {
      const answer = await request<T>(req);
      // right after the pass notes where the database is, a dialog's late blob arrives
      if (!written && req.db === t.store.blobsDb && req.path === undefined && req.method === undefined) {
        written = true;
        await request({ method: 'PUT', db: t.store.blobsDb, path: encodeURIComponent(late._id), body: late });
      }
      return answer;
    };
    let first;
    try {
      first = await whileTrafficFlows(t, () => t.app.retention.runNow());
    } finally {
      (t.store as { request: typeof request }).request = request;
    }
    expect(written).toBe(true);
    expect(first).toMatchObject({ removed: 0, deferred: 1 });
    expect((await storedBlobs(t.store)).map((b) => b._id)).toContain(late._id);
    const second = await whileTrafficFlows(t, () => t.app.retention.runNow());
    expect(second).toMatchObject({ removed: 1 });
    expect(second.deferred).toBeUndefined();
    expect(dialogsIn(t.app.aggregates.kpis(queries[0]!))).toBe(expired.length + retained.length + WRITTEN_DIRECTLY + 1);
  });

  it('leaves expired blobs alone while the aggregate has not counted and checkpointed them', async () => {
    const run = newRunId();
    const docs = [0, 1, 2].map((i) => {
      const timestamp = Math.floor((NOW - 8 * DAY + i * HOUR) / 600_000) * 600_000;
      return { _id: blobDocId(timestamp, run, i), timestamp, event_stream: [['screen.rp_info', 5]] };
    });
    await t.store.request({ method: 'POST', db: t.store.blobsDb, path: '_bulk_docs', body: { docs } });
    // a second runner that sees an aggregate still catching up
    const behind = new Retention({
      store: t.store,
      db: t.store.blobsDb,
      retentionDays: RETENTION_DAYS,
      intervalMs: 60_000,
      log: silent,
      aggregate: () => ({ countedThrough: Date.now() - 60_000, phase: 'catching-up' }),
      waitMs: 300,
    });
    const pass = await behind.runNow();
    await behind.stop();
    expect(pass).toMatchObject({ removed: 0, skipped: expect.stringMatching(/catching-up/) });
    expect(behind.status.lastError).toMatch(/kept until the next pass/);
    expect((await storedBlobs(t.store)).map((b) => b._id)).toEqual(expect.arrayContaining(docs.map((d) => d._id)));
    // the service's own retention removes them once its aggregate has them
    expect(await whileTrafficFlows(t, () => t.app.retention.runNow())).toMatchObject({ removed: docs.length });
  });

  it('does not watch the feed for late blobs where ingest refuses blobs that old', async () => {
    const run = newRunId();
    const docs = [0, 1].map((i) => {
      const timestamp = Math.floor((NOW - 9 * DAY + i * HOUR) / 600_000) * 600_000;
      return { _id: blobDocId(timestamp, run, i), timestamp, event_stream: [['screen.rp_info', 6]] };
    });
    await t.store.request({ method: 'POST', db: t.store.blobsDb, path: '_bulk_docs', body: { docs } });
    const request = t.store.request.bind(t.store);
    let changesReads = 0;
    const watching = {
      ...t.store,
      request: <T>(req: StoreRequest): Promise<T> => {
        if (req.path === '_changes') changesReads += 1;
        return request<T>(req);
      },
    };
    const runner = new Retention({
      store: watching,
      db: t.store.blobsDb,
      retentionDays: RETENTION_DAYS,
      intervalMs: 60_000,
      log: silent,
      aggregate: () => t.app.aggregates.status(),
      maxBlobAgeMs: 2 * DAY, // ingest refuses anything before the retention cutoff
    });
    const pass = await whileTrafficFlows(t, () => runner.runNow());
    await runner.stop();
    expect(pass).toMatchObject({ removed: docs.length });
    expect(changesReads).toBe(0);
  });

  it('rebuild after retention gives the aggregate from before it, and the running service reloads it', async () => {
    const live = seriesOf(t);
    const settings = {
      store: t.store,
      blobsDb: t.store.blobsDb,
      stateDb: `${t.store.blobsDb}_aggregates`,
      segments: defaultSegmentConfig,
      retention: { tenMinuteHours: t.config.tenMinuteHours, hourlyDays: t.config.hourlyDays },
      batchSize: 200,
      log: silent,
    };
    // what a plain recompute from the stored blobs would say: the expired history is gone
    const stored = (await storedBlobs(t.store)) as unknown as FactsInput[];
    const plain = recomputeKpis(stored, defaultSegmentConfig, queries[0]!, () => 10 * MINUTE);
    expect(dialogsIn(plain)).toBe(retained.length);

    const rebuilt = await rebuild(settings);
    expect(rebuilt.horizon).toBe(CUTOFF);
    expect(rebuilt.keptBuckets).toBeGreaterThan(0);
    expect(queries.map((q) => queryKpis(rebuilt.state, q).series)).toEqual(live);

    // the service meets the replaced checkpoint at its next save, reloads from it, and goes on counting
    const late = sessionsAt(3, [NOW - 2 * HOUR]);
    await post(t, late);
    await waitUntil(
      () => dialogsIn(t.app.aggregates.kpis(queries[0]!)) === dialogsIn({ series: live[0]! }) + 1 && t.app.aggregates.status().phase === 'live',
      20_000,
      'the reloaded service counting a new blob',
    );
    const sinceReload = seriesOf(t);
    expect(sinceReload[2]).toEqual(live[2]); // the straddled hour, kept from the checkpoint, untouched
    expect(t.app.aggregates.kpis({ ...queries[1]!, to: NOW - 3 * HOUR }).series).toEqual(
      queryKpis(rebuilt.state, { ...queries[1]!, to: NOW - 3 * HOUR }).series,
    );
  });
});

describe('retention through a store outage, and at close', () => {
  let proxy: TcpProxy;
  let t: TestApp;
  beforeAll(async () => {
    proxy = await TcpProxy.inFrontOf(inject('couchUrl'));
    t = await startTestApp({
      ...retentionConfig,
      couchdbUrl: proxy.urlFor(inject('couchUrl')),
      couchdbTimeoutMs: 2000,
      retentionIntervalMinutes: 0.01, // every 600 ms
    });
  });
  afterAll(async () => {
    await proxy.open().catch(() => undefined);
    await t.close();
    await proxy.cut();
  });

  it('shows a failed pass in /health and removes the expired blobs at a later interval', async () => {
    await waitUntil(() => t.app.retention.status().lastRunAt !== null, 10_000, 'a first pass');
    await proxy.cut();
    await waitUntil(() => /store/.test(t.app.retention.status().lastError ?? ''), 20_000, 'a pass to fail');
    const health = await t.app.inject('/health');
    expect(health.statusCode).toBe(503);
    expect((health.json() as { retention: { lastError: string } }).retention.lastError).toMatch(/store/);

    await proxy.open();
    await post(t, expired.slice(0, 20));
    await whileTrafficFlows(t, () =>
      waitUntil(() => t.app.retention.status().removedTotal === 20 && t.app.retention.status().lastError === null, 30_000, 'a later pass to remove them'),
    );
    expect((await storedBlobs(t.store)).filter((b) => (b.timestamp as number) < CUTOFF)).toEqual([]);
    expect(dialogsIn(t.app.aggregates.kpis(queries[0]!))).toBe(20);
  });

  it('stops with the app: a pass in progress ends, and none starts after', async () => {
    const inProgress = t.app.retention.runNow();
    const started = Date.now();
    await t.app.close();
    expect(Date.now() - started).toBeLessThan(10_000);
    const last = await inProgress;
    expect(last.error).toBeUndefined();
    expect(await t.app.retention.runNow()).toMatchObject({ skipped: 'stopped', removed: 0 });
    expect(t.app.retention.status()).toMatchObject({ running: false, nextRunAt: null });
  });
});
