/**
 * One CouchDB database, typed: the only module besides store.ts that knows
 * CouchDB's paths, `_rev`, status codes and what a cluster may answer.
 * Features ask it for documents and get documents, `undefined` for a missing
 * one, and {@link ConflictError} for a lost race.
 *
 * What CouchDB 3 guarantees, and what it does not (seen on a real 3.5 node
 * and cluster; pouchdb-server is stricter, so code written against it alone
 * is wrong on CouchDB):
 * - A normal document's `_rev` is a compare-and-set on one node: a write
 *   carrying a stale `_rev`, or none for a document that exists, gets 409.
 * - A `_local` document has **no enforced revision** on CouchDB: a stale
 *   `_rev` is accepted, and a write without one overwrites it and resets it
 *   to `0-1`. So a `_local` document is last-writer-wins storage, never a
 *   fence ({@link revisionsEnforced}); {@link Database.putLocal} writes one so
 *   on both stores.
 * - On a cluster, two writes at one revision can both be accepted, by
 *   different copies of the shard (the second may even be answered 409 and
 *   still be kept by the copy that took it). CouchDB keeps both as
 *   conflicting leaf revisions and shows every reader the same winner, by
 *   its own rule (the longer history, then the greater revision id), which
 *   knows nothing of who was meant to win. A fenced document is therefore
 *   read back with its {@link Database.leaves}, and the writer decides by a
 *   rule of its own which leaf is the document, then removes the others
 *   ({@link Database.resolve}).
 */
import type { Store, StoreRequest } from './store.js';
import { StoreRequestError } from './store.js';

/** What every CouchDB document carries. */
export interface Doc {
  _id: string;
  _rev?: string;
  _deleted?: boolean;
}

/** A `_bulk_docs` answer for one document. */
export interface BulkResult {
  id?: string;
  rev?: string;
  ok?: boolean;
  error?: string;
  reason?: string;
}

/** A row of `_all_docs`. */
export interface AllDocsRow<T> {
  id?: string;
  key: string;
  value?: { rev: string; deleted?: boolean };
  doc?: (T & Doc) | null;
  error?: string;
}

/** Options of `_all_docs` (keys are JSON-encoded by nano; pass raw values). */
export interface AllDocsOptions {
  keys?: string[];
  startkey?: string;
  endkey?: string;
  inclusive_end?: boolean;
  limit?: number;
  include_docs?: boolean;
  descending?: boolean;
}

/** A write refused because the document changed since the revision it carried (409). */
export class ConflictError extends StoreRequestError {
  override readonly name = 'ConflictError';
  constructor(message = 'store answered 409: document update conflict') {
    super(message, 409, 'conflict');
  }
}

/** Whether the store fences writes of this document by its `_rev` (never `_local` documents on CouchDB). */
export const revisionsEnforced = (id: string): boolean => !id.startsWith('_local/');

const isStatus = (err: unknown, code: number) => err instanceof StoreRequestError && err.statusCode === code;

/** A document path: ids are URL-encoded, but the `_design/` and `_local/` prefixes stay as CouchDB routes them. */
export function docPath(id: string): string {
  const prefix = /^(_design|_local)\//.exec(id)?.[0] ?? '';
  return prefix + encodeURIComponent(id.slice(prefix.length));
}

/** Per-request options every call takes. */
export interface CallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

