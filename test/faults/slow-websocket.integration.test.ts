/**
 * Live-stream clients that never read: the server keeps at most
 * `KPI_STREAM_MAX_BUFFER_BYTES` (plus the one message that crossed it)
 * unsent per socket, whatever the client does: stay silent while deltas
 * flow, or keep asking for snapshots. Its memory stays bounded, and a client
 * that reads again gets a fresh snapshot that brings it up to date.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { ServerMessage, Subscription } from '../../src/contract/stream.js';
import { windowOf } from '../../src/stream/live-hub.js';
import { seededRandom, simulateSession } from '../../src/simulate/generator.js';
import { startTestApp, type TestApp } from '../harness/app.js';
import { waitUntil } from '../harness/process.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const MAX_BUFFER = 64 * 1024;
/** Blobs stream at least this long while the clients do not read… */
const MIN_LOAD_MS = 2000;
/** …and until both silent sockets hit the bound, or at most this long. */
const MAX_LOAD_MS = 15_000;
/** Growth of heap + external memory allowed while two clients read nothing. */
const MEMORY_BOUND = 48 * 1024 * 1024;
const HOUR = 3_600_000;
const SUBSCRIPTION: Subscription = { rangeMs: 12 * HOUR, bucket: '10m', segment: 'emailType' };

interface Peer {
  socket: WebSocket;
  messages: ServerMessage[];
  bytes: number;
}

async function connect(t: TestApp): Promise<Peer> {
  const { port } = t.app.server.address() as { port: number };
  const socket = new WebSocket(`ws://127.0.0.1:${port}/api/live`);
  const peer: Peer = { socket, messages: [], bytes: 0 };
  socket.on('message', (data: Buffer) => {
    peer.bytes += data.length;
    peer.messages.push(JSON.parse(data.toString()) as ServerMessage);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  socket.send(JSON.stringify({ type: 'hello', subscribe: SUBSCRIPTION }));
  await waitUntil(() => peer.messages.length > 0, 10_000, 'the first snapshot');
  return peer;
}

const memory = () => {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
};

/** Dialogs in the whole window (totals of every series; each blob is in one). */
const totalDialogs = (m: ServerMessage) => (m.type === 'snapshot' || m.type === 'delta' ? m.kpis.series.reduce((n, s) => n + s.total.dialogs, 0) : -1);

describe('live stream clients that do not read', () => {
  let t: TestApp;
  const random = seededRandom(41);
  let posted = 0;
  const post = async (n: number) => {
    const now = Date.now();
    // spread over the whole window, so each delta carries many changed points
    const blobs = Array.from({ length: n }, () => simulateSession(random, { now: now - Math.floor(random() * 11 * HOUR) }).blob);
    const res = await t.app.inject({
      method: 'POST',
      url: '/wsapi/interaction_data',
      headers: { 'content-type': 'application/json' },
      payload: { data: blobs },
    });
    expect(res.statusCode).toBe(200);
    posted += n;
  };

  beforeAll(async () => {
    t = await startTestApp(
      { streamCoalesceMs: 20, streamMaxBufferBytes: MAX_BUFFER, streamHeartbeatMs: 120_000, feedLongpollMs: 1000, maxBlobsPerRequest: 500 },
      { listen: true },
    );
    for (let i = 0; i < 4; i++) await post(500);
    await waitUntil(() => t.app.aggregates.status().counted >= posted, 30_000, 'the first blobs counted');
  });
  afterAll(async () => {
    await t.close();
  });

  it('keeps what waits per socket under the bound plus one message, and sends a snapshot once the client reads again', async () => {
    const reader = await connect(t);
    const silent = await connect(t); // reads nothing while blobs stream
    const greedy = await connect(t); // reads nothing, and keeps asking for snapshots
    silent.socket.pause();
    greedy.socket.pause();
    const before = memory();
    const snapshotBytes = JSON.stringify({ type: 'snapshot', kpis: t.app.aggregates.kpis(windowOf(SUBSCRIPTION)) }).length;

    // the hub's sockets, in the order the clients connected
    const [, silentEnd, greedyEnd] = [...t.app.websocketServer.clients];
    let maxBuffered = 0;
    const sampler = setInterval(() => {
      for (const socket of t.app.websocketServer.clients) maxBuffered = Math.max(maxBuffered, socket.bufferedAmount);
    }, 5);
    const asking = setInterval(() => greedy.socket.send(JSON.stringify({ type: 'subscribe', subscribe: SUBSCRIPTION })), 5);
    // stream until the kernel's buffers of both silent sockets are full and the hub holds back
    const started = Date.now();
    const full = { silent: false, greedy: false };
    while (Date.now() - started < MAX_LOAD_MS && !(full.silent && full.greedy && Date.now() - started > MIN_LOAD_MS)) {
      await post(100);
      full.silent ||= silentEnd!.bufferedAmount > MAX_BUFFER;
      full.greedy ||= greedyEnd!.bufferedAmount > MAX_BUFFER;
    }
    clearInterval(asking);
    await waitUntil(() => t.app.aggregates.status().counted >= posted, 30_000, 'every blob counted');
    await new Promise((r) => setTimeout(r, 200)); // the last flush
    const grown = memory() - before;
    clearInterval(sampler);
    for (const socket of t.app.websocketServer.clients) maxBuffered = Math.max(maxBuffered, socket.bufferedAmount);

    // the largest message the hub can send here is a snapshot of the window as it is now
    const largest = Math.max(snapshotBytes, JSON.stringify({ type: 'snapshot', kpis: t.app.aggregates.kpis(windowOf(SUBSCRIPTION)) }).length) + 1024;
    console.log(
      `slow websocket: ${posted} blobs in ${Date.now() - started} ms; a reading client got ${(reader.bytes / 1e6).toFixed(1)} MB in ${reader.messages.length} messages; ` +
        `most unsent on one socket ${(maxBuffered / 1024).toFixed(0)} KiB (bound ${MAX_BUFFER / 1024} KiB + one message ≤ ${(largest / 1024).toFixed(0)} KiB); ` +
        `heap+external grew ${(grown / 2 ** 20).toFixed(1)} MiB (bound ${MEMORY_BOUND / 2 ** 20} MiB)`,
    );
    expect(full).toEqual({ silent: true, greedy: true });
    expect(maxBuffered).toBeLessThanOrEqual(MAX_BUFFER + largest);
    expect(grown).toBeLessThan(MEMORY_BOUND);

    // reading again: what was queued arrives, then a fresh snapshot with everything
    const seen = { silent: silent.messages.length, greedy: greedy.messages.length };
    silent.socket.resume();
    greedy.socket.resume();
    const upToDate = (peer: Peer, from: number) =>
      peer.messages.slice(from).some((m) => m.type === 'snapshot') && totalDialogs(peer.messages.at(-1)!) === posted;
    await waitUntil(() => upToDate(silent, seen.silent) && upToDate(greedy, seen.greedy), 30_000, 'snapshots after reading again');
    // the silent client asked for nothing: its second snapshot is the one the hub owed it
    expect(silent.messages.filter((m) => m.type === 'snapshot').length).toBeGreaterThanOrEqual(2);
    expect(totalDialogs(reader.messages.at(-1)!)).toBe(posted);
    for (const peer of [reader, silent, greedy]) peer.socket.close();
  }, 120_000);
});
