/**
 * The follower lease's pure state machine, on fake clocks: each rule alone,
 * then several instances sharing one simulated store with skewed and
 * drifting clocks, slow and lost messages and a partitioned holder. Two
 * instances never follow at the same time, and a standby takes over within
 * the documented bound.
 */
import { describe, expect, it } from 'vitest';
import { LEASE_ID, LeaseMachine, leaseTimings, StoreClock, takeoverBoundMs, type LeaseDoc, type Plan } from '../../src/cluster/lease.js';
import { seededRandom } from '../../src/simulate/generator.js';

const TTL = 15_000;
const timings = leaseTimings(TTL);
/** A store clock 3 h ahead of local monotonic time, read through Date headers (whole seconds). */
const STORE_OFFSET = 3 * 3_600_000 + 437;
const dateAt = (local: number) => Math.floor((local + STORE_OFFSET) / 1000) * 1000;

const machine = (instanceId = 'a', mode: 'auto' | 'standby' = 'auto') => new LeaseMachine({ instanceId, timings, mode });
type Write = Extract<Plan, { op: 'write' }>;
const asWrite = (plan: Plan): Write => {
  expect(plan.op).toBe('write');
  return plan as Write;
};
/** Feeds `m` clock readings around `local` (as the elector does before its requests). */
const sampleClock = (m: LeaseMachine, local: number) => {
  for (let i = 0; i < 8; i++) m.clock.sample(local + i * 137, local + i * 137 + 5, dateAt(local + i * 137 + 2));
};
const held = (holder: string, rev: string, expiresAt: number | null, ttlMs = TTL): LeaseDoc => ({ _id: LEASE_ID, _rev: rev, holder, expiresAt, ttlMs });

describe('leaseTimings', () => {
  it('renews every third of the lease, polls every second, fences 3 s early at 15 s', () => {
    expect(timings).toEqual({ ttlMs: 15_000, renewMs: 5000, pollMs: 1000, fenceMarginMs: 3000, skewMarginMs: 2000, retryMs: 1000 });
    expect(leaseTimings(3000)).toMatchObject({ renewMs: 1000, pollMs: 1000, fenceMarginMs: 1000 });
    expect(takeoverBoundMs(timings)).toBe(15_000 + 2000 + 2000 + 1000);
  });
});

describe('StoreClock', () => {
  it('bounds the store time from Date headers, tighter with each reading', () => {
    const clock = new StoreClock();
    expect(clock.offset()).toBeUndefined();
    clock.sample(1000, 1040, dateAt(1020));
    const first = clock.offset()!;
    expect(first.lower).toBeLessThanOrEqual(STORE_OFFSET);
    expect(first.upper).toBeGreaterThanOrEqual(STORE_OFFSET);
    expect(first.upper - first.lower).toBeLessThanOrEqual(1040);
    for (let t = 1000; t < 9000; t += 333) clock.sample(t, t + 10, dateAt(t + 5));
    const later = clock.offset()!;
    expect(later.lower).toBeLessThanOrEqual(STORE_OFFSET);
    expect(later.upper).toBeGreaterThanOrEqual(STORE_OFFSET - 1);
    expect(later.upper - later.lower).toBeLessThan(first.upper - first.lower);
  });

  it('starts over from the latest reading when a clock is stepped', () => {
    const clock = new StoreClock();
    clock.sample(0, 10, dateAt(5));
    clock.sample(5000, 5010, dateAt(5005) + 60_000); // the store's clock jumped a minute
    expect(clock.offset()!.lower).toBeGreaterThan(STORE_OFFSET + 58_000);
    expect(clock.samples).toBe(1);
  });
});

