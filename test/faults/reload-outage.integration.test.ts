/**
 * A replaced checkpoint (a rebuild, a restored backup) meeting faults, each
 * shown with a proxy in front of the harness's store:
 * - the store fails the reload's read: the aggregate retries (phase
 *   `retrying`) and, once the store answers, counts every blob;
 * - the service closes before its next checkpoint, so the final checkpoint of
 *   `stop()` meets the replaced one: it does not follow the feed again.
 * A closed service's feed is answered by the proxy, never the store, so that
 * dropping the test's databases cannot meet one of its reads.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { ROOT_ID } from '../../src/aggregate/runtime/checkpoint.js';
import { rebuild } from '../../src/aggregate/runtime/rebuild.js';
import { StoreRequestError } from '../../src/store/store.js';
import { defaultSegmentConfig } from '../../src/aggregate/model/segments.js';
import { defaultRetention } from '../../src/aggregate/model/state.js';
import { ingest, nowTimestamp, startTestApp, type TestApp } from '../harness/app.js';
import { FaultProxy, type FaultRule } from '../harness/fault-proxy.js';
import { waitUntil } from '../harness/process.js';
import { HOUR } from '../../src/contract/kpis.js';

const blobs = (n: number) => Array.from({ length: n }, () => ({ timestamp: nowTimestamp(), event_stream: [['screen.rp_info', 5]] }));
const dialogs = (t: TestApp) => t.app.aggregates.kpis({ from: Date.now() - HOUR, to: Date.now() + HOUR, bucket: '10m' }).series[0]?.total.dialogs ?? 0;
const isRoot = (path: string, t: TestApp) => decodeURIComponent(path).endsWith(`/${t.config.dbName}_aggregates/${ROOT_ID}`);
/** The feed of a closed service: answered here, so the store never serves it while its databases are dropped. */
const feedAnsweredHere: FaultRule = (_method, path) =>
  path.endsWith('/_changes') ? { kind: 'answer', status: 503, body: { error: 'unavailable', reason: 'test over' } } : { kind: 'pass' };

/** Replaces the service's checkpoint root with an identical one of a new revision, as another writer would. */
async function replaceCheckpoint(t: TestApp): Promise<void> {
  const stateDb = `${t.config.dbName}_aggregates`;
  for (let attempt = 1; ; attempt++) {
    const root = await t.store.request<Record<string, unknown>>({ db: stateDb, path: ROOT_ID });
    try {
      await t.store.request({ method: 'PUT', db: stateDb, path: ROOT_ID, body: { ...root, savedAt: Date.now() } });
      return;
    } catch (err) {
      // the service committed between the read and the write: read its root again
      if (!(err instanceof StoreRequestError && err.statusCode === 409) || attempt >= 20) throw err;
    }
  }
}

async function closeContained(t: TestApp, proxy: FaultProxy): Promise<void> {
  proxy.rule = feedAnsweredHere;
  proxy.dropConnections();
  await new Promise((r) => setTimeout(r, 200));
  await t.close();
  await proxy.close();
}

describe('a checkpoint reload that meets a store error', () => {
  let proxy: FaultProxy;
  let t: TestApp;
  let refusedReads = 0;

  beforeAll(async () => {
    proxy = new FaultProxy(inject('couchUrl'));
    await proxy.open();
    t = await startTestApp({ couchdbUrl: proxy.url, feedLongpollMs: 500, checkpointEveryMs: 100, checkpointEveryChanges: 5 });
    await ingest(t, blobs(20));
    await waitUntil(() => dialogs(t) === 20 && t.app.aggregates.status().lastCheckpointAt !== null, 20_000, 'the first blobs counted and saved');

    // another writer replaces the checkpoint, and the store fails the service's next read of it
    await replaceCheckpoint(t);
    proxy.rule = (method, path) => {
      if (method !== 'GET' || !isRoot(path, t)) return { kind: 'pass' };
      refusedReads += 1;
      return { kind: 'answer', status: 500, body: { error: 'unknown_error', reason: 'disk read failed' } };
    };
    await ingest(t, blobs(10)); // its checkpoint meets the replaced root: the service reloads
    await waitUntil(() => refusedReads > 0, 20_000, 'the service to try to reload the checkpoint');
    proxy.rule = () => ({ kind: 'pass' });
    await ingest(t, blobs(10));
  });
  afterAll(async () => {
    await closeContained(t, proxy);
  });

  it('tried to reload from the replaced checkpoint while the store failed (the premise)', () => {
    console.log(
      `reload outage: ${refusedReads} read(s) of the checkpoint failed; the aggregate counts ${dialogs(t)} of 40 blobs, phase ${t.app.aggregates.status().phase}`,
    );
    expect(refusedReads).toBeGreaterThan(0);
  });

  it('once the store answers again, the aggregate goes on counting every blob', async () => {
    await waitUntil(() => dialogs(t) === 40, 5000, `the aggregate to count 40 blobs (has ${dialogs(t)})`);
  });
});

describe('closing the service right after a rebuild replaced its checkpoint', () => {
  let proxy: FaultProxy;
  let t: TestApp;
  let closed = false;
  let rootWritesWhileClosing = 0;
  let feedReadsAfterClose = 0;

  beforeAll(async () => {
    proxy = new FaultProxy(inject('couchUrl'));
    await proxy.open();
    // no checkpoint of its own before it closes
    t = await startTestApp({ couchdbUrl: proxy.url, feedLongpollMs: 500, checkpointEveryMs: 600_000, checkpointEveryChanges: 1_000_000 });
    await ingest(t, blobs(10));
    await waitUntil(() => dialogs(t) === 10, 20_000, 'the blobs counted');
    // `kpi-live rebuild` while the service runs: it writes the checkpoint
    await rebuild({
      store: t.store,
      blobsDb: t.store.blobsDb,
      stateDb: `${t.config.dbName}_aggregates`,
      segments: defaultSegmentConfig,
      retention: defaultRetention,
      batchSize: 100,
      log: pino({ level: 'silent' }),
    });
    proxy.rule = (method, path) => {
      if (!closed && method === 'PUT' && isRoot(path, t)) rootWritesWhileClosing += 1;
      if (closed && path.endsWith('/_changes')) feedReadsAfterClose += 1;
      return { kind: 'pass' };
    };
    await t.app.close();
    closed = true;
    await new Promise((r) => setTimeout(r, 1500));
  });
  afterAll(async () => {
    await closeContained(t, proxy);
  });

  it('wrote its last checkpoint over the rebuilt one while closing (the premise)', () => {
    console.log(
      `closing after a rebuild: ${rootWritesWhileClosing} checkpoint write(s) while closing, ${feedReadsAfterClose} read(s) of _changes in the 1.5 s after close`,
    );
    expect(rootWritesWhileClosing).toBeGreaterThan(0);
  });

  it('a closed service reads the feed no more', () => {
    expect(feedReadsAfterClose).toBe(0);
  });
});
