/**
 * Runs one of kpi-live's CouchDB scripts (couchdb/<script>) as an operator
 * would, with `sh`, in an environment of PATH, HOME (an empty folder: no
 * ~/.curlrc of whoever runs the tests), TMPDIR (to see what the script leaves
 * behind) and the given variables only. The script and its curl processes
 * (one process group) are killed after `timeoutMs`.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../src/project-root.js';

export interface ScriptRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Files the script left in its TMPDIR (its curl config files hold passwords). */
  leftovers: string[];
  /** With `watch`: curl processes seen while it ran, and command lines naming a watched secret. */
  curlsSeen: number;
  leaks: string[];
}

/** Every process's command line but this one's. */
function commandLines(): string[] {
  const lines: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      lines.push(readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim());
    } catch {
      // the process ended meanwhile
    }
  }
  return lines;
}

/**
 * @example
 * const run = await runCouchdbScript('setup-kpi-user.sh', { COUCHDB_URL: url, KPI_COUCHDB_PASSWORD: pw }, { watch: [pw] });
 * expect(run.leaks).toEqual([]);
 */
export async function runCouchdbScript(
  script: string,
  vars: Record<string, string>,
  options: { watch?: string[]; timeoutMs?: number } = {},
): Promise<ScriptRun> {
  const watch = options.watch ?? [];
  const dir = mkdtempSync(join(tmpdir(), 'kpi-live-couchdb-script-'));
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp);
  const started = Date.now();
  const child = spawn('sh', [join(projectRoot(), 'couchdb', script)], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, TMPDIR: tmp, ...vars },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  let curlsSeen = 0;
  const leaks = new Set<string>();
  const watcher =
    watch.length > 0
      ? setInterval(() => {
          for (const line of commandLines()) {
            if (/^(\S*\/)?curl\s/.test(line)) curlsSeen++;
            if (watch.some((secret) => line.includes(secret))) leaks.add(line);
          }
        }, 5)
      : undefined;
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), options.timeoutMs ?? 15_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', (status) => resolve(status)));
  clearTimeout(timer);
  clearInterval(watcher);
  const leftovers = readdirSync(tmp);
  rmSync(dir, { recursive: true, force: true });
  return { code, stdout, stderr, ms: Date.now() - started, leftovers, curlsSeen, leaks: [...leaks] };
}
