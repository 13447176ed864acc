/**
 * bench:aggregate: how fast the aggregate catches up with the feed, how fast
 * it answers, and how much memory it holds.
 *
 * 1. Query: 1M simulated blobs over 30 days are applied to an aggregate
 *    (streamed: the blobs are not kept). Then "30 days × every KPI × one
 *    segmentation" is answered from bucket states, next to the same answer
 *    recomputed from the raw blobs, the way the original dashboard did it;
 *    the two answers must be equal (asserted).
 * 2. Memory: the process RSS after 250k, 500k and 1M blobs (flat means the
 *    aggregate does not grow with the blob count).
 * 3. Catch-up: 200k blobs stored in the store (`COUCHDB_URL` when set, in a
 *    database of the run's own, dropped at the end; else the embedded
 *    store); the store's `_changes` ceiling, read raw and straight from the
 *    store (bench/store.ts: include_docs, 2,000 a batch, each answer parsed,
 *    no kpi-live code), next to the aggregate catching up on the same feed
 *    the way the service does (`followChanges`, one batch read ahead,
 *    `applyChanges`). Each is run twice, alternately, and the faster run of
 *    each kept: the machine's other work moves both.
 *
 * The aggregator runs under the heap budget a deployment gives it
 * (`--max-old-space-size`, see package.json); the raw recompute, which holds
 * every blob of the window, runs in a child process without one, and sends
 * back its answer and time.
 *
 * Prints a table, then one JSON line: catchupPerSec, rawFeedPerSec (the
 * store's raw `_changes` ceiling), queryMs, recomputeMs, speedup, rssMb,
 * equal, store (`{kind, version}`), ofCeiling (catchupPerSec ÷
 * rawFeedPerSec). Sizes can be lowered with BENCH_QUERY_BLOBS and
 * BENCH_FEED_BLOBS for a quick run.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual, promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pino } from 'pino';
import { applyChanges, couchChangesReader, followChanges } from '../src/aggregate/runtime/feed.js';
import type { FactsInput } from '../src/aggregate/model/facts.js';
import { queryKpis, type KpiQuery } from '../src/aggregate/model/query.js';
import { recomputeKpis } from '../src/aggregate/model/recompute.js';
import { defaultSegmentConfig } from '../src/aggregate/model/segments.js';
import { AggregateState, defaultRetention } from '../src/aggregate/model/state.js';
import { loadConfig } from '../src/config/config.js';
import { coarseUserAgent } from '../src/ingest/user-agent.js';
import { seededRandom, simulateSession } from '../src/simulate/generator.js';
import { BlobIdAllocator, floorToBucket } from '../src/store/blob-ids.js';
import { openStore } from '../src/store/store.js';
import { gc, verdict } from './common.js';
import { benchDbName, benchStore, changesCeiling, couchdbUrlFromEnv, dropDatabases, kpiDatabases, ofCeiling } from './store.js';
import { DAY } from '../src/contract/kpis.js';

const QUERY_BLOBS = Number(process.env.BENCH_QUERY_BLOBS ?? 1_000_000);
const FEED_BLOBS = Number(process.env.BENCH_FEED_BLOBS ?? 200_000);
const END = floorToBucket(Date.UTC(2026, 10, 1));
const SPAN = 30 * DAY;

/** The blobs a dialog population sends over 30 days, as stored (ids, coarse user agent). */
function* storedBlobs(n: number, seed: number): Generator<FactsInput & { _id: string }> {
  const random = seededRandom(seed);
  const ids = new BlobIdAllocator();
  for (let i = 0; i < n; i++) {
    const { blob, userAgent } = simulateSession(random, { now: END - SPAN + Math.floor((i * SPAN) / n) });
    const doc = {
      ...(blob as unknown as FactsInput),
      number_sites_logged_in: blob.number_sites_signed_in as number,
      user_agent: coarseUserAgent(userAgent),
    } as FactsInput & { _id?: string };
    ids.assign([doc as { _id?: string; timestamp: number }]);
    yield doc as FactsInput & { _id: string };
  }
}

