/**
 * The CouchDB the integration tests run against, picked in this order:
 * 1. `COUCHDB_URL`, when set (a CI service, a developer's CouchDB);
 * 2. a CouchDB 3 container through testcontainers, when a container runtime
 *    answers;
 * 3. the embedded pouchdb-server, as kpi-live itself starts it.
 * The same tests run on each; none mocks CouchDB. `KPI_TEST_BACKEND`
 * (`testcontainers` or `embedded`) insists on one: a container that cannot
 * start (no registry to pull the image from) is then an error, where the
 * default order says why and goes on with the embedded server.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { EmbeddedCouch } from '../../src/store/embedded.js';

export interface CouchBackend {
  kind: 'env' | 'testcontainers' | 'embedded';
  /** Base URL, credentials included when the backend needs them (the embedded one always does). */
  url: string;
  /** How to show the backend in a log (no credentials). */
  description: string;
  stop(): Promise<void>;
}

const COUCHDB_IMAGE = 'couchdb:3.4';

/**
 * A store URL as `fetch` takes it: fetch refuses a URL with credentials, so
 * they move into an `authorization` header (none when the URL has none).
 *
 * @example
 * const { base, headers } = splitCredentials(inject('couchUrl'));
 * await fetch(`${base}/_all_dbs`, { headers });
 */
export function splitCredentials(url: string): { base: string; headers: Record<string, string> } {
  const parsed = new URL(url);
  const headers: Record<string, string> = {};
  if (parsed.username) {
    const pair = `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`;
    headers.authorization = `Basic ${Buffer.from(pair).toString('base64')}`;
  }
  parsed.username = '';
  parsed.password = '';
  return { base: parsed.toString().replace(/\/$/, ''), headers };
}

async function containerRuntimeAnswers(): Promise<boolean> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    const probe = getContainerRuntimeClient().then(() => true);
    const timeout = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 15_000).unref());
    return await Promise.race([probe, timeout]);
  } catch {
    return false;
  }
}

export async function startCouchBackend(env: Record<string, string | undefined> = process.env): Promise<CouchBackend> {
  if (env.COUCHDB_URL) {
    const shown = new URL(env.COUCHDB_URL);
    shown.username = '';
    shown.password = '';
    return { kind: 'env', url: env.COUCHDB_URL.replace(/\/$/, ''), description: `COUCHDB_URL ${shown.origin}`, stop: async () => undefined };
  }
  const wanted = env.KPI_TEST_BACKEND ?? 'auto';
  if (!['auto', 'testcontainers', 'embedded'].includes(wanted)) throw new Error(`KPI_TEST_BACKEND must be testcontainers or embedded, not '${wanted}'`);
  if (wanted === 'testcontainers' || (wanted === 'auto' && (await containerRuntimeAnswers()))) {
    try {
      return await startContainer();
    } catch (err) {
      if (wanted === 'testcontainers') throw err;
      console.log(
        `[kpi-live tests] a container runtime answers, but CouchDB could not start in it (${(err as Error).message.split('\n')[0]}): using the embedded server`,
      );
    }
  }
  return startEmbedded();
}

async function startContainer(): Promise<CouchBackend> {
  const { CouchDBContainer } = await import('@testcontainers/couchdb');
  const container = await new CouchDBContainer(COUCHDB_IMAGE).start();
  const url = new URL(container.getUrl());
  url.username = container.getUsername();
  url.password = container.getPassword();
  return {
    kind: 'testcontainers',
    url: url.toString().replace(/\/$/, ''),
    description: `testcontainers ${COUCHDB_IMAGE} at ${container.getHost()}:${container.getPort()}`,
    stop: async () => {
      await container.stop();
    },
  };
}

async function startEmbedded(): Promise<CouchBackend> {
  const dataDir = mkdtempSync(join(tmpdir(), 'kpi-live-test-store-'));
  const couch = new EmbeddedCouch({ dataDir, log: pino({ level: 'warn' }) });
  await couch.start();
  return {
    kind: 'embedded',
    url: couch.authorizedUrl,
    description: `embedded pouchdb-server at ${couch.url} (data in ${dataDir})`,
    stop: async () => {
      await couch.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
