/**
 * Deploy-verdict benchmark, on the pure core in fast-forwarded time: many
 * simulated deploys, each watched every 10 s for 2 h the way the dashboard,
 * the stream and `kpi-live verdict --wait` watch them, judged by the same
 * code the service runs (src/verdict/judge.ts).
 *
 * - **False alarms**: BENCH_DEPLOYS (200) deploys that change nothing, at 20
 *   dialogs/s; the share that ever read `broken` in 2 h (target ≤ 5%), and
 *   ever `suspect`; beside it, in the same run, the share a fixed-sample
 *   z-test at 5% on the same rates (Bonferroni over them too) would flag when
 *   read as often: the baseline that continuous monitoring defeats.
 * - **Detection**: BENCH_BREAK_RUNS (200) deploys with
 *   `--break user.user_staged=0.8` at 20 dialogs/s and at 2/s; minutes until
 *   the verdict first reads `broken`, p50 and p95 (target: within 10 minutes
 *   in ≥ 95% of runs at 20/s), and the share detected within 10 minutes.
 * - **Time to healthy** of the harmless deploys, p50 and p95.
 *
 * Traffic: sessions of the simulator (src/simulate/generator.ts) turned into
 * facts by the aggregate's own blobFacts, drawn at random from a pool of
 * 200,000 (with the break, another pool), Poisson arrivals per 10 s. The
 * baseline is what the service uses: the same hours of the 7 days before
 * (traffic as steady as here, 7 × what arrived since the deploy). No store
 * is involved: this measures the statistics, not the service.
 *
 * Then **end to end** through the service (BENCH_E2E, default on; the store
 * COUCHDB_URL names, else the embedded one, named in the output with its
 * raw `_bulk_docs` and `_changes` ceilings of the same run): a week of
 * baseline at the same hours, then BENCH_E2E_BROKEN (2) deploys posted to
 * `/api/deploys` followed by real-time traffic at 20 dialogs/s with the
 * break, each watched through `GET /api/deploys/latest/verdict` every 2 s
 * until broken (seconds from the marker's 201), and one harmless deploy
 * watched until it reads healthy or BENCH_E2E_HARMLESS_SECONDS (480) pass,
 * which must never read broken.
 *
 * The last line of stdout is one JSON object:
 * `{"falseAlarmRate", "deploys", "detectP50Min", "detectP95Min", "detectP95MinLow", …, "e2e": {…}}`.
 */
import { blobFacts, type FactsInput } from '../src/aggregate/model/facts.js';
import { defaultSegmentConfig } from '../src/aggregate/model/segments.js';
import type { Kpis } from '../src/contract/kpis.js';
import { normalizeBlob } from '../src/ingest/blob.js';
import { parseBreaks, seededRandom, simulateSession } from '../src/simulate/generator.js';
import { judgeDeploy, VERDICT_RATES } from '../src/verdict/judge.js';
import { intFromEnv, verdict as target } from './common.js';

const LOOK_MS = 10_000;
const WATCH_MS = 2 * 3_600_000;
const BASELINE_DAYS = 7;
const POOL = 200_000;
const NOW = Date.UTC(2026, 10, 23, 12, 0);

// the counts a verdict reads, per session
const DIALOGS = 0;
const NEW_USERS = 1;
const PROGRESS = 2; // 5
const NEW_USER = 7; // 4
const RESET = 11; // 3
const MULTI_EMAIL = 14;
const WIDTH = 15;

