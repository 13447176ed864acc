/**
 * Purging the tombstones retention leaves. Deleting a document in CouchDB
 * keeps a tombstone (`{_id, _rev, _deleted: true}`, no blob field) so that
 * replicas learn of the deletion; `_purge` removes it too, so the database
 * does not keep one entry per blob ever stored. CouchDB 3 has `_purge`;
 * pouchdb-server (the embedded store) does not: there the tombstones stay,
 * which costs a little disk and no privacy (an id holds the 10-minute time
 * and ingest run/counter, nothing of the blob).
 */
import { Database } from '../store/database.js';
import { StoreRequestError, type Store } from '../store/store.js';

/** Ids per `_purge` request: CouchDB 3's default `[purge] max_document_id_number`. */
export const PURGE_BATCH = 100;

export type PurgeSupport = { supported: true } | { supported: false; reason: string };

/**
 * Asks the store whether it purges: an empty `_purge` changes nothing and
 * CouchDB answers it with `{purge_seq, purged: {}}`. A refusal (pouchdb-server
 * answers 400, a user without admin rights 403) means no; a store that is
 * down throws, and the question is asked again later.
 *
 * @example
 * if ((await detectPurge(store, db)).supported) await purgeTombstones(store, db, tombstones);
 */
export async function detectPurge(store: Store, db: string, signal?: AbortSignal): Promise<PurgeSupport> {
  try {
    const purged = await new Database(store, db).purge({}, { signal });
    if (typeof purged === 'object') return { supported: true };
    return { supported: false, reason: 'the store answered _purge without a purge result' };
  } catch (err) {
    if (err instanceof StoreRequestError) return { supported: false, reason: err.message };
    throw err;
  }
}

/** Purges the given tombstones (id and the revision of the deletion); how many the store purged. */
export async function purgeTombstones(store: Store, db: string, tombstones: { id: string; rev: string }[], signal?: AbortSignal): Promise<number> {
  const database = new Database(store, db);
  let purged = 0;
  for (let i = 0; i < tombstones.length; i += PURGE_BATCH) {
    const batch = Object.fromEntries(tombstones.slice(i, i + PURGE_BATCH).map((t) => [t.id, [t.rev]]));
    for (const revs of Object.values((await database.purge(batch, { signal })) ?? {})) {
      // CouchDB 3 answers {id: [revs]}; some 2.x builds answered {id: {purged: [revs], ok}}
      const list = Array.isArray(revs) ? revs : (revs as { purged?: unknown[] } | null)?.purged;
      if (Array.isArray(list) && list.length > 0) purged += 1;
    }
  }
  return purged;
}
