/**
 * The mergeable KPI state of one (time bucket × segment value): integer
 * counters and histograms. Every field is a sum of integers, so merging is
 * addition: associative, commutative and exact whatever the order (weights
 * are millionths of a blob and times whole ms for that reason).
 *
 * - `sites`: exact histogram of sites logged in (small integers), so medians
 *   are exact.
 * - `ttl` and `steps`: time histograms exact below 100 ms and in bins 1% wide
 *   above, whose middle is within 0.5% of any value in the bin, so medians
 *   and p90 are within 1%.
 */
import { WEIGHT_UNIT, type BlobFacts, type Outcome } from './facts.js';

/** Layout of the counters. `w` holds the same counts weighted by 1/sample_rate. */
export const IX = {
  dialogs: 0,
  progress: 1, // 5: blob sent, shown, engaged, error, logged in
  newUser: 6, // 4
  reset: 10, // 3
  outcome: 13, // 5, in OUTCOMES order
  loggedInMultiEmail: 18,
  sitesSum: 19,
  ttlSum: 20,
} as const;
export const COUNTERS = 21;
const OUTCOME_INDEX: Record<Outcome, number> = { bounce: 0, fallback: 1, idp: 2, assertion: 3, fail: 4 };

export type Histogram = Map<number, number>;

export interface Cell {
  c: number[];
  w: number[];
  sites: Histogram;
  ttl: Histogram;
  /** Time to reach each new-user step (4 histograms). */
  steps: Histogram[];
}

export function emptyCell(): Cell {
  return {
    c: new Array<number>(COUNTERS).fill(0),
    w: new Array<number>(COUNTERS).fill(0),
    sites: new Map(),
    ttl: new Map(),
    steps: [new Map(), new Map(), new Map(), new Map()],
  };
}

const LINEAR_BELOW_MS = 100;
const LOG_STEP = Math.log(1.01);

/** The histogram bin of a time in ms. */
export function timeBin(ms: number): number {
  const v = Math.max(0, ms);
  if (v < LINEAR_BELOW_MS) return Math.floor(v);
  return LINEAR_BELOW_MS + Math.floor(Math.log(v / LINEAR_BELOW_MS) / LOG_STEP);
}

/** The value a time bin stands for (its geometric middle), ms. */
export function binValue(bin: number): number {
  if (bin < LINEAR_BELOW_MS) return bin;
  return LINEAR_BELOW_MS * Math.exp((bin - LINEAR_BELOW_MS + 0.5) * LOG_STEP);
}

function bump(histogram: Histogram, key: number, by = 1): void {
  histogram.set(key, (histogram.get(key) ?? 0) + by);
}

function add(counters: number[], weights: number[], index: number, weight: number): void {
  counters[index]! += 1;
  weights[index]! += weight;
}

/** Adds one blob's facts to a cell (mutates it). */
export function applyFacts(cell: Cell, facts: BlobFacts): void {
  const { c, w } = cell;
  const weight = facts.weight;
  add(c, w, IX.dialogs, weight);
  facts.progress.forEach((reached, i) => reached && add(c, w, IX.progress + i, weight));
  facts.newUser.forEach((reached, i) => reached && add(c, w, IX.newUser + i, weight));
  facts.reset.forEach((reached, i) => reached && add(c, w, IX.reset + i, weight));
  if (facts.outcome) add(c, w, IX.outcome + OUTCOME_INDEX[facts.outcome], weight);
  if (facts.loggedInMultiEmail) add(c, w, IX.loggedInMultiEmail, weight);
  c[IX.sitesSum]! += facts.sites;
  bump(cell.sites, facts.sites);
  if (facts.timeToLogin !== undefined) {
    c[IX.ttlSum]! += facts.timeToLogin;
    bump(cell.ttl, timeBin(facts.timeToLogin));
  }
  facts.newUserStepTimes.forEach((ms, i) => ms !== undefined && bump(cell.steps[i]!, timeBin(ms)));
}

/** Adds `from` into `into` (mutates `into`). */
export function mergeInto(into: Cell, from: Cell): Cell {
  for (let i = 0; i < COUNTERS; i++) {
    into.c[i]! += from.c[i]!;
    into.w[i]! += from.w[i]!;
  }
  for (const [k, v] of from.sites) bump(into.sites, k, v);
  for (const [k, v] of from.ttl) bump(into.ttl, k, v);
  from.steps.forEach((h, i) => {
    for (const [k, v] of h) bump(into.steps[i]!, k, v);
  });
  return into;
}

/** A new cell holding a + b. */
export function mergeCells(a: Cell, b: Cell): Cell {
  return mergeInto(mergeInto(emptyCell(), a), b);
}

/** Number of values in a histogram. */
export function histogramCount(histogram: Histogram): number {
  let n = 0;
  for (const v of histogram.values()) n += v;
  return n;
}

/**
 * The q-quantile of a histogram's values, `value(key)` mapping a key to the
 * value it stands for. The median (q = 0.5) of an even count is the mean of
 * the two middle values; other quantiles use the nearest rank (⌈q·n⌉-th
 * smallest). Undefined when empty.
 */
export function quantile(histogram: Histogram, q: number, value: (key: number) => number = (k) => k): number | undefined {
  const n = histogramCount(histogram);
  if (n === 0) return undefined;
  const keys = [...histogram.keys()].sort((a, b) => a - b);
  const nth = (rank: number): number => {
    let seen = 0;
    for (const key of keys) {
      seen += histogram.get(key)!;
      if (seen >= rank) return value(key);
    }
    return value(keys[keys.length - 1]!);
  };
  if (q === 0.5) return n % 2 === 1 ? nth((n + 1) / 2) : (nth(n / 2) + nth(n / 2 + 1)) / 2;
  return nth(Math.max(1, Math.ceil(q * n)));
}

/** A weight sum back in blobs. */
export const estimate = (weight: number): number => weight / WEIGHT_UNIT;

/** Compact JSON form: counters, weights and histograms as sorted [key, count] pairs. */
export interface CellJson {
  c: number[];
  w: number[];
  s: [number, number][];
  t: [number, number][];
  n: [number, number][][];
}

const pairs = (h: Histogram): [number, number][] => [...h.entries()].sort((a, b) => a[0] - b[0]);

export function cellToJson(cell: Cell): CellJson {
  return { c: [...cell.c], w: [...cell.w], s: pairs(cell.sites), t: pairs(cell.ttl), n: cell.steps.map(pairs) };
}

export function cellFromJson(json: CellJson): Cell {
  return { c: [...json.c], w: [...json.w], sites: new Map(json.s), ttl: new Map(json.t), steps: json.n.map((p) => new Map(p)) };
}
