/**
 * Runs the follower lease (lease.ts) against the store: reads and writes the
 * lease document, takes readings of the store's clock from its `Date`
 * header, sleeps as the lease plans, and stops this instance following at
 * its fence deadline, on a timer of its own, whether or not the store
 * answers. Tells subscribers when this instance becomes or stops being the
 * follower.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { BehaviorSubject, distinctUntilChanged, type Observable } from 'rxjs';
import type { Log } from '../log.js';
import { ConflictError, Database } from '../store/database.js';
import type { Store } from '../store/store.js';
import { LEASE_ID, LeaseMachine, leaseTimings, type LeaseDoc, type LeaseTimings, type Mode, type Plan, type Role, type WriteOutcome } from './lease.js';

/** The generation of a CouchDB revision (`3-abc…` → 3). */
const revGeneration = (rev: string): number => Number.parseInt(rev, 10) || 0;

/** An instance id unique per start: host name, process id, a random suffix. */
export function defaultInstanceId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export interface ElectorOptions {
  store: Store;
  /** Database holding the lease (the aggregates database). */
  db: string;
  instanceId: string;
  ttlMs: number;
  mode: Mode;
  log: Log;
  /** What the follower says of its aggregate in the lease document. */
  status?: () => Record<string, unknown>;
  /** Local monotonic clock, ms (tests). */
  now?: () => number;
}

/** The lease as `/health` shows it. */
export interface LeaseStatus {
  instanceId: string;
  mode: Mode;
  role: Role;
  /** Who holds the lease as last seen (null: nobody). */
  holder: string | null;
  /** Time left on the holder's lease by the store's clock, as last seen; null when unknown. */
  expiresInMs: number | null;
  ttlMs: number;
  /** Times this instance became the follower. */
  takeovers: number;
  /** When this instance took its current role (ms since the epoch). */
  roleSince: number | null;
  /** What the holder last said of its aggregate. */
  holderStatus: Record<string, unknown> | null;
  lastError: string | null;
}

/** Readings of the store's clock: this many at first, then one every {@link CLOCK_SAMPLE_EVERY_MS}. */
const CLOCK_WARM_SAMPLES = 8;
const CLOCK_SAMPLE_EVERY_MS = 5000;

/**
 * @example
 * const elector = new LeaseElector({ store, db: 'kpi_blobs_aggregates', instanceId, ttlMs: 15_000, mode: 'auto', log });
 * await elector.start();          // the first decision: alone, this instance is the follower at once
 * elector.leader$.subscribe((leader) => …);
 * await elector.release();        // at shutdown: the lease is free for a standby at once
 */
export class LeaseElector {
  readonly timings: LeaseTimings;
  readonly #machine: LeaseMachine;
  readonly #options: ElectorOptions;
  readonly #now: () => number;
  readonly #requestTimeoutMs: number;
  readonly #db: Database;
  readonly #leader = new BehaviorSubject(false);
  /** True while this instance is the follower; the current value at once, then each change. */
  readonly leader$: Observable<boolean> = this.#leader.pipe(distinctUntilChanged());
  #loop: Promise<void> | undefined;
  #stopping = false;
  #wake: (() => void) | undefined;
  #fenceTimer: NodeJS.Timeout | undefined;
  #lastSampleAt = -Infinity;
  #closed = false;

  constructor(options: ElectorOptions) {
    this.#options = options;
    this.#db = new Database(options.store, options.db);
    this.timings = leaseTimings(options.ttlMs);
    this.#machine = new LeaseMachine({ instanceId: options.instanceId, timings: this.timings, mode: options.mode });
    this.#now = options.now ?? (() => performance.now());
    // a lease request must not outlast the renewal it is part of
    this.#requestTimeoutMs = Math.max(1000, this.timings.renewMs);
  }

  get instanceId(): string {
    return this.#options.instanceId;
  }

  get isLeader(): boolean {
    return this.#leader.value;
  }

