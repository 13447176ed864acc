/**
 * Known bug (aggregate): when the service finds its checkpoint replaced (a
 * rebuild, a restored backup) it reloads from it; if the store fails that
 * one read, the aggregate stops following the feed for good, with nothing
 * retrying and `/health` still saying `live`. Blobs stored afterwards are
 * never counted until kpi-live restarts. A proxy in front of the harness's
 * store fails the reload's read of the checkpoint. The `fails` test states
 * what should happen; remove `.fails` once the reload is retried.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { ROOT_ID } from '../../src/aggregate/checkpoint.js';
import { HOUR } from '../../src/aggregate/state.js';
import { ingest, nowTimestamp, startTestApp, type TestApp } from '../harness/app.js';
import { FaultProxy, pass } from '../harness/fault-proxy.js';
import { waitUntil } from '../harness/process.js';

describe('a checkpoint reload that meets a store error', () => {
  let proxy: FaultProxy;
  let t: TestApp;
  let refusedReads = 0;
  const blobs = (n: number) => Array.from({ length: n }, () => ({ timestamp: nowTimestamp(), event_stream: [['screen.rp_info', 5]] }));
  const dialogs = () => t.app.aggregates.kpis({ from: Date.now() - HOUR, to: Date.now() + HOUR, bucket: '10m' }).series[0]?.total.dialogs ?? 0;

  beforeAll(async () => {
    proxy = new FaultProxy(inject('couchUrl'));
    await proxy.open();
    t = await startTestApp({ couchdbUrl: proxy.url, feedLongpollMs: 500, checkpointEveryMs: 100, checkpointEveryChanges: 5 });
    await ingest(t, blobs(20));
    await waitUntil(() => dialogs() === 20 && t.app.aggregates.status().lastCheckpointAt !== null, 20_000, 'the first blobs counted and saved');

    // another writer replaces the checkpoint (as a rebuild does), and the store fails the service's next read of it
    const stateDb = `${t.config.dbName}_aggregates`;
    const root = await t.store.request<Record<string, unknown>>({ db: stateDb, path: ROOT_ID });
    await t.store.request({ method: 'PUT', db: stateDb, path: ROOT_ID, body: { ...root, savedAt: Date.now() } });
    proxy.rule = (method, path) => {
      if (method !== 'GET' || !decodeURIComponent(path).endsWith(`/${stateDb}/${ROOT_ID}`)) return { kind: 'pass' };
      refusedReads += 1;
      return { kind: 'answer', status: 500, body: { error: 'unknown_error', reason: 'disk read failed' } };
    };
    await ingest(t, blobs(10)); // its checkpoint meets the replaced root: the service reloads
    await waitUntil(() => refusedReads > 0, 20_000, 'the service to try to reload the checkpoint');
    proxy.rule = pass;
    await ingest(t, blobs(10));
  });
  afterAll(async () => {
    proxy.rule = pass;
    await t.close();
    await proxy.close();
  });

  it('tried to reload from the replaced checkpoint while the store failed (the premise)', () => {
    console.log(
      `reload outage: ${refusedReads} read(s) of the checkpoint failed; the aggregate counts ${dialogs()} of 40 blobs, phase ${t.app.aggregates.status().phase}`,
    );
    expect(refusedReads).toBeGreaterThan(0);
  });

  it.fails('known bug (aggregate): once the store answers again, the aggregate goes on counting every blob', async () => {
    await waitUntil(() => dialogs() === 40, 5000, `the aggregate to count 40 blobs (has ${dialogs()})`);
    expect(dialogs()).toBe(40);
  });
});
