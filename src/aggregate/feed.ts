/**
 * CouchDB's `_changes` feed as an Observable of batches.
 *
 * - Sequence values are opaque: kept as CouchDB sent them (a string in
 *   CouchDB 3, a number in pouchdb-server) and passed back unparsed.
 * - Backpressure by pull, one batch ahead: when a batch arrives, the next one
 *   is requested and the batch is handed downstream, where it is processed
 *   synchronously. The store reads batch n+1 while kpi-live applies batch n,
 *   and never more than one batch waits, however slow the consumer.
 * - `feed=longpoll`: a caught-up reader waits for the next change instead of
 *   polling. pouchdb-server ignores the `timeout` parameter and holds the
 *   request until a change comes, so the request is ended a little after it
 *   and treated as "no changes yet". The first read of a follow never waits:
 *   a start or reload with nothing new is caught up at once, not after a
 *   whole longpoll.
 * - A store that is down or refuses for load is retried with capped
 *   exponential backoff; any other 4xx is fatal. Unsubscribing aborts the
 *   request in flight.
 */
import { Observable, type SchedulerLike, type Subscription } from 'rxjs';
import { StoreRequestError, StoreUnavailableError, type Store } from '../store/store.js';
import type { FactsInput } from './facts.js';
import { retryWithBackoff } from './retry-with-backoff.js';
import type { AggregateState } from './state.js';

export interface FeedChange {
  id: string;
  seq: unknown;
  deleted?: boolean;
  doc?: Record<string, unknown> & { _id: string };
}

export interface ChangeBatch {
  changes: FeedChange[];
  /** Position after this batch (opaque). */
  lastSeq: unknown;
  /** Changes still to read after this batch, when the store says (CouchDB does). */
  pending: number | undefined;
  /** Nothing more to read right now. */
  caughtUp: boolean;
}

/**
 * Reads the batch after `since`; aborted through `signal`. `wait`: the
 * reader was caught up at `since`, so it may wait for the next change
 * (false: answer at once, even with nothing new).
 */
export type ChangesReader = (since: unknown, signal: AbortSignal, wait?: boolean) => Promise<ChangeBatch>;

export interface CouchChangesOptions {
  /** Changes per batch at most. */
  limit: number;
  /** How long a caught-up request waits for a change, ms; 0 answers at once (reading history). */
  longpollMs: number;
}

