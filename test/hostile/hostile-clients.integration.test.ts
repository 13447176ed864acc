/**
 * Hostile clients against the real service process (not `inject`): 10,000
 * generated WebSocket frames, before and after `hello`, and 10,000 generated
 * bad ingest bodies interleaved with good blobs. Every socket ends with a
 * close code the protocol allows, or, when the service left it open, still
 * answers a valid subscribe with a snapshot. Sockets that wait for hello are
 * capped per address (4429) and closed at the deadline (4408). Afterwards the
 * same process still answers `/health`, its resident memory stayed under
 * 300 MB and grew by less than 150 MB, and the store holds exactly the blobs
 * that were acknowledged.
 *
 * The seed is printed; `KPI_FUZZ_SEED=<n>` runs another.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { WebSocket } from 'ws';
import { tokenDigest } from '../../src/auth/credentials.js';
import { badRequest } from '../fuzz/bad-bodies.js';
import { dropDb, nowTimestamp, uniqueDbName } from '../harness/app.js';
import { startServiceProcess, within, type ServiceProcess } from '../harness/process.js';
import { openHarnessStore, storedCount, storedMarkers } from '../harness/verify.js';

const SEED = Number(process.env.KPI_FUZZ_SEED ?? 20261203);
const FRAMES = 10_000;
const BODIES = 10_000;
const GOOD_BLOBS = 200;
/** Resident memory the process may reach during the run, and may grow by. */
const MAX_RSS_MB = 300;
const MAX_RSS_GROWTH_MB = 150;
const TOKEN = 'klt_hostile-clients-test-token-0123456789abcdef';
/** What a socket may end with: the protocol's refusals and the WebSocket layer's. */
const EXPECTED_CLOSES = new Set(['4400', '4401', '1007', '1009', '1002']);
const SUBSCRIBE = { rangeMs: 3_600_000 };
/** Sockets one address may hold before hello, and how long hello may take, in this run. */
const CAP = 32;
const HELLO_MS = 1000;

const dbName = uniqueDbName('hostile');
afterAll(async () => {
  for (const suffix of ['', '_aggregates', '_deploys', '_alerts']) await dropDb(`${dbName}${suffix}`);
});

/** One frame as a client may send it. */
type Frame = { text: string } | { bytes: Buffer; binary: boolean } | { parts: string[] };

const anything = fc.jsonValue({ maxDepth: 4 });
/** A value for each field: right, or of any other shape. */
const field = <T>(right: fc.Arbitrary<T>) => fc.oneof(right, anything, fc.constant(null));
const subscription = fc.oneof(
  fc.record(
    {
      rangeMs: field(fc.integer({ min: -1, max: 2 ** 40 })),
      from: field(fc.integer()),
      bucket: field(fc.constantFrom('10m', '1h', '1d', '1m', '')),
      segment: field(fc.constantFrom('lang', 'browser', 'os', 'nope')),
      top: field(fc.integer({ min: -1, max: 50 })),
      extra: anything,
    },
    { requiredKeys: [] },
  ),
  anything,
);
const message = fc.record(
  {
    type: field(fc.constantFrom('hello', 'subscribe', 'snapshot', 'HELLO')),
    token: field(fc.constantFrom(TOKEN, 'klt_wrong', '')),
    subscribe: subscription,
    resume: field(fc.record({ epoch: field(fc.string()), version: field(fc.integer()) }, { requiredKeys: [] })),
  },
  { requiredKeys: [] },
);
/** A subscription the service takes: on a greeted socket it gets a snapshot and the socket keeps working. */
const validSubscription = fc
  .record(
    { rangeMs: fc.integer({ min: 600_000, max: 7 * 86_400_000 }), bucket: fc.constantFrom('10m', '1h', '1d'), segment: fc.constantFrom('os', 'browser') },
    { requiredKeys: ['rangeMs'] },
  )
  .map((sub) => (sub.segment ? { ...sub, top: 5 } : sub));
