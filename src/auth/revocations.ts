/**
 * Signed-out sessions, kept in the store so that a sign-out survives a
 * restart and reaches every instance (`<KPI_DB>_sessions`, one document per
 * revoked session: `revoked/<session id>` with its `expiresAt`, deleted by
 * any instance once the session would have expired anyway).
 *
 * Every instance follows the database's `_changes` (longpoll) into an
 * in-memory set, so checking a cookie stays synchronous and costs no store
 * read: a sign-out on one instance reaches the others as soon as the store
 * announces it. The set is *current* while reads of the feed keep
 * answering; {@link RevocationList.current} says whether the latest answer
 * is recent enough to trust for a state change.
 *
 * The database is made by the first sign-out (like the alerts' one): reading
 * a missing one reads nothing, so an installation where nobody ever signed
 * out has none. A sign-out the store cannot take at once is still refused on
 * this instance at once, and written when the store answers again.
 */
import type { Log } from '../log.js';
import { couchChangesReader, type ChangeBatch, type ChangesReader } from '../store/changes.js';
import { ConflictError, Database } from '../store/database.js';
import { ensureDatabase } from '../store/setup.js';
import { StoreRequestError, type Store } from '../store/store.js';
import { backoffDelay } from '../retry.js';
import { sleep } from '../sleep.js';

const PREFIX = 'revoked/';
/** Changes read per request. */
const BATCH = 500;
/** Waits between reads of a store that fails: 250 ms, doubling up to 5 s. */
const OUTAGE_BACKOFF = { initialMs: 250, maxMs: 5000 };

export interface RevocationOptions {
  /** How long a caught-up read of the feed waits for a change, ms. */
  longpollMs: number;
  /** Bound on every other store request, ms. */
  requestTimeoutMs: number;
  /** The set is no longer current when the feed has not answered for this long, ms. */
  staleAfterMs: number;
  /** How often expired revocations are deleted from the store, ms. */
  sweepEveryMs: number;
}

const isNotFound = (err: unknown) => err instanceof StoreRequestError && err.statusCode === 404;

/** What {@link RevocationList.start} was given: the store, the database and its feed. */
interface Started {
  store: Store;
  database: Database;
  changes: ChangesReader;
}

export class RevocationList {
  /** Revoked session ids, with the expiry of their session. */
  readonly #revoked = new Map<string, number>();
  /** Revocations not yet written to the store. */
  readonly #unwritten = new Map<string, number>();
  #since: unknown = 0;
  /** When the feed last answered (ms), undefined before the first answer. */
  #syncedAt: number | undefined;
  #sweptAt = 0;
  #outage = false;
  #upkeepError: string | undefined;
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #on: Started | undefined;

  constructor(
    readonly db: string,
    readonly log: Log,
    readonly options: RevocationOptions,
  ) {}

  /** Whether the session id was signed out (on any instance whose sign-out this one has read). */
  has(id: string): boolean {
    return this.#revoked.has(id);
  }

  /** Whether the feed has answered at all: before that, nobody knows which sessions were signed out. */
  get known(): boolean {
    return this.#syncedAt !== undefined;
  }

  /** Whether the set holds every sign-out made until at most `staleAfterMs` ago. */
  current(now = Date.now()): boolean {
    return this.#syncedAt !== undefined && now - this.#syncedAt <= this.options.staleAfterMs;
  }

