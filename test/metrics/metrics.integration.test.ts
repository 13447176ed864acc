/**
 * `GET /metrics` and the probes on the harness's CouchDB: the exposition
 * parses (every sample `name{labels} value`, every family with HELP and
 * TYPE, valid names, histograms cumulative with `+Inf` = `_count`),
 * counters move by exactly what was done (ingest 200s, a 400, an opt-out,
 * sampling, a WebSocket client), who may scrape, and readiness following
 * the store and the aggregate's lag.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { WebSocket } from 'ws';
import type { ServerMessage } from '../../src/contract/stream.js';
import { nowTimestamp, startTestApp, TEST_TOKEN, type TestApp } from '../harness/app.js';
import { FaultProxy } from '../harness/fault-proxy.js';
import { waitUntil } from '../harness/process.js';
import { TcpProxy } from '../harness/tcp-proxy.js';

// ---- a tiny parser of the text format, strict about what kpi-live writes ----

interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface ParsedFamily {
  help: string;
  type: string;
  samples: ParsedSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;
const VALUE = /^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$/;

function unescape(value: string): string {
  return value.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

function parseLabels(text: string | undefined, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  if (text === undefined) return labels;
  LABEL.lastIndex = 0;
  while (LABEL.lastIndex < text.length) {
    const start = LABEL.lastIndex;
    const m = LABEL.exec(text);
    if (!m || m.index !== start) throw new Error(`bad labels in: ${line}`);
    if (m[1]! in labels) throw new Error(`label ${m[1]} twice in: ${line}`);
    labels[m[1]!] = unescape(m[2]!);
    if (m[3] === '') break;
  }
  if (LABEL.lastIndex !== text.length) throw new Error(`bad labels in: ${line}`);
  return labels;
}

/** Parses an exposition and checks its rules; throws naming the line at fault. */
function parseExposition(text: string): Map<string, ParsedFamily> {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a line feed');
  const families = new Map<string, ParsedFamily>();
  let current: string | undefined;
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ')) {
      const [, name, help] = /^# HELP (\S+) (.*)$/.exec(line) ?? [];
      if (!name || !NAME.test(name)) throw new Error(`bad HELP: ${line}`);
      if (families.has(name)) throw new Error(`family ${name} listed twice`);
      families.set(name, { help: help!, type: '', samples: [] });
      current = name;
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [, name, type] = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line) ?? [];
      if (!name || name !== current || families.get(name)!.type !== '') throw new Error(`TYPE must follow its HELP: ${line}`);
      families.get(name)!.type = type!;
      continue;
    }
    if (line.startsWith('#') || line === '') throw new Error(`unexpected line: ${JSON.stringify(line)}`);
    const m = SAMPLE.exec(line);
    if (!m || !VALUE.test(m[3]!)) throw new Error(`bad sample line: ${line}`);
    const name = m[1]!;
    const family = current === undefined ? undefined : families.get(current)!;
    const base = family?.type === 'histogram' ? name.replace(/_(bucket|sum|count)$/, '') : name;
    if (!family || base !== current || family.type === '') throw new Error(`sample outside its family (HELP and TYPE first): ${line}`);
    const raw = m[3]!;
    family.samples.push({ name, labels: parseLabels(m[2], line), value: raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw) });
  }
  for (const [name, family] of families) {
    if (family.type === 'counter' && !name.endsWith('_total')) throw new Error(`counter ${name} must end in _total`);
    if (family.type !== 'counter' && name.endsWith('_total')) throw new Error(`${name} ends in _total but is a ${family.type}`);
    if (family.type === 'histogram') checkHistogram(name, family);
  }
  return families;
}

