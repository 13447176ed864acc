/**
 * A sparse histogram of integer keys: sorted keys and their counts in two
 * typed arrays. Twelve bytes a distinct key (a Map costs several times that),
 * merges are one linear pass over both, and quantiles walk the keys in order
 * with no sorting. Counts are integers, so merging is exact and order-free.
 */
export class Histogram {
  #keys: Int32Array;
  #counts: Float64Array;
  #size = 0;

  constructor(capacity = 4) {
    this.#keys = new Int32Array(capacity);
    this.#counts = new Float64Array(capacity);
  }

  /** Distinct keys held. */
  get size(): number {
    return this.#size;
  }

  /** Total of the counts. */
  total(): number {
    let n = 0;
    for (let i = 0; i < this.#size; i++) n += this.#counts[i]!;
    return n;
  }

  #find(key: number): number {
    let lo = 0;
    let hi = this.#size;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#keys[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #grow(min: number): void {
    if (min <= this.#keys.length) return;
    const capacity = Math.max(min, this.#keys.length * 2, 2);
    const keys = new Int32Array(capacity);
    const counts = new Float64Array(capacity);
    keys.set(this.#keys.subarray(0, this.#size));
    counts.set(this.#counts.subarray(0, this.#size));
    this.#keys = keys;
    this.#counts = counts;
  }

  add(key: number, count = 1): void {
    const i = this.#find(key);
    if (i < this.#size && this.#keys[i] === key) {
      this.#counts[i]! += count;
      return;
    }
    this.#grow(this.#size + 1);
    this.#keys.copyWithin(i + 1, i, this.#size);
    this.#counts.copyWithin(i + 1, i, this.#size);
    this.#keys[i] = key;
    this.#counts[i] = count;
    this.#size += 1;
  }

  get(key: number): number {
    const i = this.#find(key);
    return i < this.#size && this.#keys[i] === key ? this.#counts[i]! : 0;
  }

  /** Adds every count of `other` into this one. */
  merge(other: Histogram): this {
    if (other.#size === 0) return this;
    const n = this.#size;
    const m = other.#size;
    const keys = new Int32Array(n + m);
    const counts = new Float64Array(n + m);
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < n || j < m) {
      if (j >= m || (i < n && this.#keys[i]! < other.#keys[j]!)) {
        keys[k] = this.#keys[i]!;
        counts[k++] = this.#counts[i++]!;
      } else if (i >= n || other.#keys[j]! < this.#keys[i]!) {
        keys[k] = other.#keys[j]!;
        counts[k++] = other.#counts[j++]!;
      } else {
        keys[k] = this.#keys[i]!;
        counts[k++] = this.#counts[i++]! + other.#counts[j++]!;
      }
    }
    this.#keys = keys;
    this.#counts = counts;
    this.#size = k;
    return this;
  }

  /**
   * The q-quantile of the values, `value(key)` mapping a key to the value it
   * stands for. The median (q = 0.5) of an even count is the mean of the two
   * middle values; other quantiles are the nearest rank (⌈q·n⌉-th smallest).
   * Undefined when empty.
   */
  quantile(q: number, value: (key: number) => number = (k) => k): number | undefined {
    const n = this.total();
    if (n === 0) return undefined;
    const nth = (rank: number): number => {
      let seen = 0;
      for (let i = 0; i < this.#size; i++) {
        seen += this.#counts[i]!;
        if (seen >= rank) return value(this.#keys[i]!);
      }
      return value(this.#keys[this.#size - 1]!);
    };
    if (q === 0.5) return n % 2 === 1 ? nth((n + 1) / 2) : (nth(n / 2) + nth(n / 2 + 1)) / 2;
    return nth(Math.max(1, Math.ceil(q * n)));
  }

  /** [key, count] pairs in key order. */
  toPairs(): [number, number][] {
    const out: [number, number][] = [];
    for (let i = 0; i < this.#size; i++) out.push([this.#keys[i]!, this.#counts[i]!]);
    return out;
  }

  static fromPairs(pairs: [number, number][]): Histogram {
    const h = new Histogram(Math.max(4, pairs.length));
    for (const [k, v] of pairs) h.add(k, v);
    return h;
  }
}
