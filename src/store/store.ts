/**
 * The store adapter: one nano client over HTTP, whether the CouchDB is a real
 * one (`COUCHDB_URL`) or the embedded pouchdb-server. Features use it; it
 * imports no feature.
 */
import nano, { type ServerScope } from 'nano';
import type { Log } from '../log.js';
import { redactUrl, type Config } from '../config/config.js';
import { EmbeddedCouch } from './embedded.js';
import { applySetup } from './setup.js';

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
  override readonly name = 'StoreRequestError';
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
    url = embedded.url;
  }
  const displayUrl = redactUrl(url);
  const server = nano({ url, log: () => undefined });
  const drains: (() => Promise<void>)[] = [];

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
      try {
        return (await server.request(opts as Parameters<ServerScope['request']>[0])) as T;
      } catch (err) {
        throw classifyStoreError(err);
      }
    },
    async ping(): Promise<boolean> {
      try {
        await store.request({ path: '', timeoutMs: Math.min(2000, config.couchdbTimeoutMs) });
        return true;
      } catch {
        return false;
      }
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
    try {
      await applySetup(store, log);
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  return store;
}
