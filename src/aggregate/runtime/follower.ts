/**
 * The live aggregate: follows the blob database's `_changes` feed, applies
 * each blob to the state once, checkpoints state and position together, and
 * tells listeners which buckets changed.
 *
 *   _changes ─▶ followChanges (pull, backoff) ─▶ apply batch (sync) ─┬─▶ checkpointTrigger ─▶ save
 *                                                                    └─▶ change listeners
 *
 * The only link to ingest is the feed: a restart, a replay or a second
 * writer behaves as one process would.
 */
import { catchError, concatMap, EMPTY, from, map, share, Subject, type Subscription } from 'rxjs';
import { CheckpointConflictError, CheckpointStore, snapshotOf } from './checkpoint.js';
import { checkpointTrigger } from './checkpoint-trigger.js';
import { applyChanges, couchChangesReader, followChanges, withArrivals, type ChangeBatch, type ChangesReader } from './feed.js';
import { RunRegistry } from '../../deploys/arrivals.js';
import { Database } from '../../store/database.js';
import { ensureDatabase } from '../../store/setup.js';
import type { AggregateSettings } from './settings.js';
import { AggregateState, keyOf, type BucketCount } from '../model/state.js';
import { retrying } from '../../retry.js';

export interface FollowerOptions extends AggregateSettings {
  longpollMs: number;
  checkpointEveryChanges: number;
  checkpointEveryMs: number;
  /** Replaces the CouchDB feed (tests). */
  reader?: ChangesReader;
}

const RELOAD_BACKOFF = { initialMs: 250, maxMs: 10_000 };

export type Phase = 'starting' | 'catching-up' | 'live' | 'retrying' | 'failed' | 'stopped';

export interface AggregateStatus {
  phase: Phase;
  /** Changes still to read, when the store says (CouchDB does; pouchdb-server does not). */
  lagChanges: number | null;
  /** Seconds since the aggregate was last caught up with the feed (0 when caught up). */
  lagSeconds: number;
  counted: number;
  duplicates: number;
  /** Deletions read on the feed and left alone: removing a blob never subtracts it. */
  deletions: number;
  watermark: number;
  lastCheckpointAt: number | null;
  /**
   * Every blob written before this time (ms) is counted and in the saved
   * checkpoint, so removing it cannot lose it, even to a crash. 0 until the
   * first read that finds the feed caught up.
   */
  countedThrough: number;
  lastError: string | null;
  applied: { runs: number; ranges: number; foreign: number };
  /** Buckets the state holds in memory, by size (ms), smallest first; counted at each read of the status. */
  buckets: BucketCount[];
}

/** Buckets that changed, with the state version they reached. */
export interface AggregateChange {
  version: number;
  keys: string[];
}

export class FeedFollower {
  state: AggregateState;
  #position: unknown = 0;
  #savedVersion = 0;
  #subscription: Subscription | undefined;
  #saving: Promise<void> = Promise.resolve();
  #caughtUpAt = Date.now();
  /** Start of the last read that found the feed caught up, once applied: every change before it is in the state. */
  #appliedThrough = 0;
  /** The same, for the state the last checkpoint saved. */
  #savedThrough = 0;
  /** When the read of each batch started. */
  readonly #readStartedAt = new WeakMap<ChangeBatch, number>();
  #status: AggregateStatus;
  readonly #changes = new Subject<AggregateChange>();
  /** Aborted by stop(): no reload follows the feed after it. */
  readonly #stopping = new AbortController();
  /** Set by abandon(): no checkpoint starts after it. */
  #abandoned = false;
  readonly #checkpoints: CheckpointStore;
  readonly #reader: ChangesReader;
  /** The arrival records of the blobs' runs, when the deploys database is known. */
  readonly #runs: RunRegistry | undefined;
  readonly #options: FollowerOptions;

  /** Buckets changed by each applied batch (late blobs included). */
  readonly changes$ = this.#changes.asObservable();