describe('LeaseMachine, one rule at a time', () => {
  it('alone: takes the missing lease at once and follows until its fence, renewing every ttl/3', () => {
    const m = machine();
    expect(m.plan(0)).toEqual({ op: 'read', at: 0 });
    sampleClock(m, 0);
    m.onRead(null, 10);
    expect(m.takeoverReason(10)).toBe('missing');
    const acquire = asWrite(m.plan(10));
    expect(acquire.purpose).toBe('acquire');
    expect(acquire.doc).toMatchObject({ _id: LEASE_ID, holder: 'a', ttlMs: TTL });
    expect(acquire.doc._rev).toBeUndefined();
    // written from the upper bound of the store's time: never before the true expiry
    expect(acquire.doc.expiresAt).toBeGreaterThanOrEqual(10 + STORE_OFFSET + TTL);
    m.onWrite(acquire, { ok: true, rev: '1-a' }, 30);
    expect(m.role).toBe('follower');
    expect(m.deadline).toBe(10 + TTL - timings.fenceMarginMs);
    expect(m.plan(40)).toEqual({ op: 'wait', at: 40, ms: 10 + 5000 - 40 });
    const renew = asWrite(m.plan(5010));
    expect(renew).toMatchObject({ purpose: 'renew', doc: { _rev: '1-a', holder: 'a' } });
    m.onWrite(renew, { ok: true, rev: '2-a' }, 5020);
    expect(m.deadline).toBe(5010 + TTL - timings.fenceMarginMs);
    expect(m.takeovers).toBe(1);
  });

  it('takes a released lease at once', () => {
    const m = machine();
    m.plan(0);
    m.onRead({ _id: LEASE_ID, _rev: '7-x', holder: null, expiresAt: null, ttlMs: TTL }, 5);
    expect(asWrite(m.plan(5))).toMatchObject({ purpose: 'acquire', doc: { _rev: '7-x', holder: 'a' } });
  });

  it('waits for a lease held by another until the store clock says it expired, plus the skew margin', () => {
    const m = machine();
    sampleClock(m, 0);
    m.plan(0);
    const expiresAt = STORE_OFFSET + 10_000;
    m.onRead(held('b', '3-b', expiresAt), 1000);
    expect(m.plan(1000)).toEqual({ op: 'wait', at: 1000, ms: timings.pollMs });
    // by the local clock 10 s + 2 s margin + at most the reading's width later
    const width = m.clock.offset()!.upper - m.clock.offset()!.lower;
    expect(m.takeoverReason(12_000 - 1)).toBeUndefined();
    expect(m.takeoverReason(12_000 + width + 1)).toBe('expired (store clock)');
  });

  it('without a store clock, takes a lease only after seeing the same revision for its ttl + the margin', () => {
    const m = machine();
    m.plan(0);
    m.onRead(held('b', '3-b', null, 6000), 100);
    m.onRead(held('b', '4-b', null, 6000), 2100); // renewed: the wait starts again
    m.onRead(held('b', '4-b', null, 6000), 7000);
    expect(m.takeoverReason(2100 + 6000 + 2000 - 1)).toBeUndefined();
    expect(m.takeoverReason(2100 + 6000 + 2000)).toBe('expired (unchanged)');
  });

  it('a holder whose renewals fail stops at its fence, before any standby may take over', () => {
    const a = machine('a');
    const b = machine('b');
    sampleClock(a, 0);
    sampleClock(b, 0);
    a.plan(0);
    a.onRead(null, 0);
    const acquire = asWrite(a.plan(0));
    a.onWrite(acquire, { ok: true, rev: '1-a' }, 20);
    b.plan(100);
    b.onRead({ ...acquire.doc, _rev: '1-a' }, 100);
    // every renewal fails from now on (a is cut off from the store)
    for (let t = 5000; t < TTL - timings.fenceMarginMs; t += 1000) {
      const plan = a.plan(t);
      if (plan.op === 'write') a.onWrite(plan, { ok: false, conflict: false, error: 'store unreachable' }, t + 1000);
    }
    expect(a.fence(TTL - timings.fenceMarginMs - 1)).toBe(false);
    expect(a.fence(TTL - timings.fenceMarginMs)).toBe(true);
    expect(a.role).toBe('standby');
    // b may take over only later than that
    let takeover: number | undefined;
    for (let t = 100; t < 40_000 && takeover === undefined; t += 50) {
      if (b.takeoverReason(t)) takeover = t;
    }
    expect(takeover).toBeGreaterThan(TTL - timings.fenceMarginMs);
    expect(takeover).toBeGreaterThan(TTL);
    expect(takeover).toBeLessThanOrEqual(takeoverBoundMs(timings));
  });

  it('a renewal answered with 409: adopts a revision that names it (its own write landed unanswered), else steps down', () => {
    const a = machine('a');
    a.plan(0);
    a.onRead(null, 0);
    a.onWrite(asWrite(a.plan(0)), { ok: true, rev: '1-a' }, 10);
    const renew = asWrite(a.plan(5000));
    a.onWrite(renew, { ok: false, conflict: true }, 5010);
    expect(a.plan(5010)).toEqual({ op: 'read', at: 5010 });
    a.onRead(held('a', '2-a', null), 5020);
    expect(a.role).toBe('follower');
    expect(asWrite(a.plan(5020)).doc._rev).toBe('2-a');
    expect(a.deadline).toBe(TTL - timings.fenceMarginMs); // still that of the last answered write

    const b = machine('b');
    b.plan(0);
    b.onRead(null, 0);
    b.onWrite(asWrite(b.plan(0)), { ok: true, rev: '1-b' }, 10);
    b.onWrite(asWrite(b.plan(5000)), { ok: false, conflict: true }, 5010);
    b.plan(5010);
    b.onRead(held('c', '2-c', null), 5020);
    expect(b.role).toBe('standby');
    expect(b.lastError).toMatch(/taken by c/);
  });

  it('a write answered after its own fence does not make a follower; the next read finds its own revision and takes it', () => {
    const m = machine();
    m.plan(0);
    m.onRead(null, 0);
    const acquire = asWrite(m.plan(0));
    m.onWrite(acquire, { ok: true, rev: '1-a' }, TTL);
    expect(m.role).toBe('standby');
    expect(m.plan(TTL)).toEqual({ op: 'read', at: TTL });
    m.onRead({ ...acquire.doc, _rev: '1-a' }, TTL + 5);
    expect(m.takeoverReason(TTL + 5)).toBe('own');
  });

  it('a standby-only instance never takes the lease', () => {
    const m = machine('s', 'standby');
    m.plan(0);
    m.onRead(null, 0);
    expect(m.plan(0).op).toBe('wait');
    expect(m.plan(1000).op).toBe('read');
  });

  it('release: the holder writes holder null with its revision; afterwards it plans nothing', () => {
    const m = machine();
    m.plan(0);
    m.onRead(null, 0);
    m.onWrite(asWrite(m.plan(0)), { ok: true, rev: '1-a' }, 10);
    const release = m.release(100)!;
    expect(release).toMatchObject({ op: 'write', purpose: 'release', doc: { _rev: '1-a', holder: null, expiresAt: null } });
    m.onWrite(release as Write, { ok: true, rev: '2-a' }, 110);
    expect(m.role).toBe('standby');
    expect(m.plan(200)).toEqual({ op: 'wait', at: 200, ms: Infinity });
    expect(machine('b').release(0)).toBeUndefined();
  });
});

