/**
 * kpi-live on a store that speaks CouchDB 3's sequence dialect: every
 * sequence is an opaque string that is neither a number nor ordered (a fresh
 * one each time, with a numeric prefix that mostly lies), `since` accepts
 * only what the store sent, and `_changes` says `pending`. The harness's
 * store (pouchdb-server: integer sequences, no `pending`) is put behind
 * {@link Couch3SeqProxy}, and the real service runs on it:
 *
 * 1. ingested blobs are counted once each and the aggregate is live, its
 *    lag in changes taken from `pending`;
 * 2. the checkpoint saves the opaque sequence as the store sent it;
 * 3. a restart resumes from it (the first `_changes` read after the start
 *    asks for exactly that string), catches up a backlog batch by batch with
 *    `pending` telling how much is left, counts nothing twice, and counts
 *    what comes next;
 * 4. `/health`, `/metrics` and an export through the read API work;
 * 5. the aggregate equals a rebuild (which reads the feed through the proxy
 *    too);
 * 6. a retention pass, which notes `update_seq` and reads `_changes` from
 *    it, removes the expired blobs and the aggregate keeps counting them.
 *
 * The proxy counts what it minted and translated, so nothing here passes
 * without it.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ROOT_ID } from '../../src/aggregate/runtime/checkpoint.js';
import type { KpiQuery } from '../../src/aggregate/model/query.js';
import { queryKpis } from '../../src/aggregate/model/query.js';
import { rebuild } from '../../src/aggregate/runtime/rebuild.js';
import { defaultSegmentConfig } from '../../src/aggregate/model/segments.js';
import { defaultRetention } from '../../src/aggregate/model/state.js';
import { seededRandom, simulateSession } from '../../src/simulate/generator.js';
import { blobDocId, newRunId } from '../../src/store/blob-ids.js';
import { exportFromApi } from '../../src/transfer/exporter.js';
import { startTestApp, storedBlobCount, TEST_TOKEN, type TestApp, postSessions } from '../harness/app.js';
import { Couch3SeqProxy, MALFORMED_SINCE, OPAQUE_SEQ } from '../harness/couch3-seq-proxy.js';
import { waitUntil } from '../harness/process.js';
import { DAY, HOUR, MINUTE } from '../../src/contract/kpis.js';

const NOW = Date.now();
const BATCH = 50;
const SETTINGS = {
  feedLongpollMs: 300,
  feedBatchSize: BATCH,
  checkpointEveryMs: 50,
  checkpointEveryChanges: BATCH,
  // expired blobs (older than 2 days) are accepted, as a dialog's backlog would be, and removed by a pass asked for
  retentionDays: 2,
  maxBlobAgeHours: 720,
};
const FIRST = 300;
const BACKLOG = 200;
const MORE = 100;
const EXPIRED = 20;
const AUTH = { authorization: `Bearer ${TEST_TOKEN}` };

type Item = { blob: Record<string, unknown>; userAgent: string };
const random = seededRandom(20261123);
/** Simulated sessions spread over the last three hours (or at `at`). */
const sessions = (n: number, at?: (i: number) => number): Item[] =>
  Array.from({ length: n }, (_, i) => simulateSession(random, { now: at ? at(i) : NOW - 3 * HOUR + (i * 3 * HOUR) / n }));

const post = (t: TestApp, items: Item[]) => postSessions(t, items);

interface HealthAggregate {
  phase: string;
  counted: number;
  duplicates: number;
  lagChanges: number | null;
  lastError: string | null;
}
const health = async (t: TestApp) => {
  const res = await t.app.inject({ url: '/health' });
  return { statusCode: res.statusCode, body: res.json() as { status: string; aggregate: HealthAggregate } };
};
const aggregate = async (t: TestApp) => (await health(t)).body.aggregate;