  status(): LeaseStatus {
    const m = this.#machine;
    const known = m.known;
    const offset = m.clock.offset();
    const now = this.#now();
    const expiresAt = known?.holder ? known.expiresAt : null;
    return {
      instanceId: this.#options.instanceId,
      mode: this.#options.mode,
      role: m.role,
      holder: known?.holder ?? null,
      expiresInMs: typeof expiresAt === 'number' && offset ? Math.round(expiresAt - (now + (offset.lower + offset.upper) / 2)) : null,
      ttlMs: this.timings.ttlMs,
      takeovers: m.takeovers,
      roleSince: m.since === undefined ? null : Math.round(Date.now() - (now - m.since)),
      holderStatus: known?.holder ? (known.status ?? null) : null,
      lastError: m.lastError,
    };
  }

  /**
   * Makes the first decision (reads the lease, and takes it if it is free),
   * then keeps the lease going in the background. Throws when the store
   * cannot be read at all.
   */
  async start(): Promise<void> {
    await this.#step();
    if (this.#machine.known === undefined) throw new Error(`could not read the aggregate follower lease: ${this.#machine.lastError ?? 'unknown error'}`);
    const next = this.#machine.plan(this.#now());
    if (next.op === 'write') await this.#step();
    this.#loop = this.#run();
  }

  /** Stops the lease, and gives it up if this instance holds it, so a standby takes over at once. */
  async release(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    await this.#loop;
    const plan = this.#machine.release(this.#now());
    if (plan?.op === 'write') {
      const outcome = await this.#write(plan.doc);
      this.#machine.onWrite(plan, outcome, this.#now());
      if (outcome.ok) this.#options.log.info({ instanceId: this.instanceId }, 'aggregate follower lease released');
      else this.#options.log.warn({ err: outcome.error }, 'could not release the aggregate follower lease; it expires by itself');
    }
    this.#publish();
    clearTimeout(this.#fenceTimer);
    this.#closed = true;
    this.#leader.complete();
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      try {
        await this.#step();
      } catch (err) {
        this.#options.log.error({ err: (err as Error).message }, 'aggregate follower lease: unexpected error');
        await this.#sleep(this.timings.retryMs);
      }
    }
  }

  /** One thing the lease plans: wait, read or write. */
  async #step(): Promise<void> {
    let plan = this.#plan();
    if (plan.op === 'wait') {
      // up to a quarter earlier, never later: readings of the store's clock land at
      // varied fractions of its second (tighter bounds), and standbys do not poll in step
      await this.#sleep(plan.ms * (0.75 + 0.25 * Math.random()));
      return;
    }
    if (this.#machine.clock.samples < CLOCK_WARM_SAMPLES || this.#now() - this.#lastSampleAt >= CLOCK_SAMPLE_EVERY_MS) {
      await this.#sampleClock();
      plan = this.#plan();
      if (plan.op === 'wait') return;
    }
    if (plan.op === 'read') {
      try {
        const doc = await this.#read();
        this.#machine.onRead(doc, this.#now());
      } catch (err) {
        this.#machine.onReadFailed((err as Error).message, this.#now());
        this.#options.log.warn({ err: (err as Error).message }, 'could not read the aggregate follower lease; retrying');
      }
    } else {
      const reason = plan.purpose === 'acquire' ? this.#machine.takeoverReason(plan.at) : undefined;
      const outcome = await this.#write(plan.doc);
      this.#machine.onWrite(plan, outcome, this.#now());
      if (plan.purpose === 'acquire' && outcome.ok && this.#machine.role === 'follower')
        this.#options.log.info({ instanceId: this.instanceId, reason }, 'aggregate follower lease acquired');
      if (!outcome.ok && !outcome.conflict) this.#options.log.warn({ err: outcome.error, purpose: plan.purpose }, 'aggregate follower lease write failed');
    }
    this.#publish();
  }

  #plan(): Plan {
    const plan = this.#machine.plan(this.#now(), this.#machine.role === 'follower' ? this.#options.status?.() : undefined);
    this.#publish(); // planning may have fenced
    return plan;
  }

