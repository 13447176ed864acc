/**
 * `kpi-live import` as an operator runs it: the built command, its exit
 * code, the summary on stdout, progress and reports on stderr; run twice
 * (the second time from stdin), nothing is stored twice.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { projectRoot } from '../../src/project-root.js';
import { seededRandom, simulateSession } from '../../src/simulate/generator.js';
import { dropDb, uniqueDbName } from '../harness/app.js';
import { startServiceProcess } from '../harness/process.js';

const dir = mkdtempSync(join(tmpdir(), 'kpi-live-import-process-'));
const dbName = uniqueDbName('import');
const env = { COUCHDB_URL: inject('couchUrl'), KPI_DB: dbName };

afterAll(async () => {
  await dropDb(dbName);
  rmSync(dir, { recursive: true, force: true });
});

/** Resolves with the exit code, or rejects after timeoutMs (and kills the process). */
function exitWithin(exited: Promise<number | null>, kill: () => void, timeoutMs: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      kill();
      reject(new Error(`kpi-live import did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  return Promise.race([exited, timeout]).finally(() => clearTimeout(timer));
}

describe('kpi-live import, the built command', () => {
  const random = seededRandom(3);
  const lines = Array.from({ length: 50 }, (_, i) => JSON.stringify(simulateSession(random, { now: Date.now() - i * 600_000 }).blob));
  const file = join(dir, 'blobs.ndjson');
  writeFileSync(file, `${lines.join('\n')}\n`);

  it('imports a file, exit 0, one summary line', async () => {
    const run = startServiceProcess(['import', '--file', file], env);
    let stdout = '';
    run.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const code = await exitWithin(run.exited, () => run.child.kill('SIGKILL'), 60_000);
    expect(run.stderr()).toMatch(/import 50 blobs, \d+\/s/);
    expect(stdout).toMatch(/^import from .*blobs\.ndjson: read 50 blobs in [\d.]+ s \(\d+\/s\): stored 50, already there 0, refused 0\n$/);
    expect(code).toBe(0);
  });

  it('stores nothing twice when the same blobs come again on stdin; a bad line is reported and makes the exit code 1', async () => {
    const child = spawn(process.execPath, [join(projectRoot(), 'bin', 'kpi-live.js'), 'import', '--file', '-'], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    child.stdin.end(`${readFileSync(file, 'utf8')}{"timestamp": "yesterday"}\n`);
    const code = await exitWithin(exited, () => child.kill('SIGKILL'), 60_000);
    expect(stdout).toMatch(/^import from stdin: read 51 blobs .*: stored 0, already there 50, refused 1 \(timestamp: 1\)\n$/);
    expect(stderr).toContain('kpi-live import: line 51: timestamp must be integer');
    expect(code).toBe(1);
  });
});
