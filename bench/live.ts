/**
 * Live-stream benchmark: how soon a blob reaches a dashboard, what 500 open
 * dashboards cost the service, and how long the dashboard takes to draw a
 * month of 10-minute points. Three measurements, one run, one fresh service
 * (coalescing at its default 250 ms) on the store `COUCHDB_URL` names (a
 * database of the run's own, dropped at the end), else on a fresh embedded
 * store. Before the load, the store's raw ceilings are measured
 * (bench/store.ts): `_bulk_docs` straight to it, 500 blob documents a batch,
 * 2 in flight, and its `_changes` read back (include_docs, 1,000 a batch),
 * so the offered load is shown as a share of what the store takes:
 *
 *   1. Latency. Simulated dialogs POST one blob each (like real dialogs) at
 *      1,000 blobs/s over keep-alive connections with bounded concurrency.
 *      Every ~100 ms one of them is a probe: an ordinary simulated blob whose
 *      `sample_rate` is 1/1.000001, so it weighs 1.000001 in the estimates
 *      while every other blob weighs exactly 1. A WebSocket client subscribed
 *      to the last hour (10-minute buckets, unsegmented) reads from each
 *      delta's window totals how many probes are counted:
 *      `(dialogsEstimate − dialogs) × 10⁶`, exact in integers. Probe k (in
 *      send order) is delivered by the first delta counting ≥ k probes; its
 *      latency runs from the start of its POST to that delta's arrival, so it
 *      includes the HTTP answer, the store write, the `_changes` feed, the
 *      aggregate and the coalescing. Probes are 100 ms apart, far more than
 *      one group-commit write, so their store order is their send order.
 *      Where the time goes: during this run the service's own process also
 *      notes when each probe entered the aggregate (after every applied
 *      batch, through the aggregate's public `changes$`, one window query;
 *      its share of the event loop is shown). Under continuous traffic a
 *      change waits for the next flush, 0–250 ms, so the coalescing alone
 *      has a p95 of ~238 ms: the 250 ms target leaves ~12 ms for the rest.
 *   2. Fan-out. 500 WebSocket clients subscribed the same way while the same
 *      traffic runs: messages per client per second (coalescing allows 4),
 *      the service's CPU (`process.cpuUsage()`, as % of one core) and RSS,
 *      and, a second after the traffic stops, how many clients have not
 *      reached the aggregate's current version (must be none).
 *   3. Rendering. Headless Chromium opens the dashboard the service serves at
 *      `/`; in the page, a fresh `<kpi-chart>` (1,200 px wide) gets 30 days
 *      of 10-minute points × 8 series (4,320 × 8) and the time is taken from
 *      setting `.answer` until the element has updated and two animation
 *      frames have passed (the chart draws in one): `renderMs`, the median of
 *      BENCH_RENDER_RUNS fresh charts. Because that includes waiting for
 *      frames, the main-thread work alone (Lit update + the chart's frame,
 *      with the canvas forced to rasterise) is shown too, as is a redraw of
 *      an existing chart with new values (what a live update does).
 *
 * The service runs in this process, alone: the load generator with its
 * probe client, and the 500 clients, run in two child processes (this same
 * module, `--role=load` and `--role=fanout`), so their work is neither on the
 * service's event loop nor in its `process.cpuUsage()`. Client, service and
 * the store's child still share the machine's cores; the table shows what
 * each used. Only loopback is used; the service's data directory is a
 * temporary one, removed at the end, with the store and the children.
 *
 * Targets (printed as PASS/MISS, never asserted: this measures, it does not
 * test): p95 POST → delta ≤ 250 ms, ≤ 4 messages per client per second,
 * no client behind, renderMs ≤ 50 ms.
 *
 * The last line of stdout is one JSON object: `{"p50Ms", "p95Ms", "p99Ms",
 * "probes", "clients", "msgsPerClientPerSec", "clientsBehind",
 * "serverCpuPct", "serverRssMb", "renderMs", …, "store", "rawBulkDocsPerSec",
 * "rawChangesPerSec", "ofCeiling"}` (`renderMs` null when Chromium is
 * missing or fails, with the reason on the table; `store`: `{kind,
 * version}`; `ofCeiling`: blobs/s sent in the latency run ÷
 * rawBulkDocsPerSec).
 *
 * Knobs (environment): BENCH_RATE (blobs/s, default 1000), BENCH_SECONDS
 * (latency run, default 15), BENCH_WARMUP_SECONDS (default 3),
 * BENCH_FANOUT_SECONDS (default 10), BENCH_CLIENTS (default 500),
 * BENCH_PROBE_MS (default 100), BENCH_CONNECTIONS (POSTs in flight at most,
 * default 64), BENCH_RENDER_RUNS (default 5), CHROMIUM_PATH (default
 * /usr/bin/chromium), COUCHDB_URL, BENCH_STORE_PID (an external store's
 * process, whose CPU is then shown as the embedded store's is),
 * BENCH_CEILING_SECONDS (default 5).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { seededRandom, simulateSession } from '../src/simulate/generator.js';
import { CHROMIUM_LAUNCH, gc, intFromEnv, verdict } from './common.js';

// ---------------------------------------------------------------------------
// Shared: settings, messages between the processes, helpers
// ---------------------------------------------------------------------------

/** What every client shows: the last hour in 10-minute buckets, unsegmented. */
const SUBSCRIPTION = { rangeMs: 3_600_000 };
/** 1/sample_rate of a probe is 1.000001: it adds exactly 1 to the estimate's millionths. */
const PROBE_SAMPLE_RATE = 1 / 1.000001;
/** Estimates are kept in millionths (src/aggregate/model/facts.ts, WEIGHT_UNIT). */
const WEIGHT_UNIT = 1_000_000;