/** Sessions of the simulator as count vectors, `n` of them in one array. */
function pool(n: number, seed: number, breaks: string[] = []): Int32Array {
  const random = seededRandom(seed);
  const broken = parseBreaks(breaks);
  const ctx = { now: NOW, maxAgeMs: 3_600_000, maxFutureMs: 3_600_000, userAgent: undefined };
  const out = new Int32Array(n * WIDTH);
  for (let i = 0; i < n;) {
    const facts = blobFacts(normalizeBlob(simulateSession(random, { now: NOW, breaks: broken }).blob, 'data', ctx) as FactsInput, defaultSegmentConfig);
    if (!facts) continue;
    const o = i * WIDTH;
    out[o + DIALOGS] = 1;
    out[o + NEW_USERS] = facts.newUser[3] ? 1 : 0;
    facts.progress.forEach((x, j) => (out[o + PROGRESS + j] = x ? 1 : 0));
    facts.newUser.forEach((x, j) => (out[o + NEW_USER + j] = x ? 1 : 0));
    facts.reset.forEach((x, j) => (out[o + RESET + j] = x ? 1 : 0));
    out[o + MULTI_EMAIL] = facts.loggedInMultiEmail ? 1 : 0;
    i++;
  }
  return out;
}

/** Adds `n` sessions drawn at random from the pool. */
function draw(into: Float64Array, from: Int32Array, n: number, random: () => number): void {
  const size = from.length / WIDTH;
  for (let i = 0; i < n; i++) {
    const o = Math.floor(random() * size) * WIDTH;
    for (let j = 0; j < WIDTH; j++) into[j]! += from[o + j]!;
  }
}

/** Poisson arrivals (inversion below 30, the normal approximation above). */
function poisson(lambda: number, random: () => number): number {
  if (lambda > 30) {
    const u = Math.max(random(), 1e-12);
    const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
    return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * z));
  }
  let k = 0;
  let p = Math.exp(-lambda);
  let sum = p;
  const u = random();
  while (u > sum) {
    k++;
    p *= lambda / k;
    sum += p;
  }
  return k;
}

/** The KPIs the judge reads, from summed counts. */
function kpisOf(c: Float64Array): Kpis {
  const steps = (at: number, n: number) => Array.from({ length: n }, (_, i) => ({ count: c[at + i]! }));
  const loggedIn = c[PROGRESS + 4]!;
  return {
    dialogs: c[DIALOGS]!,
    newUsers: c[NEW_USERS]!,
    progress: steps(PROGRESS, 5),
    newUserFunnel: steps(NEW_USER, 4),
    passwordResetFunnel: steps(RESET, 3),
    additionalEmailShare: loggedIn > 0 ? c[MULTI_EMAIL]! / loggedIn : null,
  } as unknown as Kpis;
}

/** The one-sided critical value at 5% over the eleven rates (Bonferroni: 0.05 / 11 ≈ 0.0045). */
const Z_CRITICAL = 2.61;

/** A fixed-sample two-proportion z-test, harm side only, Bonferroni over the rates: what a naive dashboard flags. */
function zFlags(baseline: Kpis, after: Kpis): boolean {
  const z = Z_CRITICAL;
  return VERDICT_RATES.some((rate) => {
    const b = rate.of(baseline);
    const a = rate.of(after);
    if (b.trials < 100 || a.trials < 30) return false;
    const p0 = b.successes / b.trials;
    const p1 = a.successes / a.trials;
    const se = Math.sqrt((p0 * (1 - p0)) / b.trials + (p1 * (1 - p1)) / a.trials);
    if (se === 0) return false;
    const harm = rate.worse === 'higher' ? p1 - p0 : p0 - p1;
    return harm / se > z;
  });
}

interface Watched {
  brokenAtMs: number | null;
  suspectAtMs: number | null;
  healthyAtMs: number | null;
  zFlaggedAtMs: number | null;
}

