/**
 * The store adapter: one nano client over HTTP, whether the CouchDB is a real
 * one (`COUCHDB_URL`) or the embedded pouchdb-server. Features use it; it
 * imports no feature.
 */
import nano, { type ServerScope } from 'nano';
import type { Log } from '../log.js';
import { redactUrl, type Config } from '../config/config.js';
import { EmbeddedCouch } from './embedded.js';

/** The store did not answer, timed out, or said it is overloaded or broken. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
  constructor(
    message: string,
    /** The request ran out of time (the store may be slow, or holding a longpoll). */
    readonly timedOut = false,
  ) {
    super(message);
  }
  /** Answered with 503 + Retry-After: the client should retry later. */
  readonly unavailable = true;
}

/** CouchDB answered with a 4xx that is not about load (a bad request of ours). */
export class StoreRequestError extends Error {
  override readonly name: string = 'StoreRequestError';
  /** Answered with 503 + Retry-After: the client should retry later. */
  readonly unavailable = true;
  constructor(
    message: string,
    readonly statusCode: number,
    readonly error: string | undefined,
  ) {
    super(message);
  }
}

export interface StoreRequest {
  db?: string;
  method?: 'GET' | 'PUT' | 'POST' | 'DELETE' | 'HEAD';
  path?: string;
  qs?: Record<string, unknown>;
  body?: unknown;
  /** Overrides the configured per-request timeout. */
  timeoutMs?: number;
  /** Aborts the request (e.g. when the feed is stopped). */
  signal?: AbortSignal;
}

/**
 * Turns what nano throws into one of the two store errors. nano rejects with
 * an error without `statusCode` when the connection failed or was aborted.
 * Messages never carry the URL or its credentials.
 */
export function classifyStoreError(err: unknown): StoreUnavailableError | StoreRequestError {
  const e = err as { statusCode?: number; error?: string; reason?: string; message?: string; name?: string };
  if (e.name === 'TimeoutError' || e.name === 'AbortError' || typeof e.statusCode !== 'number') {
    // nano wraps the fetch failure in a plain Error; the reason survives in its message
    const timedOut = e.name === 'TimeoutError' || /due to timeout/i.test(e.message ?? '');
    return new StoreUnavailableError(`store unreachable: ${e.message ?? 'connection failed'}`, timedOut);
  }
  if (e.statusCode >= 500 || e.statusCode === 429 || e.statusCode === 408) {
    return new StoreUnavailableError(`store answered ${e.statusCode}: ${e.reason ?? e.error ?? 'unavailable'}`);
  }
  return new StoreRequestError(`store answered ${e.statusCode}: ${e.reason ?? e.error ?? 'request refused'}`, e.statusCode, e.error);
}

/** How the store has been taking kpi-live's writes (documents, checkpoints, markers). */
export interface WriteHealth {
  /** The latest write failed, and none has succeeded since. */
  failing: boolean;
  /** When writes started failing (ms), or null. */
  failingSince: number | null;
  /** Why the latest failed write failed (no URL, no credentials), or null. */
  lastError: string | null;
  /** When the latest write ended, either way (ms), or null. */
  lastWriteAt: number | null;
}

/**
 * Why a store request failed, as counted by {@link Store.requestErrors}:
 * `connection` (no answer), `timeout`, `unavailable` (5xx, 429, 408), or
 * `client` (another 4xx: often expected, such as a 404 for a document not
 * made yet or a 409 for a lost race).
 */
export type StoreErrorKind = 'connection' | 'timeout' | 'unavailable' | 'client';

function errorKind(err: unknown, classified: StoreUnavailableError | StoreRequestError): StoreErrorKind {
  if (classified instanceof StoreRequestError) return 'client';
  if (classified.timedOut) return 'timeout';
  return typeof (err as { statusCode?: unknown }).statusCode === 'number' ? 'unavailable' : 'connection';
}

/** While writes fail, a write probe is tried only after this long without any other write. */
export const WRITE_PROBE_QUIET_MS = 2000;

