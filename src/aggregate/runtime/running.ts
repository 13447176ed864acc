/**
 * What this instance runs of the aggregate, chosen once at start:
 *
 * - **sole**: the store is the embedded one, a child process of this
 *   instance that no other instance can reach (its data directory is locked
 *   by the store itself), so this instance is the only possible follower:
 *   it runs the {@link FeedFollower} straight on the feed, with no lease.
 * - **elected**: the store is shared (`COUCHDB_URL`), so other instances
 *   may follow it too: the lease (src/cluster/) elects the one follower
 *   and the others serve what it publishes ({@link ElectedAggregate}).
 *
 * Both give the routes and the stream the same {@link RunningAggregate},
 * and the features that must run once per store (retention, alert
 * webhooks) the same {@link Leadership}.
 */
import { BehaviorSubject, type Observable } from 'rxjs';
import { defaultInstanceId, LeaseElector, type LeaseStatus } from '../../cluster/elector.js';
import type { Config } from '../../config/config.js';
import type { Log } from '../../log.js';
import type { Store } from '../../store/store.js';
import type { AggregateState } from '../model/state.js';
import { FeedFollower, type AggregateChange, type FollowerOptions, type AggregateStatus } from './follower.js';
import { ElectedAggregate } from './elected.js';
import type { AggregateSettings } from './settings.js';

/** The aggregate this instance serves, whichever way it is kept. */
export interface RunningAggregate {
  readonly state: AggregateState;
  readonly status: AggregateStatus;
  /** Whether this instance follows the feed now. */
  readonly following: boolean;
  /** Buckets changed by each applied batch; a new state sends every bucket. */
  readonly changes$: Observable<AggregateChange>;
  start(): Promise<void>;
  /** Saves a last checkpoint if it follows, and gives the lease up if it holds one. */
  stop(): Promise<void>;
}

/** Whether this instance is the one follower of its store: what must run once per store runs where it is. */
export interface Leadership {
  readonly instanceId: string;
  /** True while this instance holds the lease (always, when sole). */
  isLeader(): boolean;
  /** The current value at once, then each change. */
  readonly leader$: Observable<boolean>;
  /** The lease (mode `sole`: none is needed), and whether this instance follows the feed now. */
  status(): SoleOrLeaseStatus & { following: boolean };
}

/** A lease's status, or a sole instance's, which holds none. */
export type SoleOrLeaseStatus = LeaseStatus | (Omit<LeaseStatus, 'mode'> & { mode: 'sole' });

export interface RunningOptions {
  config: Config;
  store: Store;
  settings: AggregateSettings;
  log: Log;
}

/** Sole with the embedded store, elected with a shared one (see the module's doc). */
export function runningAggregate(options: RunningOptions): { aggregate: RunningAggregate; leadership: Leadership } {
  // (KPI_ROLE=standby without COUCHDB_URL is refused by the configuration)
  return options.store.kind === 'embedded' ? soleAggregate(options) : electedAggregate(options);
}

function followerOptions({ config, settings }: RunningOptions): FollowerOptions {
  return {
    ...settings,
    longpollMs: config.feedLongpollMs,
    checkpointEveryChanges: config.checkpointEveryChanges,
    checkpointEveryMs: config.checkpointEveryMs,
  };
}

/** The FeedFollower on the feed, with no election: the only instance that can reach the store. */
export function soleAggregate(options: RunningOptions): { aggregate: RunningAggregate; leadership: Leadership } {
  const aggregator = new FeedFollower(followerOptions(options));
  const instanceId = options.config.instanceId ?? defaultInstanceId();
  let since: number | null = null;
  const aggregate: RunningAggregate = {
    get state() {
      return aggregator.state;
    },
    get status() {
      return aggregator.status;
    },
    get following() {
      return since !== null && !aggregator.abandoned;
    },
    changes$: aggregator.changes$,
    async start() {
      await aggregator.start();
      since = Date.now();
      options.log.info(
        { phase: aggregator.status.phase, buckets: aggregator.state.buckets.size },
        'following the feed (sole instance of the embedded store: no lease)',
      );
    },
    stop: () => aggregator.stop(),
  };
  const leadership: Leadership = {
    instanceId,
    isLeader: () => true,
    leader$: new BehaviorSubject(true).asObservable(),
    status: () => ({
      instanceId,
      mode: 'sole',
      role: 'follower',
      holder: instanceId,
      expiresInMs: null,
      ttlMs: options.config.leaseTtlMs,
      takeovers: since === null ? 0 : 1,
      roleSince: since,
      holderStatus: null,
      lastError: null,
      following: aggregate.following,
    }),
  };
  return { aggregate, leadership };
}

/** Follower or standby as the lease decides, among the instances sharing the store. */
export function electedAggregate(options: RunningOptions): { aggregate: RunningAggregate; leadership: Leadership } {
  const { config, store, settings, log } = options;
  const self: { aggregate?: ElectedAggregate } = {}; // what the follower says of itself in the lease document
  const elector = new LeaseElector({
    store,
    db: settings.stateDb,
    instanceId: config.instanceId ?? defaultInstanceId(),
    ttlMs: config.leaseTtlMs,
    mode: config.role === 'standby' ? 'standby' : 'auto',
    log,
    status: () => {
      const status = self.aggregate?.status;
      return status ? { phase: status.phase, lagSeconds: status.lagSeconds, watermark: status.watermark } : {};
    },
  });
  const aggregate = new ElectedAggregate({ aggregator: followerOptions(options), published: { ...settings, pollMs: elector.timings.pollMs }, elector, log });
  self.aggregate = aggregate;
  const leadership: Leadership = {
    instanceId: elector.instanceId,
    isLeader: () => elector.isLeader,
    leader$: elector.leader$,
    status: () => ({ ...elector.status(), following: aggregate.following }),
  };
  return { aggregate, leadership };
}