/** One deploy watched every 10 s for 2 h (or until broken, when `stopAtBroken`). */
function watch(normal: Int32Array, after: Int32Array, perSecond: number, seed: number, stopAtBroken: boolean): Watched {
  const random = seededRandom(seed);
  const base = new Float64Array(WIDTH);
  const aft = new Float64Array(WIDTH);
  const out: Watched = { brokenAtMs: null, suspectAtMs: null, healthyAtMs: null, zFlaggedAtMs: null };
  const deploy = { id: `deploy/${seed}`, version: 'v', at: NOW };
  for (let t = LOOK_MS; t <= WATCH_MS; t += LOOK_MS) {
    const lambda = (perSecond * LOOK_MS) / 1000;
    draw(base, normal, poisson(lambda * BASELINE_DAYS, random), random);
    draw(aft, after, poisson(lambda, random), random);
    const [b, a] = [kpisOf(base), kpisOf(aft)];
    const v = judgeDeploy({ deploy, baseline: b, after: a, baselineWindows: [], now: NOW + t });
    if (v.state === 'broken' && out.brokenAtMs === null) out.brokenAtMs = t;
    if ((v.state === 'suspect' || v.state === 'broken') && out.suspectAtMs === null) out.suspectAtMs = t;
    if (v.state === 'healthy' && out.healthyAtMs === null) out.healthyAtMs = t;
    if (out.zFlaggedAtMs === null && zFlags(b, a)) out.zFlaggedAtMs = t;
    if (stopAtBroken && out.brokenAtMs !== null) break;
  }
  return out;
}

const quantile = (values: number[], q: number): number | null => {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
};
const minutes = (ms: number | null) => (ms === null ? null : Math.round((ms / 60_000) * 10) / 10);
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

function detection(normal: Int32Array, broken: Int32Array, perSecond: number, runs: number, seed: number) {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const w = watch(normal, broken, perSecond, seed + i, true);
    times.push(w.brokenAtMs ?? Number.POSITIVE_INFINITY);
  }
  const found = times.filter(Number.isFinite);
  return {
    p50Min: minutes(quantile(times, 0.5)),
    p95Min: minutes(quantile(times, 0.95)),
    within10: times.filter((t) => t <= 600_000).length / runs,
    detected: found.length / runs,
  };
}

interface EndToEnd {
  store: string;
  rawBulkDocsPerSec: number;
  rawChangesPerSec: number;
  baselineBlobs: number;
  /** Seconds from each broken deploy's 201 to a broken verdict (null: not within the bound). */
  brokenAfterSeconds: (number | null)[];
  harmlessState: string;
  /** Seconds from the harmless deploy's 201 to its last verdict (healthy, or the end of the watch). */
  harmlessSeconds: number;
  harmlessEverBroken: boolean;
  /** Blobs posted per second during the watches, and the verdict's arrivals against what was posted after each marker. */
  postedPerSec: number;
  arrivalsExact: boolean;
}