  /**
   * Reads the revocations stored so far (bounded by the request timeout;
   * a store that does not answer is logged and read later), then follows
   * the feed until {@link stop}.
   */
  async start(store: Store): Promise<void> {
    const { longpollMs, requestTimeoutMs } = this.options;
    this.#on = {
      store,
      database: new Database(store, this.db),
      changes: couchChangesReader(store, this.db, { limit: BATCH, longpollMs, timeoutMs: requestTimeoutMs }),
    };
    try {
      await this.#catchUp();
    } catch (err) {
      this.log.warn({ db: this.db, err: (err as Error).message }, 'signed-out sessions could not be read: sessions are refused until the store answers');
    }
    this.#loop = this.#follow();
  }

  /** Stops following, after one last try to write what is not written yet. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    if (this.#on) await this.#writeUnwritten().catch(() => undefined);
    if (this.#unwritten.size > 0)
      this.log.warn({ db: this.db, sessions: this.#unwritten.size }, 'sign-outs not written to the store: other instances accept those sessions');
  }

  /**
   * Signs a session out: refused here at once, and everywhere once written.
   * True when the store took it; false when it will be written later.
   */
  async revoke(id: string, expiresAt: number, now = Date.now()): Promise<boolean> {
    this.#prune(now);
    this.#revoked.set(id, expiresAt);
    this.#unwritten.set(id, expiresAt);
    try {
      await this.#writeUnwritten();
      return true;
    } catch (err) {
      this.log.warn({ db: this.db, err: (err as Error).message }, 'sign-out not written to the store yet: retried while the store is down');
      return false;
    }
  }

  get store(): Store {
    return this.#started.store;
  }

  get #started(): Started {
    if (!this.#on) throw new Error('the list of signed-out sessions is not started');
    return this.#on;
  }

  /** One read of the feed after the position read up to; waiting for a change when `wait`. Ends at once when stopped. */
  async #read(wait: boolean): Promise<ChangeBatch> {
    const { changes } = this.#started;
    const signal = this.#stop.signal;
    if (signal.aborted) throw new Error('stopped');
    let onStop = () => {};
    const stopped = new Promise<never>((_resolve, reject) => (onStop = () => reject(new Error('stopped'))));
    signal.addEventListener('abort', onStop, { once: true });
    const read = changes(this.#since, signal, wait);
    // an aborted longpoll that the store holds does not always end: stopping ends the wait
    read.catch(() => undefined);
    try {
      return await Promise.race([read, stopped]);
    } finally {
      signal.removeEventListener('abort', onStop);
    }
  }

  #apply(batch: ChangeBatch): void {
    for (const change of batch.changes) {
      if (!change.id.startsWith(PREFIX)) continue;
      const id = change.id.slice(PREFIX.length);
      const expiresAt = change.doc?.expiresAt;
      if (change.deleted) this.#revoked.delete(id);
      else if (typeof expiresAt === 'number' && Number.isFinite(expiresAt)) this.#revoked.set(id, expiresAt);
    }
    this.#since = batch.lastSeq;
  }

  /** Reads the feed without waiting until nothing is left. */
  async #catchUp(): Promise<void> {
    for (;;) {
      let batch: ChangeBatch;
      try {
        batch = await this.#read(false);
      } catch (err) {
        // nobody signed out yet: no database, nothing revoked
        if (!isNotFound(err)) throw err;
        this.#synced();
        return;
      }
      this.#apply(batch);
      if (batch.caughtUp) {
        this.#synced();
        return;
      }
    }
  }

  /** Waits for the next change (CouchDB answers at `timeout`; a store that holds the request is cut a little later). */
  async #waitForChange(): Promise<void> {
    const batch = await this.#read(true);
    if (batch.held) {
      // cut by the reader: nothing new, or a store that holds or hangs; a read that may not wait tells which
      await this.#catchUp();
      return;
    }
    this.#apply(batch);
    this.#synced();
    if (!batch.caughtUp) await this.#catchUp();
  }

  async #follow(): Promise<void> {
    let failures = 0;
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      try {
        if (!this.known) await this.#catchUp();
        await this.#upkeep();
        await this.#waitForChange();
        failures = 0;
        if (this.#outage) this.log.info({ db: this.db }, 'signed-out sessions are read from the store again');
        this.#outage = false;
      } catch (err) {
        if (signal.aborted) return;
        if (isNotFound(err)) {
          // no database yet: nothing to wait on, look again soon
          this.#synced();
          await sleep(Math.min(1000, this.options.longpollMs), signal);
          continue;
        }
        if (!this.#outage) this.log.warn({ db: this.db, err: (err as Error).message }, 'signed-out sessions cannot be read from the store: retrying');
        this.#outage = true;
        await sleep(backoffDelay(++failures, OUTAGE_BACKOFF), signal);
      }
    }
  }

  /**
   * Writes what is not written yet and sweeps; a failure is logged (once
   * while it lasts) and tried again next round, and never stops the reading
   * of the feed (a store that refuses our writes still tells of others' sign-outs).
   */
  async #upkeep(): Promise<void> {
    try {
      await this.#writeUnwritten();
      await this.#sweep();
      this.#upkeepError = undefined;
    } catch (err) {
      const message = (err as Error).message;
      if (message !== this.#upkeepError)
        this.log.warn({ db: this.db, err: message, unwritten: this.#unwritten.size }, 'signed-out sessions: writing to the store failed');
      this.#upkeepError = message;
    }
  }

  #synced(): void {
    this.#syncedAt = Date.now();
  }

  async #writeUnwritten(): Promise<void> {
    for (const [id, expiresAt] of this.#unwritten) {
      const doc = { _id: `${PREFIX}${id}`, expiresAt, revokedAt: Date.now() };
      for (let attempt = 1; ; attempt++) {
        try {
          await this.#started.database.put(doc, { timeoutMs: this.options.requestTimeoutMs });
          break;
        } catch (err) {
          if (err instanceof ConflictError) break; // signed out already
          if (!isNotFound(err) || attempt > 1) throw err;
          await ensureDatabase(this.store, this.db, this.log);
        }
      }
      this.#unwritten.delete(id);
    }
  }

  /** Forgets, here and in the store, revocations of sessions that have expired anyway. */
  async #sweep(now = Date.now()): Promise<void> {
    if (now - this.#sweptAt < this.options.sweepEveryMs) return;
    this.#prune(now);
    const timeoutMs = this.options.requestTimeoutMs;
    let startkey = PREFIX;
    for (;;) {
      const page = await this.#started.database
        .allDocs<{ expiresAt?: unknown }>({ include_docs: true, startkey, endkey: `${PREFIX}\ufff0`, limit: BATCH }, { timeoutMs, signal: this.#stop.signal })
        .catch((err: unknown) => {
          if (isNotFound(err)) return [];
          throw err;
        });
      const rows = page.filter((row) => row.key !== startkey || startkey === PREFIX);
      const expired = rows.flatMap((row) => (row.doc && typeof row.doc.expiresAt === 'number' && row.doc.expiresAt <= now ? [row.doc] : []));
      // another instance sweeping at the same time makes conflicts: harmless
      if (expired.length > 0)
        await this.#started.database.bulk(
          expired.map((doc) => ({ _id: doc._id, _rev: doc._rev, _deleted: true })),
          { timeoutMs },
        );
      if (page.length < BATCH) break;
      startkey = page[page.length - 1]!.key;
    }
    this.#sweptAt = now;
  }

  #prune(now: number): void {
    for (const [id, expiresAt] of this.#revoked) if (expiresAt <= now && !this.#unwritten.has(id)) this.#revoked.delete(id);
  }
}