/**
 * Several instances and one store, simulated event by event. True time is the
 * simulation's; each instance's local clock has its own offset and a drift of
 * up to 100 ppm; the store answers Date headers from its own clock. Messages
 * take 1–40 ms, sometimes up to 3 s; the holder is cut off at a random moment
 * (its requests are lost, or reach the store with the answers lost).
 */
function simulate(seed: number, instances: number, ttlMs: number) {
  const random = seededRandom(seed);
  const t = leaseTimings(ttlMs);
  let now = 0;
  let seq = 0;
  const queue: { at: number; seq: number; run: () => void }[] = [];
  const at = (time: number, run: () => void) => {
    queue.push({ at: Math.max(now, time), seq: seq++, run });
    queue.sort((x, y) => x.at - y.at || x.seq - y.seq);
  };
  const delay = () => (random() < 0.05 ? 200 + random() * 2800 : 1 + random() * 39);
  const storeOffset = 1e12 + random() * 1e6;
  let doc: LeaseDoc | null = null;
  let revs = 0;
  const followed: { id: string; from: number; to: number }[] = [];
  const cutAt = 20_000 + random() * 20_000;
  const cutMode: 'lost-requests' | 'lost-answers' = random() < 0.5 ? 'lost-requests' : 'lost-answers';
  let firstHolder: string | undefined;

  const nodes = Array.from({ length: instances }, (_, i) => {
    const id = `i${i}`;
    const offset = random() * 1e7;
    const drift = 1 + (random() * 2 - 1) * 1e-4;
    const local = () => offset + now * drift;
    const trueTimeOf = (localTime: number) => (localTime - offset) / drift;
    const m = new LeaseMachine({ instanceId: id, timings: t, mode: 'auto' });
    let followingSince: number | undefined;
    let armed: number | undefined;
    /** Records role changes, and runs the elector's fence timer on the local clock. */
    const note = () => {
      if (m.role === 'follower') {
        if (followingSince === undefined) {
          followingSince = now;
          firstHolder ??= id;
        }
        const deadline = m.deadline!;
        if (deadline === armed) return;
        armed = deadline;
        at(trueTimeOf(deadline), () => {
          if (armed !== deadline) return;
          m.fence(Math.max(local(), deadline));
          note();
        });
      } else if (followingSince !== undefined) {
        followed.push({ id, from: followingSince, to: now });
        followingSince = undefined;
        armed = undefined;
      }
    };
    const cut = () => id === firstHolder && now >= cutAt;
    /** A request: applied at the store after a delay (unless lost), answered after another (unless lost: then a timeout). */
    const request = <R>(apply: () => R, answer: (result: R | undefined) => void) => {
      const sentLocal = local();
      at(now + delay(), () => {
        if (cut() && cutMode === 'lost-requests') return at(now + t.renewMs, () => answer(undefined));
        const result = apply();
        const date = Math.floor((now + storeOffset) / 1000) * 1000;
        if (cut() && cutMode === 'lost-answers') return at(now + t.renewMs, () => answer(undefined));
        at(now + delay(), () => {
          m.clock.sample(sentLocal, local(), date);
          answer(result);
        });
      });
    };
    const step = () => {
      const plan = m.plan(local());
      note();
      if (plan.op === 'wait') return at(now + Math.min(plan.ms, 60_000) / drift, step);
      if (plan.op === 'read') {
        return request(
          () => (doc ? { ...doc } : null),
          (result) => {
            if (result === undefined) m.onReadFailed('timeout', local());
            else m.onRead(result, local());
            note();
            step();
          },
        );
      }
      request(
        () => {
          if (doc?._rev !== plan.doc._rev) return 'conflict' as const;
          doc = { ...plan.doc, _rev: `${++revs}-${id}` };
          return doc._rev!;
        },
        (result) => {
          if (result === undefined) m.onWrite(plan, { ok: false, conflict: false, error: 'timeout' }, local());
          else if (result === 'conflict') m.onWrite(plan, { ok: false, conflict: true }, local());
          else m.onWrite(plan, { ok: true, rev: result }, local());
          note();
          step();
        },
      );
    };
    at(random() * 2000, step);
    return { id, close: () => followingSince !== undefined && followed.push({ id, from: followingSince, to: now }) };
  });

  const END = 90_000;
  while (queue.length > 0 && queue[0]!.at <= END) {
    const event = queue.shift()!;
    now = event.at;
    event.run();
  }
  now = END;
  for (const n of nodes) n.close();
  return { followed: followed.sort((x, y) => x.from - y.from), cutAt, cutMode, firstHolder, timings: t };
}

