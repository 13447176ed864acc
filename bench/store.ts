/**
 * The store a benchmark runs on, and that store's raw ceilings, measured in
 * the same run so that kpi-live's figure can be read as a share of what the
 * store itself does on this machine at this moment.
 *
 * - Which store: `COUCHDB_URL` when set (a real CouchDB, or any server that
 *   speaks its API), else the embedded pouchdb-server kpi-live starts. Named
 *   by what `GET /` answers (`CouchDB 3.5.0`, `pouchdb-server 4.2.0`).
 * - Write ceiling: `_bulk_docs` straight to the store over HTTP, batches of
 *   500 blob documents, 2 in flight (kpi-live's group-commit defaults), in a
 *   scratch database dropped afterwards. No kpi-live code is on the path.
 * - Feed ceiling: `_changes?include_docs=true` read straight from the store,
 *   one batch after the other, each answer parsed: what catching up costs
 *   before kpi-live does anything with a change.
 *
 * Both use one keep-alive HTTP client (fetch), bodies built before they are
 * timed, so the ceiling is the store's, not the client's.
 *
 * @example
 * const store = await benchStore({ embeddedUrl: app.store.embedded?.authorizedUrl });
 * const write = await bulkDocsCeiling(store, blobDoc, { seconds: 5 });
 * console.log(`${store.label}: raw _bulk_docs ${write.docsPerSec} docs/s`);
 */
import { randomBytes } from 'node:crypto';
import { blobDocId, newRunId } from '../src/store/blob-ids.js';
import { loadConfig, type Config } from '../src/config/config.js';

/** Where a benchmark's store is, and what it is. */
export interface BenchStore {
  /** `embedded`: the pouchdb-server kpi-live starts; `couchdb`: COUCHDB_URL names an Apache CouchDB; `other`: another server there. */
  kind: 'embedded' | 'couchdb' | 'other';
  /** The version `GET /` gives, or null. */
  version: string | null;
  /** For tables: `CouchDB 3.5.0 at http://127.0.0.1:5984`, `embedded pouchdb-server 4.2.0`. */
  label: string;
  /** Base URL with its credentials (never printed). */
  url: string;
}

/** `COUCHDB_URL` from the environment, if set: a benchmark then runs on that store, else on the embedded one. */
export function couchdbUrlFromEnv(): string | undefined {
  const url = process.env.COUCHDB_URL?.trim();
  return url ? url.replace(/\/+$/, '') : undefined;
}

/** A request to the store at `url` (credentials in the URL become a Basic header: fetch refuses them inline). */
export async function storeFetch(url: string, path: string, init: { method?: string; body?: string } = {}): Promise<Response> {
  const base = new URL(url);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (base.username)
    headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`).toString('base64')}`;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  base.username = '';
  base.password = '';
  return fetch(`${base.toString().replace(/\/$/, '')}/${path}`, {
    method: init.method ?? 'GET',
    headers,
    ...(init.body !== undefined ? { body: init.body } : {}),
  });
}

async function storeJson<T>(url: string, path: string, init: { method?: string; body?: string } = {}): Promise<T> {
  const res = await storeFetch(url, path, init);
  const text = await res.text();
  if (!res.ok) throw new Error(`${init.method ?? 'GET'} /${path.split('?')[0]} answered ${res.status}: ${text.slice(0, 200)}`);
  return JSON.parse(text) as T;
}

/**
 * The store a benchmark uses: `COUCHDB_URL` when set, else the embedded
 * store at `embeddedUrl` (its authorized URL), described by its `GET /`.
 */
