/**
 * The lease that elects kpi-live's one active aggregate follower, as a pure
 * state machine: no IO, no timers. The elector (elector.ts) asks it what to
 * do next ({@link LeaseMachine.plan}), does it against the store, and tells
 * it what the store answered and when. Local times are ms of a monotonic
 * clock; `expiresAt` is in the store's clock, read from its `Date` header.
 *
 * The lease is one normal document in the aggregates database, so its
 * `_rev` gives compare-and-set:
 *
 *   { _id: "kpi-live-lease", _rev, holder: <instance id> | null, expiresAt, ttlMs, status }
 *
 * - Acquire and renew are PUTs carrying the `_rev` last seen; a 409 means
 *   another instance wrote first. The holder renews every ttl/3.
 * - Fencing: the holder counts its lease from the moment it *sent* its last
 *   successful write, and stops following at that moment + ttl − a fence
 *   margin, whether or not the store answers meanwhile. Nobody can take the
 *   lease before that moment + ttl (below), so the old holder has stopped
 *   first. The checkpoint root's own revision is the second fence: a stale
 *   writer's checkpoint conflicts and is thrown away.
 * - Takeover: a standby may write the lease when it is free (missing or
 *   released), when it still holds the revision this instance wrote last (so
 *   nobody wrote since), or when it has expired by either of two rules, each
 *   safe alone:
 *   1. the store's clock: the standby's lower bound of the store's time is past
 *      `expiresAt` + a skew margin (the holder wrote `expiresAt` from its
 *      upper bound of the store's time when it sent the write, + ttl);
 *   2. observation: the standby has seen the same revision for the holder's
 *      ttl + the skew margin of its own clock (the revision was written before
 *      the standby first read it), which needs no clock agreement at all.
 *   The store's time is known from `Date` headers (1-second resolution, so
 *   each reading bounds it within about a second plus the round trip);
 *   instances' own clocks are never compared.
 */

export const LEASE_ID = 'kpi-live-lease';

export interface LeaseDoc {
  _id: typeof LEASE_ID;
  _rev?: string;
  /** Instance id of the holder; null once released. */
  holder: string | null;
  /** End of the lease in the store's clock (ms); null when the holder had no reading of that clock. */
  expiresAt: number | null;
  /** The holder's lease length: how long the observation rule waits. */
  ttlMs: number;
  /** What the holder says of its aggregate, for other instances' `/health`. */
  status?: Record<string, unknown>;
}

export interface LeaseTimings {
  ttlMs: number;
  /** The holder renews this often. */
  renewMs: number;
  /** A standby reads the lease this often. */
  pollMs: number;
  /** The holder stops following this long before its lease could end. */
  fenceMarginMs: number;
  /** Added to every expiry a standby judges: Date-header staleness, clock rates. */
  skewMarginMs: number;
  /** A failed read or write is tried again after this long. */
  retryMs: number;
}

/** Skew margin of the takeover rules (see the module comment). */
export const SKEW_MARGIN_MS = 2000;

/**
 * The timings that follow from the lease length.
 *
 * @example
 * leaseTimings(15_000); // renew every 5 s, standbys poll every 1 s, the holder stops 3 s before expiry
 */
export function leaseTimings(ttlMs: number): LeaseTimings {
  const renewMs = Math.floor(ttlMs / 3);
  return {
    ttlMs,
    renewMs,
    pollMs: Math.min(1000, renewMs),
    fenceMarginMs: Math.min(renewMs, Math.max(1000, Math.floor(ttlMs / 5))),
    skewMarginMs: SKEW_MARGIN_MS,
    retryMs: Math.min(1000, renewMs),
  };
}

/**
 * The worst case from the holder's death to a standby holding the lease: its
 * lease runs out (ttl after its last renewal, which came before the death),
 * the skew margin, up to a second each for the two Date-header readings, and
 * one poll. Loading the checkpoint comes on top.
 */
export function takeoverBoundMs(t: LeaseTimings): number {
  return t.ttlMs + t.skewMarginMs + 2000 + t.pollMs;
}

/**
 * Bounds of the store's clock relative to the local monotonic clock, from
 * `Date` headers: a header read between local times `sentAt` and
 * `receivedAt` says the store's time then was in [date, date + 1 s).
 *
 * @example
 * const clock = new StoreClock();
 * clock.sample(1000, 1040, Date.parse('Tue, 03 Nov 2026 10:00:00 GMT'));
 * clock.offset(); // { lower, upper }: store time − local time lies between them
 */
export class StoreClock {
  #samples: { lower: number; upper: number }[] = [];
  static readonly RESOLUTION_MS = 1000;
  static readonly KEEP = 16;

