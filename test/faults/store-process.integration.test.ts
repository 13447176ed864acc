/**
 * The embedded store's process goes away under load and comes back: killed
 * (its supervisor starts it again on the same data) and frozen (SIGSTOP: it
 * holds every connection and answers nothing). Meanwhile ingest answers 503
 * + Retry-After, never 500 and never later than its store timeouts allow;
 * afterwards every acknowledged blob is stored, and the aggregate counts the
 * stored blobs exactly once (it equals a rebuild from them).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryKpis } from '../../src/aggregate/model/query.js';

import { startTestApp, type TestApp } from '../harness/app.js';
import { startMarkedLoad, type MarkedLoad } from '../harness/marked-load.js';
import { isAlive, waitUntil } from '../harness/process.js';
import { missingMarkers, rebuiltState, storedCount, storedMarkers } from '../harness/verify.js';
import { HOUR } from '../../src/contract/kpis.js';

const STORE_TIMEOUT_MS = 1000;
const RETRY_AFTER = 5;
/** An answer may wait for a write slot, then for its own write: two store timeouts, plus slack. */
const SLOWEST_ANSWER_MS = 2 * STORE_TIMEOUT_MS + 3000;

describe('the embedded store process stops under load', () => {
  let t: TestApp;
  let dataDir: string;
  let frozen: number | undefined;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'kpi-live-fault-store-'));
    t = await startTestApp(
      {
        couchdbUrl: undefined, // kpi-live starts its own embedded store
        dataDir,
        couchdbTimeoutMs: STORE_TIMEOUT_MS,
        retryAfterSeconds: RETRY_AFTER,
        feedLongpollMs: 1000,
        checkpointEveryMs: 200,
        checkpointEveryChanges: 100,
      },
      { listen: true },
    );
    expect(t.store.kind).toBe('embedded');
  });
  afterAll(async () => {
    if (frozen !== undefined && isAlive(frozen)) process.kill(frozen, 'SIGCONT');
    await t?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers 503 + Retry-After while the store is killed or frozen, loses no acknowledged blob and counts each stored blob once', async () => {
    const { port } = t.app.server.address() as { port: number };
    const url = `http://127.0.0.1:${port}`;
    const embedded = t.store.embedded!;
    const load: MarkedLoad = startMarkedLoad({ url: () => url, concurrency: 8, prefix: 'store-process', seed: 23, timeoutMs: SLOWEST_ANSWER_MS });
    const refused = () => load.statuses['503'] ?? 0;
    const ackedGrowsBy = async (n: number, what: string) => {
      const target = load.acked.length + n;
      await waitUntil(() => load.acked.length >= target, 30_000, what);
    };
    let health: { statusCode: number; retryAfter: unknown; body: unknown } | undefined;
    try {
      await ackedGrowsBy(100, 'blobs stored before the faults');

      // 1. killed: the supervisor notices and starts it again on the same data
      const killed = embedded.pid!;
      process.kill(killed, 'SIGKILL');
      let refusedBefore = refused();
      await waitUntil(() => refused() > refusedBefore, 10_000, 'ingest to answer 503 while the store is dead');
      await waitUntil(() => embedded.pid !== undefined && embedded.pid !== killed, 30_000, 'the store to be restarted');
      await ackedGrowsBy(100, 'blobs stored after the restart');

      // 2. frozen: connections are accepted and never answered
      frozen = embedded.pid!;
      process.kill(frozen, 'SIGSTOP');
      refusedBefore = refused();
      await waitUntil(() => refused() > refusedBefore + 8, 15_000, 'ingest to answer 503 while the store is frozen');
      const answer = await t.app.inject('/health');
      health = { statusCode: answer.statusCode, retryAfter: answer.headers['retry-after'], body: answer.json() };
      process.kill(frozen, 'SIGCONT');
      frozen = undefined;
      await ackedGrowsBy(100, 'blobs stored after the store thawed');
    } finally {
      await load.stop();
    }

    console.log(
      `store process: ${load.sent} requests, answers ${JSON.stringify(load.statuses)}, Retry-After ${JSON.stringify(load.retryAfter)}, ` +
        `slowest answer ${load.slowestMs} ms (bound ${SLOWEST_ANSWER_MS} ms)`,
    );
    expect(health).toMatchObject({ statusCode: 503, retryAfter: String(RETRY_AFTER), body: { status: 'unavailable', store: { reachable: false } } });
    // only "stored" and "retry later": no 500, no hang, no dropped connection
    expect(Object.keys(load.statuses).sort()).toEqual(['200', '503']);
    expect(Object.keys(load.retryAfter)).toEqual([String(RETRY_AFTER)]);
    expect(load.slowestMs).toBeLessThan(SLOWEST_ANSWER_MS);

    const stored = await storedMarkers(t.store);
    expect(missingMarkers(load.acked, stored)).toEqual([]);
    // the pipeline resumed: every stored blob counted, none twice
    const window = { from: Date.now() - 2 * HOUR, to: Date.now() + HOUR, bucket: '10m' as const };
    const dialogs = () => t.app.aggregates.kpis(window).series[0]?.total.dialogs ?? 0;
    await waitUntil(() => dialogs() === storedCount(stored), 60_000, `the aggregate to count ${storedCount(stored)} blobs (has ${dialogs()})`);
    const rebuilt = await rebuiltState(t.store);
    expect(rebuilt.counted).toBe(storedCount(stored));
    for (const segment of [undefined, 'os', 'locale'] as const) {
      expect(t.app.aggregates.kpis({ ...window, segment })).toEqual(queryKpis(rebuilt.state, { ...window, segment }));
    }
    console.log(
      `store process: ${load.acked.length} acknowledged, ${storedCount(stored)} stored ` +
        `(${storedCount(stored) - load.acked.length} of them answered 503: the store took them after kpi-live gave up), all counted once`,
    );
  }, 120_000);
});
