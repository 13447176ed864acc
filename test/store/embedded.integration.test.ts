/**
 * The embedded store's lifecycle: files stay in the data folder, a crashed
 * server is restarted with its data, and it never outlives kpi-live, even
 * when kpi-live is killed with SIGKILL. And it is kpi-live's alone: every
 * request without the credentials kept in the data folder is refused, and
 * the folder and its files are readable by their owner only, an older
 * kpi-live's open folder included.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { basicAuthorization, CONFIG_FILE, CREDENTIALS_FILE, EmbeddedCouch, freeLoopbackPort, type StoreCredentials } from '../../src/store/embedded.js';
import { projectRoot } from '../../src/project-root.js';
import { isAlive, startServiceProcess, waitUntil } from '../harness/process.js';

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'kpi-live-embedded-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Whether the store at `url` answers its admin (with `couch`'s credentials). */
async function answers(couch: EmbeddedCouch): Promise<boolean> {
  try {
    const res = await fetch(couch.url, { headers: asAdmin(couch), signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

const asAdmin = (couch: EmbeddedCouch, extra: Record<string, string> = {}) => ({ authorization: basicAuthorization(couch.credentials), ...extra });
const json = { 'content-type': 'application/json' };
const silent = pino({ level: 'silent' });

/** The credentials file's content. */
const keptCredentials = (dataDir: string) => JSON.parse(readFileSync(join(dataDir, CREDENTIALS_FILE), 'utf8')) as StoreCredentials;

/** Every folder and file under `dir` (itself included) with its permission bits. */
function modes(dir: string): { path: string; dir: boolean; mode: number }[] {
  const found = [{ path: dir, dir: true, mode: statSync(dir).mode & 0o777 }];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name);
    found.push({ path, dir: entry.isDirectory(), mode: statSync(path).mode & 0o777 });
  }
  return found;
}

/** Expects `dir` and every folder under it 0700, every file under it 0600. */
function expectOwnerOnly(dir: string): void {
  for (const f of modes(dir)) expect({ path: f.path, mode: f.mode.toString(8) }).toEqual({ path: f.path, mode: f.dir ? '700' : '600' });
}

/** The requests an intruder tries; each must be refused without credentials. */
const probes = (db: string) => [
  { method: 'GET', path: '/' },
  { method: 'GET', path: '/_session' },
  { method: 'GET', path: '/_config' },
  { method: 'GET', path: '/_config/admins' },
  { method: 'GET', path: '/_all_dbs' },
  { method: 'GET', path: `/${db}` },
  { method: 'GET', path: `/${db}/_all_docs?include_docs=true` },
  { method: 'GET', path: `/${db}/_changes?include_docs=true` },
  { method: 'GET', path: '/_utils/' },
  { method: 'PUT', path: `/${db}/intruder`, body: '{"forged":true}' },
  { method: 'POST', path: `/${db}/_bulk_docs`, body: '{"docs":[{"_id":"intruder2"}]}' },
  { method: 'DELETE', path: `/${db}` },
  { method: 'PUT', path: '/intruder_db' },
  { method: 'POST', path: '/_session', body: '{"name":"kpi-live","password":"guess"}' },
];

/**
 * A data folder as kpi-live made it before its store had credentials: the
 * same pouchdb-server parts, no admin, files made under umask 022. Holds one
 * database with one document.
 */
async function makeOldDataDir(dataDir: string, db: string, doc: Record<string, unknown>): Promise<void> {
  const port = await freeLoopbackPort();
  const configFile = join(dataDir, CONFIG_FILE);
  writeFileSync(configFile, JSON.stringify({ log: { file: join(dataDir, 'pouchdb-server.log'), level: 'warning' } }, null, 2), { mode: 0o644 });
  const oldServer = `
    const { createRequire } = require('node:module');
    const [dir, configPath, port] = process.argv.slice(1);
    const fromServer = createRequire(require.resolve('pouchdb-server/package.json', { paths: [${JSON.stringify(projectRoot())}] }));
    const PouchDB = fromServer('pouchdb-core').plugin(fromServer('pouchdb-adapter-http')).plugin(fromServer('pouchdb-replication'))
      .plugin(fromServer('pouchdb-mapreduce')).plugin(fromServer('pouchdb-adapter-leveldb'));
    const pouchApp = fromServer('express-pouchdb')({ configPath, mode: 'fullCouchDB', overrideMode: { exclude: ['validation', 'compression'] } });
    pouchApp.setPouchDB(PouchDB.defaults({ prefix: dir }));
    fromServer('express')().use(pouchApp).listen(Number(port), '127.0.0.1');`;
  const child = spawn('sh', ['-c', 'umask 022 && exec "$0" "$@"', process.execPath, '-e', oldServer, `${dataDir}/`, configFile, String(port)], {
    cwd: dataDir,
    stdio: 'ignore',
  });
  const exited = new Promise((done) => child.once('exit', done));
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitUntil(async () => (await fetch(base).catch(() => undefined))?.ok === true, 20_000, 'the old store to answer');
    // the open door this replaces: anyone is admin
    const session = (await (await fetch(`${base}/_session`)).json()) as { userCtx: { roles: string[] } };
    expect(session.userCtx.roles).toContain('_admin');
    expect((await fetch(`${base}/${db}`, { method: 'PUT' })).status).toBe(201);
    expect((await fetch(`${base}/${db}/${String(doc._id)}`, { method: 'PUT', headers: json, body: JSON.stringify(doc) })).status).toBe(201);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

describe('EmbeddedCouch', () => {
  it('keeps its config and log in the data folder and restarts after a crash, data intact', async () => {
    const dataDir = tempDir();
    const couch = new EmbeddedCouch({ dataDir, log: silent, restartDelaysMs: [100] });
    await couch.start();
    try {
      expect(readdirSync(dataDir)).toContain('pouchdb-server.json');
      expect(existsSync(join(projectRoot(), 'config.json'))).toBe(false);
      expect(existsSync(join(projectRoot(), 'log.txt'))).toBe(false);
      await fetch(`${couch.url}/crash_test`, { method: 'PUT', headers: asAdmin(couch) });
      await fetch(`${couch.url}/crash_test/kept`, { method: 'PUT', headers: asAdmin(couch, json), body: '{"n":1}' });

      const firstPid = couch.pid!;
      process.kill(firstPid, 'SIGKILL');
      await waitUntil(() => !isAlive(firstPid), 5000, 'the store to die');
      await waitUntil(async () => couch.pid !== undefined && couch.pid !== firstPid && (await answers(couch)), 20_000, 'the store to come back');
      const doc = (await (await fetch(`${couch.url}/crash_test/kept`, { headers: asAdmin(couch) })).json()) as { n: number };
      expect(doc.n).toBe(1);
    } finally {
      await couch.stop();
    }
    expect(await answers(couch)).toBe(false);
  });

  it('serves kpi-live with no COUCHDB_URL, dies with it even on SIGKILL, and starts again on the same data', async () => {
    const dataDir = tempDir();
    const env = { KPI_DATA_DIR: dataDir, PORT: String(await freeLoopbackPort()), LOG_LEVEL: 'debug' };
    const first = startServiceProcess(['serve'], env);
    const using = await first.waitForLog((l) => l.msg === 'using embedded CouchDB store');
    await first.waitForLog((l) => l.msg === 'kpi-live listening');
    const storePid = using.pid as number;
    expect(isAlive(storePid)).toBe(true);
    // the store the service started is closed to everyone else, and its password is on no command line, in no environment
    expect(String(using.url)).not.toContain('@');
    expect((await fetch(new URL('_all_dbs', String(using.url)))).status).toBe(401);
    const { password } = keptCredentials(dataDir);
    for (const proc of ['cmdline', 'environ']) {
      const file = `/proc/${storePid}/${proc}`;
      if (existsSync(file)) expect(readFileSync(file, 'utf8')).not.toContain(password);
    }
    const post = await fetch(`http://127.0.0.1:${env.PORT}/wsapi/interaction_data`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ data: [{ timestamp: Date.now(), event_stream: [['screen.rp_info', 3]] }] }),
    });
    expect(post.status).toBe(200);

    first.child.kill('SIGKILL');
    await first.exited;
    await waitUntil(() => !isAlive(storePid), 10_000, 'the orphaned store to exit');

    const second = startServiceProcess(['serve'], env);
    await second.waitForLog((l) => l.msg === 'kpi-live listening');
    const count = (await (await fetch(`http://127.0.0.1:${env.PORT}/wsapi/interaction_data/count`)).json()) as { count: number };
    expect(count.count).toBe(1);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    const secondStorePid = second.logs.find((l) => l.msg === 'using embedded CouchDB store')?.pid as number;
    await waitUntil(() => !isAlive(secondStorePid), 5000, 'the store to stop with kpi-live');
    // the second start used the kept credentials; no log line of either (debug level) holds them
    expect(keptCredentials(dataDir).password).toBe(password);
    const output = JSON.stringify([first.logs, second.logs]) + first.stderr() + second.stderr();
    expect(output).toContain('using embedded CouchDB store');
    expect(output).not.toContain(password);
    expect(output).not.toContain(basicAuthorization(keptCredentials(dataDir)).slice('Basic '.length));
  });
});