interface LoadJob {
  label: string;
  warmupMs: number;
  measureMs: number;
  rate: number;
  probeEveryMs: number;
  maxInFlight: number;
}

interface LoadResult {
  label: string;
  measuredMs: number;
  /** POSTs started in the measured span. */
  sent: number;
  ok: number;
  /** Non-200 answers and connection errors, warm-up included. */
  failed: number;
  failures: string;
  /** POST → 200, over every request of the measured span. */
  ackP50Ms: number;
  ackP99Ms: number;
  /** Most POSTs the schedule was behind (in-flight cap reached or event loop late). */
  maxBacklog: number;
  /** Probes of the measured span answered 200. */
  probes: number;
  /** Every delivered probe of the measured span; times in ms since the epoch (high resolution, comparable across processes). */
  delivered: { ordinal: number; startedAt: number; ackedAt: number; deliveredAt: number }[];
  undelivered: number;
  probeFailures: number;
  /** Probes seen in a delta before their own POST was answered. */
  deltaBeforeAck: number;
  deltas: number;
}

type ToLoad = { type: 'init'; url: string; ingestUrl: string } | { type: 'run'; job: LoadJob } | { type: 'exit' };
type FromLoad =
  | { type: 'ready'; probeBase: number }
  | { type: 'measuring' }
  | { type: 'stopped' }
  | { type: 'result'; result: LoadResult }
  | { type: 'error'; message: string };

interface FanCounts {
  spanMs: number;
  /** Messages (snapshots and deltas) per client over the span. */
  messages: number[];
  bytes: number;
  open: number;
  /** The client process's own CPU over the span, % of one core, and its event-loop delay. */
  cpuPct: number;
  loopP99Ms: number;
  loopMaxMs: number;
}

type ToFan = { type: 'init'; url: string; clients: number } | { type: 'reset' } | { type: 'stop' } | { type: 'versions' } | { type: 'exit' };
type FromFan =
  | { type: 'ready'; connected: number; failed: number; connectMs: number }
  | { type: 'counts'; counts: FanCounts }
  | { type: 'versions'; clients: { epoch: string; version: number; open: boolean }[] }
  | { type: 'error'; message: string };

/** What a client needs of a server message (src/contract/stream.ts). */
interface StreamMessage {
  type: string;
  epoch?: string;
  version?: number;
  kpis?: { series: { total: { dialogs: number; dialogsEstimate: number } }[] };
}

/** Nearest-rank percentile of unsorted values. */
function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const round1 = (x: number) => Math.round(x * 10) / 10;
const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));
/** ms since the epoch at sub-ms resolution: comparable between this benchmark's processes. */
const clock = () => performance.timeOrigin + performance.now();

function send<T>(message: T): void {
  process.send!(message);
}

// ---------------------------------------------------------------------------
// Load generator and probe client (child process, --role=load)
// ---------------------------------------------------------------------------

interface Probe {
  /** 1-based, in send order: the probe count at which it is in the aggregate. */
  ordinal: number;
  measured: boolean;
  startedAt: number;
  ackedAt?: number;
  status?: number;
  deliveredAt?: number;
}

/** One POST with one blob; resolves to the status (0 for a connection error). */
function postBlob(agent: Agent, url: URL, body: string, userAgent: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'user-agent': userAgent },
      },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
        res.once('error', () => resolve(0));
      },
    );
    req.once('error', () => resolve(0));
    req.end(body);
  });
}

