/**
 * Group commit: the blobs of concurrent requests share one `_bulk_docs` write.
 *
 * CouchDB (and pouchdb-server) pay per write far more than per document, so
 * one write of 500 blobs costs little more than one of 1. Each request waits
 * until the write holding its blobs is acknowledged (durable), then gets its
 * own outcome: per-document failures go to the request that sent them.
 *
 * - When no write is running, blobs are written at once: waiting for company
 *   only adds latency when the store is idle. While a write runs, arriving
 *   blobs gather, and a batch goes out when it holds `maxBatchDocs` blobs, its
 *   oldest blob has waited `maxWaitMs`, or a write slot frees up.
 * - At most `maxInFlight` writes run at once; blobs arriving meanwhile wait
 *   and form the next batch (the busier the store, the bigger the batches).
 * - A request's blobs are never split across writes, so a failed write fails
 *   whole requests, never part of one.
 * - The queue is bounded (`maxQueuedDocs`): beyond it, {@link GroupCommitter.submit}
 *   refuses at once, and ingest answers 503 instead of growing memory.
 */

/** Outcome of one document in a `_bulk_docs` answer. */
export interface BulkDocResult {
  id?: string;
  ok?: boolean;
  error?: string;
  reason?: string;
}

/** Writes documents; resolves with one result per document, in any order. */
export type BulkWriter<D extends { _id?: string }> = (docs: D[]) => Promise<BulkDocResult[]>;

export interface GroupCommitOptions<D extends { _id?: string }> {
  write: BulkWriter<D>;
  /** Called on each batch just before it is written (ids are given there). */
  prepare?: (docs: D[]) => void;
  maxBatchDocs: number;
  maxWaitMs: number;
  maxInFlight: number;
  maxQueuedDocs: number;
  /** Told of each write once it ended (metrics); must not throw. */
  onWrite?: (write: { docs: number; seconds: number; ok: boolean }) => void;
}

/** The queue is full or the committer is closing: try again later (503). */
export class CommitRefusedError extends Error {
  override readonly name = 'CommitRefusedError';
  /** Answered with 503 + Retry-After: the client should retry later. */
  readonly unavailable = true;
}

/** The store refused some of a request's documents. */
export class DocumentWriteError extends Error {
  override readonly name = 'DocumentWriteError';
  /** Answered with 503 + Retry-After: the client should retry later. */
  readonly unavailable = true;
  constructor(readonly failures: { id: string; error: string }[]) {
    super(`store refused ${failures.length} document(s): ${failures[0]?.error ?? 'unknown error'}`);
  }
}

interface Pending<D> {
  docs: D[];
  resolve: (stored: number) => void;
  reject: (err: Error) => void;
}

export interface GroupCommitStats {
  writes: number;
  docsWritten: number;
  queuedDocs: number;
  inFlight: number;
}

/**
 * @example
 * const committer = new GroupCommitter({ write: (docs) => bulkDocs(docs), maxBatchDocs: 500, maxWaitMs: 5, maxInFlight: 2, maxQueuedDocs: 20000 });
 * await committer.submit([doc1, doc2]); // 2, once both are durable
 * await committer.close();              // flushes what waits
 */
export class GroupCommitter<D extends { _id?: string }> {
  readonly #options: GroupCommitOptions<D>;
  #queue: Pending<D>[] = [];
  #queuedDocs = 0;
  #inFlight = 0;
  #cancelTimer: (() => void) | undefined;
  /** The oldest waiting blob has waited long enough: flush when a slot frees. */
  #due = false;
  #closing = false;
  #idle: (() => void)[] = [];
  #writes = 0;
  #docsWritten = 0;

  constructor(options: GroupCommitOptions<D>) {
    this.#options = options;
  }

