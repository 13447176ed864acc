/**
 * Runs the built `kpi-live` command as a child process, as an operator would,
 * and reads its JSON log lines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../src/project-root.js';

export interface ServiceProcess {
  child: ChildProcess;
  /** Log lines parsed so far. */
  logs: Record<string, unknown>[];
  /** Resolves with the first log line matching, or rejects after timeoutMs. */
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
  stderr(): string;
  /**
   * The service's URL, once it logs that it listens (info level). Start it
   * with `PORT: '0'` and take the URL from here: a port picked beforehand may
   * be taken by another socket of a busy test run before the service binds it.
   */
  listening(timeoutMs?: number): Promise<string>;
}

/**
 * The environment of a service in a failover test: one store and database,
 * a port of its own choosing, info logs (the tests read them), no rate limit
 * in the way, a lease of `leaseTtlMs`, and checkpoints and longpolls short
 * enough that a takeover shows within seconds.
 */
export function failoverServiceEnv(couchdbUrl: string, db: string, leaseTtlMs: number): Record<string, string> {
  return {
    COUCHDB_URL: couchdbUrl,
    KPI_DB: db,
    PORT: '0',
    LOG_LEVEL: 'info',
    KPI_RATE_LIMIT_MAX: '1000000',
    KPI_LEASE_TTL_MS: String(leaseTtlMs),
    KPI_CHECKPOINT_MS: '200',
    KPI_CHECKPOINT_CHANGES: '100',
    KPI_FEED_LONGPOLL_MS: '1000',
  };
}

/**
 * Runs `kpi-live <args>` as its own process. Loopback is trusted unless the
 * test's env says otherwise (tests of sign-in set their own).
 */
export function startServiceProcess(args: string[], env: Record<string, string>): ServiceProcess {
  const bin = join(projectRoot(), 'bin', 'kpi-live.js');
  if (!existsSync(join(projectRoot(), 'dist', 'src', 'cli', 'main.js'))) {
    throw new Error('kpi-live is not built: run `npm run build` (npm test does it first)');
  }
  const child = spawn(process.execPath, [bin, ...args], {
    env: { PATH: process.env.PATH ?? '', KPI_TRUST_LOOPBACK: 'true', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  endWithTheTests(child);
  const logs: Record<string, unknown>[] = [];
  const waiters: { match: (line: Record<string, unknown>) => boolean; resolve: (line: Record<string, unknown>) => void }[] = [];
  let buffer = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const text = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        continue;
      }
      logs.push(line);
      for (const waiter of [...waiters]) {
        if (waiter.match(line)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  // 'close', not 'exit': the log lines written last are read by then.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return {
    child,
    logs,
    exited,
    stderr: () => stderr,
    async listening(timeoutMs = 30_000) {
      const line = await this.waitForLog((l) => l.msg === 'kpi-live listening', timeoutMs);
      if (typeof line.url !== 'string') throw new Error(`kpi-live logged that it listens without a url: ${JSON.stringify(line)}`);
      return line.url;
    },
    waitForLog(match, timeoutMs = 30_000) {
      const seen = logs.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
        waiters.push({
          match,
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
        });
        void exited.then(() => {
          clearTimeout(timer);
          const last = logs.slice(-3).map((l) => JSON.stringify(l));
          reject(new Error(`kpi-live exited before the expected log line; its last log lines: ${last.join(' ')}; stderr: ${stderr}`));
        });
      });
    },
  };
}

const running = new Set<ChildProcess>();

/** Services started and not yet exited, for {@link killRunning}. */
function endWithTheTests(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
}

/**
 * Kills every service a test started and did not stop (it failed or timed
 * out before its own cleanup): run after each test file (test/harness/setup.ts),
 * so no test leaves a kpi-live running behind it.
 */
export function killRunning(): number {
  for (const child of running) child.kill('SIGKILL');
  return running.size;
}

/** True while a process with this pid exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Polls `condition` every 50 ms until it holds; fails naming `what` after
 * `timeoutMs`, also when one call of `condition` itself does not return.
 */
export async function waitUntil(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const timedOut = () => new Error(`timed out waiting for ${what} (${timeoutMs} ms)`);
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw timedOut();
    if (await within(`waiting for ${what}`, left, Promise.resolve(condition()))) return;
    if (Date.now() > deadline) throw timedOut();
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * `promise`'s result, or an error naming `step` once `timeoutMs` has passed
 * without it settling: a test that waits on it fails at the step that stopped,
 * not at its own timeout.
 */
export async function within<T>(step: string, timeoutMs: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${step}: not done within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
