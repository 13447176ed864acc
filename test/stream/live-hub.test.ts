/**
 * The hub's rules with a fake socket whose unsent bytes the test controls:
 * snapshot, resume, coalescing and sharing, slow-client overflow, markers,
 * heartbeats, hello timeout.
 */
import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AggregateApi } from '../../src/aggregate/routes/plugin.js';

import { type KpiQuery } from '../../src/aggregate/model/query.js';
import * as web from '../../web/src/model.js';
import type { Deploy, Deploys } from '../../src/deploys/plugin.js';
import { subscriptionProblem } from '../../src/stream/client-messages.js';
import { closeSocket, LiveHub, windowOf } from '../../src/stream/live-hub.js';
import type { ServerMessage } from '../../src/contract/stream.js';
import { NEW_USER_STEPS, RESET_STEPS, bucketForRange, MAX_RANGE_MS, MAX_TOP, type KpiAnswer, type KpiSeries, type Kpis } from '../../src/contract/kpis.js';

class FakeSocket extends EventEmitter {
  sent: ServerMessage[] = [];
  closed: { code: number; reason: string } | undefined;
  terminated = false;
  pings = 0;
  bufferedAmount = 0;
  send(text: string) {
    this.sent.push(JSON.parse(text) as ServerMessage);
  }
  close(code: number, reason: string) {
    this.closed = { code, reason };
    this.emit('close');
  }
  terminate() {
    this.terminated = true;
  }
  ping() {
    this.pings += 1;
  }
  hello(extra: Record<string, unknown> = {}) {
    this.emit('message', Buffer.from(JSON.stringify({ type: 'hello', subscribe: { rangeMs: 6 * 3_600_000 }, ...extra })), false);
  }
}

function fakeAggregates() {
  const changes = new Subject<{ version: number; keys: string[] }>();
  const state = { epoch: 'e1', version: 10 };
  const calls: { query: KpiQuery; changedAfter: number | undefined }[] = [];
  /** What the next answers hold: series by name, with the starts of their (changed) points. */
  const answer = { series: [] as [string, number[]][] };
  const aggregates: AggregateApi = {
    kpis: (query, changedAfter) => {
      calls.push({ query, changedAfter });
      const series = answer.series.map(([segment, starts]): KpiSeries => ({
        segment,
        total: {} as Kpis,
        points: starts.map((start) => ({ start, end: start + 600_000, kpis: {} as Kpis })),
      }));
      return { from: query.from, to: query.to, bucket: query.bucket, bucketMs: 0, segment: null, watermark: 0, series } satisfies KpiAnswer;
    },
    version: () => ({ ...state }),
    arrivals: () => undefined,
    windowsTotal: () => ({}) as Kpis,
    funnel: () => {
      throw new Error('unused');
    },
    status: () => {
      throw new Error('unused');
    },
    changes$: changes.asObservable(),
  };
  const change = (version: number) => {
    state.version = version;
    changes.next({ version, keys: [] });
  };
  return { aggregates, state, calls, change, answer };
}

function fakeDeploys() {
  const added = new Subject<Deploy>();
  const deploys: Deploys = {
    list: () => [{ id: 'd1', version: 'v1', at: 1 }],
    get: () => undefined,
    added$: added.asObservable(),
    onDeploy: () => undefined,
    handled: () => undefined,
  };
  return { deploys, added };
}

const options = {
  coalesceMs: 100,
  maxBufferedBytes: 1000,
  heartbeatMs: 10_000,
  helloTimeoutMs: 5000,
  maxUngreetedPerAddress: 3,
  authorize: (t: string | undefined) => t === 'good',
};

