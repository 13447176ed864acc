/**
 * Applies `couchdb/` to the store: creates the blob database and writes its
 * design document when it is missing or differs. Safe to run at every start
 * and from several instances at once (a lost race is a 409/412, not an error).
 */
import type { Log } from '../log.js';
import { isDeepStrictEqual } from 'node:util';
import { blobsDesignDoc } from '../../couchdb/design-docs.js';
import { StoreRequestError, StoreUnavailableError, type Store } from './store.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Creates a database unless it exists; true when it was created. */
export async function ensureDatabase(store: Store, db: string): Promise<boolean> {
  try {
    await store.request({ method: 'PUT', db });
    return true;
  } catch (err) {
    if (err instanceof StoreRequestError && err.statusCode === 412) return false;
    throw err;
  }
}

async function ensureDesignDoc(store: Store, db: string, design: Record<string, unknown> & { _id: string }): Promise<boolean> {
  let current: Record<string, unknown> | undefined;
  try {
    current = await store.request<Record<string, unknown>>({ db, path: encodeURI(design._id) });
  } catch (err) {
    if (!(err instanceof StoreRequestError && err.statusCode === 404)) throw err;
  }
  if (current) {
    const { _rev, ...rest } = current;
    if (isDeepStrictEqual(rest, design)) return false;
  }
  try {
    await store.request({ method: 'PUT', db, path: encodeURI(design._id), body: current ? { ...design, _rev: current._rev } : design });
    return true;
  } catch (err) {
    if (err instanceof StoreRequestError && err.statusCode === 409) return false;
    throw err;
  }
}

/**
 * Creates what the blob database needs. A store that is still starting is
 * retried for a while (a CouchDB container may accept connections before it
 * answers); a refusal (bad credentials, say) fails at once.
 */
export async function applySetup(store: Store, log: Log, waitMs = 30_000): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const created = await ensureDatabase(store, store.blobsDb);
      const designed = await ensureDesignDoc(store, store.blobsDb, blobsDesignDoc);
      log.info({ db: store.blobsDb, created, designUpdated: designed }, 'store ready');
      return;
    } catch (err) {
      if (!(err instanceof StoreUnavailableError) || Date.now() > deadline) throw err;
      log.warn({ err: err.message }, 'store not ready yet; retrying');
      await sleep(500);
    }
  }
}