export async function benchStore(options: { embeddedUrl?: string | undefined }): Promise<BenchStore> {
  const external = couchdbUrlFromEnv();
  const url = external ?? options.embeddedUrl;
  if (!url) throw new Error('no store: set COUCHDB_URL, or start the embedded store first');
  const root = await storeJson<Record<string, unknown>>(url, '');
  const version = typeof root.version === 'string' ? root.version : null;
  const where = new URL(url);
  const at = `${where.protocol}//${where.host}`;
  if (!external) return { kind: 'embedded', version, label: `embedded pouchdb-server${version ? ` ${version}` : ''}`, url };
  if (root.couchdb === 'Welcome' && !('express-pouchdb' in root)) return { kind: 'couchdb', version, label: `CouchDB ${version ?? '?'} at ${at}`, url };
  return {
    kind: 'other',
    version,
    label: `${'express-pouchdb' in root ? 'pouchdb-server' : 'a CouchDB-speaking server'}${version ? ` ${version}` : ''} at ${at}`,
    url,
  };
}

/** A database name of its own for one benchmark run (`bench_<what>_<random>`), so runs on a shared CouchDB never meet. */
/**
 * The configuration of a kpi-live a benchmark starts: on COUCHDB_URL with a
 * database of the run's own (`dbName`), else a fresh embedded store in
 * `dataDir`; loopback only, quiet logs, no rate limit in the way.
 */
export function benchServiceConfig(dataDir: string, dbName: string, overrides: Record<string, unknown> = {}): Config {
  const couchdbUrl = couchdbUrlFromEnv();
  return loadConfig({
    env: {},
    overrides: {
      dataDir,
      ...(couchdbUrl ? { couchdbUrl, dbName } : {}),
      host: '127.0.0.1',
      port: 0,
      logLevel: 'warn',
      rateLimitMax: 10_000_000,
      trustLoopback: true,
      ...overrides,
    },
  });
}

export function benchDbName(what: string): string {
  return `bench_${what}_${randomBytes(4).toString('hex')}`;
}

/** Drops databases of the store (missing ones are fine). */
export async function dropDatabases(store: BenchStore, names: readonly string[]): Promise<void> {
  await Promise.all(names.map((name) => storeFetch(store.url, encodeURIComponent(name), { method: 'DELETE' }).then((res) => res.text())));
}

/** The databases kpi-live makes for a blob database `db` (src/store/setup.ts and the features). */
export const kpiDatabases = (db: string): string[] => [db, ...['aggregates', 'deploys', 'alerts', 'sessions'].map((suffix) => `${db}_${suffix}`)];

/** What {@link bulkDocsCeiling} measured. */
export interface BulkCeiling {
  docsPerSec: number;
  docs: number;
  seconds: number;
  batch: number;
  inFlight: number;
}

/** What {@link changesCeiling} measured. */
export interface ChangesCeiling {
  changesPerSec: number;
  changes: number;
  seconds: number;
  batch: number;
}

/**
 * Raw `_bulk_docs` into `db` (created if missing): `inFlight` writers, each
 * sending batches of `batch` documents one after the other, for `seconds`
 * after a one-second warm-up. `docJson(i)` gives document i as JSON without
 * `_id`; ids are blob ids, time-ordered as ingest makes them.
 */
export async function bulkDocsCeiling(
  store: BenchStore,
  db: string,
  docJson: (i: number) => string,
  options: { seconds?: number; batch?: number; inFlight?: number } = {},
): Promise<BulkCeiling> {
  const seconds = options.seconds ?? 5;
  const batch = options.batch ?? 500;
  const inFlight = options.inFlight ?? 2;
  const created = await storeFetch(store.url, encodeURIComponent(db), { method: 'PUT' });
  if (!created.ok && created.status !== 412) throw new Error(`PUT /${db} answered ${created.status}: ${await created.text()}`);
  const run = newRunId();
  let counter = 0;
  // id first, then the rest of the document: a string splice, not a JSON round trip
  const body = () => {
    const parts: string[] = [];
    for (let k = 0; k < batch; k++, counter++) parts.push(`{"_id":"${blobDocId(Date.now(), run, counter)}",${docJson(counter).slice(1)}`);
    return `{"docs":[${parts.join(',')}]}`;
  };
  const write = async (json: string) => {
    const answer = await storeJson<{ error?: string }[]>(store.url, `${encodeURIComponent(db)}/_bulk_docs`, { method: 'POST', body: json });
    const refused = answer.filter((r) => r.error);
    if (refused.length) throw new Error(`the store refused ${refused.length} of ${answer.length} documents: ${refused[0]!.error}`);
    return answer.length;
  };
  const phase = async (ms: number) => {
    const end = performance.now() + ms;
    let docs = 0;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (performance.now() < end) {
          const written = await write(body()); // not `docs += await …`: that reads docs before the other writer adds to it
          docs += written;
        }
      }),
    );
    return docs;
  };
  await phase(1000);
  const t0 = performance.now();
  const docs = await phase(seconds * 1000);
  const elapsed = (performance.now() - t0) / 1000;
  return { docsPerSec: Math.round(docs / elapsed), docs, seconds: Number(elapsed.toFixed(2)), batch, inFlight };
}

