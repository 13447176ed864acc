/**
 * KPI values (kpi-definitions §4) for any window, bucket size and
 * segmentation, answered from bucket states alone (merging cells), never
 * from blobs. Pure.
 */
import { accumulate, emptyAccumulator, estimate, IX, type Accumulator, type CellView } from './cell.js';
import { medianAndP90 } from './histogram.js';
import { OUTCOMES, WEIGHT_UNIT } from './facts.js';
import { arrivalKey, type AggregateState } from './state.js';
import type { Cell } from './cell.js';
import {
  BUCKET_SIZES,
  NEW_USER_STEPS,
  OTHER,
  PROGRESS_STEPS,
  RESET_STEPS,
  type BucketName,
  type Dimension,
  type FunnelAnswer,
  type FunnelName,
  type FunnelStep,
  type KpiAnswer,
  type Kpis,
  type Outcome,
} from '../../contract/kpis.js';
import { binValue } from './time-bins.js';

const ratio = (num: number, den: number): number | null => (den > 0 ? num / den : null);

function funnel(cell: CellView, offset: number, names: readonly string[], firstStep = 1): FunnelStep[] {
  return names.map((name, i) => {
    const count = cell.c[offset + i]!;
    const first = cell.c[offset]!;
    const previous = i > 0 ? cell.c[offset + i - 1]! : count;
    const fromPrevious = i > 0 ? ratio(count, previous) : count > 0 ? 1 : null;
    return {
      step: firstStep + i,
      name,
      count,
      estimate: estimate(cell.w[offset + i]!),
      conversionFromStart: ratio(count, first),
      conversionFromPrevious: fromPrevious,
      dropOff: fromPrevious === null ? null : 1 - fromPrevious,
    };
  });
}

/** Every KPI of one (merged) cell. */
export function cellKpis(cell: CellView): Kpis {
  const c = cell.c;
  const dialogs = c[IX.dialogs]!;
  const outcome = (o: Outcome) => c[IX.outcome + OUTCOMES.indexOf(o)]!;
  const nonBounceDen = outcome('bounce') + outcome('idp') + outcome('fallback') + outcome('fail');
  const loggedIn = c[IX.progress + 4]!;
  const ttlCount = cell.ttl.total();
  return {
    sampled: cell.w[IX.dialogs] !== dialogs * WEIGHT_UNIT,
    dialogs,
    dialogsEstimate: estimate(cell.w[IX.dialogs]!),
    assertions: loggedIn,
    newUsers: c[IX.newUser + 3]!,
    newUsersEstimate: estimate(cell.w[IX.newUser + 3]!),
    sitesLoggedIn: { ...medianAndP90(cell.sites), mean: ratio(c[IX.sitesSum]!, dialogs) },
    newUserFunnel: funnel(cell, IX.newUser, NEW_USER_STEPS),
    passwordResetFunnel: funnel(cell, IX.reset, RESET_STEPS),
    progress: funnel(cell, IX.progress, PROGRESS_STEPS, 0),
    passwordResetSuccess: ratio(c[IX.reset + 2]!, c[IX.reset]!),
    additionalEmailShare: ratio(c[IX.loggedInMultiEmail]!, loggedIn),
    bounceRate: c[IX.progress + 1]! > 0 ? 1 - c[IX.progress + 2]! / c[IX.progress + 1]! : null,
    newUserBounce: ratio(outcome('bounce'), nonBounceDen),
    errorScreenRate: ratio(c[IX.progress + 3]!, dialogs),
    outcomes: Object.fromEntries(OUTCOMES.map((o) => [o, outcome(o)])) as Record<Outcome, number>,
    timeToLoginMs: { ...medianAndP90(cell.ttl, binValue), count: ttlCount },
    newUserStepTimesMs: NEW_USER_STEPS.map((name, i) => ({ step: i + 1, name, ...medianAndP90(cell.steps[i]!, binValue) })),
  };
}

export interface KpiQuery {
  /** Inclusive, ms. */
  from: number;
  /** Exclusive, ms. */
  to: number;
  bucket: BucketName;
  segment?: Dimension | undefined;
  /**
   * With a segment: only the `top` values with the most dialogs in the window
   * are series of their own; every other value is merged into one `Other`
   * series (listed last). The configured catch-all `Other` is never one of
   * the top values: it is merged into `Other` too.
   */
  top?: number | undefined;
}

interface SeriesAccumulator {
  total: Accumulator;
  points: Map<number, { end: number; cell: Accumulator }>;
}

/**
 * Which series a segment value goes in under `top`: its own for the `top`
 * values with the most dialogs over the whole window (ties by name), `Other`
 * for the rest. Decided from whole-window totals, so a live delta names the
 * same series as a full answer at the same version.
 */
function topSeriesNames(state: AggregateState, segment: Dimension, window: { from: number; to: number }, top: number): (value: string) => string {
  const dialogs = new Map<string, number>();
  for (const bucket of state.buckets.values()) {
    if (bucket.start < window.from || bucket.start >= window.to) continue;
    for (const [value, cell] of bucket.dims[segment]) dialogs.set(value, (dialogs.get(value) ?? 0) + cell.c[IX.dialogs]!);
  }
  const kept = new Set(
    [...dialogs.entries()]
      .filter(([value]) => value !== OTHER)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, top)
      .map(([value]) => value),
  );
  return (value) => (kept.has(value) ? value : OTHER);
}

