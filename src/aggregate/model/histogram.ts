/**
 * Histograms of integer keys (time bins, sites counts) with integer counts,
 * so merging is exact and order-free.
 *
 * - {@link Histogram}: what the state keeps per cell. Sorted keys and counts
 *   interleaved in one plain array: tens of thousands of cells each hold a
 *   few of them, so per-object overhead matters more than anything (a typed
 *   array's separate buffer costs more than the few entries most cells have).
 * - {@link DenseHistogram}: what a query accumulates into: counts indexed by
 *   key, so adding a cell costs one addition per entry, and {@link medianAndP90}
 *   walks keys in order without sorting.
 */

/** What a query needs of any histogram. */
export interface Quantiles {
  total(): number;
  /** Visits keys in increasing order with their counts; stops when visit returns false. */
  forEach(visit: (key: number, count: number) => boolean): void;
}

/**
 * Median and p90 in one ordered walk. The median of an even count is the mean
 * of the two middle values (as the original dashboard computed it); p90 is
 * the nearest rank, the ⌈0.9·n⌉-th smallest value. Null when empty.
 *
 * @example
 * medianAndP90(h, binValue); // { median: 2150.3, p90: 7321.9 }
 */
export function medianAndP90(h: Quantiles, value: (key: number) => number = (k) => k): { median: number | null; p90: number | null } {
  const n = h.total();
  if (n === 0) return { median: null, p90: null };
  const lowRank = n % 2 === 1 ? (n + 1) / 2 : n / 2;
  const highRank = n % 2 === 1 ? lowRank : n / 2 + 1;
  const p90Rank = Math.max(1, Math.ceil(0.9 * n));
  let seen = 0;
  let low: number | undefined;
  let high: number | undefined;
  let p90: number | undefined;
  h.forEach((key, count) => {
    seen += count;
    if (low === undefined && seen >= lowRank) low = value(key);
    if (high === undefined && seen >= highRank) high = value(key);
    if (p90 === undefined && seen >= p90Rank) p90 = value(key);
    return p90 === undefined || high === undefined;
  });
  return { median: (low! + high!) / 2, p90: p90! };
}

/** Sparse: `[key0, count0, key1, count1, …]`, keys increasing. */
export class Histogram implements Quantiles {
  #d: number[] = [];

  /** Distinct keys held. */
  get size(): number {
    return this.#d.length >> 1;
  }

  total(): number {
    let n = 0;
    for (let i = 1; i < this.#d.length; i += 2) n += this.#d[i]!;
    return n;
  }

  /** Index (in pairs) of the first key ≥ key. */
  #find(key: number): number {
    let lo = 0;
    let hi = this.#d.length >> 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#d[2 * mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  add(key: number, count = 1): void {
    const i = this.#find(key);
    if (2 * i < this.#d.length && this.#d[2 * i] === key) this.#d[2 * i + 1]! += count;
    else this.#d.splice(2 * i, 0, key, count);
  }

  /** Adds every count of `other` into this one (one pass over both). */
  merge(other: Histogram): this {
    const a = this.#d;
    const b = other.#d;
    if (b.length === 0) return this;
    const out: number[] = [];
    let i = 0;
    let j = 0;
    while (i < a.length || j < b.length) {
      if (j >= b.length || (i < a.length && a[i]! < b[j]!)) {
        out.push(a[i]!, a[i + 1]!);
        i += 2;
      } else if (i >= a.length || b[j]! < a[i]!) {
        out.push(b[j]!, b[j + 1]!);
        j += 2;
      } else {
        out.push(a[i]!, a[i + 1]! + b[j + 1]!);
        i += 2;
        j += 2;
      }
    }
    this.#d = out;
    return this;
  }

  forEach(visit: (key: number, count: number) => boolean): void {
    for (let i = 0; i < this.#d.length; i += 2) if (!visit(this.#d[i]!, this.#d[i + 1]!)) return;
  }

  /** Adds every count into a dense accumulator. */
  addTo(dense: DenseHistogram): void {
    for (let i = 0; i < this.#d.length; i += 2) dense.add(this.#d[i]!, this.#d[i + 1]!);
  }

  /** [key, count] pairs in key order. */
  toPairs(): [number, number][] {
    const out: [number, number][] = [];
    for (let i = 0; i < this.#d.length; i += 2) out.push([this.#d[i]!, this.#d[i + 1]!]);
    return out;
  }

  static fromPairs(pairs: [number, number][]): Histogram {
    const h = new Histogram();
    for (const [k, v] of pairs) h.add(k, v);
    return h;
  }
}

/** Dense: counts indexed by key (keys are small non-negative integers). */
export class DenseHistogram implements Quantiles {
  #counts: number[] = [];
  #total = 0;

  add(key: number, count = 1): void {
    const counts = this.#counts;
    while (counts.length <= key) counts.push(0);
    counts[key]! += count;
    this.#total += count;
  }

  total(): number {
    return this.#total;
  }

  forEach(visit: (key: number, count: number) => boolean): void {
    const counts = this.#counts;
    for (let k = 0; k < counts.length; k++) if (counts[k]! > 0 && !visit(k, counts[k]!)) return;
  }
}
