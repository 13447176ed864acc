/**
 * The metrics registry of one kpi-live instance (`app.metrics`): features
 * register what they count, and `GET /metrics` renders it.
 *
 * - The hot path only adds to plain numbers: {@link Counter.inc} and
 *   {@link Histogram.observe} allocate nothing and read no clock. The text is
 *   built only when a scraper asks.
 * - A feature that already keeps a number (its status, its stats) registers
 *   a reader of it instead ({@link MetricsRegistry.gauge},
 *   {@link MetricsRegistry.counterFrom}): nothing is copied on the hot path,
 *   and the feature keeps its internals to itself.
 * - Counters only go up for the life of the process; a reader registered as
 *   a counter must read a number that only goes up.
 * - Names are checked when registered (the format's characters, `_total` on
 *   counters and only on counters, no name twice), so a mistake fails at
 *   start, not in a scraper's parser.
 *
 * A leaf: it imports no feature.
 *
 * Kept rather than prom-client, on purpose: features here register readers
 * of numbers they already keep (status objects, stats), which prom-client
 * can only take through `collect()` callbacks that reset and set a metric
 * on every scrape; a reader that throws costs only its own metric here
 * (`onReadError`), where one failing `collect()` fails prom-client's whole
 * scrape; and names, `_total` and label names are refused at registration.
 * The output is the same text format, and the process metrics
 * (process.ts) carry prom-client's default names, so dashboards and rules
 * written for a prom-client service read them unchanged.
 */
import { formatExposition, formatValue, LABEL_NAME, METRIC_NAME, type MetricFamily, type MetricType, type Sample } from './exposition.js';

/** Label values by label name. */
export type Labels = Readonly<Record<string, string>>;

/** One value a reader gives, with its labels when the metric has label names. */
export interface Reading {
  readonly labels?: Labels;
  readonly value: number;
}

/**
 * Reads a metric at scrape: one number, several labelled {@link Reading}s,
 * or `undefined` when there is nothing to say (the family is listed without
 * samples).
 */
export type Reader = () => number | undefined | readonly Reading[];

/** A counter's one series (one set of label values). */
export interface CounterSeries {
  inc(by?: number): void;
}

class CounterCell implements CounterSeries {
  value = 0;
  constructor(readonly labels: readonly (readonly [string, string])[]) {}
  inc(by = 1): void {
    if (!(by >= 0)) throw new RangeError(`a counter only goes up (got ${by})`);
    this.value += by;
  }
}

/**
 * A counter kept here: starts at 0, only goes up.
 *
 * @example
 * const requests = registry.counter('kpi_ingest_requests_total', 'Ingest requests answered, by status.', ['status']);
 * requests.labels('200').inc();
 */
export class Counter implements CounterSeries {
  readonly #cells = new Map<string, CounterCell>();
  readonly #plain: CounterCell | undefined;

  constructor(readonly labelNames: readonly string[]) {
    if (labelNames.length === 0) {
      this.#plain = new CounterCell([]);
      this.#cells.set('', this.#plain);
    }
  }

  /** Adds `by` (1 by default; never negative) to the counter without labels. */
  inc(by = 1): void {
    if (!this.#plain) throw new Error(`this counter has labels (${this.labelNames.join(', ')}): use labels(…).inc()`);
    this.#plain.inc(by);
  }

  /** The series of these label values, in the order of the label names (made at first use, kept for good). */
  labels(...values: string[]): CounterSeries {
    if (values.length !== this.labelNames.length) throw new Error(`expected ${this.labelNames.length} label value(s), got ${values.length}`);
    const key = values.join('\u0000');
    let cell = this.#cells.get(key);
    if (!cell) {
      cell = new CounterCell(this.labelNames.map((name, i) => [name, values[i]!] as const));
      this.#cells.set(key, cell);
    }
    return cell;
  }

  /** The current value of the counter without labels, or of one series. */
  value(...values: string[]): number {
    return this.#cells.get(values.join('\u0000'))?.value ?? 0;
  }

  /** @internal */
  samples(name: string): Sample[] {
    return [...this.#cells.values()].map((cell) => ({ name, labels: cell.labels, value: cell.value }));
  }
}

/**
 * A histogram kept here: observations counted into fixed buckets, with
 * their sum and count. Bounds are upper bounds, inclusive (`le`); `+Inf` is
 * always there.
 *
 * @example
 * const flush = registry.histogram('kpi_ingest_flush_seconds', 'Duration of one _bulk_docs write.', [0.005, 0.01, 0.05]);
 * flush.observe(0.007);
 */
export class Histogram {
  readonly bounds: readonly number[];
  /** Observations per bucket, not cumulative; the last one is `+Inf`. */
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  constructor(bounds: readonly number[]) {
    for (let i = 0; i < bounds.length; i++) {
      if (!Number.isFinite(bounds[i])) throw new RangeError('histogram bounds must be finite (+Inf is implicit)');
      if (i > 0 && bounds[i]! <= bounds[i - 1]!) throw new RangeError('histogram bounds must increase');
    }
    this.bounds = [...bounds];
    this.#counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(value: number): void {
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]!) i++;
    this.#counts[i]! += 1;
    this.#sum += value;
    this.#count += 1;
  }

  get count(): number {
    return this.#count;
  }

  get sum(): number {
    return this.#sum;
  }

