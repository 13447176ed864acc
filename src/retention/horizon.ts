/**
 * The retention horizon: the time before which raw blobs have been removed on
 * purpose. Retention advances it before it deletes anything; `kpi-live
 * rebuild` reads it to know which aggregate buckets only the checkpoint can
 * still vouch for (src/aggregate/rebuild.ts). This module is retention's
 * public contract with the aggregate: the record and the two functions below.
 *
 * It lives in the blob database as `_local/kpi-live-retention`: a local
 * document is neither in `_all_docs` nor on `_changes`, so it is never read
 * as a blob, never counted and never replicated, and it goes away with the
 * database it describes.
 */
import { StoreRequestError, type Store } from '../store/store.js';

export const HORIZON_ID = '_local/kpi-live-retention';

interface HorizonDoc {
  _id: typeof HORIZON_ID;
  _rev?: string;
  /** Blobs whose (10-minute) time is before this, ms, were removed or are being removed. */
  horizon: number;
  updatedAt: number;
}

async function readDoc(store: Store, db: string, signal?: AbortSignal): Promise<HorizonDoc | undefined> {
  try {
    return await store.request<HorizonDoc>({ db, path: HORIZON_ID, ...(signal ? { signal } : {}) });
  } catch (err) {
    if (err instanceof StoreRequestError && err.statusCode === 404) return undefined;
    throw err;
  }
}

/**
 * The retention horizon of a blob database, ms; undefined when retention has
 * never removed a blob from it.
 *
 * @example
 * const horizon = await readHorizon(store, store.blobsDb); // e.g. 1795400400000
 */
export async function readHorizon(store: Store, db: string, signal?: AbortSignal): Promise<number | undefined> {
  const doc = await readDoc(store, db, signal);
  return typeof doc?.horizon === 'number' ? doc.horizon : undefined;
}

/**
 * Moves the horizon forward to `time` (never back); the new horizon. Safe
 * with several instances: a lost race is read again and retried.
 *
 * @example
 * await advanceHorizon(store, store.blobsDb, cutoff); // then delete the blobs before cutoff
 */
export async function advanceHorizon(store: Store, db: string, time: number, signal?: AbortSignal): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const current = await readDoc(store, db, signal);
    if (current && current.horizon >= time) return current.horizon;
    const doc: HorizonDoc = { _id: HORIZON_ID, ...(current?._rev ? { _rev: current._rev } : {}), horizon: time, updatedAt: Date.now() };
    try {
      await store.request({ method: 'PUT', db, path: HORIZON_ID, body: doc, ...(signal ? { signal } : {}) });
      return time;
    } catch (err) {
      if (!(err instanceof StoreRequestError && err.statusCode === 409) || attempt >= 5) throw err;
    }
  }
}