function setup() {
  const a = fakeAggregates();
  const d = fakeDeploys();
  const hub = new LiveHub(a.aggregates, d.deploys, options, pino({ level: 'silent' }));
  hub.start();
  return { hub, ...a, ...d };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('LiveHub', () => {
  it('answers hello with a snapshot of the window, with the markers in it', () => {
    vi.useFakeTimers();
    const { hub } = setup();
    const socket = new FakeSocket();
    hub.attach(socket as never, true);
    socket.hello();
    expect(socket.sent).toEqual([expect.objectContaining({ type: 'snapshot', epoch: 'e1', version: 10, deploys: [{ id: 'd1', version: 'v1', at: 1 }] })]);
    const ungreeted = new FakeSocket();
    hub.attach(ungreeted as never, true);
    hub.stop();
    expect(socket.closed?.code).toBe(1001);
    expect(ungreeted.closed?.code).toBe(1001);
  });

  it('sends the first change at once, then at most one delta per interval, computed once for sockets that need the same', () => {
    vi.useFakeTimers();
    const { hub, change, calls } = setup();
    const [a, b] = [new FakeSocket(), new FakeSocket()];
    for (const s of [a, b]) {
      hub.attach(s as never, true);
      s.hello();
    }
    calls.length = 0;
    change(11);
    for (const s of [a, b]) expect(s.sent.slice(1)).toEqual([expect.objectContaining({ type: 'delta', version: 11 })]);
    change(12);
    change(13);
    vi.advanceTimersByTime(99);
    expect(a.sent).toHaveLength(2);
    vi.advanceTimersByTime(1);
    for (const s of [a, b]) expect(s.sent.slice(1).map((m) => (m as { version: number }).version)).toEqual([11, 13]);
    // one computation per distinct need, shared by both sockets
    expect(calls.map((c) => c.changedAfter)).toEqual([10, 11]);
    hub.stop();
  });

  it('resumes with a delta since the given version in the same epoch, a snapshot otherwise', () => {
    vi.useFakeTimers();
    const { hub, calls } = setup();
    const same = new FakeSocket();
    hub.attach(same as never, true);
    same.hello({ resume: { epoch: 'e1', version: 7 } });
    expect(same.sent).toEqual([expect.objectContaining({ type: 'delta', version: 10 })]);
    expect(calls.at(-1)?.changedAfter).toBe(7);
    const other = new FakeSocket();
    hub.attach(other as never, true);
    other.hello({ resume: { epoch: 'old', version: 7 } });
    expect(other.sent[0]?.type).toBe('snapshot');
    hub.stop();
  });

  it('gives a slow socket nothing more while it is full, then one snapshot when it drains', () => {
    vi.useFakeTimers();
    const { hub, change, added } = setup();
    const slow = new FakeSocket();
    hub.attach(slow as never, true);
    slow.hello();
    slow.bufferedAmount = 5000; // over the 1000-byte bound
    for (let v = 11; v <= 30; v++) {
      change(v);
      vi.advanceTimersByTime(100);
    }
    added.next({ id: 'd2', version: 'v2', at: 2 });
    expect(slow.sent).toHaveLength(1);
    slow.bufferedAmount = 0;
    vi.advanceTimersByTime(100);
    expect(slow.sent.slice(1)).toEqual([expect.objectContaining({ type: 'snapshot', version: 30 })]);
    hub.stop();
  });

  it('pushes deploy markers to every subscribed socket', () => {
    vi.useFakeTimers();
    const { hub, added } = setup();
    const socket = new FakeSocket();
    hub.attach(socket as never, true);
    socket.hello();
    added.next({ id: 'd2', version: 'v2', at: 2, note: 'bad deploy' });
    expect(socket.sent.at(-1)).toEqual({ type: 'deploy', deploy: { id: 'd2', version: 'v2', at: 2, note: 'bad deploy' } });
    hub.stop();
  });

  it('sends a snapshot when the aggregate restarted (new epoch)', () => {
    vi.useFakeTimers();
    const { hub, state, change } = setup();
    const socket = new FakeSocket();
    hub.attach(socket as never, true);
    socket.hello();
    state.epoch = 'e2';
    change(1);
    vi.advanceTimersByTime(100);
    expect(socket.sent.at(-1)).toMatchObject({ type: 'snapshot', epoch: 'e2', version: 1 });
    hub.stop();
  });

  it('sends a top-N socket a snapshot instead of a delta when its top values change, deltas while they stay', () => {
    vi.useFakeTimers();
    const { hub, change, answer } = setup();
    const socket = new FakeSocket();
    const plain = new FakeSocket();
    hub.attach(socket as never, true);
    hub.attach(plain as never, true);
    answer.series = [
      ['Firefox', [0]],
      ['Other', [0]],
    ];
    socket.hello({ subscribe: { rangeMs: 6 * 3_600_000, segment: 'browser', top: 1 } });
    plain.hello({ subscribe: { rangeMs: 6 * 3_600_000, segment: 'browser' } });
    change(11);
    expect(socket.sent.map((m) => m.type)).toEqual(['snapshot', 'delta']);
    // Chrome overtakes Firefox: Other's unchanged points now hold Firefox, which the socket cannot know
    answer.series = [
      ['Chrome', [600_000]],
      ['Other', [600_000]],
    ];
    vi.advanceTimersByTime(100);
    change(12);
    expect(socket.sent.slice(2)).toEqual([
      expect.objectContaining({
        type: 'snapshot',
        version: 12,
        kpis: expect.objectContaining({ series: [expect.objectContaining({ segment: 'Chrome' }), expect.anything()] }),
      }),
    ]);
    // without top, series are independent of each other: a delta is right
    expect(plain.sent.map((m) => m.type)).toEqual(['snapshot', 'delta', 'delta']);
    vi.advanceTimersByTime(100);
    change(13);
    expect(socket.sent.map((m) => m.type)).toEqual(['snapshot', 'delta', 'snapshot', 'delta']);
    hub.stop();
  });

  it('resumes a top-N socket with a snapshot, since the top values it holds are not known', () => {
    vi.useFakeTimers();
    const { hub } = setup();
    const socket = new FakeSocket();
    hub.attach(socket as never, true);
    socket.hello({ subscribe: { rangeMs: 6 * 3_600_000, segment: 'os', top: 8 }, resume: { epoch: 'e1', version: 7 } });
    expect(socket.sent.map((m) => m.type)).toEqual(['snapshot']);
    hub.stop();
  });

  it('sends a fixed window a delta only when a bucket in it changed', () => {
    vi.useFakeTimers();
    const { hub, change, answer, calls } = setup();
    const socket = new FakeSocket();
    hub.attach(socket as never, true);
    answer.series = [['all', [0, 600_000]]];
    socket.hello({ subscribe: { rangeMs: 3_600_000, from: 0 } });
    expect(calls.at(-1)?.query).toMatchObject({ from: 0, to: 3_600_000, bucket: '10m' });
    // blobs of now land outside the window: no point of it changed
    answer.series = [['all', []]];
    change(11);
    vi.advanceTimersByTime(100);
    change(12);
    expect(socket.sent.map((m) => m.type)).toEqual(['snapshot']);
    // a late blob lands in it
    answer.series = [['all', [600_000]]];
    vi.advanceTimersByTime(100);
    change(13);
    expect(socket.sent.slice(1)).toEqual([expect.objectContaining({ type: 'delta', version: 13 })]);
    expect(calls.at(-1)?.changedAfter).toBe(12);
    hub.stop();
  });

  it('checks tokens in hello when the upgrade carried none', () => {
    vi.useFakeTimers();
    const { hub } = setup();
    const missing = new FakeSocket();
    hub.attach(missing as never, false);
    missing.hello();
    expect(missing.closed).toEqual({ code: 4401, reason: 'a token is needed' });
    const wrong = new FakeSocket();
    hub.attach(wrong as never, false);
    wrong.hello({ token: 'bad' });
    expect(wrong.closed).toEqual({ code: 4401, reason: 'the token is not valid' });
    const good = new FakeSocket();
    hub.attach(good as never, false);
    good.hello({ token: 'good' });
    expect(good.sent[0]?.type).toBe('snapshot');
    expect(hub.size).toBe(1);
    hub.stop();
  });

  it('closes sockets that send garbage, say no hello in time, or miss a heartbeat', () => {
    vi.useFakeTimers();
    const { hub } = setup();
    const garbage = new FakeSocket();
    hub.attach(garbage as never, true);
    garbage.emit('message', Buffer.from('{nope'), false);
    expect(garbage.closed?.code).toBe(4400);
    const badSub = new FakeSocket();
    hub.attach(badSub as never, true);
    badSub.hello({ subscribe: { rangeMs: 5 } });
    expect(badSub.closed?.code).toBe(4400);
    expect(badSub.sent).toEqual([{ type: 'error', message: expect.stringMatching(/^subscribe.rangeMs/) }]);
    const silent = new FakeSocket();
    hub.attach(silent as never, true);
    vi.advanceTimersByTime(5000);
    expect(silent.closed).toEqual({ code: 4408, reason: 'no hello received' });
    const dead = new FakeSocket();
    const alive = new FakeSocket();
    for (const s of [dead, alive]) {
      hub.attach(s as never, true);
      s.hello();
    }
    vi.advanceTimersByTime(10_000);
    alive.emit('pong');
    vi.advanceTimersByTime(10_000);
    expect(dead.terminated).toBe(true);
    expect(alive.terminated).toBe(false);
    expect(alive.pings).toBe(2);
    hub.stop();
  });
});

describe('LiveHub under hostile clients', () => {
  /** A hub with fake timers and one socket authorised at upgrade. */
  const attachedSocket = () => {
    vi.useFakeTimers();
    const { hub } = setup();
    const socket = new FakeSocket();
    hub.attach(socket as never, true);
    return { hub, socket };
  };
  const send = (socket: FakeSocket, value: unknown) => socket.emit('message', Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)), false);

  it.each(['null', '5', '[]', '"x"', 'true', '[[[[[]]]]]'])('closes a socket whose frame is JSON but no object (%s) with 4400, naming why', (text) => {
    const { hub, socket } = attachedSocket();
    expect(() => send(socket, text)).not.toThrow();
    expect(socket.closed?.code).toBe(4400);
    expect(socket.sent).toEqual([{ type: 'error', message: 'a message must be a JSON object' }]);
    expect(hub.stats.badMessages).toBe(1);
    hub.stop();
  });

  it.each([5, 1.5, true, null, [], {}, ['good'], { length: 4 }])(
    'refuses a hello whose token is %j with 4400 naming hello.token, never asking authorize',
    (token) => {
      vi.useFakeTimers();
      const a = fakeAggregates();
      const authorize = vi.fn(() => true);
      const hub = new LiveHub(a.aggregates, fakeDeploys().deploys, { ...options, authorize }, pino({ level: 'silent' }));
      const socket = new FakeSocket();
      hub.attach(socket as never, false);
      socket.hello({ token });
      expect(socket.closed?.code).toBe(4400);
      expect(socket.sent).toEqual([{ type: 'error', message: 'hello.token must be a string of at most 512 characters' }]);
      expect(authorize).not.toHaveBeenCalled();
    },
  );

  it('refuses a hello when the token check throws, and a check that answers anything but true', () => {
    vi.useFakeTimers();
    const a = fakeAggregates();
    const throwing = new LiveHub(
      a.aggregates,
      fakeDeploys().deploys,
      {
        ...options,
        authorize: () => {
          throw new TypeError('boom');
        },
      },
      pino({ level: 'silent' }),
    );
    const socket = new FakeSocket();
    throwing.attach(socket as never, false);
    expect(() => socket.hello({ token: 'good' })).not.toThrow();
    expect(socket.closed).toEqual({ code: 4401, reason: 'the token is not valid' });
    const truthy = new LiveHub(a.aggregates, fakeDeploys().deploys, { ...options, authorize: () => 1 as unknown as boolean }, pino({ level: 'silent' }));
    const other = new FakeSocket();
    truthy.attach(other as never, false);
    other.hello({ token: 'good' });
    expect(other.closed?.code).toBe(4401);
  });

  it('names the field at fault in the error and the close', () => {
    const { hub, socket } = attachedSocket();
    socket.hello();
    send(socket, { type: 'subscribe', subscribe: { rangeMs: 3_600_000, top: '5', segment: 'os' } });
    expect(socket.sent.at(-1)).toEqual({ type: 'error', message: 'subscribe.top must be an integer between 1 and 20' });
    expect(socket.closed).toEqual({ code: 4400, reason: 'subscribe.top must be an integer between 1 and 20' });
    hub.stop();
  });

  it('ignores what a socket sends after it was closed', () => {
    const { hub, socket } = attachedSocket();
    send(socket, 'null');
    socket.closed = undefined;
    socket.hello();
    expect(socket.closed).toBeUndefined();
    expect(hub.size).toBe(0);
    hub.stop();
  });

  it('closes with 1011, and stays up, when answering a good message fails', () => {
    vi.useFakeTimers();
    const a = fakeAggregates();
    a.aggregates.kpis = () => {
      throw new Error('a bug');
    };
    const hub = new LiveHub(a.aggregates, fakeDeploys().deploys, options, pino({ level: 'silent' }));
    const socket = new FakeSocket();
    hub.attach(socket as never, true);
    expect(() => socket.hello()).not.toThrow();
    expect(socket.closed).toEqual({ code: 1011, reason: 'internal error' });
  });

  it('cuts a close reason to the 123 bytes a close frame holds, at a character boundary', () => {
    const socket = new FakeSocket();
    closeSocket(socket as never, 4400, 'é'.repeat(100));
    expect(socket.closed).toEqual({ code: 4400, reason: 'é'.repeat(61) });
    const failing = new FakeSocket();
    failing.close = () => {
      throw new RangeError('invalid code');
    };
    closeSocket(failing as never, 1, 'x');
    expect(failing.terminated).toBe(true);
  });

  it('closes a socket at once (4429) when its address already holds the most that have not said hello', () => {
    vi.useFakeTimers();
    const { hub } = setup();
    const from = (address: string) => {
      const socket = new FakeSocket();
      hub.attach(socket as never, false, address);
      return socket;
    };
    const waiting = [from('10.0.0.1'), from('10.0.0.1'), from('10.0.0.1')];
    const refused = from('10.0.0.1');
    expect(refused.closed).toEqual({ code: 4429, reason: 'too many sockets waiting for hello from this address' });
    expect(from('10.0.0.2').closed).toBeUndefined();
    expect(hub.stats).toMatchObject({ refusedUngreeted: 1, sockets: 4, connections: 4 });
    // one says hello, one leaves: room for two more
    waiting[0]!.hello({ token: 'good' });
    expect(waiting[0]!.sent[0]?.type).toBe('snapshot');
    waiting[1]!.close(1000, 'bye');
    expect(from('10.0.0.1').closed).toBeUndefined();
    expect(from('10.0.0.1').closed).toBeUndefined();
    expect(from('10.0.0.1').closed?.code).toBe(4429);
    // a refused hello and a hello timeout free their place too
    waiting[2]!.hello({ token: 'bad' });
    expect(waiting[2]!.closed?.code).toBe(4401);
    expect(from('10.0.0.1').closed).toBeUndefined();
    vi.advanceTimersByTime(options.helloTimeoutMs);
    expect(from('10.0.0.1').closed).toBeUndefined();
    expect(hub.stats.refusedUngreeted).toBe(2);
    hub.stop();
  });
});