/**
 * Raw `_changes?include_docs=true` of `db` from the start, `batch` changes a
 * request, one request after the other (each answer parsed), until the feed
 * is read through: the store's catch-up ceiling.
 */
export async function changesCeiling(store: BenchStore, db: string, options: { batch?: number } = {}): Promise<ChangesCeiling> {
  const batch = options.batch ?? 1000;
  // opaque: passed back as the store sent it (a string on CouchDB 3, a number on pouchdb-server)
  let since = '0';
  let changes = 0;
  const t0 = performance.now();
  for (;;) {
    const answer = await storeJson<{ results: unknown[]; last_seq: unknown; pending?: number }>(
      store.url,
      `${encodeURIComponent(db)}/_changes?include_docs=true&limit=${batch}&since=${encodeURIComponent(since)}`,
    );
    changes += answer.results.length;
    since = typeof answer.last_seq === 'string' ? answer.last_seq : JSON.stringify(answer.last_seq);
    if (answer.results.length < batch || answer.pending === 0) break;
  }
  const elapsed = (performance.now() - t0) / 1000;
  return { changesPerSec: Math.round(changes / elapsed), changes, seconds: Number(elapsed.toFixed(2)), batch };
}

/** Both ceilings in a scratch database of the store, dropped at the end: the write first, then a read of what it wrote. */
export async function storeCeilings(
  store: BenchStore,
  docJson: (i: number) => string,
  options: { seconds?: number; batch?: number; inFlight?: number; changesBatch?: number } = {},
): Promise<{ write: BulkCeiling; feed: ChangesCeiling }> {
  const db = benchDbName('ceiling');
  try {
    const write = await bulkDocsCeiling(store, db, docJson, options);
    const feed = await changesCeiling(store, db, { batch: options.changesBatch ?? 1000 });
    return { write, feed };
  } finally {
    await dropDatabases(store, [db]);
  }
}

/** One line for a table: the ceiling and kpi-live's figure as a share of it. */
export function ceilingLine(what: string, ceiling: number, unit: string, figure?: { label: string; value: number }): string {
  const share = figure && ceiling > 0 ? `; ${figure.label} ${Math.round(figure.value)} = ${((100 * figure.value) / ceiling).toFixed(0)}% of it` : '';
  return `${what} ${ceiling} ${unit}${share}`;
}

/** A share of a ceiling for the JSON line, 2 decimals (null without a ceiling). */
export const ofCeiling = (value: number, ceiling: number): number | null => (ceiling > 0 ? Number((value / ceiling).toFixed(2)) : null);

/**
 * `size` blob documents as kpi-live stores them (simulated dialog sessions
 * at `now`, the user agent reduced as ingest does), as JSON without `_id`:
 * the documents a ceiling writes.
 */
export async function storedBlobJson(size: number, seed: number, now: number): Promise<string[]> {
  const { seededRandom, simulateSession } = await import('../src/simulate/generator.js');
  const { coarseUserAgent } = await import('../src/ingest/user-agent.js');
  const random = seededRandom(seed);
  return Array.from({ length: size }, () => {
    const { blob, userAgent } = simulateSession(random, { now });
    return JSON.stringify({ ...blob, user_agent: coarseUserAgent(userAgent) });
  });
}
