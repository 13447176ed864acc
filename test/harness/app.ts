/**
 * Builds kpi-live for a test: the real app on the harness's CouchDB, in a
 * database of its own (dropped at close), silent logs, and a rate limit high
 * enough not to interfere unless the test sets one.
 */
import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { inject } from 'vitest';
import app, { serverOptions } from '../../src/app.js';
import { tokenDigest } from '../../src/auth/credentials.js';
import { loadConfig, type Config } from '../../src/config/config.js';
import type { Store } from '../../src/store/store.js';
import { splitCredentials } from './couch-backend.js';

export interface TestApp {
  app: FastifyInstance;
  config: Config;
  store: Store;
  /** Closes the app (flushing ingest) and drops its database. */
  close(): Promise<void>;
}

export function uniqueDbName(prefix = 'test'): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

/** The API token every test app accepts (tests that check sign-in configure their own). */
export const TEST_TOKEN = 'klt_test-token-of-the-harness';

/**
 * A test app's configuration: loopback trusted (most tests are about
 * something else than sign-in), one known API token, a fixed session key.
 */
export function testConfig(overrides: Partial<Record<keyof Config, unknown>> = {}): Config {
  return loadConfig({
    env: {},
    overrides: {
      couchdbUrl: inject('couchUrl'),
      dbName: uniqueDbName(),
      logLevel: 'silent',
      rateLimitMax: 1_000_000,
      trustLoopback: true,
      apiTokens: [tokenDigest(TEST_TOKEN)],
      sessionSecret: 'a-fixed-session-key-for-kpi-live-tests',
      ...overrides,
    },
  });
}

export interface StartOptions {
  listen?: boolean;
  /** Where the app's log lines go (tests that check what is logged). */
  logStream?: { write(line: string): void };
}

export async function startTestApp(overrides: Partial<Record<keyof Config, unknown>> = {}, options: StartOptions = {}): Promise<TestApp> {
  const config = testConfig(overrides);
  const logger = options.logStream ? { level: config.logLevel, stream: options.logStream } : { level: config.logLevel };
  const fastify = Fastify({ ...serverOptions(config), logger });
  await fastify.register(app, { config });
  if (options.listen) await fastify.listen({ host: '127.0.0.1', port: 0 });
  else await fastify.ready();
  const store = fastify.store;
  return {
    app: fastify,
    config,
    store,
    close: async () => {
      await fastify.close();
      await dropDb(config.dbName);
      await dropDb(`${config.dbName}_aggregates`);
      await dropDb(`${config.dbName}_deploys`);
      await dropDb(`${config.dbName}_alerts`);
      await dropDb(`${config.dbName}_sessions`);
    },
  };
}

/** Removes a database of the harness's CouchDB (missing is fine). */
export async function dropDb(name: string): Promise<void> {
  const { base, headers } = splitCredentials(inject('couchUrl'));
  await fetch(new URL(name, `${base}/`), { method: 'DELETE', headers }).then((r) => r.arrayBuffer());
}

/** Number of blob documents (design documents excluded) in the app's database. */
export async function storedBlobCount(store: Store): Promise<number> {
  const answer = await store.request<{ rows: { id: string }[] }>({ db: store.blobsDb, path: '_all_docs' });
  return answer.rows.filter((row) => !row.id.startsWith('_design/')).length;
}

/** All blob documents of the app's database, in id (= time) order. */
export async function storedBlobs(store: Store): Promise<Record<string, unknown>[]> {
  const answer = await store.request<{ rows: { id: string; doc: Record<string, unknown> }[] }>({
    db: store.blobsDb,
    path: '_all_docs',
    qs: { include_docs: true },
  });
  return answer.rows.filter((row) => !row.id.startsWith('_design/')).map((row) => row.doc);
}

/** Posts blobs the way the dialog does and expects them stored. */
export async function ingest(t: TestApp, blobs: unknown[], headers: Record<string, string> = {}): Promise<void> {
  const res = await t.app.inject({
    method: 'POST',
    url: '/wsapi/interaction_data',
    headers: { 'content-type': 'application/json', ...headers },
    payload: JSON.stringify({ data: blobs }),
  });
  if (res.statusCode !== 200) throw new Error(`ingest answered ${res.statusCode}: ${res.body}`);
}

/**
 * Posts sessions as dialogs do: `perRequest` blobs a request (25 unless
 * told), each request with its first session's user agent (or `userAgent`
 * when that has none); every answer must be 200.
 */
export async function postSessions(
  t: TestApp,
  sessions: readonly { blob: unknown; userAgent?: string }[],
  options: { perRequest?: number; userAgent?: string } = {},
): Promise<void> {
  const perRequest = options.perRequest ?? 25;
  for (let i = 0; i < sessions.length; i += perRequest) {
    const chunk = sessions.slice(i, i + perRequest);
    const userAgent = chunk[0]!.userAgent ?? options.userAgent;
    await ingest(
      t,
      chunk.map((c) => c.blob),
      userAgent ? { 'user-agent': userAgent } : {},
    );
  }
}

/** A blob timestamp of "now", as clients send it (rounded to 10 minutes). */
export function nowTimestamp(): number {
  return Math.floor(Date.now() / 600_000) * 600_000;
}

/**
 * Runs `work` while a blob of "now" is posted every 150 ms, as dialogs do
 * (each answer awaited, whatever it is: the traffic only keeps the feed
 * moving). Retention waits for the aggregate to read past what it listed,
 * and a quiet feed would make it wait a longpoll or two. The traffic ends
 * when the work does.
 */
export async function whileTrafficFlows<T>(t: TestApp, work: () => Promise<T>): Promise<T> {
  let flowing = true;
  const traffic = (async () => {
    while (flowing) {
      const blob = { timestamp: nowTimestamp(), event_stream: [['screen.rp_info', 7]] };
      await t.app.inject({
        method: 'POST',
        url: '/wsapi/interaction_data',
        headers: { 'content-type': 'application/json', 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0' },
        payload: JSON.stringify({ data: [blob] }),
      });
      await new Promise((r) => setTimeout(r, 150));
    }
  })();
  try {
    return await work();
  } finally {
    flowing = false;
    await traffic;
  }
}
