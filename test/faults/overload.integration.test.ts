/**
 * Overload: `kpi-live serve` offered twice the rate `bench:ingest` measured
 * (2 × 5,641 blobs/s, one blob per POST) by autocannon, with a low rate
 * limit, a small ingest queue and a store whose writes take a while. Its
 * defences answer, and nothing else does: past the limit 429, past the queue
 * 503 + Retry-After, never an error, a timeout or a dropped connection. Every
 * 200 is stored, nothing refused is, the aggregate counts each blob once, and
 * the process's memory stays within a stated bound (its heap is capped too:
 * overflowing it would kill the process).
 *
 * The assertions are about outcomes, which the settings make certain: a
 * fixed number of requests from one address against a limit far below it in
 * a window far longer than the run, and 256 connections against a queue of 16
 * blobs behind one write at a time that the store holds for 30 ms.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';

import { freeLoopbackPort } from '../../src/store/embedded.js';
import { dropDb, nowTimestamp, uniqueDbName } from '../harness/app.js';
import { FaultProxy, pass } from '../harness/fault-proxy.js';
import { startServiceProcess, waitUntil, type ServiceProcess } from '../harness/process.js';
import { openHarnessStore, storedMarkers } from '../harness/verify.js';
import { HOUR, type KpiAnswer } from '../../src/contract/kpis.js';

/** `bench:ingest`'s measured group-commit rate on this machine (docs/testing.md). */
const BENCH_BLOBS_PER_SECOND = 5641;
const OFFERED_PER_SECOND = 2 * BENCH_BLOBS_PER_SECOND;
const REQUESTS = 25_600;
const CONNECTIONS = 256;
const RATE_LIMIT = 6000;
const QUEUE_DOCS = 16;
const RETRY_AFTER = 3;
const WARMUP = 20;
/** Heap cap of the service process, MiB. */
const HEAP_MIB = 160;
/** Peak RSS over the RSS after warm-up, at most. */
const RSS_GROWTH_BOUND = 128 * 2 ** 20;

// autocannon ships no types: only what is used here.
interface AutocannonRequest {
  body?: string;
  headers: Record<string, string>;
}
interface AutocannonContext {
  marker?: string;
}
interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  resets: number;
  statusCodeStats: Record<string, { count: number }>;
}
type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;

/** Resident and peak resident memory of a process, bytes (Linux). */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

const dbName = uniqueDbName('overload');

