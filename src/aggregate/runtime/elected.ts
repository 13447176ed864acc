/**
 * The aggregate of one instance among several sharing a store: the follower
 * (the lease holder, src/cluster/) runs the {@link FeedFollower} on the feed and
 * writes checkpoints; every other instance serves the state the follower
 * published ({@link StandbyAggregate}). Queries, the live stream and
 * health read whichever this instance runs now, through one state, one
 * status and one stream of changes.
 *
 *   lease ──▶ follower: FeedFollower (feed → state → checkpoint)
 *        └─▶ standby:  StandbyAggregate (checkpoint → state)
 *
 * Becoming the follower loads the checkpoint and follows from its position:
 * the applied set counts each blob once whatever the previous follower had
 * read. Losing the lease abandons the FeedFollower at once (it saves nothing
 * more), before anything else happens.
 */
import { skip, Subject, type Subscription } from 'rxjs';
import type { LeaseElector } from '../../cluster/elector.js';
import type { Log } from '../../log.js';
import { retrying } from '../../retry.js';
import { FeedFollower, type AggregateChange, type FollowerOptions, type AggregateStatus } from './follower.js';
import { StandbyAggregate, type StandbyOptions } from './standby.js';
import type { AggregateState } from '../model/state.js';

const TAKEOVER_BACKOFF = { initialMs: 250, maxMs: 5000 };

export interface ElectedAggregateOptions {
  aggregator: FollowerOptions;
  published: StandbyOptions;
  elector: LeaseElector;
  log: Log;
}

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
  #source: FeedFollower | StandbyAggregate;
  #follower: FeedFollower | undefined;
  #standby: StandbyAggregate | undefined;
  #sourceSubscription: Subscription | undefined;
  #roleSubscription: Subscription | undefined;
  #transition: Promise<void> = Promise.resolve();
  #closing = false;
  /** Aborted on close: ends a wait between takeover attempts at once. */
  readonly #closed = new AbortController();

  constructor(options: ElectedAggregateOptions) {
    this.#options = options;
    this.#source = new StandbyAggregate(options.published);
  }

  get state(): AggregateState {
    return this.#source.state;
  }

  get status(): AggregateStatus {
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
    this.#closed.abort();
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
    const stillLeader = () => elector.isLeader && !this.#closing;
    const loaded = await retrying(
      async () => {
        if (!stillLeader()) return undefined;
        const aggregator = new FeedFollower(this.#options.aggregator);
        this.#follower = aggregator; // so that a fence during the load abandons it
        try {
          await aggregator.start();
        } catch (err) {
          aggregator.abandon();
          throw err;
        }
        return aggregator;
      },
      {
        ...TAKEOVER_BACKOFF,
        signal: this.#closed.signal,
        shouldRetry: () => !initial && stillLeader(),
        onRetry: (err, _attempt, delayMs) => log.warn({ err: (err as Error).message, delayMs }, 'could not load the checkpoint to follow the feed; retrying'),
      },
    ).catch((err: unknown) => {
      if (initial) throw err;
      return undefined; // the lease went meanwhile: nothing to follow
    });
    if (!loaded || loaded.abandoned || this.#closing) return;
    this.#standby?.stop();
    this.#standby = undefined;
    this.#use(loaded);
    log.info({ phase: loaded.status.phase, buckets: loaded.state.buckets.size }, 'following the feed from the checkpoint');
  }

  async #standBy(): Promise<void> {
    const standby = new StandbyAggregate(this.#options.published);
    this.#standby = standby;
    await standby.start();
    if (this.#closing || this.#standby !== standby) {
      standby.stop();
      return;
    }
    this.#use(standby);
    this.#options.log.info({ buckets: standby.state.buckets.size, published: standby.published }, 'serving the published aggregate (standby)');
  }

  #use(source: FeedFollower | StandbyAggregate): void {
    this.#sourceSubscription?.unsubscribe();
    this.#source = source;
    this.#sourceSubscription = source.changes$.subscribe({ next: (change) => this.#changes.next(change) });
    // a new state (a new epoch): every bucket, so live clients get a snapshot
    this.#changes.next({ version: source.state.version, keys: [...source.state.buckets.keys()] });
  }
}