describe('subscriptions', () => {
  it('choose a bucket from the range and end at the next 10 minutes', () => {
    const now = Date.UTC(2026, 10, 23, 12, 34);
    expect(windowOf({ rangeMs: 6 * 3_600_000 }, now)).toEqual({
      from: Date.UTC(2026, 10, 23, 6, 40),
      to: Date.UTC(2026, 10, 23, 12, 40),
      bucket: '10m',
      segment: undefined,
    });
    expect(windowOf({ rangeMs: 7 * 86_400_000 }, now).bucket).toBe('1h');
    expect(windowOf({ rangeMs: 30 * 86_400_000, segment: 'os' }, now)).toMatchObject({ bucket: '1d', segment: 'os' });
  });

  it('fix a window from `from`, and carry top', () => {
    const from = Date.UTC(2026, 10, 20);
    expect(windowOf({ rangeMs: 2 * 3_600_000, from, segment: 'os', top: 8 }, Date.UTC(2026, 10, 23))).toEqual({
      from,
      to: from + 2 * 3_600_000,
      bucket: '10m',
      segment: 'os',
      top: 8,
    });
  });

  it.each([
    [null, 'subscribe must be an object'],
    [{ rangeMs: 'x' }, /^subscribe.rangeMs/],
    [{ rangeMs: 3_600_000, bucket: '5m' }, 'subscribe.bucket must be one of 10m, 1h, 1d'],
    [{ rangeMs: 300 * 86_400_000, bucket: '10m' }, 'subscribe.bucket 10m gives too many points for this range; use a larger one'],
    [{ rangeMs: 3_600_000, segment: 'planet' }, /^subscribe.segment/],
    [{ rangeMs: 3_600_000, from: -1 }, /^subscribe.from/],
    [{ rangeMs: 3_600_000, from: '2026-11-23' }, /^subscribe.from/],
    [{ rangeMs: 3_600_000, segment: 'os', top: 0 }, 'subscribe.top must be an integer between 1 and 20'],
    [{ rangeMs: 3_600_000, segment: 'os', top: 21 }, 'subscribe.top must be an integer between 1 and 20'],
    [{ rangeMs: 3_600_000, top: 8 }, 'subscribe.top needs subscribe.segment (the values to keep the top of)'],
  ])('refuses %j', (sub, message) => {
    expect(subscriptionProblem(sub)?.message).toMatch(message);
  });
});

describe('the dashboard asks what the service answers', () => {
  it("takes the service's bucket choice, limits and step names from the one contract module", () => {
    expect(web.bucketForRange).toBe(bucketForRange);
    expect(web.MAX_RANGE_MS).toBe(MAX_RANGE_MS);
    expect(web.TOP_SEGMENTS).toBeLessThanOrEqual(MAX_TOP);
    expect(web.FUNNELS.map((f) => f.steps)).toEqual([NEW_USER_STEPS, RESET_STEPS]);
    expect(web.FUNNELS[0]!.steps).toBe(NEW_USER_STEPS);
  });

  it('subscribes in a way the hub accepts', () => {
    const views: web.View[] = [
      { range: { kind: 'last', ms: 30 * 86_400_000 }, segment: 'locale' },
      { range: { kind: 'custom', from: Date.UTC(2026, 0, 1), to: Date.UTC(2026, 0, 8) }, segment: 'os' },
      { range: { kind: 'custom', from: Date.UTC(2026, 0, 1), to: Date.UTC(2026, 0, 1, 0, 10) } },
    ];
    for (const view of views) expect(subscriptionProblem(web.subscriptionOf(view))).toBeUndefined();
  });
});