  sample(sentAt: number, receivedAt: number, dateMs: number): void {
    if (!Number.isFinite(dateMs)) return;
    this.#samples.push({ lower: dateMs - receivedAt, upper: dateMs + StoreClock.RESOLUTION_MS - sentAt });
    if (this.#samples.length > StoreClock.KEEP) this.#samples.shift();
  }

  get samples(): number {
    return this.#samples.length;
  }

  /** The tightest bounds recent readings agree on; after a clock step, the latest reading alone. */
  offset(): { lower: number; upper: number } | undefined {
    if (this.#samples.length === 0) return undefined;
    let lower = -Infinity;
    let upper = Infinity;
    for (const s of this.#samples) {
      lower = Math.max(lower, s.lower);
      upper = Math.min(upper, s.upper);
    }
    if (lower <= upper) return { lower, upper };
    // readings that cannot all be true: a clock was stepped; start over from the latest
    const latest = this.#samples[this.#samples.length - 1]!;
    this.#samples = [latest];
    return { ...latest };
  }
}

export type Role = 'follower' | 'standby';
/** `auto` takes part in the election; `standby` never takes the lease. */
export type Mode = 'auto' | 'standby';
export type WritePurpose = 'acquire' | 'renew' | 'release';

export type Plan = { op: 'read'; at: number } | { op: 'write'; at: number; purpose: WritePurpose; doc: LeaseDoc } | { op: 'wait'; at: number; ms: number };

export type WriteOutcome = { ok: true; rev: string } | { ok: false; conflict: boolean; error?: string };

export interface LeaseMachineOptions {
  instanceId: string;
  timings: LeaseTimings;
  mode: Mode;
}

/** Why a standby may take the lease now, or undefined. */
export type TakeoverReason = 'missing' | 'released' | 'own' | 'expired (store clock)' | 'expired (unchanged)';

/**
 * @example
 * const lease = new LeaseMachine({ instanceId: 'a', timings: leaseTimings(15_000), mode: 'auto' });
 * lease.plan(now);                         // { op: 'read' }
 * lease.onRead(null, now);                 // no lease document yet
 * const p = lease.plan(now);               // { op: 'write', purpose: 'acquire', doc }
 * lease.onWrite(p, { ok: true, rev }, t);  // lease.role === 'follower'
 */
export class LeaseMachine {
  readonly clock = new StoreClock();
  readonly instanceId: string;
  readonly timings: LeaseTimings;
  readonly mode: Mode;
  #role: Role = 'standby';
  /** The lease as last read or written; undefined before the first read, null when missing. */
  #known: LeaseDoc | null | undefined;
  /** Revision of the latest write this instance knows it made. */
  #ownRev: string | undefined;
  /** When this instance first saw the current revision (observation rule). */
  #seen: { rev: string | undefined; at: number } | undefined;
  /** Follower: it must have stopped by then. */
  #deadline = -Infinity;
  #nextRenewAt = 0;
  #nextReadAt = 0;
  #needRead = true;
  #notBefore = 0;
  #released = false;
  #lastError: string | null = null;
  #takeovers = 0;
  #since: number | undefined;

  constructor(options: LeaseMachineOptions) {
    this.instanceId = options.instanceId;
    this.timings = options.timings;
    this.mode = options.mode;
  }

  get role(): Role {
    return this.#role;
  }

  /** Follower: the local time by which it stops following (its fence). */
  get deadline(): number | undefined {
    return this.#role === 'follower' ? this.#deadline : undefined;
  }

  /** The lease as last seen. */
  get known(): LeaseDoc | null | undefined {
    return this.#known;
  }

  get lastError(): string | null {
    return this.#lastError;
  }

  /** Times this instance became the follower. */
  get takeovers(): number {
    return this.#takeovers;
  }

  /** Local time the current role began; undefined before the first decision. */
  get since(): number | undefined {
    return this.#since;
  }

  /** A follower past its deadline steps down; true if it did. */
  fence(now: number): boolean {
    if (this.#role !== 'follower' || now < this.#deadline) return false;
    this.#become('standby', now);
    this.#lastError = 'the lease could not be renewed in time: stopped following';
    this.#needRead = true;
    return true;
  }

  /** What to do now (after {@link fence}). */
  plan(now: number, status?: Record<string, unknown>): Plan {
    this.fence(now);
    if (this.#released) return { op: 'wait', at: now, ms: Infinity };
    if (now < this.#notBefore) return { op: 'wait', at: now, ms: this.#notBefore - now };
    if (this.#role === 'follower') {
      if (this.#needRead) return { op: 'read', at: now };
      if (now >= this.#nextRenewAt) return this.#write('renew', now, status);
      return { op: 'wait', at: now, ms: Math.min(this.#nextRenewAt, this.#deadline) - now };
    }
    if (this.#needRead || now >= this.#nextReadAt) return { op: 'read', at: now };
    if (this.mode === 'auto' && this.takeoverReason(now) !== undefined) return this.#write('acquire', now, status);
    return { op: 'wait', at: now, ms: this.#nextReadAt - now };
  }

  /** The write that gives the lease up (graceful stop); undefined when this instance does not hold it. */
  release(now: number): Plan | undefined {
    this.#released = true;
    if (this.#role !== 'follower' || !this.#ownRev) return undefined;
    return this.#write('release', now);
  }

  /** Why this standby may take the lease now, judged on the last read. */
  takeoverReason(now: number): TakeoverReason | undefined {
    const doc = this.#known;
    if (doc === undefined) return undefined;
    if (doc === null) return 'missing';
    if (doc.holder === null) return 'released';
    if (doc._rev !== undefined && doc._rev === this.#ownRev) return 'own';
    const margin = this.timings.skewMarginMs;
    const offset = this.clock.offset();
    if (offset && typeof doc.expiresAt === 'number' && now + offset.lower > doc.expiresAt + margin) return 'expired (store clock)';
    const ttl = typeof doc.ttlMs === 'number' && doc.ttlMs > 0 ? doc.ttlMs : this.timings.ttlMs;
    if (this.#seen && this.#seen.rev === doc._rev && now - this.#seen.at >= ttl + margin) return 'expired (unchanged)';
    return undefined;
  }

  /** A read answered: the document, or null when there is none. */
  onRead(doc: LeaseDoc | null, receivedAt: number): void {
    this.#needRead = false;
    this.#known = doc;
    this.#since ??= receivedAt;
    const rev = doc?._rev;
    if (!this.#seen || this.#seen.rev !== rev) this.#seen = { rev, at: receivedAt };
    this.#nextReadAt = receivedAt + this.timings.pollMs;
    this.#lastError = null;
    if (this.#role === 'follower') {
      // read after a conflict: our own write landed unanswered (adopt its
      // revision; the deadline stays that of the last answered write), or
      // another instance took the lease
      if (doc?.holder === this.instanceId && rev !== undefined) this.#ownRev = rev;
      else {
        this.#become('standby', receivedAt);
        this.#lastError = `the lease was taken by ${doc?.holder ?? 'nobody'}`;
      }
    }
  }

  onReadFailed(error: string, now: number): void {
    this.#lastError = error;
    this.#notBefore = now + this.timings.retryMs;
  }

  /** A write of `plan` answered (or failed) at `receivedAt`. */
  onWrite(plan: Extract<Plan, { op: 'write' }>, outcome: WriteOutcome, receivedAt: number): void {
    if (outcome.ok) {
      this.#known = { ...plan.doc, _rev: outcome.rev };
      this.#ownRev = outcome.rev;
      this.#seen = { rev: outcome.rev, at: receivedAt };
      this.#lastError = null;
      if (plan.purpose === 'release') {
        this.#become('standby', receivedAt);
        return;
      }
      const deadline = plan.at + this.timings.ttlMs - this.timings.fenceMarginMs;
      if (receivedAt >= deadline) {
        // answered too late to follow on it; nobody else can write before it
        // expires, and the next read finds our own revision
        this.#needRead = true;
        this.#lastError = 'the store answered the lease write too late';
        if (this.#role === 'follower') this.#become('standby', receivedAt);
        return;
      }
      this.#deadline = deadline;
      this.#nextRenewAt = plan.at + this.timings.renewMs;
      if (this.#role !== 'follower') {
        this.#takeovers += 1;
        this.#become('follower', receivedAt);
      }
      return;
    }
    if (plan.purpose === 'release') return;
    this.#lastError = outcome.conflict ? `the lease was written by another instance (${plan.purpose})` : (outcome.error ?? 'lease write failed');
    if (outcome.conflict) this.#needRead = true;
    else if (plan.purpose === 'acquire') this.#needRead = true;
    this.#notBefore = outcome.conflict ? 0 : receivedAt + this.timings.retryMs;
  }

  #become(role: Role, now: number): void {
    if (this.#role === role && this.#since !== undefined) return;
    this.#role = role;
    this.#since = now;
  }

  #write(purpose: WritePurpose, now: number, status?: Record<string, unknown>): Extract<Plan, { op: 'write' }> {
    const rev = purpose === 'acquire' ? this.#known?._rev : (this.#ownRev ?? this.#known?._rev);
    const offset = this.clock.offset();
    const doc: LeaseDoc = {
      _id: LEASE_ID,
      ...(rev !== undefined ? { _rev: rev } : {}),
      holder: purpose === 'release' ? null : this.instanceId,
      expiresAt: purpose === 'release' || !offset ? null : Math.ceil(now + offset.upper + this.timings.ttlMs),
      ttlMs: this.timings.ttlMs,
      ...(status && purpose !== 'release' ? { status } : {}),
    };
    return { op: 'write', at: now, purpose, doc };
  }
}