function checkHistogram(name: string, family: ParsedFamily): void {
  const buckets = family.samples.filter((s) => s.name === `${name}_bucket`);
  const count = family.samples.find((s) => s.name === `${name}_count`);
  const sum = family.samples.find((s) => s.name === `${name}_sum`);
  if (!count || !sum || buckets.length === 0) throw new Error(`histogram ${name} lacks _bucket, _sum or _count`);
  let previousLe = -Infinity;
  let previous = 0;
  for (const b of buckets) {
    const le = b.labels.le === '+Inf' ? Infinity : Number(b.labels.le);
    if (!(le > previousLe)) throw new Error(`histogram ${name}: le must increase`);
    if (b.value < previous) throw new Error(`histogram ${name}: buckets must be cumulative`);
    previousLe = le;
    previous = b.value;
  }
  if (previousLe !== Infinity) throw new Error(`histogram ${name}: the last bucket must be +Inf`);
  if (previous !== count.value) throw new Error(`histogram ${name}: +Inf (${previous}) must equal _count (${count.value})`);
}

/** The value of one sample; undefined when absent. */
function value(families: Map<string, ParsedFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  const base = families.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
  return families
    .get(base)
    ?.samples.find(
      (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === Object.keys(labels).length,
    )?.value;
}

const AUTH = { authorization: `Bearer ${TEST_TOKEN}` };

async function scrape(t: TestApp, headers: Record<string, string> = AUTH): Promise<Map<string, ParsedFamily>> {
  const res = await t.app.inject({ url: '/metrics', headers });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parseExposition(res.body);
}

const blob = (i: number) => ({ timestamp: nowTimestamp(), event_stream: [['screen.rp_info', i]], lang: 'en-US' });
const post = (t: TestApp, data: unknown, headers: Record<string, string> = {}) =>
  t.app.inject({
    method: 'POST',
    url: '/wsapi/interaction_data',
    headers: { 'content-type': 'application/json', ...headers },
    payload: JSON.stringify({ data }),
  });

describe('parseExposition (the test parser itself)', () => {
  it('refuses what breaks the format', () => {
    expect(() => parseExposition('# HELP a A.\n# TYPE a gauge\na 1\n')).not.toThrow();
    expect(() => parseExposition('a 1\n')).toThrow(/HELP and TYPE/);
    expect(() => parseExposition('# HELP a A.\n# TYPE a gauge\na{x="1} 1\n')).toThrow();
    expect(() => parseExposition('# HELP a A.\n# TYPE a gauge\na one\n')).toThrow(/bad sample/);
    expect(() => parseExposition('# HELP a A.\n# TYPE a counter\na 1\n')).toThrow(/_total/);
    expect(() => parseExposition('# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n')).toThrow(/cumulative/);
    expect(() => parseExposition('# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n')).toThrow(/_count/);
    expect(parseExposition('# HELP a A.\n# TYPE a gauge\na{p="x\\"y\\\\z\\n"} 1\n').get('a')!.samples[0]!.labels.p).toBe('x"y\\z\n');
  });
});

describe('GET /metrics', () => {
  let t: TestApp;
  beforeAll(async () => {
    // no loopback trust: scraping needs the token, as a real scraper's would
    t = await startTestApp({ trustLoopback: false, streamCoalesceMs: 50, feedLongpollMs: 1000 }, { listen: true });
  });
  afterAll(async () => {
    await t.close();
  });

  it('needs a reader unless KPI_METRICS_PUBLIC', async () => {
    const none = await t.app.inject('/metrics');
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expect((await t.app.inject({ url: '/metrics', headers: { authorization: 'Bearer not-a-token' } })).statusCode).toBe(401);
    expect((await t.app.inject({ url: '/metrics', headers: AUTH })).statusCode).toBe(200);
  });

  it('parses, and every family kpi-live promises is there', async () => {
    const m = await scrape(t);
    for (const name of [
      'kpi_ingest_requests_total',
      'kpi_ingest_blobs_stored_total',
      'kpi_ingest_blobs_sampled_out_total',
      'kpi_ingest_opted_out_requests_total',
      'kpi_ingest_batch_docs',
      'kpi_ingest_flush_seconds',
      'kpi_ingest_write_errors_total',
      'kpi_ingest_queue_docs',
      'kpi_ingest_writes_in_flight',
      'kpi_aggregate_phase',
      'kpi_aggregate_lag_changes',
      'kpi_aggregate_lag_seconds',
      'kpi_aggregate_counted_total',
      'kpi_aggregate_duplicates_total',
      'kpi_aggregate_deletions_total',
      'kpi_aggregate_checkpoint_age_seconds',
      'kpi_aggregate_watermark_timestamp_seconds',
      'kpi_aggregate_applied_ranges',
      'kpi_aggregate_applied_runs',
      'kpi_aggregate_buckets',
      'kpi_lease_follower',
      'kpi_lease_takeovers_total',
      'kpi_lease_expires_in_seconds',
      'kpi_live_clients',
      'kpi_live_sockets',
      'kpi_live_connections_total',
      'kpi_live_snapshots_sent_total',
      'kpi_live_deltas_sent_total',
      'kpi_live_overflows_total',
      'kpi_live_heartbeat_drops_total',
      'kpi_store_info',
      'kpi_store_reachable',
      'kpi_store_writable',
      'kpi_store_request_errors_total',
      'kpi_retention_removed_total',
      'kpi_retention_passes_total',
      'kpi_retention_running',
      'kpi_retention_last_pass_timestamp_seconds',
      'kpi_retention_last_pass_error',
      'kpi_alerts_breached',
      'kpi_alerts_webhook_sent_total',
      'kpi_alerts_webhook_failed_total',
      'kpi_alerts_webhook_dropped_total',
      'kpi_alerts_webhook_queued',
      'kpi_build_info',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
      'nodejs_heap_size_total_bytes',
      'nodejs_eventloop_lag_p99_seconds',
      'process_cpu_seconds_total',
      'process_start_time_seconds',
      'process_uptime_seconds',
    ]) {
      expect(m.has(name), name).toBe(true);
      expect(m.get(name)!.help.length, `HELP of ${name}`).toBeGreaterThan(0);
    }
    expect(value(m, 'kpi_store_reachable')).toBe(1);
    expect(value(m, 'kpi_store_writable')).toBe(1);
    expect(value(m, 'kpi_store_info', { kind: t.store.kind })).toBe(1);
    expect(value(m, 'process_resident_memory_bytes')).toBeGreaterThan(1_000_000);
    expect(value(m, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect(value(m, 'process_uptime_seconds')).toBeGreaterThan(0);
    // one phase at a time
    expect(m.get('kpi_aggregate_phase')!.samples.reduce((sum, s) => sum + s.value, 0)).toBe(1);
  });

  it('counts ingest by exactly what was done: 200s, a 400, an opt-out', async () => {
    await waitUntil(() => t.app.aggregates.status().phase === 'live', 10_000, 'the aggregate live');
    const before = await scrape(t);
    const countedBefore = t.app.aggregates.status().counted;

    for (let r = 0; r < 3; r++) {
      const res = await post(t, [blob(r * 2 + 1), blob(r * 2 + 2)]);
      expect(res.json()).toEqual({ success: true, stored: 2 });
    }
    const bad = await post(t, [{ timestamp: nowTimestamp(), event_stream: 'not a list' }]);
    expect(bad.statusCode).toBe(400);
    const optOut = await post(t, [blob(99)], { dnt: '1' });
    expect(optOut.json()).toEqual({ success: true, stored: 0, optedOut: true });
    await waitUntil(() => t.app.aggregates.status().counted >= countedBefore + 6, 10_000, 'the blobs counted');
    const after = await scrape(t);

    const delta = (name: string, labels: Record<string, string> = {}) => (value(after, name, labels) ?? 0) - (value(before, name, labels) ?? 0);
    expect(delta('kpi_ingest_requests_total', { status: '200' })).toBe(4);
    expect(delta('kpi_ingest_requests_total', { status: '400' })).toBe(1);
    expect(delta('kpi_ingest_blobs_stored_total')).toBe(6);
    expect(delta('kpi_ingest_opted_out_requests_total')).toBe(1);
    expect(delta('kpi_ingest_blobs_sampled_out_total')).toBe(0);
    // one write per request here (they came one after the other), 2 blobs each
    expect(delta('kpi_ingest_batch_docs_count')).toBe(3);
    expect(delta('kpi_ingest_batch_docs_sum')).toBe(6);
    expect(delta('kpi_ingest_batch_docs_bucket', { le: '2' })).toBe(3);
    expect(delta('kpi_ingest_batch_docs_bucket', { le: '1' })).toBe(0);
    expect(delta('kpi_ingest_flush_seconds_count')).toBe(3);
    expect(delta('kpi_ingest_flush_seconds_sum')).toBeGreaterThan(0);
    expect(delta('kpi_ingest_write_errors_total')).toBe(0);
    expect(value(after, 'kpi_ingest_queue_docs')).toBe(0);
    expect(value(after, 'kpi_ingest_writes_in_flight')).toBe(0);
    expect(delta('kpi_aggregate_counted_total')).toBe(t.app.aggregates.status().counted - countedBefore);
    expect(delta('kpi_aggregate_counted_total')).toBe(6);
    expect(value(after, 'kpi_aggregate_phase', { phase: 'live' })).toBe(1);
    expect(value(after, 'kpi_aggregate_lag_seconds')).toBe(0);
    expect(value(after, 'kpi_aggregate_watermark_timestamp_seconds')).toBe(t.app.aggregates.status().watermark / 1000);
    // the state holds the 10-minute buckets of these blobs; 1h and 1d are listed, at 0 here
    expect(value(after, 'kpi_aggregate_buckets', { size: '10m' })).toBeGreaterThan(0);
    expect(value(after, 'kpi_aggregate_buckets', { size: '1h' })).toBe(0);
    expect(value(after, 'kpi_aggregate_buckets', { size: '1d' })).toBe(0);
    expect(after.get('kpi_aggregate_buckets')!.samples.reduce((n, s) => n + s.value, 0)).toBe(
      t.app.aggregates.status().buckets.reduce((n, b) => n + b.count, 0),
    );
    // counters never go down between scrapes
    for (const [name, family] of after) {
      if (family.type !== 'counter') continue;
      for (const s of family.samples) {
        const earlier = value(before, name, s.labels);
        if (earlier !== undefined) expect(s.value, `${name} ${JSON.stringify(s.labels)}`).toBeGreaterThanOrEqual(earlier);
      }
    }
  });

  it('shows the lease of a single instance: the follower, taken once, with time left on it', async () => {
    await waitUntil(() => t.app.leadership.status().following, 10_000, 'following the feed');
    const m = await scrape(t);
    expect(m.get('kpi_lease_follower')!.type).toBe('gauge');
    expect(m.get('kpi_lease_takeovers_total')!.type).toBe('counter');
    expect(value(m, 'kpi_lease_follower')).toBe(1);
    expect(value(m, 'kpi_lease_takeovers_total')).toBe(1);
    const ttlSeconds = t.config.leaseTtlMs / 1000;
    const left = value(m, 'kpi_lease_expires_in_seconds');
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(ttlSeconds + 1); // the store's clock is read to the second
  });

  it('counts retention passes by outcome', async () => {
    await waitUntil(() => t.app.retention.status().lastRunAt !== null, 10_000, 'the pass at start');
    const before = await scrape(t);
    expect(before.get('kpi_retention_passes_total')!.type).toBe('counter');
    const ok = value(before, 'kpi_retention_passes_total', { outcome: 'ok' });
    expect(ok).toBeGreaterThanOrEqual(1);
    expect(value(before, 'kpi_retention_passes_total', { outcome: 'failed' })).toBe(0);
    expect(value(before, 'kpi_retention_last_pass_error')).toBe(0);

    expect((await t.app.retention.runNow()).error).toBeUndefined();
    const after = await scrape(t);
    expect(value(after, 'kpi_retention_passes_total', { outcome: 'ok' })).toBe(ok! + 1);
    expect(value(after, 'kpi_retention_passes_total', { outcome: 'failed' })).toBe(0);
  });

  it('counts a WebSocket client, its snapshot and its deltas', async () => {
    const before = await scrape(t);
    const { port } = t.app.server.address() as { port: number };
    const socket = new WebSocket(`ws://127.0.0.1:${port}/api/live`, { headers: AUTH });
    const messages: ServerMessage[] = [];
    socket.on('message', (data) => messages.push(JSON.parse(data.toString()) as ServerMessage));
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    socket.send(JSON.stringify({ type: 'hello', subscribe: { rangeMs: 6 * 3_600_000 } }));
    await waitUntil(() => messages.some((msg) => msg.type === 'snapshot'), 5000, 'the snapshot');

    const connected = await scrape(t);
    expect(value(connected, 'kpi_live_clients')).toBe(1);
    expect(value(connected, 'kpi_live_sockets')).toBe(1);
    const delta = (now: Map<string, ParsedFamily>, name: string) => (value(now, name) ?? 0) - (value(before, name) ?? 0);
    expect(delta(connected, 'kpi_live_connections_total')).toBe(1);
    expect(delta(connected, 'kpi_live_snapshots_sent_total')).toBe(1);

    expect((await post(t, [blob(7)])).statusCode).toBe(200);
    await waitUntil(() => messages.some((msg) => msg.type === 'delta'), 10_000, 'a delta');
    // once the client holds the aggregate's current version, no flush has more to send it
    await waitUntil(
      () => {
        const last = messages.at(-1);
        return (last?.type === 'delta' || last?.type === 'snapshot') && last.version === t.app.aggregates.version().version;
      },
      10_000,
      'the client to hold the current version',
    );
    const updated = await scrape(t);
    expect(delta(updated, 'kpi_live_deltas_sent_total')).toBe(messages.filter((msg) => msg.type === 'delta').length);
    expect(delta(updated, 'kpi_live_snapshots_sent_total')).toBe(messages.filter((msg) => msg.type === 'snapshot').length);
    expect(delta(updated, 'kpi_live_overflows_total')).toBe(0);

    socket.close();
    await waitUntil(async () => value(await scrape(t), 'kpi_live_clients') === 0, 5000, 'the client gone');
    expect(value(await scrape(t), 'kpi_live_sockets')).toBe(0);
  });
});

describe('GET /metrics with KPI_METRICS_PUBLIC and a server sample rate', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ trustLoopback: false, metricsPublic: true, sampleRate: 0.5 });
  });
  afterAll(async () => {
    await t.close();
  });

  it('serves anyone, and counts sampled-out blobs exactly', async () => {
    const before = await scrape(t, {});
    const res = await post(
      t,
      Array.from({ length: 20 }, (_, i) => blob(i + 1)),
    );
    expect(res.statusCode).toBe(200);
    const stored = (res.json() as { stored: number }).stored;
    const after = await scrape(t, {});
    expect((value(after, 'kpi_ingest_blobs_stored_total') ?? 0) - (value(before, 'kpi_ingest_blobs_stored_total') ?? 0)).toBe(stored);
    expect((value(after, 'kpi_ingest_blobs_sampled_out_total') ?? 0) - (value(before, 'kpi_ingest_blobs_sampled_out_total') ?? 0)).toBe(20 - stored);
  });
});