  /** @internal */
  samples(name: string): Sample[] {
    const samples: Sample[] = [];
    let cumulative = 0;
    for (let i = 0; i <= this.bounds.length; i++) {
      cumulative += this.#counts[i]!;
      const le = i < this.bounds.length ? formatValue(this.bounds[i]!) : '+Inf';
      samples.push({ name: `${name}_bucket`, labels: [['le', le]], value: cumulative });
    }
    samples.push({ name: `${name}_sum`, labels: [], value: this.#sum }, { name: `${name}_count`, labels: [], value: this.#count });
    return samples;
  }
}

/**
 * A counter's reader over a total that may start again from 0 (its source
 * was replaced, say a reloaded component): what it gives only goes up. A
 * fall is read as a restart from 0, so counts the old source made after the
 * previous scrape are lost, never counted twice.
 *
 * @example
 * registry.counterFrom('kpi_aggregate_counted_total', 'Changes counted.', monotonic(() => app.aggregates.status().counted));
 */
export function monotonic(read: () => number | undefined): () => number | undefined {
  let last: number | undefined;
  let total = 0;
  return () => {
    const now = read();
    if (now === undefined) return last === undefined ? undefined : total;
    total += last === undefined || now < last ? now : now - last;
    last = now;
    return total;
  };
}

interface Entry {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly samples: () => Sample[];
}

export interface RegistryOptions {
  /** A reader threw: its family is listed without samples, and this is told why. */
  onReadError?: (name: string, err: unknown) => void;
}

/**
 * @example
 * const registry = new MetricsRegistry();
 * const stored = registry.counter('kpi_ingest_blobs_stored_total', 'Blobs stored.');
 * registry.gauge('kpi_ingest_queue_docs', 'Blobs waiting for a write.', () => committer.stats.queuedDocs);
 * stored.inc(3);
 * await registry.render(); // '# HELP kpi_ingest_blobs_stored_total Blobs stored.\n…'
 */
export class MetricsRegistry {
  readonly #entries = new Map<string, Entry>();
  /** Every sample name taken, suffixes of histograms included. */
  readonly #names = new Set<string>();
  readonly #beforeScrape: (() => void | Promise<void>)[] = [];
  readonly #options: RegistryOptions;

  constructor(options: RegistryOptions = {}) {
    this.#options = options;
  }

  /** A counter kept by the registry; its name ends in `_total`. */
  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    this.#check(name, 'counter', labelNames);
    const counter = new Counter(labelNames);
    this.#add({ name, help, type: 'counter', samples: () => counter.samples(name) });
    return counter;
  }

  /** A counter read at scrape from a number the feature keeps, which must only go up. */
  counterFrom(name: string, help: string, read: Reader, labelNames: readonly string[] = []): void {
    this.#check(name, 'counter', labelNames);
    this.#add({ name, help, type: 'counter', samples: () => this.#read(name, read, labelNames) });
  }

  /** A gauge read at scrape. */
  gauge(name: string, help: string, read: Reader, labelNames: readonly string[] = []): void {
    this.#check(name, 'gauge', labelNames);
    this.#add({ name, help, type: 'gauge', samples: () => this.#read(name, read, labelNames) });
  }

  /** A histogram with these finite, increasing upper bounds (seconds, bytes or counts). */
  histogram(name: string, help: string, bounds: readonly number[]): Histogram {
    this.#check(name, 'histogram', []);
    const histogram = new Histogram(bounds);
    this.#add({ name, help, type: 'histogram', samples: () => histogram.samples(name) });
    return histogram;
  }

  /**
   * Work done once per scrape, before any reader runs (readings several
   * gauges share, such as one store ping). Runs in registration order.
   */
  beforeScrape(work: () => void | Promise<void>): void {
    this.#beforeScrape.push(work);
  }

  /** Every family with its current samples. */
  async collect(): Promise<MetricFamily[]> {
    for (const work of this.#beforeScrape) {
      try {
        await work();
      } catch (err) {
        this.#options.onReadError?.('(before scrape)', err);
      }
    }
    return [...this.#entries.values()].map((entry) => ({ name: entry.name, help: entry.help, type: entry.type, samples: entry.samples() }));
  }

  /** The exposition text of every family (Prometheus text format 0.0.4). */
  async render(): Promise<string> {
    return formatExposition(await this.collect());
  }

  #read(name: string, read: Reader, labelNames: readonly string[]): Sample[] {
    try {
      const got = read();
      if (got === undefined) return [];
      if (typeof got === 'number') {
        if (labelNames.length > 0) throw new Error(`${name} has labels: its reader must give readings`);
        return [{ name, labels: [], value: got }];
      }
      return got.map((reading) => ({ name, labels: labelNames.map((label) => [label, reading.labels?.[label] ?? ''] as const), value: reading.value }));
    } catch (err) {
      this.#options.onReadError?.(name, err);
      return [];
    }
  }

  #check(name: string, type: MetricType, labelNames: readonly string[]): void {
    if (!METRIC_NAME.test(name)) throw new Error(`metric name ${JSON.stringify(name)} does not match ${METRIC_NAME}`);
    if (type === 'counter' && !name.endsWith('_total')) throw new Error(`counter ${name} must end in _total`);
    if (type !== 'counter' && name.endsWith('_total')) throw new Error(`${type} ${name} must not end in _total (only counters do)`);
    const taken = type === 'histogram' ? [name, `${name}_bucket`, `${name}_sum`, `${name}_count`] : [name];
    for (const n of taken) if (this.#names.has(n)) throw new Error(`metric ${n} is registered twice`);
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith('__')) throw new Error(`label name ${JSON.stringify(label)} of ${name} is not allowed`);
    }
    if (new Set(labelNames).size !== labelNames.length) throw new Error(`label names of ${name} repeat`);
    for (const n of taken) this.#names.add(n);
  }

  #add(entry: Entry): void {
    this.#entries.set(entry.name, entry);
  }
}
