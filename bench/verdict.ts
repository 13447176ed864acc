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
 * The last line of stdout is one JSON object:
 * `{"falseAlarmRate", "deploys", "detectP50Min", "detectP95Min", "detectP95MinLow", …}`.
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

function main(): void {
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
  console.log(`took ${((Date.now() - started) / 1000).toFixed(1)} s`);
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
    }),
  );
}

main();