describe('EmbeddedCouch credentials and file modes', () => {
  it('answers 401 to every request without its credentials (or with wrong ones), leaking nothing, and serves its admin', async () => {
    const dataDir = tempDir();
    const couch = new EmbeddedCouch({ dataDir, log: silent });
    await couch.start();
    try {
      const db = 'secret_blobs';
      const marker = 'blob-content-nobody-else-may-read';
      expect((await fetch(`${couch.url}/${db}`, { method: 'PUT', headers: asAdmin(couch) })).status).toBe(201);
      expect((await fetch(`${couch.url}/${db}/b1`, { method: 'PUT', headers: asAdmin(couch, json), body: JSON.stringify({ marker }) })).status).toBe(201);
      const { user, password } = couch.credentials;
      expect(password.length).toBeGreaterThanOrEqual(43); // 32 random bytes, base64url
      const wrong: Record<string, string>[] = [
        {},
        { authorization: basicAuthorization({ user, password: `${password}x` }) },
        { authorization: basicAuthorization({ user: 'admin', password }) },
        { authorization: 'Basic' },
        { authorization: `Bearer ${password}` },
        { cookie: 'AuthSession=a2twaS1saXZlOjA6MA' },
      ];
      for (const headers of wrong) {
        for (const probe of probes(db)) {
          const res = await fetch(`${couch.url}${probe.path}`, { method: probe.method, headers: { ...headers, ...json }, body: probe.body });
          const text = await res.text();
          const what = `${probe.method} ${probe.path} with ${Object.keys(headers).join(', ') || 'no credentials'}`;
          expect(res.status, what).toBe(401);
          expect(JSON.parse(text), what).toEqual({ error: 'unauthorized', reason: 'Authentication required.' });
        }
      }
      // nothing of those requests got through
      const all = (await (await fetch(`${couch.url}/${db}/_all_docs?include_docs=true`, { headers: asAdmin(couch) })).json()) as {
        rows: { id: string; doc: { marker?: string } }[];
      };
      expect(all.rows.map((r) => r.id)).toEqual(['b1']);
      expect(all.rows[0]!.doc.marker).toBe(marker);
      const dbs = (await (await fetch(`${couch.url}/_all_dbs`, { headers: asAdmin(couch) })).json()) as string[];
      expect(dbs).toContain(db);
      expect(dbs).not.toContain('intruder_db');
      // with them: the store's only admin; its config holds the password hashed, never as given
      const session = (await (await fetch(`${couch.url}/_session`, { headers: asAdmin(couch) })).json()) as { userCtx: { name: string; roles: string[] } };
      expect(session.userCtx).toEqual({ name: user, roles: ['_admin'] });
      const configRes = await fetch(`${couch.url}/_config`, { headers: asAdmin(couch) });
      expect(configRes.status).toBe(200);
      const config = (await configRes.json()) as { admins: Record<string, string>; couch_httpd_auth: Record<string, string> };
      expect(Object.keys(config.admins)).toEqual([user]);
      expect(config.admins[user]).toMatch(/^-pbkdf2-[0-9a-f]+,[0-9a-f]+,\d+$/);
      expect(config.couch_httpd_auth.require_valid_user).toBe('true');
      expect(JSON.stringify(config)).not.toContain(password);
      expect(readFileSync(join(dataDir, CONFIG_FILE), 'utf8')).not.toContain(password);
    } finally {
      await couch.stop();
    }
  });

  it('keeps its credentials in a 0600 file, its folder 0700 and every file in it 0600, and reuses the credentials on a restart', async () => {
    const dataDir = join(tempDir(), 'made-by-kpi-live');
    const first = new EmbeddedCouch({ dataDir, log: silent });
    await first.start();
    let credentials: StoreCredentials;
    try {
      credentials = first.credentials;
      expect(keptCredentials(dataDir)).toEqual(credentials);
      await fetch(`${first.url}/kept`, { method: 'PUT', headers: asAdmin(first) });
      await fetch(`${first.url}/kept/doc`, { method: 'PUT', headers: asAdmin(first, json), body: '{"n":7}' });
    } finally {
      await first.stop();
    }
    expect(statSync(join(dataDir, CREDENTIALS_FILE)).mode & 0o777).toBe(0o600);
    const found = modes(dataDir);
    expect(found.filter((f) => !f.dir).map((f) => f.path)).toEqual(
      expect.arrayContaining([join(dataDir, 'kept', 'CURRENT'), join(dataDir, 'pouchdb-server.log')]),
    );
    expectOwnerOnly(dataDir);

    const second = new EmbeddedCouch({ dataDir, log: silent });
    await second.start();
    try {
      expect(second.credentials).toEqual(credentials);
      const doc = (await (await fetch(`${second.url}/kept/doc`, { headers: asAdmin(second) })).json()) as { n: number };
      expect(doc.n).toBe(7);
    } finally {
      await second.stop();
    }
  });

  it("gives an older kpi-live's open data folder credentials and owner-only modes, and still opens its databases", async () => {
    const dataDir = tempDir();
    await makeOldDataDir(dataDir, 'old_blobs', { _id: 'old', n: 42 });
    const before = modes(dataDir);
    expect(before.some((f) => !f.dir && f.mode === 0o644)).toBe(true);
    expect(before.some((f) => f.dir && f.mode === 0o755)).toBe(true);
    expect(existsSync(join(dataDir, CREDENTIALS_FILE))).toBe(false);

    const couch = new EmbeddedCouch({ dataDir, log: silent });
    await couch.start();
    try {
      expectOwnerOnly(dataDir);
      expect(keptCredentials(dataDir)).toEqual(couch.credentials);
      expect((await fetch(`${couch.url}/old_blobs/old`)).status).toBe(401);
      const doc = (await (await fetch(`${couch.url}/old_blobs/old`, { headers: asAdmin(couch) })).json()) as { n: number };
      expect(doc.n).toBe(42);
      const dbs = (await (await fetch(`${couch.url}/_all_dbs`, { headers: asAdmin(couch) })).json()) as string[];
      expect(dbs).toContain('old_blobs');
    } finally {
      await couch.stop();
    }
  });

  it('replaces an unusable credentials file, and the store takes the new admin', async () => {
    const dataDir = tempDir();
    writeFileSync(join(dataDir, CREDENTIALS_FILE), '{"user":"kpi-live","password":"short"}', { mode: 0o644 });
    const couch = new EmbeddedCouch({ dataDir, log: silent });
    await couch.start();
    try {
      expect(couch.credentials.password).not.toBe('short');
      expect(keptCredentials(dataDir)).toEqual(couch.credentials);
      expect(statSync(join(dataDir, CREDENTIALS_FILE)).mode & 0o777).toBe(0o600);
      expect(await answers(couch)).toBe(true);
    } finally {
      await couch.stop();
    }
  });
});
