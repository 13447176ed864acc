/**
 * The aggregate as the active follower publishes it: its last checkpoint
 * (checkpoint.ts), read by an instance that does not follow the feed (a
 * standby) so it can answer the query API and the live stream too.
 *
 * Every `pollMs` the checkpoint root is read, with the checkpoint's own
 * codec and conflict rule (checkpoint.ts); when it is another commit, only
 * the bucket documents whose tag changed are fetched, and applied to the
 * state in one synchronous step, each with a new state version, so live
 * deltas work as on the follower. A bucket that disappears without a changed
 * bucket covering its span (a rebuild can do that; downsampling cannot)
 * starts a fresh state, whose new epoch sends live clients a snapshot.
 *
 * The follower removes superseded bucket documents right after each commit,
 * so a read that races a commit can miss one: it then reads the new root and
 * tries again.
 */
import { Subject } from 'rxjs';
import type { Log } from '../../log.js';
import { Database } from '../../store/database.js';
import type { Store } from '../../store/store.js';
import type { AggregateChange, AggregateStatus } from './follower.js';
import { AppliedSet } from '../model/applied-set.js';
import { MissingBucketError, readBuckets, readRoots, settingsHash, type Root } from './checkpoint.js';
import type { SegmentConfig } from '../model/segments.js';
import { AggregateState, type Bucket, type RetentionConfig } from '../model/state.js';

const ATTEMPTS = 5;

/** What identifies one commit of the root: its revision and its tag (a `_local` root of an older version reused revisions). */
const commitOf = (root: Root) => `${root._rev ?? ''}/${root.tag ?? ''}/${root.savedAt}`;

export interface StandbyOptions {
  store: Store;
  /** Database of the checkpoint. */
  stateDb: string;
  segments: SegmentConfig;
  retention: RetentionConfig;
  log: Log;
  /** How often the checkpoint root is read, ms. */
  pollMs: number;
}

/** Whether the span of bucket key `key` lies inside one of `keys`' spans. */
function covered(key: string, keys: readonly string[]): boolean {
  const [start, size] = key.split('/').map(Number) as [number, number];
  return keys.some((k) => {
    const [s, z] = k.split('/').map(Number) as [number, number];
    return s <= start && start + size <= s + z;
  });
}

/**
 * @example
 * const published = new StandbyAggregate({ store, stateDb, segments, retention, log, pollMs: 1000 });
 * await published.start();     // loads the checkpoint, then follows its root
 * queryKpis(published.state, query);
 * published.stop();
 */
export class StandbyAggregate {
  state: AggregateState;
  readonly #options: StandbyOptions;
  readonly #settings: string;
  readonly #changes = new Subject<AggregateChange>();
  /** Buckets changed by each refresh. */
  readonly changes$ = this.#changes.asObservable();
  #root: { commit: string; buckets: Record<string, string>; savedAt: number; generation: number } | undefined;
  /** Start of the last read that found the state equal to the published one. */
  #currentAt: number | undefined;
  #lastError: string | null = null;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #queue: Promise<unknown> = Promise.resolve();
  #warnedSettings = false;
  /** The last read failed. */
  #failing = false;

  readonly #db: Database;

  constructor(options: StandbyOptions) {
    this.#options = options;
    this.#db = new Database(options.store, options.stateDb);
    this.#settings = settingsHash(options.segments, options.retention);
    this.state = new AggregateState(options.segments, options.retention);
  }

  /**
   * Phases as the follower's, of this copy against the published checkpoint:
   * `starting` before the first read, `live` while the last read succeeded,
   * `retrying` while reads fail; the lag is the time since this copy last
   * equalled the published state. How far the follower is behind the feed is
   * in the lease (its `status`).
   */
  get status(): AggregateStatus {
    const lagSeconds = this.#currentAt === undefined ? 0 : Math.floor((Date.now() - this.#currentAt) / 1000);
    return {
      phase: this.#failing ? 'retrying' : this.#currentAt === undefined ? 'starting' : 'live',
      lagChanges: null,
      lagSeconds,
      counted: 0,
      duplicates: 0,
      deletions: 0,
      watermark: this.state.watermark,
      lastCheckpointAt: this.#root?.savedAt ?? null,
      countedThrough: 0,
      lastError: this.#lastError,
      applied: this.state.applied.size,
      buckets: this.state.bucketCounts(),
    };
  }