/** A request that changes data (a POST to `_all_docs` or a view only reads). */
function isWrite(req: StoreRequest): boolean {
  const method = req.method ?? 'GET';
  if (method === 'PUT' || method === 'DELETE') return true;
  return method === 'POST' && (!req.path || req.path === '_bulk_docs');
}

/**
 * Whether a failed write says the store does not take writes: down, slow,
 * overloaded, broken, or refusing us. A 404, 409 or 412 is an answer about
 * the document (a lost race, a database that exists), not about the store.
 */
function refusesWrites(err: StoreUnavailableError | StoreRequestError): boolean {
  return err instanceof StoreUnavailableError || err.statusCode === 401 || err.statusCode === 403;
}

/** The first document a `_bulk_docs` answer refuses for a reason other than a conflict. */
function refusedDocument(answer: unknown): { error: string; reason?: string } | undefined {
  if (!Array.isArray(answer)) return undefined;
  return (answer as { error?: unknown; reason?: string }[]).find((r) => typeof r?.error === 'string' && r.error !== 'conflict') as
    { error: string; reason?: string } | undefined;
}

/** Document the write probe keeps rewriting in the blob database (`_local`: never in the feed, never replicated). */
export const WRITE_PROBE_ID = '_local/kpi-live-write-probe';

export interface Store {
  /** `embedded` (pouchdb-server child) or `external` (COUCHDB_URL). */
  readonly kind: 'embedded' | 'external';
  /** Base URL without credentials, for logs. */
  readonly displayUrl: string;
  /** Database of the interaction blobs. */
  readonly blobsDb: string;
  readonly server: ServerScope;
  /** The embedded server, when kind is `embedded`. */
  readonly embedded: EmbeddedCouch | undefined;
  /** One HTTP request to CouchDB with a timeout; failures are classified. */
  request<T>(req: StoreRequest): Promise<T>;
  /** True when CouchDB answers its root URL. */
  ping(): Promise<boolean>;
  /** How the latest writes went: a store can answer reads and still refuse or fail writes. */
  writeHealth(): WriteHealth;
  /** Failed requests by kind since the store opened (requests aborted by kpi-live itself not counted). */
  requestErrors(): Readonly<Record<StoreErrorKind, number>>;
  /**
   * {@link Store.writeHealth}, after learning whether writes work again when
   * they were failing and nothing has written for {@link WRITE_PROBE_QUIET_MS}:
   * then one small `_local` document is written (at most one such probe at a
   * time), so an idle service does not stay "failing" after the store healed.
   * While traffic flows, its own writes tell.
   */
  checkWrites(): Promise<WriteHealth>;
  /**
   * Registers work that must finish before the store closes (a feature's
   * pending writes). The store outlives its users whatever order the
   * framework closes plugins in.
   */
  beforeClose(drain: () => Promise<void>): void;
  /** Runs the registered drains, then stops the embedded server, if any. */
  close(): Promise<void>;
}

function withCredentials(config: Config): string {
  const url = new URL(config.couchdbUrl!);
  if (config.couchdbUser && !url.username) {
    url.username = encodeURIComponent(config.couchdbUser);
    url.password = encodeURIComponent(config.couchdbPassword ?? '');
  }
  return url.toString().replace(/\/$/, '');
}

/**
 * Opens the store named by the configuration: `COUCHDB_URL` when set, else an
 * embedded pouchdb-server in `dataDir`. Creates the blob database and its
 * design document when missing.
 *
 * @example
 * const store = await openStore(config, log);
 * await store.request({ db: store.blobsDb, path: '_all_docs', qs: { limit: 1 } });
 * await store.close();
 */