const WHOLE: KpiQuery = { from: NOW - 7 * DAY, to: NOW + HOUR, bucket: '1d' };
const windows = (): KpiQuery[] => [
  WHOLE,
  { from: NOW - 4 * HOUR, to: NOW + HOUR, bucket: '10m' },
  { from: NOW - 4 * HOUR, to: NOW + HOUR, bucket: '1h', segment: 'os' },
  { from: NOW - 7 * DAY, to: NOW + HOUR, bucket: '1d', segment: 'browser' },
];
/** Dialogs in the whole window, as `/api/kpis` answers. */
async function apiDialogs(t: TestApp): Promise<number> {
  const res = await t.app.inject({ url: `/api/kpis?from=${WHOLE.from}&to=${WHOLE.to}&bucket=${WHOLE.bucket}`, headers: AUTH });
  expect(res.statusCode, res.body).toBe(200);
  return (res.json() as { series: { segment: string; total: { dialogs: number } }[] }).series.find((s) => s.segment === 'all')?.total.dialogs ?? 0;
}

/**
 * The aggregate recomputed from every stored blob, as `kpi-live rebuild
 * --dry-run` does (test/harness/verify.ts), but in batches of {@link BATCH}:
 * the rebuild reads on from the opaque sequences and stops on `pending`.
 */
const rebuilt = (t: TestApp) =>
  rebuild({
    store: t.store,
    blobsDb: t.store.blobsDb,
    stateDb: `${t.store.blobsDb}_aggregates`,
    segments: defaultSegmentConfig,
    retention: defaultRetention,
    batchSize: BATCH,
    log: pino({ level: 'silent' }),
    dryRun: true,
  });