const frame: fc.Arbitrary<Frame> = fc.oneof(
  // valid messages: a subscribe works after hello (4400 before it), a hello works before it (4400 after it)
  { weight: 1, arbitrary: validSubscription.map((sub) => ({ text: JSON.stringify({ type: 'subscribe', subscribe: sub }) })) },
  { weight: 1, arbitrary: validSubscription.map((sub) => ({ text: JSON.stringify({ type: 'hello', token: TOKEN, subscribe: sub }) })) },
  { weight: 12, arbitrary: message.map((m) => ({ text: JSON.stringify(m) })) },
  { weight: 3, arbitrary: anything.map((v) => ({ text: JSON.stringify(v) })) },
  { weight: 1, arbitrary: fc.string({ maxLength: 64 }).map((text) => ({ text })) },
  { weight: 1, arbitrary: fc.integer({ min: 2, max: 10_000 }).map((n) => ({ text: '['.repeat(n) + ']'.repeat(n) })) },
  { weight: 1, arbitrary: fc.integer({ min: 2, max: 5_000 }).map((n) => ({ text: '{"a":'.repeat(n) + '1' + '}'.repeat(n) })) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(60_000, 65_530, 70_000, 200_000)
      .map((n) => ({ text: JSON.stringify({ type: 'hello', token: 'x'.repeat(n), subscribe: SUBSCRIBE }) })),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }).map((a) => ({ bytes: Buffer.from(a), binary: true })) },
  // text frames that are not UTF-8
  {
    weight: 1,
    arbitrary: fc
      .constantFrom([0xff], [0xc3, 0x28], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80])
      .map((b) => ({ bytes: Buffer.concat([Buffer.from('{"type":"'), Buffer.from(b), Buffer.from('"}')]), binary: false })),
  },
  // a message in fragments
  {
    weight: 1,
    arbitrary: fc.tuple(message, fc.integer({ min: 1, max: 5 })).map(([m, n]) => {
      const text = JSON.stringify(m);
      const size = Math.ceil(text.length / n) || 1;
      return { parts: Array.from({ length: Math.ceil(text.length / size) }, (_, i) => text.slice(i * size, (i + 1) * size)) };
    }),
  },
);

function send(socket: WebSocket, f: Frame): void {
  if ('text' in f) socket.send(f.text);
  else if ('bytes' in f) socket.send(f.bytes, { binary: f.binary });
  else f.parts.forEach((part, i) => socket.send(part, { fin: i === f.parts.length - 1 }));
}

interface SocketRun {
  /** How the socket ended: a close code, or `working` (still open, and it answered a valid subscribe with a snapshot). */
  end: string;
  framesSent: number;
}

/**
 * One socket: a valid hello first when `greet`, then frames until the
 * service closes it or all are sent. A socket the service left open must
 * still work: it is sent a valid `subscribe` and must answer with a snapshot
 * (a frame silently ignored, or a socket left hanging, shows as `no answer`
 * or as the close that subscribe got).
 */
function runSocket(url: string, frames: Frame[], greet: boolean): Promise<SocketRun> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    let sent = 0;
    let settled = false;
    let probing = false;
    let timer: NodeJS.Timeout | undefined;
    const settle = (end: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.terminate();
      resolve({ end, framesSent: sent });
    };
    const probe = () => {
      if (settled || socket.readyState !== socket.OPEN) return;
      probing = true;
      socket.send(JSON.stringify({ type: 'subscribe', subscribe: SUBSCRIBE }));
      timer = setTimeout(() => settle('no answer'), 10_000);
    };
    socket.on('error', () => undefined);
    socket.on('close', (code) => settle(probing ? `${code} after a valid subscribe` : String(code)));
    socket.on('message', (data) => {
      if (probing && (JSON.parse(data.toString()) as { type?: unknown }).type === 'snapshot') settle('working');
    });
    socket.on('unexpected-response', (_req, res) => reject(new Error(`upgrade answered ${res.statusCode}`)));
    socket.on('open', () => {
      if (greet) socket.send(JSON.stringify({ type: 'hello', token: TOKEN, subscribe: SUBSCRIBE }));
      const next = () => {
        if (settled || socket.readyState !== socket.OPEN) return;
        // the last frame had its time to be refused; a socket still open must work
        if (sent === frames.length) return void (timer = setTimeout(probe, 300));
        send(socket, frames[sent++]!);
        setTimeout(next, 2);
      };
      next();
    });
  });
}