  /** The published checkpoint's generation and save time, as last read. */
  get published(): { generation: number; savedAt: number } | null {
    return this.#root ? { generation: this.#root.generation, savedAt: this.#root.savedAt } : null;
  }

  /** Loads the published state (a failure is shown in the status and retried), then refreshes it every `pollMs`. */
  async start(): Promise<void> {
    await this.#poll();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#changes.complete();
  }

  async #poll(): Promise<void> {
    if (this.#stopped) return;
    try {
      await this.refresh();
      this.#failing = false;
    } catch (err) {
      if (!this.#failing) this.#options.log.warn({ err: (err as Error).message }, 'could not read the published aggregate; retrying');
      this.#failing = true;
      this.#lastError = (err as Error).message;
    }
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#poll(), this.#options.pollMs);
    this.#timer.unref();
  }

  /** Reads the published checkpoint now (after a read in progress); true when the state changed. */
  refresh(): Promise<boolean> {
    const run = this.#queue.then(() => this.#refresh());
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #refresh(): Promise<boolean> {
    // the best leaf by the checkpoint's own rule; past one whose documents
    // are gone (a cluster still holding a losing leaf), the next
    let skip = 0;
    for (let attempt = 1; ; attempt++) {
      const startedAt = Date.now();
      const roots = await readRoots(this.#db);
      const root = roots[Math.min(skip, roots.length - 1)];
      if (this.#stopped) return false;
      if (!root) {
        const had = this.#root !== undefined;
        this.#root = undefined;
        this.#currentAt = startedAt;
        this.#lastError = null;
        if (had) this.#replace(new AggregateState(this.#options.segments, this.#options.retention));
        return had;
      }
      if (commitOf(root) === this.#root?.commit) {
        this.#currentAt = startedAt;
        this.#lastError = null;
        return false;
      }
      if (root.settings !== this.#settings) {
        // the follower works under other segment or retention settings: its state means nothing here
        if (!this.#warnedSettings)
          this.#options.log.warn(
            { published: root.settings, here: this.#settings },
            'the published aggregate was computed under other segment or retention settings',
          );
        this.#warnedSettings = true;
        this.#root = { commit: commitOf(root), buckets: {}, savedAt: root.savedAt, generation: root.generation };
        this.#currentAt = startedAt;
        this.#lastError = 'the published aggregate was computed under other segment or retention settings';
        this.#replace(new AggregateState(this.#options.segments, this.#options.retention));
        return true;
      }
      const previous = this.#root?.buckets;
      const changed = Object.keys(root.buckets).filter((key) => previous?.[key] !== root.buckets[key]);
      const removed = previous ? Object.keys(previous).filter((key) => !Object.hasOwn(root.buckets, key)) : [];
      const fresh = !previous || removed.some((key) => !covered(key, changed));
      const wanted = fresh ? Object.keys(root.buckets) : changed;
      let buckets: Map<string, Bucket>;
      try {
        buckets = await readBuckets(
          this.#db,
          wanted.map((key) => [key, root.buckets[key]!]),
        );
      } catch (err) {
        if (err instanceof MissingBucketError && attempt < ATTEMPTS) {
          // a commit raced us (read its root), or this leaf lost a conflict (take the next)
          if (roots.length > skip + 1) skip++;
          continue;
        }
        throw err;
      }
      if (this.#stopped) return false;
      // one synchronous step: a query sees the old state or the new one
      const state = fresh ? new AggregateState(this.#options.segments, this.#options.retention) : this.state;
      for (const [key, bucket] of buckets) {
        bucket.version = ++state.version;
        state.putBucket(key, bucket);
      }
      if (!fresh) for (const key of removed) state.deleteBucket(key);
      state.watermark = root.watermark;
      state.applied = AppliedSet.fromJSON(root.applied);
      this.#root = { commit: commitOf(root), buckets: { ...root.buckets }, savedAt: root.savedAt, generation: root.generation };
      this.#currentAt = startedAt;
      this.#lastError = null;
      if (fresh) this.#replace(state);
      else this.#changes.next({ version: state.version, keys: [...buckets.keys()] });
      return true;
    }
  }

  #replace(state: AggregateState): void {
    this.state = state;
    this.#changes.next({ version: state.version, keys: [...state.buckets.keys()] });
  }
}