/** Waits until the instance is live and `counted` (by this instance) is `n`. */
async function liveWith(t: TestApp, n: number, what: string): Promise<HealthAggregate> {
  let last: HealthAggregate | undefined;
  try {
    await waitUntil(
      async () => {
        last = await aggregate(t);
        return last.phase === 'live' && last.counted === n;
      },
      15_000,
      `${what}: live with ${n} counted`,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message} (last /health aggregate: ${JSON.stringify(last)})`);
  }
  return last!;
}

describe('kpi-live on CouchDB 3 sequences (opaque strings, not ordered, with pending)', () => {
  let proxy: Couch3SeqProxy;
  let first: TestApp;
  let second: TestApp | undefined;
  let dbName: string;
  let sent = 0;
  let checkpointSeq: unknown;
  /** Refusals of the proxy's own check; kpi-live's sequences must never be refused. */
  let ownRefusals = 0;

  beforeAll(async () => {
    proxy = new Couch3SeqProxy(inject('couchUrl'));
    await proxy.open();
    first = await startTestApp({ ...SETTINGS, couchdbUrl: proxy.url });
    dbName = first.config.dbName;
  });
  afterAll(async () => {
    await (second ?? first)?.close();
    await proxy?.close();
  });

  it('the proxy speaks the dialect: opaque sequences, fresh each time; since=now passes; an integer since is refused as CouchDB 3 does', async () => {
    const info = await first.store.request<{ update_seq: unknown }>({ db: dbName });
    const again = await first.store.request<{ update_seq: unknown }>({ db: dbName });
    expect(info.update_seq).toMatch(OPAQUE_SEQ);
    expect(again.update_seq).toMatch(OPAQUE_SEQ);
    expect(again.update_seq).not.toBe(info.update_seq);
    expect(proxy.realSeq(again.update_seq)).toEqual(proxy.realSeq(info.update_seq));
    const now = await first.store.request<{ results: unknown[]; last_seq: unknown; pending: number }>({ db: dbName, path: '_changes', qs: { since: 'now' } });
    expect(now).toMatchObject({ results: [], pending: 0 });
    expect(now.last_seq).toMatch(OPAQUE_SEQ);
    // since in a POST body is mapped too
    const posted = await first.store.request<{ results: { seq: unknown }[]; pending: number }>({
      method: 'POST',
      db: dbName,
      path: '_changes',
      body: { since: now.last_seq },
    });
    expect(proxy.changesRequests.find((r) => r.since === now.last_seq)).toEqual({ db: dbName, since: now.last_seq, real: proxy.realSeq(now.last_seq) });
    expect(posted.pending).toBe(0);
    for (const change of posted.results) expect(change.seq).toMatch(OPAQUE_SEQ); // the service's own writes meanwhile
    const real = String(proxy.realSeq(info.update_seq));
    await expect(first.store.request({ db: dbName, path: '_changes', qs: { since: real } })).rejects.toMatchObject({ statusCode: 400 });
    await expect(first.store.request({ method: 'POST', db: dbName, path: '_changes', body: { since: real } })).rejects.toMatchObject({ statusCode: 400 });
    // answered by the proxy itself, before the store (so no credentials are needed)
    const raw = await fetch(`http://127.0.0.1:${proxy.port}/${dbName}/_changes?since=${real}`);
    expect(raw.status).toBe(400);
    expect(await raw.json()).toEqual(MALFORMED_SINCE);
    ownRefusals = proxy.counts.refused; // ours, not kpi-live's
    expect(ownRefusals).toBe(3);
  });

  it('1. counts every ingested blob once and is live, its lag in changes from pending', async () => {
    await post(first, sessions(FIRST));
    sent += FIRST;
    const status = await liveWith(first, FIRST, 'the first instance');
    expect(status.duplicates).toBe(0);
    expect(status.lagChanges).toBe(0);
    expect(status.lastError).toBeNull();
    expect(await apiDialogs(first)).toBe(sent);
    expect(proxy.counts.pendingAdded).toBeGreaterThan(0);
    expect(proxy.counts.translated).toBeGreaterThan(0);
    expect(proxy.counts.refused).toBe(ownRefusals);
  });

  it('2. the checkpoint saved an opaque sequence the store sent, not a number', async () => {
    await waitUntil(() => first.app.aggregates.status().lastCheckpointAt !== null, 5000, 'a checkpoint');
    await first.app.close(); // its final checkpoint saves the position it read to
    const root = await first.store.request<{ seq: unknown }>({ db: `${dbName}_aggregates`, path: ROOT_ID });
    checkpointSeq = root.seq;
    expect(typeof checkpointSeq).toBe('string');
    expect(checkpointSeq).toMatch(OPAQUE_SEQ);
    expect(Number.isNaN(Number(checkpointSeq))).toBe(true);
    expect(proxy.originOf(checkpointSeq)).toBe('changes');
    expect(proxy.realSeq(checkpointSeq)).toBeDefined();
  });

  it('3. a restart resumes from the opaque checkpoint, catches up a backlog by pending, counts nothing twice, and counts what comes next', async () => {
    // a backlog stored while no instance followed the feed (ids as ingest gives them)
    const run = newRunId();
    const backlog = sessions(BACKLOG).map((item, i) => ({ ...item.blob, _id: blobDocId(item.blob.timestamp as number, run, i) }));
    for (let i = 0; i < backlog.length; i += 100)
      await first.store.request({ method: 'POST', db: dbName, path: '_bulk_docs', body: { docs: backlog.slice(i, i + 100) } });
    sent += BACKLOG;

    const mark = proxy.changesRequests.length;
    second = await startTestApp({ ...SETTINGS, couchdbUrl: proxy.url, dbName }, { listen: true });
    const status = await liveWith(second, BACKLOG, 'the restarted instance');
    const resumed = proxy.changesRequests.slice(mark).find((r) => r.db === dbName);
    expect(resumed?.since).toBe(checkpointSeq);
    expect(resumed?.real).toEqual(proxy.realSeq(checkpointSeq));
    // the backlog took several batches, and pending said how many changes were left
    expect(proxy.counts.maxPending).toBeGreaterThanOrEqual(BACKLOG - BATCH);
    expect(status.duplicates).toBe(0);
    expect(status.lagChanges).toBe(0);
    expect(FIRST + status.counted).toBe(sent);
    expect(await apiDialogs(second)).toBe(sent);

    await post(second, sessions(MORE));
    sent += MORE;
    const after = await liveWith(second, BACKLOG + MORE, 'the restarted instance after more blobs');
    expect(after.duplicates).toBe(0);
    expect(FIRST + after.counted).toBe(sent);
    expect(await apiDialogs(second)).toBe(sent);
    expect(proxy.counts.refused).toBe(ownRefusals);
  });

  it('4. /health and /metrics answer without error, and an export through the read API pages through every blob', async () => {
    const h = await health(second!);
    expect(h.statusCode).toBe(200);
    expect(h.body.status).toBe('ok');
    expect(h.body.aggregate).toMatchObject({ phase: 'live', lagChanges: 0, lastError: null });
    const metrics = await second!.app.inject({ url: '/metrics', headers: AUTH });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.body).toMatch(/^kpi_aggregate_lag_changes 0$/m);
    expect(metrics.body).toMatch(new RegExp(`^kpi_aggregate_counted_total ${BACKLOG + MORE}$`, 'm'));

    const address = second!.app.server.address();
    if (!address || typeof address !== 'object') throw new Error('the service does not listen');
    const lines: string[] = [];
    const out = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    const summary = await exportFromApi({ url: `http://127.0.0.1:${address.port}`, token: TEST_TOKEN, start: 0, pageSize: 97, out });
    expect(summary.exported).toBe(sent);
    expect(lines).toHaveLength(sent);
    expect(await storedBlobCount(second!.store)).toBe(sent);
  });

  it('5. the aggregate equals a rebuild from the stored blobs (read through the proxy too)', async () => {
    const before = proxy.counts.translated;
    const result = await rebuilt(second!);
    expect(result.counted).toBe(sent);
    expect(result.changesRead).toBeGreaterThanOrEqual(sent);
    expect(result.seq).toMatch(OPAQUE_SEQ);
    // the rebuild read on from opaque sequences, batch after batch
    expect(proxy.counts.translated - before).toBeGreaterThanOrEqual(Math.floor(sent / BATCH));
    for (const query of windows()) expect(second!.app.aggregates.kpis(query)).toEqual(queryKpis(result.state, query));
  });

  it('6. a retention pass notes the opaque update_seq, reads _changes from it, removes the expired blobs, and the aggregate keeps them', async () => {
    const expired = sessions(EXPIRED, (i) => NOW - 5 * DAY + i * 10 * MINUTE);
    await post(second!, expired);
    sent += EXPIRED;
    await waitUntil(async () => (await apiDialogs(second!)) === sent, 15_000, 'the expired blobs counted');

    const mark = proxy.changesRequests.length;
    let flowing = true;
    let traffic = 0;
    const flow = (async () => {
      while (flowing) {
        await post(
          second!,
          sessions(1, () => Date.now()),
        );
        traffic += 1;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    let pass;
    try {
      pass = await second!.app.retention.runNow();
    } finally {
      flowing = false;
      await flow;
    }
    sent += traffic;
    expect(pass.error).toBeUndefined();
    expect(pass.skipped).toBeUndefined();
    expect(pass.removed).toBe(EXPIRED);
    const fromUpdateSeq = proxy.changesRequests.slice(mark).filter((r) => r.db === dbName && proxy.originOf(r.since) === 'update_seq');
    expect(fromUpdateSeq.length).toBeGreaterThan(0);
    expect(fromUpdateSeq.every((r) => r.real !== undefined)).toBe(true);

    await waitUntil(async () => (await apiDialogs(second!)) === sent, 15_000, `the aggregate to count all ${sent} blobs sent`);
    expect(await storedBlobCount(second!.store)).toBe(sent - EXPIRED);
    await waitUntil(async () => (await aggregate(second!)).phase === 'live', 5000, 'live');
    const result = await rebuilt(second!);
    for (const query of windows()) expect(second!.app.aggregates.kpis(query)).toEqual(queryKpis(result.state, query));

    expect(proxy.counts.refused).toBe(ownRefusals);
    console.log(
      `opaque seqs: ${sent} blobs; the proxy minted ${proxy.counts.minted} sequences, translated ${proxy.counts.translated} since values back, ` +
        `added pending to ${proxy.counts.pendingAdded} _changes answers (largest ${proxy.counts.maxPending}); checkpoint seq ${String(checkpointSeq).slice(0, 24)}…`,
    );
    expect(proxy.counts.minted).toBeGreaterThan(sent);
  });
});