/** Opens a socket from `localAddress` that says nothing; resolves once open (or with the code it was closed with at once). */
function silentSocket(url: string, localAddress: string): Promise<{ socket: WebSocket; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { localAddress });
    const closed = new Promise<number>((done) => socket.on('close', (code) => done(code)));
    socket.on('error', () => undefined);
    socket.once('open', () => resolve({ socket, closed }));
    socket.once('unexpected-response', (_req, res) => reject(new Error(`upgrade answered ${res.statusCode}`)));
  });
}

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

async function inBatches<T, R>(items: T[], concurrency: number, run: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await run(items[i]!, i);
      }
    }),
  );
  return results;
}

describe('hostile clients against the service process', () => {
  let service: ServiceProcess;
  let base: string;
  let pid: number;
  let rssBefore: number;
  let rssPeak = 0;

  it('starts', async () => {
    service = startServiceProcess(['serve'], {
      COUCHDB_URL: inject('couchUrl'),
      KPI_DB: dbName,
      PORT: '0',
      LOG_LEVEL: 'info',
      KPI_TRUST_LOOPBACK: 'false',
      KPI_API_TOKENS: tokenDigest(TOKEN),
      KPI_RATE_LIMIT_MAX: '1000000',
      // above the frame run's 24 sockets at a time from 127.0.0.1
      KPI_STREAM_MAX_UNGREETED_PER_ADDRESS: String(CAP),
      KPI_STREAM_HELLO_MS: String(HELLO_MS),
    });
    base = await within('the service listening', 30_000, service.listening());
    pid = service.child.pid!;
    rssBefore = rssMb(pid);
  }, 60_000);

  it(`survives ${FRAMES} generated frames on /api/live, before and after hello`, async () => {
    const frames = fc.sample(frame, { seed: SEED, numRuns: FRAMES });
    // every frame gets a socket of its own (a refused frame closes its socket);
    // every other socket says hello first, so half the frames come after it
    const groups = frames.map((f) => [f]);
    const url = `${base.replace('http', 'ws')}/api/live`;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMb(pid))), 200);
    let runs: SocketRun[];
    try {
      runs = await within(
        'the frames',
        240_000,
        inBatches(groups, 24, (group, i) => runSocket(url, group, i % 2 === 1)),
      );
    } finally {
      clearInterval(sampler);
    }
    const codes: Record<string, number> = {};
    for (const r of runs) codes[r.end] = (codes[r.end] ?? 0) + 1;
    const sent = runs.reduce((s, r) => s + r.framesSent, 0);
    console.log(`hostile frames: seed ${SEED}; ${FRAMES} generated, ${sent} sent on ${runs.length} sockets; sockets ended with ${JSON.stringify(codes)}`);
    const unexpected = Object.keys(codes).filter((c) => c !== 'working' && !EXPECTED_CLOSES.has(c));
    expect(unexpected).toEqual([]);
    expect(sent).toBe(FRAMES);
    expect(service.child.exitCode).toBeNull();
    expect(service.child.pid).toBe(pid);
    expect((await fetch(`${base}/health`)).status).toBe(200);
  }, 300_000);

  it(`survives ${BODIES} generated bad bodies among ${GOOD_BLOBS} good blobs, and stores exactly what it acknowledged`, async () => {
    const bad = fc.sample(badRequest, { seed: SEED + 1, numRuns: BODIES });
    const every = Math.floor(BODIES / GOOD_BLOBS);
    const acked: string[] = [];
    const statuses: Record<string, number> = {};
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMb(pid))), 200);
    try {
      await within(
        'the bodies',
        240_000,
        inBatches(bad, 16, async (sent, i) => {
          const res = await fetch(`${base}/wsapi/interaction_data`, {
            method: 'POST',
            headers: sent.contentType ? { 'content-type': sent.contentType } : {},
            body: sent.body,
          });
          await res.arrayBuffer();
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
          if (res.status < 400 || res.status >= 500) throw new Error(`a bad body (${sent.kind}) was answered ${res.status}`);
          if (i % every === 0) {
            const marker = `hostile-${i}`;
            const good = await fetch(`${base}/wsapi/interaction_data`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ data: [{ timestamp: nowTimestamp(), event_stream: [['screen.rp_info', 1]], rp_api: marker }] }),
            });
            await good.arrayBuffer();
            if (good.status === 200) acked.push(marker);
          }
        }),
      );
    } finally {
      clearInterval(sampler);
    }
    console.log(`hostile bodies: ${BODIES} bad ones answered ${JSON.stringify(statuses)}; ${acked.length} good blobs acknowledged`);
    expect(acked).toHaveLength(GOOD_BLOBS);
    expect(service.child.exitCode).toBeNull();
    expect((await fetch(`${base}/health`)).status).toBe(200);

    const store = await within('the harness store', 10_000, openHarnessStore(dbName));
    try {
      const stored = await within('the stored markers', 30_000, storedMarkers(store));
      expect(storedCount(stored)).toBe(acked.length);
      expect([...stored.keys()].sort()).toEqual([...acked].sort());
      expect([...stored.values()].every((n) => n === 1)).toBe(true);
    } finally {
      await store.close();
    }
  }, 300_000);

  it(`closes the socket after ${CAP} waiting for hello from one address at once (4429), on time (4408), and a wrong token (4401)`, async () => {
    const url = `${base.replace('http', 'ws')}/api/live`;
    // each source address is its own client: 127.0.0.0/8 is all loopback
    const waiting = await Promise.all(Array.from({ length: CAP }, () => silentSocket(url, '127.0.0.2')));
    const refused = await silentSocket(url, '127.0.0.2');
    expect(await within('the socket over the cap closing', 5000, refused.closed)).toBe(4429);
    const other = await silentSocket(url, '127.0.0.3');
    const wrong = await silentSocket(url, '127.0.0.4');
    wrong.socket.send(JSON.stringify({ type: 'hello', token: 'klt_wrong', subscribe: SUBSCRIBE }));
    expect(await within('the wrong token refused', 5000, wrong.closed)).toBe(4401);
    // nobody said hello: every waiting socket is closed once the deadline passes, which frees the address
    const codes = await within(`the waiting sockets closed after ${HELLO_MS} ms`, HELLO_MS + 10_000, Promise.all([...waiting, other].map((w) => w.closed)));
    expect(new Set(codes)).toEqual(new Set([4408]));
    const again = await silentSocket(url, '127.0.0.2');
    again.socket.send(JSON.stringify({ type: 'hello', token: TOKEN, subscribe: SUBSCRIBE }));
    const answer = await within(
      'a snapshot for the freed address',
      10_000,
      new Promise<string>((done) => again.socket.once('message', (data) => done((JSON.parse(data.toString()) as { type: string }).type))),
    );
    expect(answer).toBe('snapshot');
    again.socket.close();
    const metrics = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    const refusedTotal = Number(/^kpi_live_refused_ungreeted_total (\d+)/m.exec(metrics)?.[1]);
    const badTotal = Number(/^kpi_live_bad_messages_total (\d+)/m.exec(metrics)?.[1]);
    console.log(
      `hostile: ${CAP} sockets waiting for hello from 127.0.0.2, the next closed 4429; kpi_live_refused_ungreeted_total ${refusedTotal}, kpi_live_bad_messages_total ${badTotal}`,
    );
    expect(refusedTotal).toBe(1);
    expect(badTotal).toBeGreaterThan(0);
    expect(service.child.exitCode).toBeNull();
  }, 60_000);

  it('kept its memory within the bound, and stops cleanly', async () => {
    const rssAfter = rssMb(pid);
    console.log(
      `hostile: RSS ${rssBefore.toFixed(0)} MB at start, peak ${rssPeak.toFixed(0)} MB, ${rssAfter.toFixed(0)} MB at the end (bound ${MAX_RSS_MB} MB, growth ${MAX_RSS_GROWTH_MB} MB)`,
    );
    expect(rssPeak).toBeLessThan(MAX_RSS_MB);
    expect(rssAfter - rssBefore).toBeLessThan(MAX_RSS_GROWTH_MB);
    service.child.kill('SIGTERM');
    expect(await within('the service stopping', 20_000, service.exited)).toBe(0);
  }, 30_000);
});
