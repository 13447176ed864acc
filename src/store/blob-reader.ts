/**
 * Reading stored blobs by time range, page by page, from `_all_docs`: blob
 * ids sort by time (blob-ids.ts), so no view is involved and a page is one
 * B-tree range scan. Used by the read API and by anything that must replay
 * stored blobs.
 */
import { MAX_ID_TIME, timeKey } from './blob-ids.js';
import { Database, type CallOptions } from './database.js';
import type { Store } from './store.js';

export interface TimeRange {
  /** Inclusive lower bound, ms. */
  start?: number;
  /** Exclusive upper bound, ms. */
  end?: number;
}

export interface BlobPage<T> {
  blobs: T[];
  /** Id of the last blob of the page, to pass as `after` for the next one; undefined at the end. */
  next: string | undefined;
}

/** Design documents sort after every blob id ('_' > any digit). */
const END_OF_BLOBS = '_';

/**
 * One page of blobs in `[start, end)`, after the blob id `after` if given.
 *
 * @example
 * let page = await readBlobPage(store, { start, end }, 1000);
 * while (page.next) page = await readBlobPage(store, { start, end }, 1000, page.next);
 */
export async function readBlobPage<T extends object>(
  store: Store,
  range: TimeRange,
  limit: number,
  after?: string,
): Promise<BlobPage<Omit<T, '_id' | '_rev'>>> {
  const startKey = timeKey(range.start ?? 0);
  const endKey = range.end !== undefined && range.end <= MAX_ID_TIME ? timeKey(range.end) : END_OF_BLOBS;
  const resume = after !== undefined && after >= startKey;
  const answer = await new Database(store, store.blobsDb).allDocs<T>({
    startkey: resume ? after : startKey,
    endkey: endKey,
    inclusive_end: false,
    include_docs: true,
    // One more than asked tells whether a next page exists; one more again
    // covers the cursor's own row (not `skip=1`: the cursor's blob may be
    // gone, and skipping would then drop a blob).
    limit: limit + (resume ? 2 : 1),
  });
  const rows = answer.filter((row) => row.doc && row.key !== after && !row.key.startsWith('_design/'));
  const page = rows.slice(0, limit);
  const blobs = page.map((row) => {
    const { _id, _rev, ...blob } = row.doc!;
    return blob as Omit<T, '_id' | '_rev'>;
  });
  return { blobs, next: rows.length > limit ? page[page.length - 1]?.key : undefined };
}

/** Every blob of a range, in time order, fetched `pageSize` at a time. */
export async function* readBlobs<T extends object>(store: Store, range: TimeRange, pageSize = 1000, after?: string): AsyncGenerator<Omit<T, '_id' | '_rev'>> {
  let cursor = after;
  for (;;) {
    const page = await readBlobPage<T>(store, range, pageSize, cursor);
    yield* page.blobs;
    if (!page.next) return;
    cursor = page.next;
  }
}

/**
 * How many blobs have a timestamp in `[start, end)` (the `by_time` view);
 * `stale` counts with the view as it stands, without bringing it up to date.
 */
export async function countBlobs(store: Store, range: TimeRange, opts: CallOptions & { stale?: boolean } = {}): Promise<number> {
  const { stale, ...call } = opts;
  const qs: Record<string, unknown> = { reduce: true, ...(stale ? { stale: 'ok' } : {}) };
  if (range.start !== undefined) qs.startkey = range.start;
  if (range.end !== undefined) {
    qs.endkey = range.end;
    qs.inclusive_end = false;
  }
  const rows = await new Database(store, store.blobsDb).view<unknown, number>('kpi-live', 'by_time', qs, call);
  return rows[0]?.value ?? 0;
}
