/**
 * The embedded store's lifecycle: files stay in the data folder, a crashed
 * server is restarted with its data, and it never outlives kpi-live, even
 * when kpi-live is killed with SIGKILL.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddedCouch, freeLoopbackPort } from '../../src/store/embedded.js';
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

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

describe('EmbeddedCouch', () => {
  it('keeps its config and log in the data folder and restarts after a crash, data intact', async () => {
    const dataDir = tempDir();
    const couch = new EmbeddedCouch({ dataDir, log: pino({ level: 'silent' }), restartDelaysMs: [100] });
    await couch.start();
    try {
      expect(readdirSync(dataDir)).toContain('pouchdb-server.json');
      expect(existsSync(join(projectRoot(), 'config.json'))).toBe(false);
      expect(existsSync(join(projectRoot(), 'log.txt'))).toBe(false);
      await fetch(`${couch.url}/crash_test`, { method: 'PUT' });
      await fetch(`${couch.url}/crash_test/kept`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"n":1}' });

      const firstPid = couch.pid!;
      process.kill(firstPid, 'SIGKILL');
      await waitUntil(() => !isAlive(firstPid), 5000, 'the store to die');
      await waitUntil(async () => couch.pid !== undefined && couch.pid !== firstPid && (await answers(couch.url)), 20_000, 'the store to come back');
      const doc = (await (await fetch(`${couch.url}/crash_test/kept`)).json()) as { n: number };
      expect(doc.n).toBe(1);
    } finally {
      await couch.stop();
    }
    expect(await answers(couch.url)).toBe(false);
  });

  it('serves kpi-live with no COUCHDB_URL, dies with it even on SIGKILL, and starts again on the same data', async () => {
    const dataDir = tempDir();
    const env = { KPI_DATA_DIR: dataDir, PORT: String(await freeLoopbackPort()), LOG_LEVEL: 'info' };
    const first = startServiceProcess(['serve'], env);
    const using = await first.waitForLog((l) => l.msg === 'using embedded CouchDB store');
    await first.waitForLog((l) => l.msg === 'kpi-live listening');
    const storePid = using.pid as number;
    expect(isAlive(storePid)).toBe(true);
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
  });
});