export async function openStore(config: Config, log: Log, options: { setup?: boolean } = {}): Promise<Store> {
  let embedded: EmbeddedCouch | undefined;
  let url: string;
  if (config.couchdbUrl) {
    url = withCredentials(config);
  } else {
    embedded = new EmbeddedCouch({ dataDir: config.dataDir, log });
    await embedded.start();
    url = embedded.authorizedUrl;
  }
  const displayUrl = redactUrl(url);
  const server = nano({ url, log: () => undefined });
  const drains: (() => Promise<void>)[] = [];
  const writes: WriteHealth = { failing: false, failingSince: null, lastError: null, lastWriteAt: null };
  const writeFailed = (message: string) => {
    if (!writes.failing) writes.failingSince = Date.now();
    writes.failing = true;
    writes.lastError = message;
    writes.lastWriteAt = Date.now();
  };
  const writeSucceeded = () => {
    writes.failing = false;
    writes.failingSince = null;
    writes.lastWriteAt = Date.now();
  };
  const errors: Record<StoreErrorKind, number> = { connection: 0, timeout: 0, unavailable: 0, client: 0 };
  let probe: Promise<void> | undefined;
  let probeRev: string | undefined;

  const store: Store = {
    kind: embedded ? 'embedded' : 'external',
    displayUrl,
    blobsDb: config.dbName,
    server,
    embedded,
    async request<T>(req: StoreRequest): Promise<T> {
      const opts = {
        db: req.db,
        method: (req.method ?? 'GET').toLowerCase(),
        path: req.path,
        qs: req.qs,
        body: req.body,
        signal: req.signal
          ? AbortSignal.any([req.signal, AbortSignal.timeout(req.timeoutMs ?? config.couchdbTimeoutMs)])
          : AbortSignal.timeout(req.timeoutMs ?? config.couchdbTimeoutMs),
      };
      const write = isWrite(req);
      let answer: T;
      try {
        answer = (await server.request(opts as Parameters<ServerScope['request']>[0])) as T;
      } catch (err) {
        const classified = classifyStoreError(err);
        if (!req.signal?.aborted) errors[errorKind(err, classified)]++;
        if (write && refusesWrites(classified)) writeFailed(classified.message);
        throw classified;
      }
      if (write) {
        const refused = req.path === '_bulk_docs' ? refusedDocument(answer) : undefined;
        if (refused) writeFailed(`store refused a document: ${refused.error}${refused.reason ? `: ${refused.reason}` : ''}`);
        else writeSucceeded();
      }
      return answer;
    },
    async ping(): Promise<boolean> {
      try {
        await store.request({ path: '', timeoutMs: Math.min(2000, config.couchdbTimeoutMs) });
        return true;
      } catch {
        return false;
      }
    },
    writeHealth: () => ({ ...writes }),
    requestErrors: () => ({ ...errors }),
    async checkWrites(): Promise<WriteHealth> {
      if (!writes.failing || Date.now() - (writes.lastWriteAt ?? 0) < WRITE_PROBE_QUIET_MS) return { ...writes };
      const put = () =>
        store.request<{ rev: string }>({
          method: 'PUT',
          db: config.dbName,
          path: WRITE_PROBE_ID,
          body: { checkedAt: Date.now(), ...(probeRev ? { _rev: probeRev } : {}) },
          timeoutMs: Math.min(2000, config.couchdbTimeoutMs),
        });
      probe ??= (async () => {
        try {
          try {
            probeRev = (await put()).rev;
          } catch (err) {
            // another instance (or an earlier run) moved the probe on: take its revision, write once more
            if (!(err instanceof StoreRequestError && err.statusCode === 409)) throw err;
            probeRev = (await store.request<{ _rev: string }>({ db: config.dbName, path: WRITE_PROBE_ID }))._rev;
            probeRev = (await put()).rev;
          }
        } catch {
          // the outcome is recorded by request()
        } finally {
          probe = undefined;
        }
      })();
      await probe;
      return { ...writes };
    },
    beforeClose(drain) {
      drains.push(drain);
    },
    async close(): Promise<void> {
      await Promise.allSettled(drains.map((drain) => drain()));
      await embedded?.stop();
    },
  };

  log.info({ store: store.kind, url: displayUrl, db: config.dbName, dataDir: embedded?.dataDir, pid: embedded?.pid }, `using ${store.kind} CouchDB store`);
  if (options.setup !== false) {
    // Imported here: setup.ts works through database.ts, whose errors extend
    // this module's, so a static import would evaluate them before these.
    const { applySetup } = await import('./setup.js');
    try {
      await applySetup(store, log);
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  return store;
}
