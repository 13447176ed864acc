/**
 * The store answers, but fails or refuses writes: 500s on `_bulk_docs`, 403
 * on every write (a read-only database), or a 201 whose documents are each
 * refused. A loopback proxy in front of the harness's real store plays the
 * fault. Meanwhile ingest answers 503 + Retry-After (never 500), `/health`
 * says `degraded` and keeps answering, and the aggregate keeps running;
 * afterwards everything recovers by itself, with or without traffic. Refused
 * blobs are not stored, acknowledged ones are, each counted once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { queryKpis } from '../../src/aggregate/model/query.js';

import { WRITE_PROBE_QUIET_MS } from '../../src/store/store.js';
import { startTestApp, type TestApp } from '../harness/app.js';
import { FaultProxy, pass, type FaultRule } from '../harness/fault-proxy.js';
import { startMarkedLoad, type MarkedLoad } from '../harness/marked-load.js';
import { waitUntil } from '../harness/process.js';
import { missingMarkers, rebuiltState, storedCount, storedMarkers } from '../harness/verify.js';
import { HOUR } from '../../src/contract/kpis.js';

const RETRY_AFTER = 7;

const isWrite = (method: string, path: string) => method === 'PUT' || method === 'DELETE' || (method === 'POST' && !path.endsWith('/_all_docs'));

const faults: [name: string, rule: FaultRule, error: RegExp][] = [
  [
    'answers 500 to _bulk_docs',
    (method, path) =>
      method === 'POST' && path.endsWith('/_bulk_docs')
        ? { kind: 'answer', status: 500, body: { error: 'unknown_error', reason: 'function_clause' } }
        : { kind: 'pass' },
    /store answered 500/,
  ],
  [
    'refuses every write with 403 (a read-only database)',
    (method, path) =>
      isWrite(method, path) ? { kind: 'answer', status: 403, body: { error: 'forbidden', reason: 'the database is read-only' } } : { kind: 'pass' },
    /store answered 403: the database is read-only/,
  ],
  [
    'refuses each document of a _bulk_docs',
    (method, path) =>
      method === 'POST' && path.endsWith('/_bulk_docs')
        ? {
            kind: 'answer',
            status: 201,
            body: undefined,
            bodyFrom: (text) =>
              (JSON.parse(text) as { docs: { _id: string }[] }).docs.map((d) => ({ id: d._id, error: 'forbidden', reason: 'quota exceeded' })),
          }
        : { kind: 'pass' },
    /store refused a document: forbidden: quota exceeded/,
  ],
];

describe('the store fails or refuses writes', () => {
  let proxy: FaultProxy;
  let t: TestApp;
  let url: string;
  const acked: string[] = [];
  const answers: Record<string, number> = {};
  const retryAfter = new Set<string>();

  beforeAll(async () => {
    proxy = new FaultProxy(inject('couchUrl'));
    await proxy.open();
    t = await startTestApp(
      {
        couchdbUrl: proxy.url,
        couchdbTimeoutMs: 2000,
        retryAfterSeconds: RETRY_AFTER,
        feedLongpollMs: 1000,
        checkpointEveryMs: 200,
        checkpointEveryChanges: 50,
      },
      { listen: true },
    );
    url = `http://127.0.0.1:${(t.app.server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    proxy.rule = pass;
    await t.close();
    await proxy.close();
  });

  const health = async () => {
    const res = await t.app.inject('/health');
    return { statusCode: res.statusCode, body: res.json() as { status: string; store: Record<string, unknown>; aggregate: { phase: string } } };
  };
  const run = (name: string): MarkedLoad =>
    startMarkedLoad({ url: () => url, concurrency: 4, prefix: `store-errors-${name}`, seed: name.length, timeoutMs: 15_000 });
  const finished = new Set<MarkedLoad>();
  const finish = async (load: MarkedLoad) => {
    if (finished.has(load)) return;
    finished.add(load);
    await load.stop();
    acked.push(...load.acked);
    for (const [status, n] of Object.entries(load.statuses)) answers[status] = (answers[status] ?? 0) + n;
    for (const value of Object.keys(load.retryAfter)) retryAfter.add(value);
  };
  const grows = async (load: MarkedLoad, n: number, what: string) => {
    const target = load.acked.length + n;
    await waitUntil(() => load.acked.length >= target, 30_000, what);
  };

  it.each(faults.map(([name, rule, error], i) => ({ name, rule, error, quiet: i === 1 })))(
    'when the store $name: 503 + Retry-After, health degraded, then recovery',
    async ({ name, rule, error, quiet }) => {
      let load = run(name.split(' ')[0]!);
      try {
        await grows(load, 30, 'blobs stored before the fault');
        expect((await health()).body.status).toBe('ok');

        proxy.rule = rule;
        const refusedBefore = load.statuses['503'] ?? 0;
        await waitUntil(() => (load.statuses['503'] ?? 0) >= refusedBefore + 20, 20_000, 'ingest to answer 503');
        const during = await health();
        expect(during.statusCode).toBe(200);
        expect(during.body).toMatchObject({ status: 'degraded', store: { reachable: true, writable: false, writeError: expect.stringMatching(error) } });
        expect(during.body.aggregate.phase).not.toBe('failed');

        if (quiet) {
          // no traffic: health probes a write itself, and sees it refused until the store heals
          await finish(load);
          await new Promise((r) => setTimeout(r, WRITE_PROBE_QUIET_MS + 100));
          expect((await health()).body).toMatchObject({ status: 'degraded', store: { writeError: expect.stringMatching(error) } });
          proxy.rule = pass;
          await waitUntil(async () => (await health()).body.status === 'ok', 10_000, 'health to see writes work again');
          load = run(`${name.split(' ')[0]!}-after`);
          await grows(load, 30, 'blobs stored after the fault');
        } else {
          proxy.rule = pass;
          await grows(load, 30, 'blobs stored after the fault');
          await waitUntil(async () => (await health()).body.status === 'ok', 10_000, 'health to be ok again');
        }
      } finally {
        proxy.rule = pass;
        await finish(load);
      }
      expect(Object.keys(answers).sort()).toEqual(['200', '503']);
      expect([...retryAfter]).toEqual([String(RETRY_AFTER)]);
    },
  );

  it('stored exactly the acknowledged blobs, and the aggregate counts each once', async () => {
    proxy.rule = pass;
    const stored = await storedMarkers(t.store);
    console.log(
      `store errors: answers ${JSON.stringify(answers)}, Retry-After ${[...retryAfter].join(',')}; ${acked.length} acknowledged, ${storedCount(stored)} stored`,
    );
    expect(missingMarkers(acked, stored)).toEqual([]);
    // the faults answered for the store: nothing refused reached it
    expect(storedCount(stored)).toBe(acked.length);
    const window = { from: Date.now() - 2 * HOUR, to: Date.now() + HOUR, bucket: '10m' as const };
    const dialogs = () => t.app.aggregates.kpis(window).series[0]?.total.dialogs ?? 0;
    await waitUntil(() => dialogs() === acked.length, 30_000, `the aggregate to count ${acked.length} blobs (has ${dialogs()})`);
    const rebuilt = await rebuiltState(t.store);
    for (const segment of [undefined, 'browser'] as const) {
      expect(t.app.aggregates.kpis({ ...window, segment })).toEqual(queryKpis(rebuilt.state, { ...window, segment }));
    }
    expect(t.app.aggregates.status().phase).toBe('live');
  });
});
