/**
 * `GET /api/live` over a real WebSocket, on the harness's CouchDB: snapshot,
 * deltas after HTTP ingest that agree with /api/kpis, resume after a
 * reconnect, deploy markers pushed, and who may connect.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';

import type { ServerMessage } from '../../src/contract/stream.js';
import { ingest, nowTimestamp, startTestApp, type TestApp } from '../harness/app.js';
import { tokenDigest } from '../../src/auth/credentials.js';
import { waitUntil } from '../harness/process.js';
import { type KpiAnswer } from '../../src/contract/kpis.js';

interface Peer {
  socket: WebSocket;
  messages: ServerMessage[];
  closed: Promise<{ code: number; reason: string }>;
}

function connect(t: TestApp, headers: Record<string, string> = {}): Promise<Peer> {
  const { port } = t.app.server.address() as { port: number };
  const socket = new WebSocket(`ws://127.0.0.1:${port}/api/live`, { headers });
  const messages: ServerMessage[] = [];
  socket.on('message', (data) => messages.push(JSON.parse(data.toString()) as ServerMessage));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve({ socket, messages, closed }));
    socket.once('error', reject);
  });
}

const SIX_HOURS = 6 * 3_600_000;
const hello = (peer: Peer, extra: Record<string, unknown> = {}) =>
  peer.socket.send(JSON.stringify({ type: 'hello', subscribe: { rangeMs: SIX_HOURS }, ...extra }));

const post = (t: TestApp, n: number, name = 'screen.rp_info') =>
  ingest(
    t,
    Array.from({ length: n }, () => ({ timestamp: nowTimestamp(), event_stream: [[name, 5]] })),
  );

const totalDialogs = (kpis: KpiAnswer) => kpis.series[0]?.total.dialogs ?? 0;

describe('live stream without tokens (loopback)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ streamCoalesceMs: 50, feedLongpollMs: 1000, thresholds: '{"bounceRate":{"max":0.9}}' }, { listen: true });
  });
  afterAll(async () => {
    await t.close();
  });

  it('sends a snapshot, then deltas that agree with /api/kpis', async () => {
    const peer = await connect(t);
    hello(peer);
    await waitUntil(() => peer.messages.length > 0, 5000, 'the snapshot');
    const snapshot = peer.messages[0]!;
    expect(snapshot.type).toBe('snapshot');
    await post(t, 7);
    await waitUntil(() => peer.messages.some((m) => m.type === 'delta' && totalDialogs(m.kpis) === 7), 10_000, 'a delta with the blobs');
    const delta = peer.messages.findLast((m) => m.type === 'delta')! as Extract<ServerMessage, { type: 'delta' }>;
    expect(delta.version).toBeGreaterThan((snapshot as Extract<ServerMessage, { type: 'snapshot' }>).version);
    // only the changed point is listed; the totals cover the window
    expect(delta.kpis.series[0]!.points).toHaveLength(1);
    const api = (await t.app.inject(`/api/kpis?from=${delta.kpis.from}&to=${delta.kpis.to}&bucket=10m`)).json() as KpiAnswer;
    expect(delta.kpis.series[0]!.total).toEqual(api.series[0]!.total);
    expect(delta.kpis.series[0]!.points[0]).toEqual(api.series[0]!.points.find((p) => p.start === delta.kpis.series[0]!.points[0]!.start));
    peer.socket.close();
  });

  it('resumes after a reconnect with only what was missed', async () => {
    const first = await connect(t);
    hello(first);
    await waitUntil(() => first.messages.length > 0, 5000, 'the snapshot');
    const last = first.messages.at(-1) as Extract<ServerMessage, { type: 'snapshot' }>;
    first.socket.close();
    await first.closed;
    await post(t, 3);
    // all three counted, not only a first batch of them
    const counted = async () => totalDialogs((await t.app.inject(`/api/kpis?from=${last.kpis.from}&to=${last.kpis.to}&bucket=10m`)).json() as KpiAnswer);
    await waitUntil(async () => (await counted()) === totalDialogs(last.kpis) + 3, 10_000, 'the blobs counted');
    const again = await connect(t);
    hello(again, { resume: { epoch: last.epoch, version: last.version } });
    await waitUntil(() => again.messages.length > 0, 5000, 'the answer');
    expect(again.messages[0]).toMatchObject({ type: 'delta', epoch: last.epoch });
    expect(totalDialogs((again.messages[0] as Extract<ServerMessage, { type: 'delta' }>).kpis)).toBe(totalDialogs(last.kpis) + 3);
    again.socket.close();
  });

  it('pushes new deploy markers and lists them', async () => {
    const peer = await connect(t);
    hello(peer);
    await waitUntil(() => peer.messages.length > 0, 5000, 'the snapshot');
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/deploys',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ version: 'v2.3.1', note: 'new dialog' }),
    });
    expect(res.statusCode).toBe(201);
    const deploy = res.json();
    expect(deploy).toMatchObject({ version: 'v2.3.1', note: 'new dialog', at: expect.any(Number), id: expect.stringMatching(/^deploy\//) });
    await waitUntil(() => peer.messages.some((m) => m.type === 'deploy'), 5000, 'the marker');
    expect(peer.messages.find((m) => m.type === 'deploy')).toEqual({ type: 'deploy', deploy });
    expect((await t.app.inject('/api/deploys')).json()).toEqual({ deploys: [deploy] });
    const bad = await t.app.inject({
      method: 'POST',
      url: '/api/deploys',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ note: 'no version' }),
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().field).toBe('body.version');
    // a new dashboard gets it in its snapshot
    const later = await connect(t);
    hello(later);
    await waitUntil(() => later.messages.length > 0, 5000, 'the snapshot');
    expect((later.messages[0] as Extract<ServerMessage, { type: 'snapshot' }>).deploys).toEqual([deploy]);
    peer.socket.close();
    later.socket.close();
  });

  it('serves the dashboard settings', async () => {
    expect((await t.app.inject('/api/settings')).json()).toEqual({ thresholds: { bounceRate: { max: 0.9 } }, publicView: false });
  });

  it('closes a client that sends something else first', async () => {
    const peer = await connect(t);
    peer.socket.send(JSON.stringify({ type: 'subscribe', subscribe: { rangeMs: SIX_HOURS } }));
    expect(await peer.closed).toEqual({ code: 4400, reason: 'the first message must be hello' });
  });
});

describe('live stream with tokens', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ apiTokens: [tokenDigest('live-token')], trustLoopback: false, streamCoalesceMs: 50 }, { listen: true });
  });
  afterAll(async () => {
    await t.close();
  });

  it('accepts a token in hello or on the upgrade, and closes with 4401 otherwise', async () => {
    const none = await connect(t);
    hello(none);
    expect(await none.closed).toEqual({ code: 4401, reason: 'a token is needed' });
    const wrong = await connect(t);
    hello(wrong, { token: 'nope' });
    expect((await wrong.closed).code).toBe(4401);
    const badHeader = await connect(t, { authorization: 'Bearer nope' });
    expect((await badHeader.closed).code).toBe(4401);

    const inHello = await connect(t);
    hello(inHello, { token: 'live-token' });
    const viaHeader = await connect(t, { authorization: 'Bearer live-token' });
    hello(viaHeader);
    await waitUntil(() => inHello.messages.length > 0 && viaHeader.messages.length > 0, 5000, 'both snapshots');
    expect(inHello.messages[0]!.type).toBe('snapshot');
    expect(viaHeader.messages[0]!.type).toBe('snapshot');
    inHello.socket.close();
    viaHeader.socket.close();
  });

  it('closes open dashboards with 1001 when the service shuts down', async () => {
    const peer = await connect(t, { authorization: 'Bearer live-token' });
    hello(peer);
    await waitUntil(() => peer.messages.length > 0, 5000, 'the snapshot');
    const closing = t.app.close();
    expect((await peer.closed).code).toBe(1001);
    await closing;
  });
});
