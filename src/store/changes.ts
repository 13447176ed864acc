/**
 * Reading a database's `_changes`, one batch per call: the only module that
 * knows the feed's protocol (`since`, `last_seq`, `pending`, longpoll).
 *
 * - Sequence values are opaque: kept as CouchDB sent them (a string in
 *   CouchDB 3, a number in pouchdb-server) and passed back unparsed.
 * - `feed=longpoll`: a caught-up reader waits for the next change instead of
 *   polling. pouchdb-server ignores the `timeout` parameter and holds the
 *   request until a change comes, so the request is ended a little after it
 *   and treated as "no changes yet", flagged `held`.
 */
import { StoreUnavailableError, type Store } from './store.js';

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
  /**
   * The store did not answer a read that waited: it was cut at the
   * longpoll's deadline, or failed after waiting that long. Read as "nothing
   * new yet" (no changes, `lastSeq` the position asked), though the store
   * said nothing; a caller that must know it answers reads again without
   * waiting. Absent when the store answered.
   */
  held?: true;
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
  /** Whether each change carries its document; true by default. */
  includeDocs?: boolean;
  /** Bound on a read that does not wait, ms; the store's configured timeout by default. */
  timeoutMs?: number;
}

const HELD = Symbol('held');

/** `since` as the store takes it: a string as it was sent, anything else as JSON. */
const sinceParam = (since: unknown): string => (typeof since === 'string' ? since : JSON.stringify(since));

/**
 * A {@link ChangesReader} over one database of the store, docs included
 * unless `includeDocs` is false.
 *
 * @example
 * const read = couchChangesReader(store, store.blobsDb, { limit: 1000, longpollMs: 30_000 });
 * let batch = await read(0, signal, false);                    // answers at once
 * batch = await read(batch.lastSeq, signal, batch.caughtUp);  // waits for a change when caught up
 */
export function couchChangesReader(store: Store, db: string, options: CouchChangesOptions): ChangesReader {
  // CouchDB answers a longpoll at `timeout`; a store that holds the request
  // (pouchdb-server ignores `timeout`) is cut a little later: a fifth more,
  // at most 5 s.
  const longpollDeadlineMs = options.longpollMs > 0 ? options.longpollMs + Math.min(5000, Math.max(100, options.longpollMs / 5)) : undefined;
  const nothingNew = (since: unknown): ChangeBatch => ({ changes: [], lastSeq: since, pending: 0, caughtUp: true, held: true });
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
          since: sinceParam(since),
          ...(options.includeDocs === false ? {} : { include_docs: true }),
          limit: options.limit,
          ...(longpoll ? { feed: 'longpoll', timeout: options.longpollMs } : {}),
        },
        timeoutMs: deadlineMs ?? options.timeoutMs,
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
