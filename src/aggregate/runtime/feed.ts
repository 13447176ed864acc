/**
 * CouchDB's `_changes` feed as an Observable of batches (each read by
 * src/store/changes.ts), and how a batch is applied to the aggregate.
 *
 * - Sequence values are opaque: kept as CouchDB sent them (a string in
 *   CouchDB 3, a number in pouchdb-server) and passed back unparsed.
 * - Backpressure by pull, one batch ahead: when a batch arrives, the next one
 *   is requested and the batch is handed downstream, where it is processed
 *   synchronously. The store reads batch n+1 while kpi-live applies batch n,
 *   and never more than one batch waits, however slow the consumer.
 * - A caught-up reader waits for the next change (`feed=longpoll`; a
 *   request the store holds past the wait is read as "no changes yet").
 *   The first read of a follow never waits: a start or reload with nothing
 *   new is caught up at once, not after a whole longpoll.
 * - A store that is down or refuses for load is retried with capped
 *   exponential backoff; any other 4xx is fatal. Unsubscribing aborts the
 *   request in flight.
 */
import { Observable, type SchedulerLike, type Subscription } from 'rxjs';
import type { ChangeBatch, ChangesReader, FeedChange } from '../../store/changes.js';
import { StoreRequestError, StoreUnavailableError } from '../../store/store.js';
import type { FactsInput } from '../model/facts.js';
import { retryWithBackoff } from '../../retry.js';
import type { AfterDeploy, AggregateState } from '../model/state.js';
import type { RunRegistry } from '../../deploys/arrivals.js';

export { couchChangesReader, type ChangeBatch, type ChangesReader, type CouchChangesOptions, type FeedChange } from '../../store/changes.js';

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
 * A reader whose batches come with the arrival records of their runs read
 * (src/deploys/arrivals.ts): `runs.afterOf` then answers for every blob of
 * the batch. A failed read of the records fails the read, which is retried.
 */
export function withArrivals(read: ChangesReader, runs: RunRegistry): ChangesReader {
  return async (since, signal, wait) => {
    const batch = await read(since, signal, wait);
    await runs.prepare(batch.changes.filter((c) => c.doc && !c.deleted).map((c) => c.id));
    return batch;
  };
}

/**
 * Applies a batch of changes to the state: every blob once (also in the
 * arrival buckets of the deploys `afterOf` names for it), then
 * downsamples. Design documents and deletions are skipped: an aggregate
 * counts what was sent, so a blob removed later (retention, or by hand)
 * stays counted, and a tombstone is never read as a blob.
 */
export function applyChanges(
  state: AggregateState,
  changes: FeedChange[],
  afterOf?: (blobId: string) => readonly AfterDeploy[],
): { counted: number; duplicates: number; deletions: number } {
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
    if (state.apply(change.doc as unknown as FactsInput & { _id: string }, afterOf?.(change.id)) === 'duplicate') duplicates += 1;
    else counted += 1;
  }
  state.downsample();
  return { counted, duplicates, deletions };
}