  async #read(): Promise<LeaseDoc | null> {
    return (await this.#db.get<LeaseDoc>(LEASE_ID, { timeoutMs: this.#requestTimeoutMs })) ?? null;
  }

  async #write(doc: LeaseDoc): Promise<WriteOutcome> {
    try {
      const rev = await this.#db.put(doc, { timeoutMs: this.#requestTimeoutMs });
      return doc.holder === null ? { ok: true, rev } : await this.#verifyWon(rev);
    } catch (err) {
      return { ok: false, conflict: err instanceof ConflictError, error: (err as Error).message };
    }
  }

  /**
   * On a CouchDB cluster, two writes at one revision can both be accepted
   * (on different nodes, or answered 202 below quorum): CouchDB keeps both as
   * conflicting revisions and shows every node the same winner. A write
   * counts as won only when its revision is that winner, and the winner
   * removes the losing revisions. A read older than the write (its
   * generation lower) cannot tell yet: it counts as won, and the next renewal
   * looks again. On one node, or the embedded store, the second write gets
   * 409 and this read finds nothing to do.
   */
  async #verifyWon(rev: string): Promise<WriteOutcome> {
    const doc = await this.#db.get<LeaseDoc>(LEASE_ID, { conflicts: true, timeoutMs: this.#requestTimeoutMs });
    const winner = doc?._rev ?? '';
    if (winner !== rev && revGeneration(winner) >= revGeneration(rev)) {
      return { ok: false, conflict: true, error: 'a write of the lease by another instance won on the cluster' };
    }
    for (const loser of winner === rev ? (doc?._conflicts ?? []) : []) {
      await this.#db
        .remove(LEASE_ID, loser, { timeoutMs: this.#requestTimeoutMs })
        .catch((err: Error) => this.#options.log.warn({ err: err.message }, 'could not remove a losing revision of the lease'));
    }
    return { ok: true, rev };
  }

  /** One reading of the store's clock: a HEAD of its root, timed. */
  async #sampleClock(): Promise<void> {
    const sentAt = this.#now();
    try {
      const headers = await this.#options.store.request<Record<string, string>>({ method: 'HEAD', path: '', timeoutMs: this.#requestTimeoutMs });
      const receivedAt = this.#now();
      const date = Date.parse(headers?.date ?? '');
      if (Number.isFinite(date)) this.#machine.clock.sample(sentAt, receivedAt, date);
      this.#lastSampleAt = receivedAt;
    } catch {
      // the lease request that follows fails too, and says why
    }
  }

  #publish(): void {
    if (this.#closed) return;
    const leader = this.#machine.role === 'follower';
    this.#armFence();
    if (leader === this.#leader.value) return;
    if (leader) this.#options.log.info({ instanceId: this.instanceId, ttlMs: this.timings.ttlMs }, 'this instance is now the aggregate follower');
    else
      this.#options.log.warn(
        { instanceId: this.instanceId, reason: this.#machine.lastError },
        'this instance stopped following the aggregate: it no longer holds the lease',
      );
    this.#leader.next(leader);
  }

  /** The fence: a timer of its own, so a hung store request cannot delay it. */
  #armFence(): void {
    clearTimeout(this.#fenceTimer);
    const deadline = this.#machine.deadline;
    if (deadline === undefined) return;
    this.#fenceTimer = setTimeout(
      () => {
        this.#machine.fence(this.#now());
        this.#publish();
      },
      Math.max(0, deadline - this.#now()),
    );
    this.#fenceTimer.unref();
  }

  #sleep(ms: number): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, Math.min(ms, 60_000));
      timer.unref();
      this.#wake = done;
      function done() {
        clearTimeout(timer);
        resolve();
      }
    });
  }
}