  get stats(): GroupCommitStats {
    return { writes: this.#writes, docsWritten: this.#docsWritten, queuedDocs: this.#queuedDocs, inFlight: this.#inFlight };
  }

  /**
   * Queues one request's documents; resolves with their number once all are
   * durable, rejects with the store's error or a {@link DocumentWriteError}.
   * Throws {@link CommitRefusedError} at once when the queue is full or closing.
   */
  submit(docs: D[]): Promise<number> {
    if (docs.length === 0) return Promise.resolve(0);
    if (this.#closing) throw new CommitRefusedError('kpi-live is shutting down');
    if (this.#queuedDocs + docs.length > this.#options.maxQueuedDocs) {
      throw new CommitRefusedError(`ingest queue is full (${this.#queuedDocs} blobs waiting)`);
    }
    const done = new Promise<number>((resolve, reject) => {
      this.#queue.push({ docs, resolve, reject });
    });
    this.#queuedDocs += docs.length;
    this.#schedule();
    return done;
  }

  #schedule(): void {
    if (this.#queuedDocs >= this.#options.maxBatchDocs || this.#closing || this.#inFlight === 0) this.#due = true;
    this.#flush();
  }

  #flush(): void {
    while (this.#due && this.#queue.length > 0 && this.#inFlight < this.#options.maxInFlight) {
      const batch: Pending<D>[] = [];
      let size = 0;
      while (this.#queue.length > 0) {
        const next = this.#queue[0]!;
        if (batch.length > 0 && size + next.docs.length > this.#options.maxBatchDocs) break;
        batch.push(this.#queue.shift()!);
        size += next.docs.length;
      }
      this.#queuedDocs -= size;
      this.#due = this.#closing || this.#queuedDocs >= this.#options.maxBatchDocs;
      void this.#write(batch);
    }
    if (this.#queue.length === 0) {
      this.#due = this.#closing;
      this.#cancelTimer?.();
      this.#cancelTimer = undefined;
    } else if (!this.#due && !this.#cancelTimer) {
      this.#armTimer();
    }
  }

  /** Starts the wait of the oldest blob; when it ends, the batch is due. */
  #armTimer(): void {
    const fire = () => {
      this.#cancelTimer = undefined;
      this.#due = true;
      this.#flush();
    };
    if (this.#options.maxWaitMs > 0) {
      const timer = setTimeout(fire, this.#options.maxWaitMs);
      this.#cancelTimer = () => clearTimeout(timer);
    } else {
      // A wait of 0 still gathers what arrives in the same turn of the event loop.
      const immediate = setImmediate(fire);
      this.#cancelTimer = () => clearImmediate(immediate);
    }
  }

  async #write(batch: Pending<D>[]): Promise<void> {
    this.#inFlight += 1;
    const docs = batch.flatMap((p) => p.docs);
    const started = performance.now();
    let ok = false;
    try {
      this.#options.prepare?.(docs);
      const results = await this.#options.write(docs);
      ok = true;
      this.#writes += 1;
      // Match results by id: CouchDB answers in request order, pouchdb-server
      // does not, and neither promises it.
      const byId = new Map<string, BulkDocResult>();
      for (const result of results) if (result.id !== undefined) byId.set(result.id, result);
      for (const pending of batch) {
        const failures: { id: string; error: string }[] = [];
        for (const doc of pending.docs) {
          const id = doc._id ?? '';
          const result = byId.get(id);
          if (!result) failures.push({ id, error: 'no result from store' });
          else if (result.error) failures.push({ id, error: `${result.error}${result.reason ? `: ${result.reason}` : ''}` });
        }
        this.#docsWritten += pending.docs.length - failures.length;
        if (failures.length === 0) pending.resolve(pending.docs.length);
        else pending.reject(new DocumentWriteError(failures));
      }
    } catch (err) {
      for (const pending of batch) pending.reject(err as Error);
    } finally {
      this.#inFlight -= 1;
      if (this.#queuedDocs > 0) this.#schedule();
      if (this.#queue.length === 0 && this.#inFlight === 0) for (const wake of this.#idle.splice(0)) wake();
      this.#options.onWrite?.({ docs: docs.length, seconds: (performance.now() - started) / 1000, ok });
    }
  }

  /**
   * Refuses new documents, writes every waiting one, and resolves once no
   * write is in flight. Every request already accepted gets its answer.
   */
  async close(): Promise<void> {
    this.#closing = true;
    this.#schedule();
    if (this.#queue.length === 0 && this.#inFlight === 0) return;
    await new Promise<void>((wake) => this.#idle.push(wake));
  }
}
