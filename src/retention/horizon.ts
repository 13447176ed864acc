/**
 * The retention horizon: the time before which raw blobs have been removed on
 * purpose. Retention advances it before it deletes anything; `kpi-live
 * rebuild` reads it to know which aggregate buckets only the checkpoint can
 * still vouch for (src/aggregate/runtime/rebuild.ts). This module is retention's
 * public contract with the aggregate: the record and the two functions below.
 *
 * It lives in the blob database as `_local/kpi-live-retention`: a local
 * document is neither in `_all_docs` nor on `_changes`, so it is never read
 * as a blob, never counted and never replicated, and it goes away with the
 * database it describes.
 */
import { Database } from '../store/database.js';
import type { Store } from '../store/store.js';
import { sleep } from '../sleep.js';

export const HORIZON_ID = '_local/kpi-live-retention';

/** Writes of one advance at most, when other writers keep putting a lower horizon back. */
const MAX_WRITES = 5;
/** A write is read back this long after it was answered at least (twice as long as it took, when longer). */
const SETTLE_MS = 250;

interface HorizonRecord {
  /** Blobs whose (10-minute) time is before this, ms, were removed or are being removed. */
  horizon: number;
  updatedAt: number;
}

const horizonOf = (doc: Partial<HorizonRecord> | undefined): number | undefined => (typeof doc?.horizon === 'number' ? doc.horizon : undefined);

/** Whether a stored horizon is at `time` or later. */
const reaches = (doc: Partial<HorizonRecord> | undefined, time: number): boolean => (horizonOf(doc) ?? Number.NEGATIVE_INFINITY) >= time;

async function readStored(database: Database, signal?: AbortSignal): Promise<number | undefined> {
  return horizonOf(await database.get<Partial<HorizonRecord>>(HORIZON_ID, { signal }));
}

/**
 * The retention horizon of a blob database, ms; undefined when retention has
 * never removed a blob from it.
 *
 * @example
 * const horizon = await readHorizon(store, store.blobsDb); // e.g. 1795400400000
 */
export async function readHorizon(store: Store, db: string, signal?: AbortSignal): Promise<number | undefined> {
  return readStored(new Database(store, db), signal);
}

/**
 * Moves the horizon forward to `time` (never back); the horizon now stored.
 *
 * A `_local` document has no enforced revision on CouchDB: the last write
 * wins, whatever it read. So the writers keep the horizon a max-register:
 * - nothing is written over a horizon at `time` or later (asked before each
 *   attempt, so where the store does fence `_local` revisions, as
 *   pouchdb-server does, the loser of a race never writes over the winner);
 * - each write is read back, and made again while the stored horizon is
 *   below `time` (a lower advance landed after it), {@link MAX_WRITES} times
 *   at most;
 * - the read back waits {@link SETTLE_MS}, or twice as long as the write
 *   took: CouchDB queues the writes of a database but answers its reads at
 *   once, and a lower write sent with ours has been seen landing 60 ms
 *   after ours was answered.
 *
 * Of two advances at once, the greater stays. A lower write held up longer
 * than that wait is not seen; the next pass, with a later cutoff, moves the
 * horizon past it. Passes run on the lease holder only, so two at once
 * happen only around a change of holder.
 *
 * @example
 * await advanceHorizon(store, store.blobsDb, cutoff); // then delete the blobs before cutoff
 */
export async function advanceHorizon(store: Store, db: string, time: number, signal?: AbortSignal): Promise<number> {
  const database = new Database(store, db);
  for (let writes = 0; ; writes++) {
    const stored = await readStored(database, signal);
    if (stored !== undefined && stored >= time) return stored;
    if (writes >= MAX_WRITES)
      throw new Error(`the retention horizon of ${db} is still ${stored ?? 'unset'} after ${writes} writes of ${time}: another writer keeps moving it back`);
    const started = Date.now();
    const wrote = await database.putLocal<HorizonRecord>(
      HORIZON_ID,
      { horizon: time, updatedAt: Date.now() },
      { signal, unless: (current) => reaches(current, time) },
    );
    if (wrote) await sleep(Math.max(SETTLE_MS, 2 * (Date.now() - started)), signal);
  }
}