  constructor(options: FollowerOptions) {
    this.#options = options;
    this.state = new AggregateState(options.segments, options.retention);
    this.#checkpoints = new CheckpointStore(options.store, options.stateDb, options.segments, options.retention, options.log);
    const couch = options.reader ?? couchChangesReader(options.store, options.blobsDb, { limit: options.batchSize, longpollMs: options.longpollMs });
    this.#runs = options.deploysDb !== undefined ? new RunRegistry(new Database(options.store, options.deploysDb)) : undefined;
    const read = this.#runs ? withArrivals(couch, this.#runs) : couch;
    // A read that began at t and found nothing more to read holds every
    // change made before t (a longpoll answers as soon as there is one).
    this.#reader = async (since, signal, wait) => {
      const startedAt = Date.now();
      const batch = await read(since, signal, wait);
      this.#readStartedAt.set(batch, startedAt);
      return batch;
    };
    this.#status = {
      phase: 'starting',
      lagChanges: null,
      lagSeconds: 0,
      counted: 0,
      duplicates: 0,
      deletions: 0,
      watermark: 0,
      lastCheckpointAt: null,
      countedThrough: 0,
      lastError: null,
      applied: this.state.applied.size,
      buckets: [],
    };
  }

  get status(): AggregateStatus {
    const s = this.#status;
    const lagSeconds = s.phase === 'live' ? 0 : Math.round((Date.now() - this.#caughtUpAt) / 1000);
    // what is applied is saved too while nothing changed since the last checkpoint
    const countedThrough = this.state.version === this.#savedVersion ? this.#appliedThrough : this.#savedThrough;
    return { ...s, lagSeconds, countedThrough, watermark: this.state.watermark, applied: this.state.applied.size, buckets: this.state.bucketCounts() };
  }

  /** Feed position of the state (opaque). */
  get position(): unknown {
    return this.#position;
  }

  /** Loads the checkpoint (or starts empty) and follows the feed. */
  async start(): Promise<void> {
    await this.#checkpoints.ensureDb();
    if (this.#options.deploysDb !== undefined) await ensureDatabase(this.#options.store, this.#options.deploysDb);
    const loaded = await this.#checkpoints.load();
    this.state = loaded?.state ?? new AggregateState(this.#options.segments, this.#options.retention);
    this.#position = loaded?.seq ?? 0;
    this.#savedVersion = 0;
    this.#appliedThrough = 0;
    this.#savedThrough = 0;
    this.#options.log.info(
      { from: loaded ? 'checkpoint' : 'the start of the feed', buckets: this.state.buckets.size, watermark: this.state.watermark },
      'aggregate starting',
    );
    // in the same queue as checkpoints, so it never races one of ours
    this.#saving = this.#saving
      .catch(() => undefined)
      .then(() => this.#checkpoints.removeOrphans())
      .then(
        (n) => void (n > 0 && this.#options.log.info({ removed: n }, 'removed checkpoint documents left by an interrupted checkpoint')),
        (err: Error) => this.#options.log.warn({ err: err.message }, 'could not look for orphaned checkpoint documents'),
      );
    if (!this.#stopping.signal.aborted) this.#follow();
  }

  #follow(): void {
    this.#status.phase = 'catching-up';
    const applied$ = followChanges(this.#reader, this.#position, {
      onRetry: (err, attempt, delayMs) => {
        this.#status.phase = 'retrying';
        this.#status.lastError = (err as Error).message;
        this.#options.log.warn({ err: (err as Error).message, attempt, delayMs }, 'changes feed unavailable; retrying');
      },
    }).pipe(
      map((batch) => this.#apply(batch)),
      share(),
    );
    this.#subscription = applied$
      .pipe(
        checkpointTrigger(this.#options.checkpointEveryChanges, this.#options.checkpointEveryMs),
        concatMap(() => from(this.checkpoint()).pipe(catchError(() => EMPTY))),
      )
      .subscribe({
        error: (err: Error) => {
          this.#status.phase = 'failed';
          this.#status.lastError = err.message;
          this.#options.log.error({ err: err.message }, 'aggregate stopped: the changes feed refused (fix and restart)');
        },
      });
  }

  /** Applies one batch; returns how many changes it held. */
  #apply(batch: ChangeBatch): number {
    const before = this.state.version;
    const runs = this.#runs;
    const { counted, duplicates, deletions } = applyChanges(this.state, batch.changes, runs && ((id) => runs.afterOf(id)));
    this.#status.counted += counted;
    this.#status.duplicates += duplicates;
    this.#status.deletions += deletions;
    this.#position = batch.lastSeq;
    this.#status.lagChanges = batch.pending ?? (batch.caughtUp ? 0 : null);
    this.#status.lastError = null;
    if (batch.caughtUp) {
      this.#status.phase = 'live';
      this.#caughtUpAt = Date.now();
      this.#appliedThrough = this.#readStartedAt.get(batch) ?? this.#appliedThrough;
    } else this.#status.phase = 'catching-up';
    if (this.state.version > before) {
      const keys = [...this.state.changedSince(before), ...this.state.arrivalsChangedSince(before)].map(keyOf);
      this.#changes.next({ version: this.state.version, keys });
    }
    return batch.changes.length;
  }

  /**
   * Saves state and position now (after any save in progress). A conflict
   * means another writer replaced the checkpoint (a rebuild): the aggregate
   * reloads from it.
   */
  checkpoint(): Promise<void> {
    const run = async () => {
      if (this.#abandoned) return;
      const through = this.#appliedThrough; // taken with the snapshot, in the same turn
      if (this.state.version === this.#savedVersion && this.#status.lastCheckpointAt !== null) {
        this.#savedThrough = Math.max(this.#savedThrough, through);
        return;
      }
      const snapshot = snapshotOf(this.state, this.#position, this.#savedVersion);
      try {
        await this.#checkpoints.save(snapshot);
        this.#savedVersion = snapshot.version;
        this.#savedThrough = through;
        this.#status.lastCheckpointAt = Date.now();
      } catch (err) {
        if (err instanceof CheckpointConflictError) {
          this.#options.log.warn('the checkpoint was replaced (by a rebuild?): reloading the aggregate from it');
          await this.#reload();
          return;
        }
        this.#options.log.warn({ err: (err as Error).message }, 'checkpoint failed; the next one retries');
        throw err;
      }
    };
    this.#saving = this.#saving.then(run, run);
    return this.#saving;
  }

  /**
   * Starts over from the checkpoint another writer saved. A store that fails
   * meanwhile is retried with capped backoff (the aggregate shows
   * `retrying`) until it answers or the aggregate stops; a stopping aggregate
   * does not follow the feed again.
   */
  async #reload(): Promise<void> {
    this.#subscription?.unsubscribe();
    this.#subscription = undefined;
    const stopping = this.#stopping.signal;
    try {
      await retrying(() => this.start(), {
        ...RELOAD_BACKOFF,
        signal: stopping,
        onRetry: (err, attempt, delayMs) => {
          this.#status.phase = 'retrying';
          this.#status.lastError = (err as Error).message;
          this.#options.log.warn({ err: (err as Error).message, attempt, delayMs }, 'could not reload the aggregate; retrying');
        },
      });
    } catch (err) {
      if (stopping.aborted) return;
      throw err;
    }
    if (stopping.aborted) return;
    this.#changes.next({ version: this.state.version, keys: [...this.state.buckets.keys()] });
  }

  /**
   * Stops following at once and saves nothing more: this instance no longer
   * holds the follower lease (src/cluster/lease.ts), so another may already
   * be writing the checkpoint. A save already in flight may still land; if
   * the new follower saved first, it conflicts on the root's revision and is
   * thrown away, and if not, the new follower's next save conflicts and it
   * reloads from that checkpoint: either way every blob counts once.
   */
  abandon(): void {
    this.#abandoned = true;
    this.#stopping.abort();
    this.#subscription?.unsubscribe();
    this.#subscription = undefined;
    this.#status.phase = 'stopped';
    this.#changes.complete();
  }

  /** Whether {@link abandon} was called. */
  get abandoned(): boolean {
    return this.#abandoned;
  }

  /** Stops following and saves a last checkpoint. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    this.#subscription?.unsubscribe();
    this.#subscription = undefined;
    await this.checkpoint().catch(() => undefined);
    this.#status.phase = 'stopped';
    this.#changes.complete();
  }
}
