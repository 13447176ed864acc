/**
 * Ingest's part of telling arrivals after a deploy (src/deploys/arrivals.ts):
 * a new run, recorded before its first blob, whenever this process learns
 * of a deploy marker. Rotations happen one at a time, in the order learnt.
 */
import { deploysToRecord, recordRun, type ArrivalDeploy } from '../deploys/arrivals.js';
import type { Log } from '../log.js';
import { retrying } from '../retry.js';
import { newRunId, type BlobIdAllocator } from '../store/blob-ids.js';
import type { Database } from '../store/database.js';

export class ArrivalRuns {
  readonly #known = new Map<string, ArrivalDeploy>();
  #queue: Promise<void> = Promise.resolve();
  readonly #closed = new AbortController();
  readonly #timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly ids: BlobIdAllocator,
    private readonly db: Database,
    private readonly log: Log,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Records the first run after the deploys already known (those of the
   * arrival window). Must finish before ingest takes a blob.
   */
  async start(known: readonly ArrivalDeploy[]): Promise<void> {
    const now = this.now();
    for (const d of known) if (d.at <= now) this.#known.set(d.id, { id: d.id, at: d.at });
    const after = deploysToRecord([...this.#known.values()], now);
    // a run after no deploy needs no record: absent means after none
    if (after.length > 0) await recordRun(this.db, this.ids.run, after);
    this.log.info({ run: this.ids.run, after: after.map((d) => d.id) }, 'ingest run started');
    for (const d of known) if (d.at > now) void this.deployed(d); // its run starts when it goes out
  }

  /**
   * Starts a new run after `deploy` (and the others still in the window);
   * resolves once blobs take ids of the new run. A deploy already known
   * changes nothing. The record is written first, with retries while the
   * store is away; until then blobs keep the current run.
   */
  deployed(deploy: ArrivalDeploy): Promise<void> {
    if (this.#known.has(deploy.id)) return this.#queue;
    this.#known.set(deploy.id, { id: deploy.id, at: deploy.at });
    const wait = deploy.at - this.now();
    if (wait > 0) {
      // a marker for a deploy still to come: its run starts when it goes out
      const timer = setTimeout(() => void this.#enqueue(), wait);
      timer.unref();
      this.#timers.add(timer);
      return this.#queue;
    }
    return this.#enqueue();
  }

  /** Stops retrying a rotation, and the rotations still to come. */
  close(): void {
    this.#closed.abort();
    for (const timer of this.#timers) clearTimeout(timer);
  }

  #enqueue(): Promise<void> {
    this.#queue = this.#queue
      .then(() => this.#rotate())
      .catch((err: Error) => this.log.warn({ err: err.message }, 'could not start an ingest run after a deploy'));
    return this.#queue;
  }

  async #rotate(): Promise<void> {
    const after = deploysToRecord([...this.#known.values()], this.now());
    const run = newRunId();
    await retrying(() => recordRun(this.db, run, after), {
      initialMs: 250,
      maxMs: 5000,
      signal: this.#closed.signal,
      onRetry: (err, attempt) => this.log.warn({ err: (err as Error).message, attempt }, 'could not record the ingest run after a deploy; retrying'),
    });
    const previous = this.ids.run;
    this.ids.startRun(run);
    this.log.info({ run, previous, after: after.map((d) => d.id) }, 'ingest run started after a deploy');
  }
}