/** The cells of the window merged per point and per segment value (or per top value and `Other`). */
function collect(state: AggregateState, query: KpiQuery, changedAfter?: number): { series: Map<string, SeriesAccumulator>; overall: Accumulator | undefined } {
  const size = BUCKET_SIZES[query.bucket];
  // With changedAfter, only points holding a bucket changed after that version are kept (totals stay whole).
  const pointOf = (bucket: { start: number; size: number }) => (bucket.size >= size ? bucket.start : Math.floor(bucket.start / size) * size);
  let changedPoints: Set<number> | undefined;
  if (changedAfter !== undefined) {
    changedPoints = new Set();
    for (const bucket of state.buckets.values()) {
      if (bucket.version > changedAfter && bucket.start >= query.from && bucket.start < query.to) changedPoints.add(pointOf(bucket));
    }
  }
  const seriesOf = query.segment && query.top !== undefined ? topSeriesNames(state, query.segment, query, query.top) : (value: string) => value;
  const out = new Map<string, SeriesAccumulator>();
  const add = (segment: string, start: number, end: number, cell: Cell) => {
    let acc = out.get(segment);
    if (!acc) {
      acc = { total: emptyAccumulator(), points: new Map() };
      out.set(segment, acc);
    }
    accumulate(acc.total, cell);
    if (changedPoints && !changedPoints.has(start)) return;
    const point = acc.points.get(start);
    if (point) {
      accumulate(point.cell, cell);
      point.end = Math.max(point.end, end);
    } else acc.points.set(start, { end, cell: accumulate(emptyAccumulator(), cell) });
  };
  const overall = query.segment ? emptyAccumulator() : undefined;
  for (const bucket of state.buckets.values()) {
    if (bucket.start < query.from || bucket.start >= query.to) continue;
    const start = pointOf(bucket);
    const end = bucket.size >= size ? bucket.start + bucket.size : start + size;
    if (!query.segment) add('all', start, end, bucket.all);
    else {
      accumulate(overall!, bucket.all);
      for (const [value, cell] of bucket.dims[query.segment]) add(seriesOf(value), start, end, cell);
    }
  }
  if (!query.segment && !out.has('all')) out.set('all', { total: emptyAccumulator(), points: new Map() });
  return { series: out, overall };
}

/**
 * Time series of every KPI over `[from, to)`, one series per segment value
 * (biggest first; with `top`, the top values then `Other`) or one `all` series. With `changedAfter` (a state
 * version), only the points holding a bucket changed after it are listed:
 * a live delta; totals always cover the whole window.
 *
 * @example
 * queryKpis(state, { from: Date.now() - 6 * HOUR, to: Date.now(), bucket: '10m' }).series[0].total.bounceRate;
 */
export function queryKpis(state: AggregateState, query: KpiQuery, changedAfter?: number): KpiAnswer {
  const collected = collect(state, query, changedAfter);
  const series = [...collected.series.entries()]
    .map(([segment, acc]) => ({
      segment,
      total: cellKpis(acc.total),
      points: [...acc.points.entries()].sort((a, b) => a[0] - b[0]).map(([start, p]) => ({ start, end: p.end, kpis: cellKpis(p.cell) })),
    }))
    .sort((a, b) => b.total.dialogs - a.total.dialogs || (a.segment < b.segment ? -1 : 1));
  if (query.segment && query.top !== undefined) {
    // the merged rest goes last, whatever its size
    const other = series.findIndex((s) => s.segment === OTHER);
    if (other >= 0) series.push(...series.splice(other, 1));
  }
  return {
    from: query.from,
    to: query.to,
    bucket: query.bucket,
    bucketMs: BUCKET_SIZES[query.bucket],
    segment: query.segment ?? null,
    watermark: state.watermark,
    series,
    ...(collected.overall ? { overall: cellKpis(collected.overall) } : {}),
  };
}

export const FUNNELS = { 'new-user': 'newUserFunnel', 'password-reset': 'passwordResetFunnel', progress: 'progress' } as const satisfies Record<
  FunnelName,
  keyof Kpis
>;

/** One funnel over a window, per segment value when asked. */
export function queryFunnel(state: AggregateState, name: FunnelName, query: Omit<KpiQuery, 'bucket'>): FunnelAnswer {
  const answer = queryKpis(state, { ...query, bucket: '1d' });
  return {
    funnel: name,
    from: query.from,
    to: query.to,
    segment: query.segment ?? null,
    series: answer.series.map((s) => ({ segment: s.segment, steps: s.total[FUNNELS[name]] })),
  };
}

/**
 * Every KPI of the blobs that arrived after a deploy (its arrival bucket,
 * state.ts); undefined when the state holds none for it.
 */
export function queryArrivals(state: AggregateState, deployId: string): Kpis | undefined {
  const bucket = state.arrivals.get(arrivalKey(deployId));
  return bucket ? cellKpis(accumulate(emptyAccumulator(), bucket.all)) : undefined;
}

/**
 * Every KPI of the time buckets that overlap any of `windows` (a bucket
 * coarser than a window counts whole: for older days, the hours or the day
 * around it). Windows must not overlap one another.
 */
export function queryWindowsTotal(state: AggregateState, windows: readonly { from: number; to: number }[]): Kpis {
  const total = emptyAccumulator();
  for (const bucket of state.buckets.values()) {
    if (windows.some((w) => bucket.start < w.to && bucket.start + bucket.size > w.from)) accumulate(total, bucket.all);
  }
  return cellKpis(total);
}