const rssMb = () => Math.round(process.memoryUsage().rss / 1048576);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function queryBench() {
  const state = new AggregateState(defaultSegmentConfig, defaultRetention);
  const rss: { blobs: number; mb: number }[] = [];
  let i = 0;
  const started = performance.now();
  for (const blob of storedBlobs(QUERY_BLOBS, 1)) {
    state.apply(blob);
    i += 1;
    if (i % 10_000 === 0) state.downsample();
    if (i === QUERY_BLOBS / 4 || i === QUERY_BLOBS / 2 || i === QUERY_BLOBS) {
      state.downsample();
      gc();
      rss.push({ blobs: i, mb: rssMb() });
    }
  }
  const applySeconds = (performance.now() - started) / 1000;

  const query: KpiQuery = { from: END - SPAN, to: END + DAY, bucket: '1d', segment: 'os' };
  queryKpis(state, query); // warm
  const times: number[] = [];
  let answer = queryKpis(state, query);
  for (let k = 0; k < 15; k++) {
    const t0 = performance.now();
    answer = queryKpis(state, query);
    times.push(performance.now() - t0);
  }
  const queryMs = median(times);

  const out = join(mkdtempSync(join(tmpdir(), 'kpi-bench-recompute-')), 'answer.json');
  await promisify(execFile)(process.execPath, ['--max-old-space-size=8192', fileURLToPath(import.meta.url), '--recompute', String(state.watermark), out], {
    env: { ...process.env, BENCH_QUERY_BLOBS: String(QUERY_BLOBS) },
  });
  const { recomputeMs, answer: recomputed } = JSON.parse(readFileSync(out, 'utf8')) as { recomputeMs: number; answer: unknown };
  rmSync(dirname(out), { recursive: true, force: true });
  const equal = isDeepStrictEqual(JSON.parse(JSON.stringify(answer)), recomputed);
  return {
    state,
    rss,
    applySeconds,
    queryMs,
    recomputeMs,
    equal,
    points: answer.series.reduce((n, s) => n + s.points.length, 0),
    series: answer.series.length,
  };
}

/** Changes per batch, raw and through kpi-live alike. */
const FEED_BATCH = 2000;