describe('probes', () => {
  let proxy: TcpProxy;
  let t: TestApp;
  beforeAll(async () => {
    proxy = await TcpProxy.inFrontOf(inject('couchUrl'));
    t = await startTestApp({ couchdbUrl: proxy.urlFor(inject('couchUrl')), couchdbTimeoutMs: 2000, retryAfterSeconds: 7, feedLongpollMs: 1000 });
  });
  afterAll(async () => {
    await proxy.open().catch(() => undefined);
    await t.close();
    await proxy.cut();
  });

  it('readiness goes 503 + Retry-After while the store is away, liveness stays 200, and both come back', async () => {
    await waitUntil(async () => (await t.app.inject('/health/ready')).statusCode === 200, 10_000, 'ready');
    const ready = await t.app.inject('/health/ready');
    expect(ready.json()).toMatchObject({
      status: 'ready',
      reasons: [],
      store: { reachable: true },
      aggregate: { phase: 'live', lagSeconds: 0 },
      maxLagSeconds: 60,
    });
    const errorsBefore = value(await scrape(t), 'kpi_store_request_errors_total', { kind: 'connection' }) ?? 0;

    await proxy.cut();
    const down = await t.app.inject('/health/ready');
    expect(down.statusCode).toBe(503);
    expect(down.headers['retry-after']).toBe('7');
    expect(down.json()).toMatchObject({ status: 'not-ready', reasons: ['the store does not answer'], store: { reachable: false } });
    const live = await t.app.inject('/health/live');
    expect(live.statusCode).toBe(200);
    expect(live.json()).toMatchObject({ status: 'live' });
    const m = await scrape(t);
    expect(value(m, 'kpi_store_reachable')).toBe(0);
    expect(value(m, 'kpi_store_writable')).toBe(0);
    expect(value(m, 'kpi_store_request_errors_total', { kind: 'connection' })).toBeGreaterThan(errorsBefore);

    await proxy.open();
    await waitUntil(async () => (await t.app.inject('/health/ready')).statusCode === 200, 15_000, 'ready again');
    expect(value(await scrape(t), 'kpi_store_reachable')).toBe(1);
    // /health keeps its own answer
    expect((await t.app.inject('/health')).json()).toMatchObject({ status: 'ok' });
  });
});