const call = (opts: CallOptions | undefined): Pick<StoreRequest, 'timeoutMs' | 'signal'> => ({
  ...(opts?.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
  ...(opts?.signal ? { signal: opts.signal } : {}),
});

/**
 * @example
 * const db = new Database(store, 'kpi_blobs_aggregates');
 * const lease = await db.get<LeaseDoc>('kpi-live-lease');   // undefined when missing
 * const rev = await db.put({ ...lease, holder: 'me' });      // ConflictError when someone wrote first
 */
export class Database {
  constructor(
    readonly store: Store,
    readonly name: string,
  ) {}

  #request<T>(req: Omit<StoreRequest, 'db'>): Promise<T> {
    return this.store.request<T>({ ...req, db: this.name });
  }

  /** The database's info (`doc_count`, `update_seq`, …); undefined when it does not exist. */
  async info<T = { doc_count: number; update_seq: unknown }>(opts?: CallOptions): Promise<T | undefined> {
    try {
      return await this.#request<T>({ ...call(opts) });
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  /** Creates the database; false when it existed already. */
  async create(opts?: CallOptions): Promise<boolean> {
    try {
      await this.#request({ method: 'PUT', ...call(opts) });
      return true;
    } catch (err) {
      if (isStatus(err, 412)) return false;
      throw err;
    }
  }

  /** One document; undefined when it does not exist (or was deleted). `conflicts` adds `_conflicts`. */
  async get<T>(id: string, opts?: CallOptions & { conflicts?: boolean; rev?: string }): Promise<(T & Doc & { _conflicts?: string[] }) | undefined> {
    const qs = { ...(opts?.conflicts ? { conflicts: true } : {}), ...(opts?.rev ? { rev: opts.rev } : {}) };
    try {
      return await this.#request<T & Doc & { _conflicts?: string[] }>({ path: docPath(id), ...(Object.keys(qs).length ? { qs } : {}), ...call(opts) });
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  /**
   * Every leaf revision of a document that is not deleted: one on a node or
   * a healthy cluster, more while a cluster holds conflicting writes. Empty
   * when the document does not exist.
   */
  async leaves<T>(id: string, opts?: CallOptions): Promise<(T & Doc)[]> {
    const doc = await this.get<T>(id, { ...opts, conflicts: true });
    if (!doc) return [];
    const others = doc._conflicts ?? [];
    const { _conflicts: _ignored, ...winner } = doc;
    const leaves: (T & Doc)[] = [winner as T & Doc];
    for (const rev of others) {
      const leaf = await this.get<T>(id, { ...opts, rev });
      if (leaf && !leaf._deleted) leaves.push(leaf);
    }
    return leaves;
  }

  /**
   * Makes `keep` the only leaf of its document: every other leaf in `leaves`
   * is deleted. Returns the revisions it could not delete (another writer
   * resolved them first, or the store failed: the next resolve tries again).
   */
  async resolve(keep: Doc, leaves: readonly Doc[], opts?: CallOptions): Promise<string[]> {
    const left: string[] = [];
    for (const leaf of leaves) {
      if (leaf._rev === keep._rev || !leaf._rev) continue;
      try {
        await this.remove(leaf._id, leaf._rev, opts);
      } catch {
        left.push(leaf._rev);
      }
    }
    return left;
  }

  /**
   * Writes a document, fenced by its `_rev` (none: it must not exist yet);
   * the new revision. {@link ConflictError} when the document changed since.
   * Not for `_local` documents, which have no fence on CouchDB.
   */
  async put(doc: Doc, opts?: CallOptions): Promise<string> {
    if (!revisionsEnforced(doc._id)) throw new Error(`${doc._id} is a _local document: its revision is no fence on CouchDB (use putLocal)`);
    try {
      const answer = await this.#request<{ rev: string }>({ method: 'PUT', path: docPath(doc._id), body: doc, ...call(opts) });
      return answer.rev;
    } catch (err) {
      if (isStatus(err, 409)) throw new ConflictError();
      throw err;
    }
  }

  /** Creates a document under an id the store picks; its id and revision. */
  async post(doc: Omit<Doc, '_id'> & Record<string, unknown>, opts?: CallOptions): Promise<{ id: string; rev: string }> {
    return this.#request<{ id: string; rev: string }>({ method: 'POST', body: doc, ...call(opts) });
  }

  /** Deletes one revision of a document; {@link ConflictError} when it is not a leaf any more. */
  async remove(id: string, rev: string, opts?: CallOptions): Promise<void> {
    try {
      await this.#request({ method: 'DELETE', path: docPath(id), qs: { rev }, ...call(opts) });
    } catch (err) {
      if (isStatus(err, 409)) throw new ConflictError();
      if (!isStatus(err, 404)) throw err;
    }
  }

  /**
   * Writes a `_local` document, last writer wins on every store: CouchDB
   * keeps no revisions for it, pouchdb-server does (so a lost race there is
   * read again and written once more). Nothing may rely on it as a fence.
   *
   * `unless` is asked about the stored document before each attempt (the
   * lost race's winner included), and nothing is written when it holds:
   * false then, true when written.
   */
  async putLocal<T extends object>(
    id: string,
    body: T,
    opts?: CallOptions & { unless?: (current: (Partial<T> & Doc) | undefined) => boolean },
  ): Promise<boolean> {
    if (revisionsEnforced(id)) throw new Error(`${id} is not a _local document`);
    for (let attempt = 1; ; attempt++) {
      const current = await this.get<T>(id, opts);
      if (opts?.unless?.(current)) return false;
      try {
        await this.#request({ method: 'PUT', path: docPath(id), body: { ...body, _id: id, ...(current?._rev ? { _rev: current._rev } : {}) }, ...call(opts) });
        return true;
      } catch (err) {
        if (!isStatus(err, 409) || attempt >= 5) throw err;
      }
    }
  }

  /** `_bulk_docs`: one answer per document, in order (a conflict is an answer, not a throw). */
  bulk(docs: readonly object[], opts?: CallOptions): Promise<BulkResult[]> {
    return this.#request<BulkResult[]>({ method: 'POST', path: '_bulk_docs', body: { docs }, ...call(opts) });
  }

  /** `_all_docs`: by `keys` (a POST) or a key range. */
  async allDocs<T = unknown>(options: AllDocsOptions, opts?: CallOptions): Promise<AllDocsRow<T>[]> {
    const { keys, ...qs } = options;
    const answer = await this.#request<{ rows: AllDocsRow<T>[] }>(
      keys ? { method: 'POST', path: '_all_docs', qs, body: { keys }, ...call(opts) } : { path: '_all_docs', qs, ...call(opts) },
    );
    return answer.rows;
  }

  /** The documents of `ids` that exist, in order (missing and deleted ones left out). */
  async getMany<T>(ids: readonly string[], opts?: CallOptions & { batch?: number }): Promise<{ id: string; doc: (T & Doc) | undefined }[]> {
    const batch = opts?.batch ?? 500;
    const out: { id: string; doc: (T & Doc) | undefined }[] = [];
    for (let i = 0; i < ids.length; i += batch) {
      const rows = await this.allDocs<T>({ keys: ids.slice(i, i + batch), include_docs: true }, opts);
      for (const row of rows) out.push({ id: row.key, doc: row.doc ?? undefined });
    }
    return out;
  }

  /** Deletes the current revision of each of `ids` that exists; how many were deleted. */
  async removeMany(ids: readonly string[], opts?: CallOptions): Promise<number> {
    let removed = 0;
    for (let i = 0; i < ids.length; i += 500) {
      const rows = await this.allDocs({ keys: ids.slice(i, i + 500) }, opts);
      const docs = rows.filter((r) => r.id && r.value && !r.value.deleted).map((r) => ({ _id: r.id!, _rev: r.value!.rev, _deleted: true }));
      if (docs.length === 0) continue;
      const results = await this.bulk(docs, opts);
      removed += results.filter((r) => !r.error).length;
    }
    return removed;
  }

  /** A view's rows (`design` without `_design/`). */
  async view<K = unknown, V = unknown>(
    design: string,
    view: string,
    qs: Record<string, unknown>,
    opts?: CallOptions,
  ): Promise<{ key: K; value: V; id?: string }[]> {
    const answer = await this.#request<{ rows: { key: K; value: V; id?: string }[] }>({ path: `_design/${design}/_view/${view}`, qs, ...call(opts) });
    return answer.rows;
  }

  /** `_purge`: removes revisions for good (retention); the revisions the store purged, by id. */
  async purge(revs: Record<string, string[]>, opts?: CallOptions): Promise<Record<string, unknown> | undefined> {
    const answer = await this.#request<{ purged?: Record<string, unknown> } | undefined>({ method: 'POST', path: '_purge', body: revs, ...call(opts) });
    return answer?.purged;
  }

  /** The database's `_security` object. */
  security<T = Record<string, unknown>>(opts?: CallOptions): Promise<T> {
    return this.#request<T>({ path: '_security', ...call(opts) });
  }

  async setSecurity(security: object, opts?: CallOptions): Promise<void> {
    await this.#request({ method: 'PUT', path: '_security', body: security, ...call(opts) });
  }

  /**
   * Asks the store to compact the database (drop old revisions' bodies).
   * CouchDB 3 does this by itself (its compaction daemon) and lets only
   * admins ask; the embedded store never does it by itself.
   */
  async compact(opts?: CallOptions): Promise<void> {
    await this.#request({ method: 'POST', path: '_compact', body: {}, ...call(opts) });
  }
}