/** A few deploys through the running service, in real time. */
async function endToEnd(): Promise<EndToEnd> {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { createLogger } = await import('../src/logger.js');
  const { startServer } = await import('../src/server.js');
  const { benchDbName, benchServiceConfig, benchStore, dropDatabases, kpiDatabases, storeCeilings, storedBlobJson } = await import('./store.js');
  const { sleep } = await import('../src/sleep.js');
  const dataDir = await mkdtemp(join(tmpdir(), 'kpi-bench-verdict-'));
  const dbName = benchDbName('verdict');
  const config = benchServiceConfig(dataDir, dbName, { maxBlobAgeHours: 24 * 10, streamCoalesceMs: 250 });
  const server = await startServer(config, createLogger(config, process.stderr));
  const store = await benchStore({ embeddedUrl: server.app.store.embedded?.authorizedUrl });
  try {
    const ceilingDocs = await storedBlobJson(2000, 11, Date.now());
    const ceilings = await storeCeilings(store, (i) => ceilingDocs[i % ceilingDocs.length]!, { seconds: 5 });
    console.log(
      `end to end on ${store.label}: store ceilings raw _bulk_docs ${ceilings.write.docsPerSec} docs/s, raw _changes ${ceilings.feed.changesPerSec} changes/s (same run)`,
    );
    const random = seededRandom(7);
    const post = async (n: number, at: number, breaks: string[] = []) => {
      const broken = parseBreaks(breaks);
      const blobs = Array.from({ length: n }, () => simulateSession(random, { now: at, breaks: broken }).blob);
      for (let i = 0; i < blobs.length; i += 100) {
        const res = await fetch(`${server.url}/wsapi/interaction_data`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0' },
          body: JSON.stringify({ data: blobs.slice(i, i + 100) }),
        });
        if (res.status !== 200) throw new Error(`ingest answered ${res.status}`);
      }
    };
    // a week of baseline: 10 minutes of 20 dialogs/s at the same hours of each day before
    const now = Date.now();
    const perDay = 20 * 600;
    const loading = Date.now();
    for (let k = 1; k <= 7; k++) await post(perDay, now - k * 86_400_000);
    console.log(
      `  baseline: ${(7 * perDay).toLocaleString('en-US')} dialogs at the same hours of the 7 days before, posted in ${((Date.now() - loading) / 1000).toFixed(0)} s`,
    );
    const api = (path: string, init?: RequestInit) => fetch(`${server.url}${path}`, init);
    const verdictNow = async () => (await (await api('/api/deploys/latest/verdict')).json()) as { state: string; dialogs: { after: number } };
    let postedTotal = 0;
    let postedSeconds = 0;
    let exact = true;
    /** Posts 20 dialogs/s (one a 50 ms) until `until` says stop or `maxMs` passes; polls the verdict every 2 s. */
    const watch = async (breaks: string[], maxMs: number, until: (state: string) => boolean) => {
      const res = await api('/api/deploys', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ version: `bench-${breaks.length ? 'bad' : 'ok'}` }),
      });
      if (res.status !== 201) throw new Error(`deploy marker answered ${res.status}`);
      const started = Date.now();
      let posted = 0;
      let lastPoll = started;
      let state = 'not enough data yet';
      let everBroken = false;
      while (Date.now() - started < maxMs) {
        await post(1, Date.now(), breaks);
        posted++;
        const due = started + posted * 50;
        if (Date.now() < due) await sleep(due - Date.now());
        if (Date.now() - lastPoll >= 2000) {
          lastPoll = Date.now();
          state = (await verdictNow()).state;
          everBroken ||= state === 'broken';
          if (until(state)) break;
        }
      }
      const seconds = (Date.now() - started) / 1000;
      postedTotal += posted;
      postedSeconds += seconds;
      // every blob acknowledged after the 201 is counted as arrived after it (once the feed has them)
      const deadline = Date.now() + 10_000;
      let v = await verdictNow();
      while (v.dialogs.after < posted && Date.now() < deadline) {
        await sleep(200);
        v = await verdictNow();
      }
      exact &&= v.dialogs.after === posted;
      return { seconds, state, everBroken };
    };
    const brokenAfterSeconds: (number | null)[] = [];
    for (let i = 0; i < intFromEnv('BENCH_E2E_BROKEN', 2); i++) {
      const w = await watch(['user.user_staged=0.8'], 10 * 60_000, (state) => state === 'broken');
      brokenAfterSeconds.push(w.state === 'broken' ? Math.round(w.seconds) : null);
      console.log(`  broken deploy ${i + 1}: ${w.state === 'broken' ? `broken after ${w.seconds.toFixed(0)} s` : `still ${w.state} after 10 min`}`);
    }
    const harmless = await watch([], intFromEnv('BENCH_E2E_HARMLESS_SECONDS', 480) * 1000, (state) => state === 'healthy');
    console.log(
      `  harmless deploy: ${harmless.state === 'healthy' ? `healthy after ${harmless.seconds.toFixed(0)} s` : `${harmless.state} after ${harmless.seconds.toFixed(0)} s`}; ever broken: ${harmless.everBroken ? 'yes' : 'no'}`,
    );
    return {
      store: store.label,
      rawBulkDocsPerSec: ceilings.write.docsPerSec,
      rawChangesPerSec: ceilings.feed.changesPerSec,
      baselineBlobs: 7 * perDay,
      brokenAfterSeconds,
      harmlessState: harmless.state,
      harmlessSeconds: Math.round(harmless.seconds),
      harmlessEverBroken: harmless.everBroken,
      postedPerSec: Math.round(postedTotal / postedSeconds),
      arrivalsExact: exact,
    };
  } finally {
    await server.close();
    if (store.kind !== 'embedded') await dropDatabases(store, kpiDatabases(dbName));
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const deploys = intFromEnv('BENCH_DEPLOYS', 200);
  const breakRuns = intFromEnv('BENCH_BREAK_RUNS', 200);
  const started = Date.now();
  console.log('bench:verdict: pure core in fast-forwarded time (no store); each deploy watched every 10 s for 2 h');
  const normal = pool(POOL, 1);
  const broken = pool(POOL, 2, ['user.user_staged=0.8']);
  console.log(
    `pools: ${POOL.toLocaleString('en-US')} sessions of normal traffic, as many with --break user.user_staged=0.8 (${((Date.now() - started) / 1000).toFixed(1)} s)`,
  );

  const harmless: Watched[] = [];
  for (let i = 0; i < deploys; i++) harmless.push(watch(normal, normal, 20, 10_000 + i, false));
  const falseAlarms = harmless.filter((w) => w.brokenAtMs !== null).length / deploys;
  const suspects = harmless.filter((w) => w.suspectAtMs !== null).length / deploys;
  const zAlarms = harmless.filter((w) => w.zFlaggedAtMs !== null).length / deploys;
  const healthy = harmless.map((w) => w.healthyAtMs ?? Number.POSITIVE_INFINITY);
  console.log(
    `harmless deploys at 20 dialogs/s: ${deploys}; ever broken ${pct(falseAlarms)} (target ≤ 5%: ${target(falseAlarms <= 0.05)}), ever suspect ${pct(suspects)}; ` +
      `a fixed z-test read as often flags ${pct(zAlarms)} (${zAlarms > 0 ? (zAlarms / Math.max(falseAlarms, 1 / deploys)).toFixed(1) : '–'}× the false alarms)`,
  );
  console.log(
    `time to healthy: p50 ${minutes(quantile(healthy, 0.5)) ?? '–'} min, p95 ${minutes(quantile(healthy, 0.95)) ?? '> 120'} min; healthy within 2 h: ${pct(healthy.filter(Number.isFinite).length / deploys)}`,
  );

  const high = detection(normal, broken, 20, breakRuns, 50_000);
  console.log(
    `broken deploys at 20 dialogs/s: ${breakRuns}; broken after p50 ${high.p50Min} min, p95 ${high.p95Min} min; within 10 min ${pct(high.within10)} (target ≥ 95%: ${target(high.within10 >= 0.95)})`,
  );
  const low = detection(normal, broken, 2, breakRuns, 90_000);
  console.log(
    `broken deploys at 2 dialogs/s: ${breakRuns}; broken after p50 ${low.p50Min} min, p95 ${Number.isFinite(low.p95Min ?? Infinity) ? low.p95Min : '> 120'} min; within 10 min ${pct(low.within10)}; within 2 h ${pct(low.detected)}`,
  );
  console.log(`pure core took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const e2e = process.env.BENCH_E2E === '0' ? null : await endToEnd();
  if (e2e)
    console.log(
      `end to end: broken after ${e2e.brokenAfterSeconds.map((s) => (s === null ? '> 600' : s)).join(', ')} s at ${e2e.postedPerSec} dialogs/s; ` +
        `harmless: ${e2e.harmlessState} after ${e2e.harmlessSeconds} s, ever broken ${e2e.harmlessEverBroken ? 'yes (a false alarm)' : 'no'}; arrivals = what was posted after each marker: ${e2e.arrivalsExact ? 'yes' : 'NO'}`,
    );
  console.log(
    JSON.stringify({
      falseAlarmRate: falseAlarms,
      deploys,
      detectP50Min: high.p50Min,
      detectP95Min: high.p95Min,
      detectP95MinLow: low.p95Min !== null && Number.isFinite(low.p95Min) ? low.p95Min : null,
      suspectRate: suspects,
      zTestFalseAlarmRate: zAlarms,
      healthyP50Min: minutes(quantile(healthy, 0.5)),
      detectWithin10MinShare: high.within10,
      store: 'none (pure core)',
      e2e,
    }),
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