describe('readiness and the aggregate lag', () => {
  let proxy: FaultProxy;
  let t: TestApp;
  beforeAll(async () => {
    proxy = new FaultProxy(inject('couchUrl'));
    await proxy.open();
    t = await startTestApp({ couchdbUrl: proxy.url, readyMaxLagSeconds: 1, feedLongpollMs: 500, retryAfterSeconds: 3 });
  });
  afterAll(async () => {
    proxy.rule = () => ({ kind: 'pass' });
    await t.close();
    await proxy.close();
  });

  it('goes 503 when the feed fails for longer than KPI_READY_MAX_LAG_SECONDS while the store answers, and 200 once it follows again', async () => {
    await waitUntil(async () => (await t.app.inject('/health/ready')).statusCode === 200, 10_000, 'ready');
    proxy.rule = (_method, path) =>
      path.endsWith('/_changes') ? { kind: 'answer', status: 500, body: { error: 'unknown_error', reason: 'feed broken by the test' } } : { kind: 'pass' };
    await waitUntil(async () => (await t.app.inject('/health/ready')).statusCode === 503, 10_000, 'not ready');
    const down = await t.app.inject('/health/ready');
    expect(down.headers['retry-after']).toBe('3');
    const body = down.json() as { reasons: string[]; store: { reachable: boolean }; aggregate: { phase: string; lagSeconds: number } };
    expect(body.store.reachable).toBe(true);
    expect(body.reasons).toHaveLength(1);
    expect(body.reasons[0]).toMatch(/^the aggregate has been behind the feed for \d+ s \(at most 1 s\)$/);
    const m = await scrape(t);
    expect(value(m, 'kpi_aggregate_phase', { phase: 'retrying' })).toBe(1);
    expect(value(m, 'kpi_aggregate_lag_seconds')).toBeGreaterThanOrEqual(1);
    expect(value(m, 'kpi_store_request_errors_total', { kind: 'unavailable' })).toBeGreaterThan(0);

    proxy.rule = () => ({ kind: 'pass' });
    await waitUntil(async () => (await t.app.inject('/health/ready')).statusCode === 200, 15_000, 'ready again');
  });
});