describe('ingest at twice the benchmark rate', () => {
  let proxy: FaultProxy;
  let service: ServiceProcess;
  let url: string;

  beforeAll(async () => {
    proxy = new FaultProxy(inject('couchUrl'));
    await proxy.open();
    // every write of blobs takes the store 30 ms: the queue fills, whatever the machine's speed
    proxy.rule = (method, path) => (method === 'POST' && path === `/${dbName}/_bulk_docs` ? { kind: 'delay', ms: 30 } : { kind: 'pass' });
    const port = await freeLoopbackPort();
    url = `http://127.0.0.1:${port}`;
    service = startServiceProcess(['serve'], {
      COUCHDB_URL: proxy.url,
      KPI_DB: dbName,
      PORT: String(port),
      LOG_LEVEL: 'error',
      NODE_OPTIONS: `--max-old-space-size=${HEAP_MIB}`,
      KPI_RATE_LIMIT_MAX: String(RATE_LIMIT),
      KPI_RATE_LIMIT_WINDOW_MS: '600000',
      KPI_COMMIT_QUEUE_DOCS: String(QUEUE_DOCS),
      KPI_COMMIT_BATCH_DOCS: '8',
      KPI_COMMIT_IN_FLIGHT: '1',
      KPI_RETRY_AFTER_SECONDS: String(RETRY_AFTER),
      KPI_FEED_LONGPOLL_MS: '1000',
    });
    await waitUntil(
      async () => {
        if (service.child.exitCode !== null) throw new Error(`kpi-live exited: ${service.stderr()}`);
        return (await fetch(`${url}/health`).catch(() => undefined))?.status === 200;
      },
      30_000,
      'kpi-live to answer',
    );
  });
  afterAll(async () => {
    proxy.rule = pass;
    if (service.child.exitCode === null) {
      service.child.kill('SIGTERM');
      await service.exited;
    }
    await proxy.close();
    for (const suffix of ['', '_aggregates', '_deploys']) await dropDb(`${dbName}${suffix}`);
  });

  it('answers 429 past the rate limit and 503 + Retry-After past the queue, stores every 200 and nothing else, in bounded memory', async () => {
    const blob = (marker: string) =>
      JSON.stringify({
        data: [
          {
            timestamp: nowTimestamp(),
            event_stream: [
              ['screen.rp_info', 5],
              ['screen.pick_email', 700],
            ],
            lang: 'en-US',
            rp_api: marker,
          },
        ],
      });
    for (let i = 0; i < WARMUP; i++) {
      const res = await fetch(`${url}/wsapi/interaction_data`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: blob(`warmup-${i}`) });
      expect(res.status).toBe(200);
    }
    const pid = service.child.pid!;
    const before = memoryOf(pid);

    const acked: string[] = [];
    const answers: Record<string, number> = {};
    const retryAfter: Record<string, Record<string, number>> = { '429': {}, '503': {} };
    let next = 0;
    const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;
    const result = await autocannon({
      url: `${url}/wsapi/interaction_data`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      connections: CONNECTIONS,
      overallRate: OFFERED_PER_SECOND,
      amount: REQUESTS,
      timeout: 20,
      requests: [
        {
          setupRequest: (request: AutocannonRequest, context: AutocannonContext) => {
            context.marker = `overload-${next++}`;
            request.body = blob(context.marker);
            return request;
          },
          onResponse: (status: number, _body: string, context: AutocannonContext, headers: Record<string, string>) => {
            answers[status] = (answers[status] ?? 0) + 1;
            if (status === 200) acked.push(context.marker!);
            if (status === 429 || status === 503) {
              const value = headers['retry-after'] ?? 'none';
              retryAfter[status]![value] = (retryAfter[status]![value] ?? 0) + 1;
            }
          },
        },
      ],
    });
    const after = memoryOf(pid);
    const growth = after.peak - before.rss;
    const answered = Object.values(answers).reduce((a, b) => a + b, 0);
    console.log(
      `overload: ${answered} requests offered at ${OFFERED_PER_SECOND}/s over ${CONNECTIONS} connections, all answered in ${result.duration.toFixed(1)} s ` +
        `(${Math.round(answered / result.duration)}/s: the service is saturated): ${JSON.stringify(answers)}; Retry-After ${JSON.stringify(retryAfter)}; ` +
        `errors ${result.errors}, timeouts ${result.timeouts}; RSS ${(before.rss / 2 ** 20).toFixed(0)} MiB after warm-up, peak ${(after.peak / 2 ** 20).toFixed(0)} MiB ` +
        `(growth ${(growth / 2 ** 20).toFixed(0)} MiB, bound ${RSS_GROWTH_BOUND / 2 ** 20} MiB; heap capped at ${HEAP_MIB} MiB)`,
    );

    // every request answered, by a defence or by storing it
    expect({ errors: result.errors, timeouts: result.timeouts, answered }).toEqual({ errors: 0, timeouts: 0, answered: REQUESTS });
    expect(Object.keys(answers).sort()).toEqual(['200', '429', '503']);
    // the limit counts every request of the window, warm-up included
    expect(answers['200']! + answers['503']!).toBe(RATE_LIMIT - WARMUP);
    expect(answers['429']).toBe(REQUESTS - (RATE_LIMIT - WARMUP));
    expect(Object.keys(retryAfter['503']!)).toEqual([String(RETRY_AFTER)]);
    expect(Object.keys(retryAfter['429']!)).not.toContain('none');
    expect(growth).toBeLessThan(RSS_GROWTH_BOUND);
    expect((await fetch(`${url}/health`)).status).toBe(200);

    const store = await openHarnessStore(dbName);
    try {
      const stored = await storedMarkers(store);
      const storedLoad = [...stored.keys()].filter((m) => m.startsWith('overload-'));
      expect(acked.filter((m) => !stored.has(m))).toEqual([]);
      // a 503 from a full queue or a 429 is refused before any write: nothing of it is stored
      expect(storedLoad.length).toBe(acked.length);
      const total = WARMUP + acked.length;
      const window = `from=${Date.now() - 2 * HOUR}&to=${Date.now() + HOUR}&bucket=10m`;
      const dialogs = async () => ((await fetch(`${url}/api/kpis?${window}`).then((r) => r.json())) as KpiAnswer).series[0]?.total.dialogs;
      await waitUntil(async () => (await dialogs()) === total, 30_000, `the aggregate to count ${total} blobs`);
    } finally {
      await store.close();
    }
  }, 120_000);
});