describe('LeaseMachine, several instances on one simulated store', () => {
  const seeds = Array.from({ length: 40 }, (_, i) => 1000 + i);
  it('never has two followers at once, and a standby takes over within the bound after the holder is cut off', () => {
    let worst = 0;
    for (const seed of seeds) {
      const run = simulate(seed, 3, 6000);
      // no overlap between any two instances' following intervals
      for (let i = 1; i < run.followed.length; i++) {
        expect(run.followed[i]!.from, `seed ${seed}: ${JSON.stringify(run.followed)}`).toBeGreaterThanOrEqual(run.followed[i - 1]!.to);
      }
      const takeover = run.followed.find((f) => f.id !== run.firstHolder && f.from >= run.cutAt);
      expect(takeover, `seed ${seed}: someone takes over after the cut (${run.cutMode})`).toBeDefined();
      const took = takeover!.from - run.cutAt;
      worst = Math.max(worst, took);
      // bound + the slow messages the simulation adds (up to 3 s each way)
      expect(took, `seed ${seed}`).toBeLessThanOrEqual(takeoverBoundMs(run.timings) + 6000);
    }
    console.log(`lease simulation: ${seeds.length} runs, worst takeover ${Math.round(worst)} ms after the cut (ttl 6000 ms)`);
  });
});
