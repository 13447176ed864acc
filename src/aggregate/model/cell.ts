/**
 * The mergeable KPI state of one (time bucket × segment value): integer
 * counters and histograms. Every field is a sum of integers, so merging is
 * addition: associative, commutative and exact whatever the order (weights
 * are millionths of a blob and times whole ms for that reason).
 *
 * - `sites`: exact histogram of sites logged in (small integers), so medians
 *   are exact. See histogram.ts for how histograms are kept.
 * - `ttl` and `steps`: time histograms exact below 100 ms and in bins 1% wide
 *   above, whose middle is within 0.5% of any value in the bin, so medians
 *   and p90 are within 1%.
 */
import { WEIGHT_UNIT, type BlobFacts } from './facts.js';
import { DenseHistogram, Histogram, type Quantiles } from './histogram.js';
import { type Outcome } from '../../contract/kpis.js';

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

export interface Cell {
  c: number[];
  w: number[];
  sites: Histogram;
  ttl: Histogram;
  /** Time to reach each new-user step (4 histograms). */
  steps: Histogram[];
}

/** What KPIs are computed from: a cell, or many cells accumulated by a query. */
export interface CellView {
  c: ArrayLike<number>;
  w: ArrayLike<number>;
  sites: Quantiles;
  ttl: Quantiles;
  steps: Quantiles[];
}

/** Cells of a query window added up: dense histograms make each addition one pass over the cell. */
export interface Accumulator extends CellView {
  c: number[];
  w: number[];
  sites: DenseHistogram;
  ttl: DenseHistogram;
  steps: DenseHistogram[];
}

export function emptyAccumulator(): Accumulator {
  return {
    c: new Array<number>(COUNTERS).fill(0),
    w: new Array<number>(COUNTERS).fill(0),
    sites: new DenseHistogram(),
    ttl: new DenseHistogram(),
    steps: [new DenseHistogram(), new DenseHistogram(), new DenseHistogram(), new DenseHistogram()],
  };
}

/** Adds a cell to an accumulator. */
export function accumulate(acc: Accumulator, cell: Cell): Accumulator {
  for (let i = 0; i < COUNTERS; i++) {
    acc.c[i]! += cell.c[i]!;
    acc.w[i]! += cell.w[i]!;
  }
  cell.sites.addTo(acc.sites);
  cell.ttl.addTo(acc.ttl);
  for (let i = 0; i < 4; i++) cell.steps[i]!.addTo(acc.steps[i]!);
  return acc;
}

export function emptyCell(): Cell {
  return {
    c: new Array<number>(COUNTERS).fill(0),
    w: new Array<number>(COUNTERS).fill(0),
    sites: new Histogram(),
    ttl: new Histogram(),
    steps: [new Histogram(), new Histogram(), new Histogram(), new Histogram()],
  };
}

function add(counters: number[], weights: number[], index: number, weight: number): void {
  counters[index]! += 1;
  weights[index]! += weight;
}

/**
 * Adds one blob's facts to a cell (mutates it). Times of the new-user steps
 * are kept only where `withStepTimes` (the unsegmented cell): per segment
 * they would be the largest part of the state and are not a segmented KPI.
 */
export function applyFacts(cell: Cell, facts: BlobFacts, withStepTimes = true): void {
  const { c, w } = cell;
  const weight = facts.weight;
  add(c, w, IX.dialogs, weight);
  for (let i = 0; i < 5; i++) if (facts.progress[i]) add(c, w, IX.progress + i, weight);
  for (let i = 0; i < 4; i++) if (facts.newUser[i]) add(c, w, IX.newUser + i, weight);
  for (let i = 0; i < 3; i++) if (facts.reset[i]) add(c, w, IX.reset + i, weight);
  if (facts.outcome) add(c, w, IX.outcome + OUTCOME_INDEX[facts.outcome], weight);
  if (facts.loggedInMultiEmail) add(c, w, IX.loggedInMultiEmail, weight);
  c[IX.sitesSum]! += facts.sites;
  cell.sites.add(facts.sites);
  if (facts.timeToLoginBin !== undefined) {
    c[IX.ttlSum]! += facts.timeToLogin!;
    cell.ttl.add(facts.timeToLoginBin);
  }
  if (!withStepTimes) return;
  for (let i = 0; i < 4; i++) {
    const bin = facts.newUserStepBins[i];
    if (bin !== undefined) cell.steps[i]!.add(bin);
  }
}

/** Adds `from` into `into` (mutates `into`). */
export function mergeInto(into: Cell, from: Cell): Cell {
  for (let i = 0; i < COUNTERS; i++) {
    into.c[i]! += from.c[i]!;
    into.w[i]! += from.w[i]!;
  }
  into.sites.merge(from.sites);
  into.ttl.merge(from.ttl);
  for (let i = 0; i < 4; i++) into.steps[i]!.merge(from.steps[i]!);
  return into;
}

/** A new cell holding a + b. */
export function mergeCells(a: Cell, b: Cell): Cell {
  return mergeInto(mergeInto(emptyCell(), a), b);
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

export function cellToJson(cell: Cell): CellJson {
  return { c: Array.from(cell.c), w: Array.from(cell.w), s: cell.sites.toPairs(), t: cell.ttl.toPairs(), n: cell.steps.map((h) => h.toPairs()) };
}

/** A saved cell holding something other than counts (a `null` where a number was, a fraction, a negative). */
export class CorruptCellError extends Error {
  override readonly name = 'CorruptCellError';
}

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

function counts(values: unknown, what: string): number[] {
  if (!Array.isArray(values) || values.length !== COUNTERS) throw new CorruptCellError(`${what} must be ${COUNTERS} counts`);
  const bad = values.findIndex((n) => !isCount(n));
  if (bad >= 0) throw new CorruptCellError(`${what}[${bad}] is ${JSON.stringify(values[bad])}, not a count`);
  return [...(values as number[])];
}

function histogram(pairs: unknown, what: string): Histogram {
  if (!Array.isArray(pairs)) throw new CorruptCellError(`${what} must be [key, count] pairs`);
  for (const [i, pair] of pairs.entries()) {
    if (!Array.isArray(pair) || pair.length !== 2 || !isCount(pair[0]) || !isCount(pair[1])) {
      throw new CorruptCellError(`${what}[${i}] is ${JSON.stringify(pair)?.slice(0, 40)}, not a [key, count] pair`);
    }
  }
  return Histogram.fromPairs(pairs as [number, number][]);
}

/**
 * A cell back from its JSON form, every number checked: a checkpoint that
 * turned a number into `null` (JSON's `Infinity`) or anything but a count
 * is refused with {@link CorruptCellError}, never counted.
 */
export function cellFromJson(json: CellJson): Cell {
  const steps = (json as { n?: unknown }).n;
  if (!Array.isArray(steps) || steps.length !== 4) throw new CorruptCellError('n must be 4 histograms');
  return {
    c: counts(json.c, 'c'),
    w: counts(json.w, 'w'),
    sites: histogram(json.s, 's'),
    ttl: histogram(json.t, 't'),
    steps: steps.map((p, i) => histogram(p, `n[${i}]`)),
  };
}
