/**
 * The embedded store: a pouchdb-server child process on a loopback port, so
 * that a machine without CouchDB runs kpi-live with the very same HTTP code
 * path (nano) as production.
 *
 * It is kpi-live's alone: it answers only requests with the admin
 * credentials kept in the data directory (made on first start), and its data
 * directory and files are readable by their owner only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve, sep } from 'node:path';
import type { Log } from '../log.js';
import { projectRoot } from '../project-root.js';
import { sleep } from '../sleep.js';

export interface EmbeddedCouchOptions {
  /** Folder for the databases, the server's config file and its log. */
  dataDir: string;
  log: Log;
  /** Port to bind; a free loopback port is picked when absent. */
  port?: number;
  /** How long to wait for the server to answer after spawning it. */
  startTimeoutMs?: number;
  /** Delays before successive restarts after an unexpected exit. */
  restartDelaysMs?: readonly number[];
}

/** Asks the OS for a free TCP port on loopback. */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolvePort(address.port);
        else reject(new Error('no port assigned'));
      });
    });
  });
}

/** The embedded store's only admin; every request to it must carry these. */
export interface StoreCredentials {
  user: string;
  password: string;
}

/** File of the data directory that keeps the store's credentials (mode 0600). */
export const CREDENTIALS_FILE = 'store-credentials.json';
/** pouchdb-server's config file in the data directory (it holds the admin's password hashed). */
export const CONFIG_FILE = 'pouchdb-server.json';
const LOG_FILE = 'pouchdb-server.log';
const ADMIN_USER = 'kpi-live';

/** The `authorization` header value for the credentials (HTTP Basic). */
export function basicAuthorization(credentials: StoreCredentials): string {
  return `Basic ${Buffer.from(`${credentials.user}:${credentials.password}`).toString('base64')}`;
}

function readCredentials(file: string): StoreCredentials | undefined {
  try {
    const kept = JSON.parse(readFileSync(file, 'utf8')) as Partial<StoreCredentials> | null;
    if (typeof kept?.user === 'string' && kept.user && typeof kept.password === 'string' && kept.password.length >= 32) {
      return { user: kept.user, password: kept.password };
    }
  } catch {
    // missing or not JSON: made anew below
  }
  return undefined;
}

/**
 * The credentials kept in `dataDir`, made on first use: a 32-byte random
 * password, in a file of mode 0600 that the store process reads itself (so
 * the password is on no command line and in no environment). A file that
 * cannot be used is replaced: the store takes its admin from this file on
 * every start, so new credentials lose nothing.
 */
export function keptCredentials(dataDir: string, log: Log): StoreCredentials {
  const file = join(dataDir, CREDENTIALS_FILE);
  const kept = readCredentials(file);
  if (kept) return kept;
  const made: StoreCredentials = { user: ADMIN_USER, password: randomBytes(32).toString('base64url') };
  const temp = `${file}.${process.pid}.tmp`;
  if (existsSync(temp)) unlinkSync(temp); // a crashed start's: mode is only set on a new file
  writeFileSync(temp, JSON.stringify(made) + '\n', { mode: 0o600, flag: 'wx' });
  try {
    if (!existsSync(file)) {
      // link, not rename: a store started at the same moment on this folder keeps the credentials it made
      linkSync(temp, file);
      return made;
    }
    log.warn({ file }, 'the embedded store credentials file was unusable: made new credentials');
    renameSync(temp, file);
    return made;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return readCredentials(file) ?? made;
  } finally {
    if (existsSync(temp)) unlinkSync(temp);
  }
}

/** Takes group and other permissions off `path` (a symlink is left alone); says so when it cannot. */
function makePrivate(path: string, log: Log): void {
  const stat = lstatSync(path);
  if (stat.isSymbolicLink()) return;
  const mode = stat.mode & 0o777;
  if ((mode & 0o077) === 0) return;
  try {
    chmodSync(path, mode & 0o700);
  } catch (err) {
    log.warn({ path, mode: mode.toString(8), code: (err as NodeJS.ErrnoException).code }, 'cannot take group and other permissions off an embedded store file');
  }
}

function makeTreePrivate(dir: string, log: Log): void {
  makePrivate(dir, log);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) makeTreePrivate(path, log);
    else makePrivate(path, log);
  }
}

/**
 * Makes `dataDir` (mode 0700) and takes group and other permissions off what
 * the store keeps in it: its config, log and credentials, and every LevelDB
 * database folder (one with a `CURRENT` file). A folder made by an older
 * kpi-live had 0755 folders and 0644 files. Other files in the folder are
 * left as they are (it may be a folder of the user's; the folder's own 0700
 * already keeps other users out).
 */
export function makeDataDirPrivate(dataDir: string, log: Log): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // a folder of another user (or a mount without modes) is warned about, not refused: the store's files are 0600 anyway
  makePrivate(realpathSync(dataDir), log);
  const storeFiles = new Set([CREDENTIALS_FILE, CONFIG_FILE, LOG_FILE, `.${CONFIG_FILE}`]);
  for (const entry of readdirSync(dataDir, { withFileTypes: true })) {
    const path = join(dataDir, entry.name);
    if (entry.isDirectory() && existsSync(join(path, 'CURRENT'))) makeTreePrivate(path, log);
    else if (entry.isFile() && storeFiles.has(entry.name)) makePrivate(path, log);
  }
}

