/**
 * The aggregate as a Fastify plugin: runs the {@link Aggregator} for the
 * app's lifetime, exposes it as `app.aggregates` (the public query and
 * change interface the stream uses), and serves the query API:
 *
 * - `GET /api/kpis?from&to&bucket=10m|1h|1d&segment=<dimension>[&top=N][&format=csv]`
 * - `GET /api/funnels/:name?from&to&segment=<dimension>[&top=N][&format=csv]`,
 *   name ∈ new-user, password-reset, progress
 *
 * Both are guarded like the read API.
 *
 * Several instances may share one store: the lease (src/cluster/) elects the
 * one that follows the feed and writes the checkpoint; the others answer from
 * the state it published (elected.ts). `app.leadership` tells other features
 * whether this instance holds the lease, so that work that must happen once
 * (retention passes, alert webhooks) runs on the holder only.
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Observable } from 'rxjs';
import { defaultInstanceId, LeaseElector, type LeaseStatus } from '../../cluster/elector.js';
import type { Config } from '../../config/config.js';
import { ensureDatabase } from '../../store/setup.js';
import { errorResponseSchema, HttpError } from '../../http/errors.js';
import type { AggregateChange, AggregatorStatus } from '../runtime/aggregator.js';
import { kpisCsv, funnelCsv } from './csv.js';
import {
  bucketForRange,
  FUNNELS,
  queryFunnel,
  queryKpis,
  windowEnd,
  type BucketName,
  type FunnelAnswer,
  type FunnelName,
  type KpiAnswer,
  type KpiQuery,
} from '../model/query.js';
import { ElectedAggregate } from '../runtime/elected.js';
import { windowFieldSchemas, windowProblem } from '../../contract/window-schema.js';
import type { Dimension } from '../model/segments.js';
import { aggregateSettings } from '../runtime/settings.js';
import { DAY } from '../model/state.js';
import { funnelAnswerSchema, kpiAnswerSchema } from '../../contract/answer-schemas.js';

/** What other features may use of the aggregate. */
export interface Aggregates {
  /** KPIs over a window; with `changedAfter`, only the points changed after that version. */
  kpis(query: KpiQuery, changedAfter?: number): KpiAnswer;
  /** Current state version and the epoch it belongs to. */
  version(): { epoch: string; version: number };
  funnel(name: FunnelName, query: Omit<KpiQuery, 'bucket'>): FunnelAnswer;
  status(): AggregatorStatus;
  /** Buckets changed by each applied batch. */
  changes$: Observable<AggregateChange>;
}

/** Whether this instance holds the follower lease: what must run once per store runs where it does. */
export interface Leadership {
  readonly instanceId: string;
  /** True while this instance holds the lease. */
  isLeader(): boolean;
  /** The current value at once, then each change. */
  readonly leader$: Observable<boolean>;
  /** The lease, and whether this instance follows the feed now (the holder loads the checkpoint first). */
  status(): LeaseStatus & { following: boolean };
}

declare module 'fastify' {
  interface FastifyInstance {
    aggregates: Aggregates;
    leadership: Leadership;
  }
}

interface WindowQuery {
  from?: number;
  to?: number;
  bucket?: BucketName;
  segment?: Dimension;
  top?: number;
  format?: 'json' | 'csv';
}

const windowSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    from: { ...windowFieldSchemas.time, description: 'inclusive, ms; default: 24 h before `to`' },
    to: { ...windowFieldSchemas.time, description: 'exclusive, ms; default: now' },
    bucket: { ...windowFieldSchemas.bucket, description: 'default: from the range' },
    segment: windowFieldSchemas.segment,
    top: { ...windowFieldSchemas.top, description: 'with segment: the N biggest values, the rest merged into Other' },
    format: { type: 'string', enum: ['json', 'csv'] },
  },
} as const;

const { bucket: _noBucket, ...funnelWindowProperties } = windowSchema.properties;
const funnelWindowSchema = { ...windowSchema, properties: funnelWindowProperties };

const errors = { 400: errorResponseSchema, 401: errorResponseSchema, 403: errorResponseSchema, 404: errorResponseSchema, 503: errorResponseSchema };

const QUERY_NAMES = { prefix: 'query', range: { field: 'query.from', name: 'query.from..query.to' } } as const;

