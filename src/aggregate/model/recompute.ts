/**
 * KPIs recomputed from the raw blobs of a window, the way the original
 * dashboard did: no bucket states, no histograms of counts; sorted arrays and
 * plain counting over every blob. It is slow by design and exists to check
 * the incremental aggregate (tests) and to measure it (bench:aggregate): the
 * two must give identical answers.
 *
 * Times are reported at the aggregate's declared precision (the middle of
 * their 1% bin), so that equality is exact.
 */

import { blobFacts, isStoredBlob, OUTCOMES, WEIGHT_UNIT, type BlobFacts, type FactsInput } from './facts.js';
import { type KpiQuery } from './query.js';
import type { SegmentConfig } from './segments.js';
import { binValue, timeBin } from './time-bins.js';
import { NEW_USER_STEPS, PROGRESS_STEPS, RESET_STEPS, BUCKET_SIZES, type FunnelStep, type KpiAnswer, type Kpis, TEN_MINUTES } from '../../contract/kpis.js';

const ratio = (num: number, den: number): number | null => (den > 0 ? num / den : null);

function sortedQuantile(sorted: number[], q: number): number | null {
  const n = sorted.length;
  if (n === 0) return null;
  if (q === 0.5) return n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
  return sorted[Math.max(1, Math.ceil(q * n)) - 1]!;
}

const numeric = (values: number[]) => values.sort((a, b) => a - b);

function funnelOf(list: BlobFacts[], reached: (f: BlobFacts) => boolean[], names: readonly string[], firstStep = 1): FunnelStep[] {
  const counts = names.map((_, i) => list.filter((f) => reached(f)[i]).length);
  const weights = names.map((_, i) => list.filter((f) => reached(f)[i]).reduce((sum, f) => sum + f.weight, 0));
  return names.map((name, i) => {
    const fromPrevious = i > 0 ? ratio(counts[i]!, counts[i - 1]!) : counts[i]! > 0 ? 1 : null;
    return {
      step: firstStep + i,
      name,
      count: counts[i]!,
      estimate: weights[i]! / WEIGHT_UNIT,
      conversionFromStart: ratio(counts[i]!, counts[0]!),
      conversionFromPrevious: fromPrevious,
      dropOff: fromPrevious === null ? null : 1 - fromPrevious,
    };
  });
}

/** Every KPI over a list of blob facts; step times only when `withStepTimes` (unsegmented). */
export function kpisOf(list: BlobFacts[], withStepTimes = true): Kpis {
  const count = (pred: (f: BlobFacts) => boolean) => list.filter(pred).length;
  const outcomes = Object.fromEntries(OUTCOMES.map((o) => [o, count((f) => f.outcome === o)])) as Kpis['outcomes'];
  const loggedIn = count((f) => f.progress[4]!);
  const shown = count((f) => f.progress[1]!);
  const sites = numeric(list.map((f) => f.sites));
  const ttl = numeric(list.filter((f) => f.timeToLogin !== undefined).map((f) => binValue(timeBin(f.timeToLogin!))));
  return {
    sampled: list.some((f) => f.weight !== WEIGHT_UNIT),
    dialogs: list.length,
    dialogsEstimate: list.reduce((s, f) => s + f.weight, 0) / WEIGHT_UNIT,
    assertions: loggedIn,
    newUsers: count((f) => f.newUser[3]!),
    newUsersEstimate: list.filter((f) => f.newUser[3]).reduce((s, f) => s + f.weight, 0) / WEIGHT_UNIT,
    sitesLoggedIn: {
      median: sortedQuantile(sites, 0.5),
      mean: ratio(
        sites.reduce((s, v) => s + v, 0),
        list.length,
      ),
      p90: sortedQuantile(sites, 0.9),
    },
    newUserFunnel: funnelOf(list, (f) => f.newUser, NEW_USER_STEPS),
    passwordResetFunnel: funnelOf(list, (f) => f.reset, RESET_STEPS),
    progress: funnelOf(list, (f) => f.progress, PROGRESS_STEPS, 0),
    passwordResetSuccess: ratio(
      count((f) => f.reset[2]!),
      count((f) => f.reset[0]!),
    ),
    additionalEmailShare: ratio(
      count((f) => f.loggedInMultiEmail),
      loggedIn,
    ),
    bounceRate: shown > 0 ? 1 - count((f) => f.progress[2]!) / shown : null,
    newUserBounce: ratio(outcomes.bounce, outcomes.bounce + outcomes.idp + outcomes.fallback + outcomes.fail),
    errorScreenRate: ratio(
      count((f) => f.progress[3]!),
      list.length,
    ),
    outcomes,
    timeToLoginMs: { median: sortedQuantile(ttl, 0.5), p90: sortedQuantile(ttl, 0.9), count: ttl.length },
    newUserStepTimesMs: NEW_USER_STEPS.map((name, i) => {
      const times = withStepTimes ? numeric(list.filter((f) => f.newUserStepTimes[i] !== undefined).map((f) => binValue(timeBin(f.newUserStepTimes[i]!)))) : [];
      return { step: i + 1, name, median: sortedQuantile(times, 0.5), p90: sortedQuantile(times, 0.9) };
    }),
  };
}

/**
 * The answer `queryKpis` gives, recomputed from raw blobs. `storedSize(time)`
 * is the bucket size the aggregate keeps for a time (10 minutes unless it
 * downsampled), so that points line up.
 */
export function recomputeKpis(
  blobs: Iterable<FactsInput>,
  segments: SegmentConfig,
  query: KpiQuery,
  storedSize: (time: number) => number = () => TEN_MINUTES,
): KpiAnswer {
  const size = BUCKET_SIZES[query.bucket];
  const groups = new Map<string, Map<number, { end: number; facts: BlobFacts[] }>>();
  let watermark = 0;
  const inWindow: BlobFacts[] = [];
  for (const blob of blobs) {
    // what the aggregate leaves out (a document that is no blob), the recompute leaves out too
    if (!isStoredBlob(blob as unknown as Record<string, unknown>)) continue;
    const facts = blobFacts(blob, segments);
    if (!facts) continue;
    watermark = Math.max(watermark, facts.time);
    const stored = storedSize(facts.time);
    const storedStart = Math.floor(facts.time / stored) * stored;
    if (storedStart < query.from || storedStart >= query.to) continue;
    const start = stored >= size ? storedStart : Math.floor(storedStart / size) * size;
    const end = stored >= size ? storedStart + stored : start + size;
    inWindow.push(facts);
    const segment = query.segment ? facts.segments[query.segment] : 'all';
    let points = groups.get(segment);
    if (!points) groups.set(segment, (points = new Map()));
    const point = points.get(start);
    if (point) {
      point.facts.push(facts);
      point.end = Math.max(point.end, end);
    } else points.set(start, { end, facts: [facts] });
  }
  if (!query.segment && !groups.has('all')) groups.set('all', new Map());
  const series = [...groups.entries()]
    .map(([segment, points]) => ({
      segment,
      total: kpisOf(
        [...points.values()].flatMap((p) => p.facts),
        !query.segment,
      ),
      points: [...points.entries()].sort((a, b) => a[0] - b[0]).map(([start, p]) => ({ start, end: p.end, kpis: kpisOf(p.facts, !query.segment) })),
    }))
    .sort((a, b) => b.total.dialogs - a.total.dialogs || (a.segment < b.segment ? -1 : 1));
  return {
    from: query.from,
    to: query.to,
    bucket: query.bucket,
    bucketMs: size,
    segment: query.segment ?? null,
    watermark,
    series,
    ...(query.segment ? { overall: kpisOf(inWindow) } : {}),
  };
}