async function feedBench() {
  const dataDir = mkdtempSync(join(tmpdir(), 'kpi-bench-feed-'));
  const log = pino({ level: 'warn' });
  const couchdbUrl = couchdbUrlFromEnv();
  const config = loadConfig({
    env: {},
    overrides: { dataDir, dbName: couchdbUrl ? benchDbName('aggregate') : 'bench_blobs', ...(couchdbUrl ? { couchdbUrl } : {}) },
  });
  const store = await openStore(config, log);
  const where = await benchStore({ embeddedUrl: store.embedded?.authorizedUrl });
  try {
    const batch: (FactsInput & { _id: string })[] = [];
    const write = async () => {
      await store.request({ method: 'POST', db: store.blobsDb, path: '_bulk_docs', body: { docs: batch.splice(0) }, timeoutMs: 120_000 });
    };
    for (const blob of storedBlobs(FEED_BLOBS, 2)) {
      batch.push({ ...blob, event_stream: blob.event_stream ?? [] });
      if (batch.length === 2000) await write();
    }
    if (batch.length) await write();

    // kpi-live's catch-up: the service's feed (read one batch ahead) and its apply, until caught up
    const catchUp = () =>
      new Promise<{ n: number; seconds: number }>((resolve, reject) => {
        const state = new AggregateState(defaultSegmentConfig, defaultRetention);
        const read = couchChangesReader(store, store.blobsDb, { limit: FEED_BATCH, longpollMs: 0 });
        let n = 0;
        const t0 = performance.now();
        const subscription = followChanges(read, 0).subscribe({
          next: (b) => {
            applyChanges(state, b.changes);
            n += b.changes.length;
            if (b.caughtUp || b.changes.length === 0) {
              subscription.unsubscribe();
              resolve({ n, seconds: (performance.now() - t0) / 1000 });
            }
          },
          error: reject,
        });
      });
    const raws: number[] = [];
    const catchups: number[] = [];
    let changes = 0;
    for (let round = 0; round < 2; round++) {
      raws.push((await changesCeiling(where, store.blobsDb, { batch: FEED_BATCH })).changesPerSec);
      const c = await catchUp();
      changes = c.n;
      catchups.push(Math.round(c.n / c.seconds));
      gc();
    }
    return { rawFeedPerSec: Math.max(...raws), catchupPerSec: Math.max(...catchups), raws, catchups, changes, store: where };
  } finally {
    await store.close();
    if (couchdbUrl) await dropDatabases(where, kpiDatabases(store.blobsDb));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Child mode: the raw recompute, as the original dashboard answered. */
async function recomputeChild(watermark: number, out: string) {
  const sizes = new AggregateState(defaultSegmentConfig, defaultRetention);
  sizes.watermark = watermark;
  const query: KpiQuery = { from: END - SPAN, to: END + DAY, bucket: '1d', segment: 'os' };
  const blobs = [...storedBlobs(QUERY_BLOBS, 1)]; // the raw blobs, as read from the store
  const t0 = performance.now();
  const answer = recomputeKpis(blobs, defaultSegmentConfig, query, (time) => sizes.sizeFor(time));
  const recomputeMs = performance.now() - t0;
  writeFileSync(out, JSON.stringify({ recomputeMs, answer }));
}

if (process.argv[2] === '--recompute') {
  await recomputeChild(Number(process.argv[3]), process.argv[4]!);
  process.exit(0);
}

const q = await queryBench();
const f = await feedBench();
const speedup = Math.round(q.recomputeMs / q.queryMs);
const rssMbFinal = q.rss.at(-1)!.mb;

const lines = [
  `bench:aggregate (${QUERY_BLOBS} blobs over 30 days for the query, ${FEED_BLOBS} blobs in the store for the feed); store: ${f.store.label}; load average ${loadavg()[0]!.toFixed(1)}`,
  '',
  `apply (in memory)     ${Math.round(QUERY_BLOBS / q.applySeconds)} blobs/s`,
  `query 30 d × os      ${q.queryMs.toFixed(2)} ms (${q.series} series, ${q.points} points)   target ≤ 20 ms   ${verdict(q.queryMs <= 20)}`,
  `recompute from raw   ${q.recomputeMs.toFixed(0)} ms   speedup ${speedup}×   target ≥ 100×   ${verdict(speedup >= 100)}`,
  `same numbers         ${q.equal}`,
  `RSS                  ${q.rss.map((r) => `${r.blobs}: ${r.mb} MB`).join(', ')}   target ≤ 300 MB, flat   ${verdict(rssMbFinal <= 300)}`,
  `raw _changes read    ${f.rawFeedPerSec} changes/s (store ceiling: include_docs, ${FEED_BATCH} a batch, straight from the store; runs ${f.raws.join(', ')})`,
  `aggregate catch-up   ${f.catchupPerSec} blobs/s (${Math.round((100 * f.catchupPerSec) / f.rawFeedPerSec)}% of raw; runs ${f.catchups.join(', ')})   target ≥ 10,000/s and ≥ 85%   ${verdict(f.catchupPerSec >= 10_000 && f.catchupPerSec >= 0.85 * f.rawFeedPerSec)}`,
  '',
];
process.stdout.write(lines.join('\n'));
process.stdout.write(
  JSON.stringify({
    catchupPerSec: f.catchupPerSec,
    rawFeedPerSec: f.rawFeedPerSec,
    queryMs: Number(q.queryMs.toFixed(2)),
    recomputeMs: Math.round(q.recomputeMs),
    speedup,
    rssMb: rssMbFinal,
    equal: q.equal,
    store: { kind: f.store.kind, version: f.store.version },
    ofCeiling: ofCeiling(f.catchupPerSec, f.rawFeedPerSec),
  }) + '\n',
);
process.exit(q.equal ? 0 : 1);