async function loadRole(): Promise<void> {
  const random = seededRandom(20240601);
  const probes: Probe[] = [];
  let nextUndelivered = 0;
  /** Probes counted when this client subscribed (none on a fresh store). */
  let probeBase: number | undefined;
  let deltas = 0;
  let ingestUrl: URL | undefined;

  const onStreamMessage = (text: string, at: number) => {
    const message = JSON.parse(text) as StreamMessage;
    const total = message.kpis?.series[0]?.total;
    if ((message.type !== 'snapshot' && message.type !== 'delta') || !total) return;
    const counted = Math.round((total.dialogsEstimate - total.dialogs) * WEIGHT_UNIT);
    if (probeBase === undefined) {
      probeBase = counted;
      return;
    }
    deltas += 1;
    while (nextUndelivered < probes.length && probes[nextUndelivered]!.ordinal <= counted - probeBase) {
      probes[nextUndelivered]!.deliveredAt = at;
      nextUndelivered += 1;
    }
  };

  const connect = (url: string) =>
    new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/live`);
      ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', subscribe: SUBSCRIPTION })));
      ws.on('message', (data) => {
        onStreamMessage(String(data), clock());
        if (probeBase !== undefined) resolve();
      });
      ws.on('error', reject);
      ws.on('close', (code) => reject(new Error(`probe client closed (${code})`)));
    });

  const run = async (job: LoadJob): Promise<LoadResult> => {
    const url = ingestUrl!;
    const agent = new Agent({ keepAlive: true, maxSockets: job.maxInFlight });
    const start = performance.now();
    const measureStart = start + job.warmupMs;
    const end = measureStart + job.measureMs;
    let issued = 0;
    let inFlight = 0;
    let measuring = false;
    let sent = 0;
    let ok = 0;
    let failed = 0;
    let maxBacklog = 0;
    const failures = new Map<string, number>();
    const ackMs: number[] = [];
    const firstProbe = probes.length;
    let nextProbeAt = start;

    const fire = (now: number) => {
      const isProbe = now >= nextProbeAt;
      // after a stall, no burst of probes: the next one is a full interval on
      nextProbeAt = isProbe ? Math.max(nextProbeAt + job.probeEveryMs, now + job.probeEveryMs / 2) : nextProbeAt;
      const { blob, userAgent } = simulateSession(random, { now: Date.now() });
      if (isProbe) blob.sample_rate = PROBE_SAMPLE_RATE;
      const body = JSON.stringify({ data: [blob], csrf: 'x' });
      const measured = measuring;
      if (measured) sent += 1;
      const startedAt = clock();
      const probe: Probe | undefined = isProbe ? { ordinal: probes.length + 1, measured, startedAt } : undefined;
      if (probe) probes.push(probe);
      inFlight += 1;
      void postBlob(agent, url, body, userAgent).then((status) => {
        const at = clock();
        inFlight -= 1;
        if (measured) ackMs.push(at - startedAt);
        if (status === 200) ok += 1;
        else {
          failed += 1;
          const key = status === 0 ? 'connection error' : String(status);
          failures.set(key, (failures.get(key) ?? 0) + 1);
        }
        if (probe) {
          probe.ackedAt = at;
          probe.status = status;
        }
      });
    };

    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const now = performance.now();
        if (!measuring && now >= measureStart) {
          measuring = true;
          send<FromLoad>({ type: 'measuring' });
        }
        if (now >= end) {
          clearInterval(timer);
          send<FromLoad>({ type: 'stopped' });
          resolve();
          return;
        }
        const due = Math.floor(((now - start) * job.rate) / 1000);
        while (issued < due && inFlight < job.maxInFlight) {
          fire(performance.now());
          issued += 1;
        }
        maxBacklog = Math.max(maxBacklog, due - issued);
      }, 1);
    });
    // every answer, then every probe's delta (bounded: a lost delta must not hang the run)
    for (const deadline = performance.now() + 30_000; inFlight > 0 && performance.now() < deadline;) await sleep(5);
    for (const deadline = performance.now() + 5_000; nextUndelivered < probes.length && performance.now() < deadline;) await sleep(5);
    agent.destroy();

    const mine = probes.slice(firstProbe).filter((p) => p.measured);
    const answered = mine.filter((p) => p.status === 200);
    const delivered = answered.filter((p) => p.deliveredAt !== undefined);
    return {
      label: job.label,
      measuredMs: job.measureMs,
      sent,
      ok,
      failed,
      failures: [...failures].map(([k, n]) => `${k}×${n}`).join(' '),
      ackP50Ms: percentile(ackMs, 50),
      ackP99Ms: percentile(ackMs, 99),
      maxBacklog,
      probes: answered.length,
      delivered: delivered.map((p) => ({ ordinal: p.ordinal, startedAt: p.startedAt, ackedAt: p.ackedAt!, deliveredAt: p.deliveredAt! })),
      undelivered: answered.length - delivered.length,
      probeFailures: mine.length - answered.length,
      deltaBeforeAck: delivered.filter((p) => p.deliveredAt! < p.ackedAt!).length,
      deltas,
    };
  };

  process.on('message', (message: ToLoad) => {
    const fail = (err: unknown) => send<FromLoad>({ type: 'error', message: errorText(err) });
    if (message.type === 'init') {
      ingestUrl = new URL(message.ingestUrl);
      connect(message.url).then(() => send<FromLoad>({ type: 'ready', probeBase: probeBase! }), fail);
    } else if (message.type === 'run') {
      run(message.job).then((result) => send<FromLoad>({ type: 'result', result }), fail);
    } else process.exit(0);
  });
}

// ---------------------------------------------------------------------------
// 500 dashboards (child process, --role=fanout)
// ---------------------------------------------------------------------------

interface FanClient {
  ws: WebSocket;
  epoch: string;
  version: number;
  messages: number;
  open: boolean;
}

async function fanoutRole(): Promise<void> {
  const clients: FanClient[] = [];
  let counting = false;
  let bytes = 0;
  let spanStart = 0;
  let cpuStart = process.cpuUsage();
  const loop = monitorEventLoopDelay({ resolution: 10 });

  const connectOne = (url: string) =>
    new Promise<void>((resolve, reject) => {
      const client: FanClient = { ws: new WebSocket(`${url.replace(/^http/, 'ws')}/api/live`), epoch: '', version: -1, messages: 0, open: false };
      const timer = setTimeout(() => reject(new Error('no snapshot within 10 s')), 10_000);
      client.ws.on('open', () => {
        client.open = true;
        client.ws.send(JSON.stringify({ type: 'hello', subscribe: SUBSCRIPTION }));
      });
      client.ws.on('message', (data: Buffer) => {
        // parsed in full, as a dashboard would
        const message = JSON.parse(String(data)) as StreamMessage;
        if (message.type !== 'snapshot' && message.type !== 'delta') return;
        client.epoch = message.epoch!;
        client.version = message.version!;
        if (counting) {
          client.messages += 1;
          bytes += data.length;
        }
        clearTimeout(timer);
        resolve();
      });
      client.ws.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      client.ws.on('close', () => {
        client.open = false;
      });
      clients.push(client);
    });

  process.on('message', (message: ToFan) => {
    if (message.type === 'init') {
      const started = performance.now();
      let failed = 0;
      let next = 0;
      // 50 handshakes at a time: no burst beyond the server's accept backlog
      const worker = async () => {
        while (next < message.clients) {
          next += 1;
          await connectOne(message.url).catch(() => (failed += 1));
        }
      };
      void Promise.all(Array.from({ length: 50 }, worker)).then(() =>
        send<FromFan>({ type: 'ready', connected: clients.filter((c) => c.open).length, failed, connectMs: performance.now() - started }),
      );
    } else if (message.type === 'reset') {
      for (const c of clients) c.messages = 0;
      bytes = 0;
      counting = true;
      spanStart = performance.now();
      cpuStart = process.cpuUsage();
      loop.reset();
      loop.enable();
    } else if (message.type === 'stop') {
      counting = false;
      loop.disable();
      const spanMs = performance.now() - spanStart;
      const cpu = process.cpuUsage(cpuStart);
      send<FromFan>({
        type: 'counts',
        counts: {
          spanMs,
          messages: clients.map((c) => c.messages),
          bytes,
          open: clients.filter((c) => c.open).length,
          cpuPct: ((cpu.user + cpu.system) / 1000 / spanMs) * 100,
          loopP99Ms: loop.percentile(99) / 1e6,
          loopMaxMs: loop.max / 1e6,
        },
      });
    } else if (message.type === 'versions') {
      send<FromFan>({ type: 'versions', clients: clients.map((c) => ({ epoch: c.epoch, version: c.version, open: c.open })) });
    } else {
      for (const c of clients) c.ws.terminate();
      process.exit(0);
    }
  });
}

// ---------------------------------------------------------------------------
// Rendering (runs in the page: no closure over this module)
// ---------------------------------------------------------------------------

interface RenderJob {
  points: number;
  series: number;
  bucketMs: number;
  to: number;
  runs: number;
}

interface RenderTimes {
  renderMs: number[];
  workMs: number[];
  /** Of workMs: Lit's update (before the chart's frame). */
  updateMs: number[];
  redrawMs: number[];
  canvas: { width: number; height: number; inkedPixels: number } | null;
}

/** The DOM this module uses in the page (the bench is type-checked without the DOM library). */
interface ChartElement {
  style: { width: string };
  kpi: unknown;
  answer: unknown;
  updateComplete: Promise<boolean>;
  shadowRoot: { querySelector(selector: 'canvas'): PageCanvas | null } | null;
  remove(): void;
}
interface PageCanvas {
  width: number;
  height: number;
  getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } | null;
}
interface PageGlobals {
  document: { createElement(tag: 'kpi-chart'): ChartElement; body: { append(el: ChartElement): void } };
  customElements: { whenDefined(tag: string): Promise<unknown> };
  requestAnimationFrame(callback: () => void): number;
}

async function renderInPage(job: RenderJob): Promise<RenderTimes> {
  const g = globalThis as unknown as PageGlobals;
  await g.customElements.whenDefined('kpi-chart');
  const frame = () => new Promise<number>((resolve) => g.requestAnimationFrame(() => resolve(performance.now())));
  const from = job.to - job.points * job.bucketMs;
  const names = ['Windows NT 6.1', 'Windows NT 10.0', 'Macintosh', 'iPhone', 'Android', 'Linux', 'iPad', 'Other'];
  // a random walk per series, deterministic per seed
  const answerOf = (seed: number) => {
    let x = seed;
    const rnd = () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
    return {
      from,
      to: job.to,
      bucket: '10m',
      bucketMs: job.bucketMs,
      segment: 'os',
      watermark: job.to - job.bucketMs,
      series: names.slice(0, job.series).map((segment, s) => {
        let level = 400 / (s + 1);
        const points = Array.from({ length: job.points }, (_, i) => {
          level = Math.max(0, level + (rnd() - 0.5) * 20);
          const start = from + i * job.bucketMs;
          return { start, end: start + job.bucketMs, kpis: { dialogs: Math.round(level) } };
        });
        return { segment, total: { dialogs: points.reduce((n, p) => n + p.kpis.dialogs, 0) }, points };
      }),
    };
  };
  const times: RenderTimes = { renderMs: [], workMs: [], updateMs: [], redrawMs: [], canvas: null };
  // Times one answer: [from setting it to two frames later, main-thread work of it, of which Lit's update].
  const timeAnswer = async (el: ChartElement, answer: unknown): Promise<[number, number, number]> => {
    let frameStart = 0;
    // registered before the chart's own frame callback: runs first in the same frame
    g.requestAnimationFrame(() => (frameStart = performance.now()));
    const t0 = performance.now();
    el.answer = answer;
    await el.updateComplete;
    const updated = performance.now();
    // runs after the chart's frame callback (and uPlot's commit); reading a pixel forces the canvas to rasterise
    const drawn = await new Promise<number>((resolve) =>
      g.requestAnimationFrame(() => {
        el.shadowRoot?.querySelector('canvas')?.getContext('2d')?.getImageData(0, 0, 1, 1);
        resolve(performance.now());
      }),
    );
    await frame();
    return [performance.now() - t0, updated - t0 + (drawn - frameStart), updated - t0];
  };
  for (let run = 0; run < job.runs; run++) {
    const el = g.document.createElement('kpi-chart');
    el.style.width = '1200px';
    g.document.body.append(el);
    el.kpi = { id: 'x', label: 'x', value: (k: { dialogs: number }) => k.dialogs, format: 'number', better: 'up' };
    await el.updateComplete;
    await frame();
    await frame();
    const [render, work, update] = await timeAnswer(el, answerOf(run + 1));
    times.renderMs.push(render);
    times.workMs.push(work);
    times.updateMs.push(update);
    // same series, new values: the chart keeps its uPlot and only sets data, as on a live update
    const [, redraw] = await timeAnswer(el, answerOf(run + 1000));
    times.redrawMs.push(redraw);
    if (run === job.runs - 1) {
      const canvas = el.shadowRoot?.querySelector('canvas');
      const pixels = canvas?.getContext('2d')?.getImageData(0, 0, canvas.width, canvas.height).data;
      let inked = 0;
      if (pixels) for (let i = 3; i < pixels.length; i += 4) if (pixels[i]! > 0) inked += 1;
      times.canvas = canvas ? { width: canvas.width, height: canvas.height, inkedPixels: inked } : null;
    }
    el.remove();
  }
  return times;
}

interface RenderOutcome {
  renderMs: number | null;
  workMs: number | null;
  updateMs: number | null;
  redrawMs: number | null;
  runs: number[];
  note: string;
}

async function measureRender(baseUrl: string, runs: number): Promise<RenderOutcome> {
  const { executablePath } = CHROMIUM_LAUNCH;
  const none = (note: string): RenderOutcome => ({ renderMs: null, workMs: null, updateMs: null, redrawMs: null, runs: [], note });
  if (!existsSync(executablePath)) return none(`no Chromium at ${executablePath} (apt-get install chromium, or set CHROMIUM_PATH)`);
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch(CHROMIUM_LAUNCH).catch((err: unknown) => errorText(err));
  if (typeof browser === 'string') return none(`Chromium did not start: ${browser.split('\n')[0]}`);
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(String(err)));
    const response = await page.goto(`${baseUrl}/`, { waitUntil: 'load' });
    if (!response?.ok()) return none(`GET / answered ${response?.status()}: is web/dist built (npm run build)?`);
    const to = Math.ceil(Date.now() / 600_000) * 600_000;
    const times = await page.evaluate(renderInPage, { points: 4320, series: 8, bucketMs: 600_000, to, runs });
    if (!times.canvas || times.canvas.inkedPixels === 0) return none('the chart drew nothing: the measurement would be meaningless');
    const median = (xs: number[]) => percentile(xs, 50);
    return {
      renderMs: median(times.renderMs),
      workMs: median(times.workMs),
      updateMs: median(times.updateMs),
      redrawMs: median(times.redrawMs),
      runs: times.renderMs,
      note:
        `canvas ${times.canvas.width}×${times.canvas.height}, ${times.canvas.inkedPixels} pixels drawn` +
        (errors.length ? `; page errors: ${errors.join(' | ').slice(0, 300)}` : ''),
    };
  } finally {
    await browser.close();
  }
}

// ---------------------------------------------------------------------------
// Benchmark (main process: the service, and nothing else on its event loop)
// ---------------------------------------------------------------------------

/** A child process running this module in a role, spoken to over IPC. */
class ChildLink<In, Out extends { type: string }> {
  readonly child: ChildProcess;
  readonly #listeners = new Set<(message: Out) => void>();
  readonly #exited: Promise<void>;

  constructor(readonly role: 'load' | 'fanout') {
    // stdout is for the results: the child's is dropped, its stderr passed on
    this.child = fork(fileURLToPath(import.meta.url), [`--role=${role}`], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    this.child.on('message', (message) => {
      for (const listener of [...this.#listeners]) listener(message as Out);
    });
    this.#exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  send(message: In): void {
    this.child.send(message as object);
  }

  on(listener: (message: Out) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The next message of a type; rejects on an `error` message, on exit, or after the timeout. */
  next<T extends Out['type']>(type: T, timeoutMs: number): Promise<Extract<Out, { type: T }>> {
    return new Promise((resolve, reject) => {
      const done = (fn: () => void) => {
        clearTimeout(timer);
        off();
        this.child.off('exit', onExit);
        fn();
      };
      const timer = setTimeout(() => done(() => reject(new Error(`${this.role} child: no ${type} within ${timeoutMs} ms`))), timeoutMs);
      const onExit = (code: number | null) => done(() => reject(new Error(`${this.role} child exited (${code}) before ${type}`)));
      const off = this.on((message) => {
        if (message.type === type) done(() => resolve(message as Extract<Out, { type: T }>));
        else if (message.type === 'error') done(() => reject(new Error(`${this.role} child: ${(message as { message?: string }).message}`)));
      });
      this.child.once('exit', onExit);
    });
  }

  /** Asks it to exit; kills it if it has not within 2 s. */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    if (this.child.connected) this.child.send({ type: 'exit' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await this.#exited;
    clearTimeout(timer);
  }
}

/** CPU seconds (user + system) a process has used, from /proc; undefined where there is none. */
function processCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks (USER_HZ, 100 on Linux)
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
  return rows
    .map((row) =>
      row
        .map((cell, col) => cell.padEnd(widths[col]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const mb = (bytes: number) => Math.round(bytes / 1048576);

const TARGETS = { p95Ms: 250, msgsPerClientPerSec: 4, clientsBehind: 0, renderMs: 50 };

interface SpanStats {
  cpuPct: number;
  storeCpuPct: number | undefined;
  rssPeakMb: number;
  loopP99Ms: number;
  loopMaxMs: number;
}

async function main(): Promise<void> {
  // Imported here, not at the top: the children evaluate this module too and need none of the server.
  const { createLogger } = await import('../src/logger.js');
  const { startServer } = await import('../src/server.js');
  const { INGEST_PATH } = await import('../src/ingest/plugin.js');
  const { windowOf } = await import('../src/stream/live-hub.js');
  const { benchDbName, benchServiceConfig, benchStore, couchdbUrlFromEnv, dropDatabases, kpiDatabases, ofCeiling, storeCeilings, storedBlobJson } =
    await import('./store.js');

  const rate = intFromEnv('BENCH_RATE', 1000);
  const seconds = intFromEnv('BENCH_SECONDS', 15);
  const warmupSeconds = intFromEnv('BENCH_WARMUP_SECONDS', 3);
  const fanoutSeconds = intFromEnv('BENCH_FANOUT_SECONDS', 10);
  const clientCount = intFromEnv('BENCH_CLIENTS', 500);
  const probeEveryMs = intFromEnv('BENCH_PROBE_MS', 100);
  const maxInFlight = intFromEnv('BENCH_CONNECTIONS', 64);
  const renderRuns = intFromEnv('BENCH_RENDER_RUNS', 5);
  const ceilingSeconds = intFromEnv('BENCH_CEILING_SECONDS', 5);
  const couchdbUrl = couchdbUrlFromEnv();
  const dbName = benchDbName('live');

  const dataDir = await mkdtemp(join(tmpdir(), 'kpi-bench-live-'));
  const children: { close(): Promise<void> }[] = [];
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  let store: Awaited<ReturnType<typeof benchStore>> | undefined;
  try {
    const config = benchServiceConfig(dataDir, dbName, {
      // every dashboard comes from 127.0.0.1, 50 handshakes at a time: above the per-address
      // cap on sockets still waiting for their hello (8), which would close the rest (4429)
      streamMaxUngreetedPerAddress: 64,
    });
    // JSON to stderr even on a terminal: stdout is for the results.
    server = await startServer(config, createLogger(config, process.stderr));
    const app = server.app;
    const storePid = app.store.embedded?.pid ?? (process.env.BENCH_STORE_PID ? intFromEnv('BENCH_STORE_PID', 1) : undefined);
    store = await benchStore({ embeddedUrl: app.store.embedded?.authorizedUrl });
    process.stderr.write(`kpi-live at ${server.url}, coalescing ${config.streamCoalesceMs} ms, store: ${store.label}${storePid ? `, pid ${storePid}` : ''}\n`);

    // The store's own ceilings, while the service is idle.
    process.stderr.write(`store ceilings: raw _bulk_docs (500 a batch, 2 in flight, ${ceilingSeconds} s), then its _changes read back\n`);
    const ceilingDocs = await storedBlobJson(2000, 11, Date.now());
    const ceilings = await storeCeilings(store, (i) => ceilingDocs[i % ceilingDocs.length]!, { seconds: ceilingSeconds });

    const load = new ChildLink<ToLoad, FromLoad>('load');
    children.push(load);
    load.send({ type: 'init', url: server.url, ingestUrl: `${server.url}${INGEST_PATH}` });
    const { probeBase } = await load.next('ready', 15_000);

    // When each probe entered the aggregate, through its public change interface: after every applied
    // batch, the probes counted in the clients' window. A small query on the service's loop, so only
    // during the latency run (its cost is shown); the fan-out run's CPU and memory are without it.
    const appliedAt: number[] = [];
    let hookMs = 0;
    const hook = app.aggregates.changes$.subscribe(() => {
      const t0 = performance.now();
      const total = app.aggregates.kpis(windowOf(SUBSCRIPTION)).series[0]?.total;
      const counted = total ? Math.round((total.dialogsEstimate - total.dialogs) * WEIGHT_UNIT) - probeBase : 0;
      while (appliedAt.length < counted) appliedAt.push(clock());
      hookMs += performance.now() - t0;
    });

    // The service's own cost over a load run's measured span.
    const loadRun = async (job: LoadJob, onMeasuring?: () => void, onStopped?: () => Promise<void>) => {
      const loop = monitorEventLoopDelay({ resolution: 10 });
      let cpu0 = process.cpuUsage();
      let store0: number | undefined;
      let t0 = 0;
      let rssPeak = 0;
      let sampler: NodeJS.Timeout | undefined;
      let span: SpanStats | undefined;
      const sample = () => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss));
      const off = load.on((message) => {
        if (message.type === 'measuring') {
          cpu0 = process.cpuUsage();
          store0 = processCpuSeconds(storePid);
          t0 = performance.now();
          loop.enable();
          sampler = setInterval(sample, 200);
          onMeasuring?.();
        } else if (message.type === 'stopped') {
          const ms = performance.now() - t0;
          const cpu = process.cpuUsage(cpu0);
          const store1 = processCpuSeconds(storePid);
          clearInterval(sampler);
          sample();
          loop.disable();
          span = {
            cpuPct: ((cpu.user + cpu.system) / 1000 / ms) * 100,
            storeCpuPct: store0 !== undefined && store1 !== undefined ? ((store1 - store0) * 1000 * 100) / ms : undefined,
            rssPeakMb: mb(rssPeak),
            loopP99Ms: loop.percentile(99) / 1e6,
            loopMaxMs: loop.max / 1e6,
          };
          onStopped?.().catch((err: unknown) => process.stderr.write(`after the span: ${errorText(err)}\n`));
        }
      });
      try {
        load.send({ type: 'run', job });
        const { result } = await load.next('result', job.warmupMs + job.measureMs + 60_000);
        if (!span) throw new Error('the load child never reported its measured span');
        return { result, span };
      } finally {
        off();
        clearInterval(sampler);
      }
    };

    // 1. Latency, one client.
    process.stderr.write(`latency: ${rate} blobs/s, probe every ${probeEveryMs} ms, ${warmupSeconds} s warm-up + ${seconds} s\n`);
    const job = (label: string, measureSeconds: number): LoadJob => ({
      label,
      warmupMs: warmupSeconds * 1000,
      measureMs: measureSeconds * 1000,
      rate,
      probeEveryMs,
      maxInFlight,
    });
    const runStarted = performance.now();
    const one = await loadRun(job('1 client', seconds));
    const hookPct = (hookMs / (performance.now() - runStarted)) * 100;
    hook.unsubscribe();

    // 2. Fan-out. The heap the idle clients hold: after a full collection, before and after they connect.
    gc();
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const fan = new ChildLink<ToFan, FromFan>('fanout');
    children.push(fan);
    fan.send({ type: 'init', url: server.url, clients: clientCount });
    const ready = await fan.next('ready', 120_000);
    gc();
    gc();
    const clientsHeapMb = (process.memoryUsage().heapUsed - heapBefore) / 1048576;
    process.stderr.write(
      `fan-out: ${ready.connected} clients connected in ${Math.round(ready.connectMs)} ms (${ready.failed} failed); ` +
        `${rate} blobs/s, ${warmupSeconds} s warm-up + ${fanoutSeconds} s\n`,
    );
    let counts: FanCounts | undefined;
    const many = await loadRun(
      job(`${clientCount} clients`, fanoutSeconds),
      () => fan.send({ type: 'reset' }),
      async () => {
        const reply = fan.next('counts', 10_000);
        fan.send({ type: 'stop' });
        counts = (await reply).counts;
      },
    );
    // the run's result comes after every answer and probe: the traffic has stopped
    await sleep(1000);
    const current = app.aggregates.version();
    const versionsReply = fan.next('versions', 10_000);
    fan.send({ type: 'versions' });
    const { clients: seen } = await versionsReply;
    const stillCurrent = app.aggregates.version();
    const behind = seen.filter((c) => !c.open || c.epoch !== current.epoch || c.version !== current.version).length;
    const missing = clientCount - seen.length;
    for (const deadline = performance.now() + 1000; !counts && performance.now() < deadline;) await sleep(20);
    if (!counts) throw new Error('the fan-out child never sent its counts');
    const messages = counts.messages;
    const perClient = messages.map((n) => n / (counts!.spanMs / 1000));
    const msgsPerClientPerSec = perClient.reduce((a, b) => a + b, 0) / Math.max(1, perClient.length);
    const maxPerClient = Math.max(...perClient);
    await fan.close();
    await load.close();

    // 3. Rendering.
    process.stderr.write(`rendering: ${renderRuns} fresh charts of 4320 points × 8 series in headless Chromium\n`);
    const render = await measureRender(server.url, renderRuns).catch((err: unknown) => ({
      renderMs: null,
      workMs: null,
      updateMs: null,
      redrawMs: null,
      runs: [] as number[],
      note: `failed: ${errorText(err).split('\n')[0]}`,
    }));

    // Report.
    const lat = (r: LoadResult) => {
      const e2e = r.delivered.map((p) => p.deliveredAt - p.startedAt);
      const withApplied = r.delivered.flatMap((p) => (appliedAt[p.ordinal - 1] === undefined ? [] : [{ ...p, appliedAt: appliedAt[p.ordinal - 1]! }]));
      const p50p95 = (xs: number[]) => `${percentile(xs, 50).toFixed(0)} / ${percentile(xs, 95).toFixed(0)}`;
      return {
        p50: percentile(e2e, 50),
        p95: percentile(e2e, 95),
        p99: percentile(e2e, 99),
        breakdown:
          `min ${Math.min(...e2e).toFixed(0)} ms; p50 / p95: POST → 200 ${p50p95(r.delivered.map((p) => p.ackedAt - p.startedAt))}` +
          (withApplied.length === 0
            ? ' ms'
            : `, POST → in the aggregate ${p50p95(withApplied.map((p) => p.appliedAt - p.startedAt))}, ` +
              `aggregate → delta at the client ${p50p95(withApplied.map((p) => p.deliveredAt - p.appliedAt))} ms`),
      };
    };
    const l1 = lat(one.result);
    const l2 = lat(many.result);
    const ms = (x: number | null) => (x === null || Number.isNaN(x) ? '–' : `${x.toFixed(0)} ms`);
    const trio = (l: { p50: number; p95: number; p99: number }) => `${l.p50.toFixed(1)} / ${l.p95.toFixed(1)} / ${l.p99.toFixed(1)} ms`;
    const achieved = (r: LoadResult) => (r.sent / r.measuredMs) * 1000;
    const loadLine = (r: LoadResult) =>
      `${achieved(r).toFixed(0)} blobs/s sent, ${r.failed} failed${r.failures ? ` (${r.failures})` : ''}, ` +
      `POST → 200 p50 ${r.ackP50Ms.toFixed(1)} / p99 ${r.ackP99Ms.toFixed(1)} ms, ${r.deltas} deltas, schedule behind ≤ ${r.maxBacklog}`;
    const probeLine = (r: LoadResult) =>
      `${r.probes} probes, ${r.undelivered} undelivered, ${r.probeFailures} failed, ${r.deltaBeforeAck} seen before their 200`;
    const pct = (x: number | undefined) => (x === undefined ? '–' : `${x.toFixed(0)}%`);
    const renderOk = render.renderMs !== null;

    const rows: string[][] = [
      ['', 'measured', 'target', ''],
      [
        '0. store ceilings (same run, service idle)',
        `raw _bulk_docs ${ceilings.write.docsPerSec} docs/s (${ceilings.write.batch} a batch, ${ceilings.write.inFlight} in flight); ` +
          `raw _changes ${ceilings.feed.changesPerSec} changes/s (include_docs, ${ceilings.feed.batch} a batch); ` +
          `the latency run's ${achieved(one.result).toFixed(0)} blobs/s = ${((100 * achieved(one.result)) / ceilings.write.docsPerSec).toFixed(0)}% of the write ceiling`,
        '',
        '',
      ],
      ['1. POST → delta, 1 client: p50 / p95 / p99', trio(l1), `p95 ≤ ${TARGETS.p95Ms} ms`, verdict(l1.p95 <= TARGETS.p95Ms)],
      ['     where the time goes', l1.breakdown, '', ''],
      ['     probes', probeLine(one.result), '', ''],
      ['     load', loadLine(one.result), '', ''],
      [
        '     service',
        `CPU ${pct(one.span.cpuPct)} of a core (${hookPct.toFixed(1)}% of its time the probe hook), store CPU ${pct(one.span.storeCpuPct)}, ` +
          `event loop delay p99 ${one.span.loopP99Ms.toFixed(0)} / max ${one.span.loopMaxMs.toFixed(0)} ms`,
        '',
        '',
      ],
      ['2. fan-out: clients connected', `${ready.connected} of ${clientCount} (${ready.failed} failed) in ${(ready.connectMs / 1000).toFixed(1)} s`, '', ''],
      [
        '   messages per client per second',
        `${msgsPerClientPerSec.toFixed(2)} mean, ${maxPerClient.toFixed(2)} max (${(counts.bytes / 1048576 / (counts.spanMs / 1000)).toFixed(1)} MB/s to all)`,
        `≤ ${TARGETS.msgsPerClientPerSec}`,
        verdict(maxPerClient <= TARGETS.msgsPerClientPerSec),
      ],
      [
        '   clients behind, 1 s after the traffic',
        `${behind + missing} (server version ${current.version}${stillCurrent.version !== current.version ? `, then ${stillCurrent.version}` : ''})`,
        `= ${TARGETS.clientsBehind}`,
        verdict(behind + missing === TARGETS.clientsBehind),
      ],
      ['   service CPU over the span', `${pct(many.span.cpuPct)} of one core (store: ${pct(many.span.storeCpuPct)})`, '', ''],
      [
        '   service memory',
        `RSS ${many.span.rssPeakMb} MB peak over the span (run 1: ${one.span.rssPeakMb} MB); heap ${clientsHeapMb >= 0 ? '+' : ''}${clientsHeapMb.toFixed(1)} MB once the ${ready.connected} clients connected`,
        '',
        '',
      ],
      ['   service event loop delay', `p99 ${many.span.loopP99Ms.toFixed(0)} / max ${many.span.loopMaxMs.toFixed(0)} ms`, '', ''],
      ['   POST → delta meanwhile: p50 / p95 / p99', trio(l2), '', ''],
      ['     where the time goes', l2.breakdown, '', ''],
      ['     probes', probeLine(many.result), '', ''],
      ['     load', loadLine(many.result), '', ''],
      [
        '   client process',
        `CPU ${pct(counts.cpuPct)} of a core, event loop delay p99 ${counts.loopP99Ms.toFixed(0)} / max ${counts.loopMaxMs.toFixed(0)} ms`,
        '',
        '',
      ],
      [
        '3. render 4320 × 8 points (fresh chart)',
        renderOk ? `${ms(render.renderMs)} median of ${render.runs.map((x) => x.toFixed(0)).join(', ')} ms` : `– (${render.note})`,
        `≤ ${TARGETS.renderMs} ms`,
        renderOk ? verdict(render.renderMs! <= TARGETS.renderMs) : 'n/a',
      ],
      [
        '   main-thread work of it (no frame wait)',
        renderOk ? `${ms(render.workMs)} (Lit update ${ms(render.updateMs)}, the chart's frame: data + uPlot + raster the rest)` : '–',
        '',
        '',
      ],
      ['   redraw with new values (live update)', renderOk ? ms(render.redrawMs) : '–', '', ''],
      ...(renderOk ? [['   chart', render.note, '', '']] : []),
    ];
    const lines = [
      '',
      `kpi-live live stream: ${rate} simulated blobs/s (1 per POST, ≤ ${maxInFlight} in flight), 1 h window in 10-minute buckets, ` +
        `coalescing ${config.streamCoalesceMs} ms, store: ${store.label}; load and clients in child processes; load average ${loadavg()[0]!.toFixed(1)}`,
      table(rows),
      '',
      `targets: p95 ${l1.p95.toFixed(1)} ms ≤ ${TARGETS.p95Ms} ms ${verdict(l1.p95 <= TARGETS.p95Ms)}` +
        `, msgs/client/s ${maxPerClient.toFixed(2)} ≤ ${TARGETS.msgsPerClientPerSec} ${verdict(maxPerClient <= TARGETS.msgsPerClientPerSec)}` +
        `, clients behind ${behind + missing} = 0 ${verdict(behind + missing === 0)}` +
        `, render ${ms(render.renderMs)} ≤ ${TARGETS.renderMs} ms ${renderOk ? verdict(render.renderMs! <= TARGETS.renderMs) : 'n/a'}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    const summary = {
      p50Ms: round1(l1.p50),
      p95Ms: round1(l1.p95),
      p99Ms: round1(l1.p99),
      probes: one.result.probes,
      clients: ready.connected,
      msgsPerClientPerSec: Number(msgsPerClientPerSec.toFixed(2)),
      clientsBehind: behind + missing,
      serverCpuPct: Math.round(many.span.cpuPct),
      serverRssMb: many.span.rssPeakMb,
      fanoutP95Ms: round1(l2.p95),
      renderMs: render.renderMs === null ? null : round1(render.renderMs),
      renderWorkMs: render.workMs === null ? null : round1(render.workMs),
      store: { kind: store.kind, version: store.version },
      rawBulkDocsPerSec: ceilings.write.docsPerSec,
      rawChangesPerSec: ceilings.feed.changesPerSec,
      ofCeiling: ofCeiling(achieved(one.result), ceilings.write.docsPerSec),
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    await Promise.all(children.map((c) => c.close()));
    // Stops the HTTP server and the stream, saves the aggregate, ends the pouchdb-server child.
    await server?.close();
    if (couchdbUrl && store) await dropDatabases(store, kpiDatabases(dbName));
    await rm(dataDir, { recursive: true, force: true });
  }
}

const role = process.argv.find((arg) => arg.startsWith('--role='))?.slice('--role='.length);
if (role === 'load' || role === 'fanout') {
  // A child: it exits when told to, or when the benchmark process goes away.
  process.on('disconnect', () => process.exit(0));
  void (role === 'load' ? loadRole() : fanoutRole());
} else {
  main().then(
    // The service is closed and every child gone: exit rather than wait on handles a library may keep.
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