/**
 * Supervises one pouchdb-server process: spawns it, waits until it answers,
 * restarts it (with growing delays) when it dies unexpectedly, and ends it on
 * {@link EmbeddedCouch.stop}.
 *
 * @example
 * const couch = new EmbeddedCouch({ dataDir: './data', log });
 * await couch.start();
 * nano(couch.authorizedUrl);
 * await couch.stop();
 */
export class EmbeddedCouch {
  readonly dataDir: string;
  #port: number | undefined;
  #credentials: StoreCredentials | undefined;
  #child: ChildProcess | undefined;
  #stopping = false;
  #restarts = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  readonly #log: Log;
  readonly #startTimeoutMs: number;
  readonly #restartDelaysMs: readonly number[];

  constructor(options: EmbeddedCouchOptions) {
    this.dataDir = resolve(options.dataDir);
    this.#port = options.port;
    this.#log = options.log;
    this.#startTimeoutMs = options.startTimeoutMs ?? 30_000;
    this.#restartDelaysMs = options.restartDelaysMs ?? [250, 1000, 2000, 5000, 10_000];
  }

  /** Base URL of the server, without credentials: for logs (valid once started). */
  get url(): string {
    if (this.#port === undefined) throw new Error('embedded store not started');
    return `http://127.0.0.1:${this.#port}`;
  }

  /** The admin credentials every request needs (valid once started). */
  get credentials(): StoreCredentials {
    if (!this.#credentials) throw new Error('embedded store not started');
    return { ...this.#credentials };
  }

  /** Base URL with the credentials in it, for nano or a `COUCHDB_URL`; never log it. */
  get authorizedUrl(): string {
    const url = new URL(this.url);
    url.username = encodeURIComponent(this.credentials.user);
    url.password = encodeURIComponent(this.credentials.password);
    return url.toString().replace(/\/$/, '');
  }

  /** Process id of the running server, if any (tests use it to simulate a crash). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async start(): Promise<void> {
    this.#stopping = false;
    makeDataDirPrivate(this.dataDir, this.#log);
    this.#credentials = keptCredentials(this.dataDir, this.#log);
    this.#port ??= await freeLoopbackPort();
    await this.#spawn();
  }

  async #spawn(): Promise<void> {
    // pouchdb-server writes its config and log into its working directory
    // unless told otherwise: keep both in the data folder.
    const configFile = join(this.dataDir, CONFIG_FILE);
    if (!existsSync(configFile)) {
      const settings = { log: { file: join(this.dataDir, LOG_FILE), level: 'warning' } };
      writeFileSync(configFile, JSON.stringify(settings, null, 2), { mode: 0o600 });
    }
    const script = join(projectRoot(), 'couchdb', 'embedded-server.cjs');
    const args = [
      script,
      '--port',
      String(this.#port),
      '--host',
      '127.0.0.1',
      '--dir',
      this.dataDir + sep,
      '--config',
      configFile,
      '--credentials',
      join(this.dataDir, CREDENTIALS_FILE),
      '--no-stdout-logs',
      '--no-color',
    ];
    const child = spawn(process.execPath, args, { cwd: this.dataDir, stdio: ['pipe', 'ignore', 'pipe'] });
    this.#child = child;
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-2000);
    });
    // Never let the store's pipe hold kpi-live's event loop open.
    child.unref();
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();

    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => {
      child.once('exit', (code, signal) => done({ code, signal }));
    });
    void exited.then(({ code, signal }) => {
      if (this.#child === child) this.#child = undefined;
      if (this.#stopping) return;
      this.#log.error({ code, signal, stderr: stderr.trim() || undefined }, 'embedded store exited unexpectedly; restarting it');
      this.#scheduleRestart();
    });

    const ready = await Promise.race([this.#waitUntilAnswering(), exited.then(() => false)]);
    if (!ready) {
      if (this.#child === child) child.kill('SIGKILL');
      throw new Error(`embedded store did not start on port ${this.#port}${stderr ? `: ${stderr.trim()}` : ''}`);
    }
    this.#restarts = 0;
  }

  #scheduleRestart(): void {
    const delay = this.#restartDelaysMs[Math.min(this.#restarts, this.#restartDelaysMs.length - 1)] ?? 1000;
    this.#restarts += 1;
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#stopping) return;
      this.#spawn().then(
        () => this.#log.info({ url: this.url }, 'embedded store restarted'),
        (err: Error) => {
          this.#log.error({ err: err.message }, 'embedded store restart failed');
          if (!this.#stopping && !this.#child) this.#scheduleRestart();
        },
      );
    }, delay);
    this.#restartTimer.unref();
  }

  async #waitUntilAnswering(): Promise<boolean> {
    const deadline = Date.now() + this.#startTimeoutMs;
    while (Date.now() < deadline && !this.#stopping) {
      try {
        const res = await fetch(`${this.url}/`, { headers: { authorization: basicAuthorization(this.credentials) }, signal: AbortSignal.timeout(1000) });
        await res.body?.cancel();
        if (res.ok) return true;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    return false;
  }

  /** Ends the server process and waits for it to exit. */
  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    const child = this.#child;
    this.#child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
