/**
 * The aggregate of one instance among several sharing a store: the follower
 * (the lease holder, src/cluster/) runs the {@link Aggregator} on the feed and
 * writes checkpoints; every other instance serves the state the follower
 * published ({@link PublishedAggregate}). Queries, the live stream and
 * health read whichever this instance runs now, through one state, one
 * status and one stream of changes.
 *
 *   lease ──▶ follower: Aggregator (feed → state → checkpoint)
 *        └─▶ standby:  PublishedAggregate (checkpoint → state)
 *
 * Becoming the follower loads the checkpoint and follows from its position:
 * the applied set counts each blob once whatever the previous follower had
 * read. Losing the lease abandons the Aggregator at once (it saves nothing
 * more), before anything else happens.
 */
import { skip, Subject, type Subscription } from 'rxjs';
import type { LeaseElector } from '../cluster/elector.js';
import type { Log } from '../log.js';
import { Aggregator, type AggregateChange, type AggregatorOptions, type AggregatorStatus } from './aggregator.js';
import { PublishedAggregate, type PublishedOptions } from './published.js';
import type { AggregateState } from './state.js';

const TAKEOVER_BACKOFF_MS = 250;
const TAKEOVER_BACKOFF_MAX_MS = 5000;

export interface ElectedAggregateOptions {
  aggregator: AggregatorOptions;
  published: PublishedOptions;
  elector: LeaseElector;
  log: Log;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/**
 * @example
 * const aggregate = new ElectedAggregate({ aggregator, published, elector, log });
 * await aggregate.start();   // follower or standby, as the lease decides
 * queryKpis(aggregate.state, query);
 * await aggregate.stop();    // the follower saves a last checkpoint, then gives the lease up
 */
export class ElectedAggregate {
  readonly #options: ElectedAggregateOptions;
  readonly #changes = new Subject<AggregateChange>();
  /** Buckets changed, whichever source this instance runs; a switch of source sends every bucket. */
  readonly changes$ = this.#changes.asObservable();
  #source: Aggregator | PublishedAggregate;
  #follower: Aggregator | undefined;
  #standby: PublishedAggregate | undefined;
  #sourceSubscription: Subscription | undefined;
  #roleSubscription: Subscription | undefined;
  #transition: Promise<void> = Promise.resolve();
  #closing = false;

  constructor(options: ElectedAggregateOptions) {
    this.#options = options;
    this.#source = new PublishedAggregate(options.published);
  }

  get state(): AggregateState {
    return this.#source.state;
  }

  get status(): AggregatorStatus {
    return this.#source.status;
  }

  /** Whether this instance runs the feed follower now (and not only holds the lease). */
  get following(): boolean {
    return this.#source === this.#follower && !this.#follower.abandoned;
  }

  /**
   * Takes part in the election and starts as what it decides. As follower
   * the start fails if the checkpoint cannot be loaded (as a single instance
   * always did); as standby a store failure shows in the status and is
   * retried.
   */
  async start(): Promise<void> {
    const { elector } = this.#options;
    await elector.start();
    try {
      if (elector.isLeader) await this.#follow(true);
      else await this.#standBy();
    } catch (err) {
      await elector.release();
      throw err;
    }
    this.#roleSubscription = elector.leader$.pipe(skip(1)).subscribe((leader) => {
      // the fence: stop following now, not after a transition in progress
      if (!leader) this.#follower?.abandon();
      this.#transition = this.#transition
        .then(() => this.#reconcile())
        .catch((err: Error) => this.#options.log.error({ err: err.message }, 'aggregate role change failed'));
    });
    // the role may have changed between the decision and the subscription
    this.#transition = this.#transition
      .then(() => this.#reconcile())
      .catch((err: Error) => this.#options.log.error({ err: err.message }, 'aggregate role change failed'));
  }

  /** The follower saves a last checkpoint while it still holds the lease, then gives the lease up. */
  async stop(): Promise<void> {
    this.#closing = true; // no more role changes; the fence still abandons the follower
    await this.#transition.catch(() => undefined);
    if (this.#follower && !this.#follower.abandoned) await this.#follower.stop();
    this.#standby?.stop();
    await this.#options.elector.release();
    this.#roleSubscription?.unsubscribe();
    this.#sourceSubscription?.unsubscribe();
    this.#changes.complete();
  }

  async #reconcile(): Promise<void> {
    if (this.#closing) return;
    const leader = this.#options.elector.isLeader;
    if (leader && !this.following) await this.#follow(false);
    else if (!leader && this.#source !== this.#standby) await this.#standBy();
  }

  /** Loads the checkpoint and follows the feed; retried while this instance keeps the lease (unless `initial`). */
  async #follow(initial: boolean): Promise<void> {
    const { elector, log } = this.#options;
    for (let attempt = 0; elector.isLeader && !this.#closing; attempt++) {
      const aggregator = new Aggregator(this.#options.aggregator);
      this.#follower = aggregator; // so that a fence during the load abandons it
      try {
        await aggregator.start();
      } catch (err) {
        aggregator.abandon();
        if (initial) throw err;
        const delayMs = Math.min(TAKEOVER_BACKOFF_MS * 2 ** attempt, TAKEOVER_BACKOFF_MAX_MS);
        log.warn({ err: (err as Error).message, delayMs }, 'could not load the checkpoint to follow the feed; retrying');
        await sleep(delayMs);
        continue;
      }
      if (aggregator.abandoned || this.#closing) return;
      this.#standby?.stop();
      this.#standby = undefined;
      this.#use(aggregator);
      log.info({ phase: aggregator.status.phase, buckets: aggregator.state.buckets.size }, 'following the feed from the checkpoint');
      return;
    }
  }

  async #standBy(): Promise<void> {
    const standby = new PublishedAggregate(this.#options.published);
    this.#standby = standby;
    await standby.start();
    if (this.#closing || this.#standby !== standby) {
      standby.stop();
      return;
    }
    this.#use(standby);
    this.#options.log.info({ buckets: standby.state.buckets.size, published: standby.published }, 'serving the published aggregate (standby)');
  }

  #use(source: Aggregator | PublishedAggregate): void {
    this.#sourceSubscription?.unsubscribe();
    this.#source = source;
    this.#sourceSubscription = source.changes$.subscribe({ next: (change) => this.#changes.next(change) });
    // a new state (a new epoch): every bucket, so live clients get a snapshot
    this.#changes.next({ version: source.state.version, keys: [...source.state.buckets.keys()] });
  }
}