/** The window a request asks for, with defaults: the last 24 h, a bucket that suits the range. */
export function resolveWindow(q: WindowQuery, now = Date.now()): KpiQuery {
  const to = q.to ?? windowEnd(now);
  const from = q.from ?? to - DAY;
  if (to <= from) throw new HttpError(400, 'query.to must be greater than query.from', 'query.to');
  const bucket = q.bucket ?? bucketForRange(to - from);
  const problem = windowProblem({ rangeMs: to - from, bucket, segment: q.segment, top: q.top }, QUERY_NAMES);
  if (problem) throw new HttpError(400, problem.message, problem.field);
  return { from, to, bucket, segment: q.segment, ...(q.top !== undefined ? { top: q.top } : {}) };
}

async function aggregates(app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  const settings = aggregateSettings(config, app.store, app.log);
  // the lease lives in the aggregates database
  await ensureDatabase(app.store, settings.stateDb);
  const self: { aggregate?: ElectedAggregate } = {}; // what the follower says of itself in the lease document
  const elector = new LeaseElector({
    store: app.store,
    db: settings.stateDb,
    instanceId: config.instanceId ?? defaultInstanceId(),
    ttlMs: config.leaseTtlMs,
    mode: config.role === 'standby' ? 'standby' : 'auto',
    log: app.log,
    status: () => {
      const status = self.aggregate?.status;
      return status ? { phase: status.phase, lagSeconds: status.lagSeconds, watermark: status.watermark } : {};
    },
  });
  const running = new ElectedAggregate({
    aggregator: {
      ...settings,
      longpollMs: config.feedLongpollMs,
      checkpointEveryChanges: config.checkpointEveryChanges,
      checkpointEveryMs: config.checkpointEveryMs,
    },
    published: { ...settings, pollMs: elector.timings.pollMs },
    elector,
    log: app.log,
  });
  self.aggregate = running;
  await running.start();
  // Stop following, save a last checkpoint and give the lease up before the store closes.
  app.store.beforeClose(() => running.stop());

  app.decorate('aggregates', {
    kpis: (query: KpiQuery, changedAfter?: number) => queryKpis(running.state, query, changedAfter),
    version: () => ({ epoch: running.state.epoch, version: running.state.version }),
    funnel: (name: FunnelName, query: Omit<KpiQuery, 'bucket'>) => queryFunnel(running.state, name, query),
    status: () => running.status,
    changes$: running.changes$,
  } satisfies Aggregates);
  app.decorate('leadership', {
    instanceId: elector.instanceId,
    isLeader: () => elector.isLeader,
    leader$: elector.leader$,
    status: () => ({ ...elector.status(), following: running.following }),
  } satisfies Leadership);

  await app.register(async (api) => {
    api.addHook('onRequest', app.auth.requireReader);

    api.get<{ Querystring: WindowQuery }>(
      '/api/kpis',
      { schema: { querystring: windowSchema, response: { 200: kpiAnswerSchema, ...errors } } },
      async (request, reply) => {
        const answer = queryKpis(running.state, resolveWindow(request.query));
        if (request.query.format === 'csv')
          return reply
            .type('text/csv; charset=utf-8')
            .serializer((x: unknown) => x as string)
            .send(kpisCsv(answer));
        return answer;
      },
    );

    api.get<{ Params: { name: string }; Querystring: Omit<WindowQuery, 'bucket'> }>(
      '/api/funnels/:name',
      {
        schema: {
          params: { type: 'object', properties: { name: { type: 'string' } } },
          querystring: funnelWindowSchema,
          response: { 200: funnelAnswerSchema, ...errors },
        },
      },
      async (request, reply) => {
        const name = request.params.name;
        if (!Object.hasOwn(FUNNELS, name)) throw new HttpError(404, `no funnel "${name}"; one of ${Object.keys(FUNNELS).join(', ')}`, 'name');
        const { bucket: _bucket, ...window } = resolveWindow(request.query);
        const answer = queryFunnel(running.state, name as FunnelName, window);
        if (request.query.format === 'csv')
          return reply
            .type('text/csv; charset=utf-8')
            .serializer((x: unknown) => x as string)
            .send(funnelCsv(answer));
        return answer;
      },
    );
  });
}

export default fp(aggregates, { name: 'kpi-aggregates', dependencies: ['kpi-auth', 'kpi-store'], fastify: '5.x' });
