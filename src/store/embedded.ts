/**
 * The embedded store: a pouchdb-server child process on a loopback port, so
 * that a machine without CouchDB runs kpi-live with the very same HTTP code
 * path (nano) as production.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve, sep } from 'node:path';
import type { Log } from '../log.js';
import { projectRoot } from '../project-root.js';

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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Supervises one pouchdb-server process: spawns it, waits until it answers,
 * restarts it (with growing delays) when it dies unexpectedly, and ends it on
 * {@link EmbeddedCouch.stop}.
 *
 * @example
 * const couch = new EmbeddedCouch({ dataDir: './data', log });
 * await couch.start();
 * nano(couch.url);
 * await couch.stop();
 */
export class EmbeddedCouch {
  readonly dataDir: string;
  #port: number | undefined;
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

  /** Base URL of the server (valid once started). */
  get url(): string {
    if (this.#port === undefined) throw new Error('embedded store not started');
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Process id of the running server, if any (tests use it to simulate a crash). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async start(): Promise<void> {
    this.#stopping = false;
    mkdirSync(this.dataDir, { recursive: true });
    this.#port ??= await freeLoopbackPort();
    await this.#spawn();
  }

  async #spawn(): Promise<void> {
    // pouchdb-server writes its config and log into its working directory
    // unless told otherwise: keep both in the data folder.
    const configFile = join(this.dataDir, 'pouchdb-server.json');
    if (!existsSync(configFile)) {
      const settings = { log: { file: join(this.dataDir, 'pouchdb-server.log'), level: 'warning' } };
      writeFileSync(configFile, JSON.stringify(settings, null, 2));
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
        const res = await fetch(`${this.url}/`, { signal: AbortSignal.timeout(1000) });
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