/** A {@link ChangesReader} over one database of the store, docs included. */
export function couchChangesReader(store: Store, db: string, options: CouchChangesOptions): ChangesReader {
  // CouchDB answers a longpoll at `timeout`; a store that holds the request
  // (pouchdb-server ignores `timeout`) is cut a little later: a fifth more,
  // at most 5 s.
  const longpollDeadlineMs = options.longpollMs > 0 ? options.longpollMs + Math.min(5000, Math.max(100, options.longpollMs / 5)) : undefined;
  const nothingNew = (since: unknown): ChangeBatch => ({ changes: [], lastSeq: since, pending: 0, caughtUp: true });
  return async (since, signal, wait = true) => {
    const longpoll = wait && options.longpollMs > 0;
    const deadlineMs = longpoll ? longpollDeadlineMs : undefined;
    const started = Date.now();
    // A caught-up longpoll held past our deadline ends as a timeout, a cut-off
    // body, or (seen under load) not at all: each means "nothing new yet".
    const heldPastLongpoll = () => deadlineMs !== undefined && !signal.aborted && Date.now() - started >= options.longpollMs;
    const cut = new AbortController();
    const onAbort = () => cut.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    let timer: NodeJS.Timeout | undefined;
    const held =
      deadlineMs === undefined
        ? undefined
        : new Promise<typeof HELD>((resolve) => {
            timer = setTimeout(() => {
              cut.abort();
              resolve(HELD);
            }, deadlineMs + 1000);
          });
    try {
      const request = store.request<{ results: FeedChange[]; last_seq: unknown; pending?: number }>({
        db,
        path: '_changes',
        qs: {
          since: typeof since === 'string' ? since : JSON.stringify(since),
          include_docs: true,
          limit: options.limit,
          ...(longpoll ? { feed: 'longpoll', timeout: options.longpollMs } : {}),
        },
        timeoutMs: deadlineMs,
        signal: cut.signal,
      });
      const answer = held ? await Promise.race([request, held]) : await request;
      if (answer === HELD) {
        request.catch(() => undefined);
        return nothingNew(since);
      }
      // a connection cut mid-answer can leave a body of another shape
      if (!answer || !Array.isArray(answer.results)) {
        if (heldPastLongpoll()) return nothingNew(since);
        throw new StoreUnavailableError('store unreachable: incomplete _changes answer');
      }
      const pending = typeof answer.pending === 'number' ? answer.pending : undefined;
      return {
        changes: answer.results,
        lastSeq: answer.last_seq,
        pending,
        caughtUp: pending !== undefined ? pending === 0 : answer.results.length < options.limit,
      };
    } catch (err) {
      // only a read that may wait can mean "nothing new" by running out of time;
      // any other that times out met a slow or absent store, and is retried as such
      if (longpoll && err instanceof StoreUnavailableError && (err.timedOut || heldPastLongpoll()) && !signal.aborted) return nothingNew(since);
      throw err;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  };
}

const HELD = Symbol('held');

/** Errors worth retrying: the store is down, slow or overloaded. */
export const isTransient = (err: unknown): boolean => err instanceof StoreUnavailableError || !(err instanceof StoreRequestError);

export interface FollowOptions {
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  scheduler?: SchedulerLike;
}

function readOnce(read: ChangesReader, since: unknown, wait: boolean): Observable<ChangeBatch> {
  return new Observable<ChangeBatch>((subscriber) => {
    const controller = new AbortController();
    read(since, controller.signal, wait).then(
      (batch) => {
        subscriber.next(batch);
        subscriber.complete();
      },
      (err: unknown) => subscriber.error(err),
    );
    return () => controller.abort();
  });
}

/**
 * Every batch of changes after `since`, for as long as it is subscribed.
 *
 * @example
 * followChanges(couchChangesReader(store, db, { limit: 1000, longpollMs: 30_000 }), checkpoint.seq)
 *   .subscribe((batch) => apply(batch));
 */
export function followChanges(read: ChangesReader, since: unknown, options: FollowOptions = {}): Observable<ChangeBatch> {
  const readFrom = (position: unknown, wait: boolean) =>
    readOnce(read, position, wait).pipe(
      retryWithBackoff<ChangeBatch>({
        initialMs: options.initialBackoffMs ?? 500,
        maxMs: options.maxBackoffMs ?? 30_000,
        shouldRetry: isTransient,
        ...(options.onRetry ? { onRetry: options.onRetry } : {}),
        ...(options.scheduler ? { scheduler: options.scheduler } : {}),
      }),
    );
  return new Observable<ChangeBatch>((subscriber) => {
    let current: Subscription | undefined;
    const next = (position: unknown, wait: boolean) =>
      new Promise<ChangeBatch>((resolve, reject) => {
        current = readFrom(position, wait).subscribe({ next: resolve, error: reject });
      });
    let closed = false;
    void (async () => {
      let pending = next(since, false);
      while (!closed) {
        const batch = await pending;
        if (closed) return;
        pending = next(batch.lastSeq, batch.caughtUp); // read ahead while this batch is applied
        pending.catch(() => undefined); // awaited in the next turn; do not report it twice
        subscriber.next(batch);
      }
    })().catch((err: unknown) => subscriber.error(err));
    return () => {
      closed = true;
      current?.unsubscribe();
    };
  });
}

/**
 * A change that removes a document: CouchDB flags it `deleted: true`, and with
 * `include_docs` its doc is the tombstone `{_id, _rev, _deleted: true}`.
 * Either sign is enough, so a store that sets only one is read the same way.
 */
export const isDeletion = (change: FeedChange): boolean => change.deleted === true || change.doc?._deleted === true;

/**
 * Applies a batch of changes to the state: every blob once, then
 * downsamples. Design documents and deletions are skipped: an aggregate
 * counts what was sent, so a blob removed later (retention, or by hand)
 * stays counted, and a tombstone is never read as a blob.
 */
export function applyChanges(state: AggregateState, changes: FeedChange[]): { counted: number; duplicates: number; deletions: number } {
  let counted = 0;
  let duplicates = 0;
  let deletions = 0;
  for (const change of changes) {
    if (change.id.startsWith('_design/')) continue;
    if (isDeletion(change)) {
      deletions += 1;
      continue;
    }
    if (!change.doc) continue;
    if (state.apply(change.doc as unknown as FactsInput & { _id: string }) === 'duplicate') duplicates += 1;
    else counted += 1;
  }
  state.downsample();
  return { counted, duplicates, deletions };
}
