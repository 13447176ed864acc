/**
 * The aggregate as a Fastify plugin: runs the {@link FeedFollower} for the
 * app's lifetime, exposes it as `app.aggregates` (the public query and
 * change interface the stream uses), and serves the query API:
 *
 * - `GET /api/kpis?from&to&bucket=10m|1h|1d&segment=<dimension>[&top=N][&format=csv]`
 * - `GET /api/funnels/:name?from&to&segment=<dimension>[&top=N][&format=csv]`,
 *   name ∈ new-user, password-reset, progress
 *
 * Both are guarded like the read API.
 *
 * With the embedded store this instance is the only follower and runs the
 * FeedFollower straight; several instances may share a store given by
 * `COUCHDB_URL`, and then the lease (src/cluster/) elects the one that
 * follows the feed and writes the checkpoint, the others answering from the
 * state it published (runtime/running.ts says which and why).
 * `app.leadership` tells other features whether this instance is that
 * follower, so that work that must happen once (retention passes, alert
 * webhooks) runs there only.
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Observable } from 'rxjs';
import type { Config } from '../../config/config.js';
import { ensureDatabase } from '../../store/setup.js';
import { errorResponseSchema, HttpError } from '../../http/errors.js';
import type { AggregateChange, AggregateStatus } from '../runtime/follower.js';
import { kpisCsv, funnelCsv } from './csv.js';
import { FUNNELS, queryArrivals, queryFunnel, queryKpis, queryWindowsTotal, type KpiQuery } from '../model/query.js';
import { runningAggregate, type Leadership } from '../runtime/running.js';
import { windowFieldSchemas, windowProblem } from '../../contract/window-schema.js';

import { aggregateSettings } from '../runtime/settings.js';

import { funnelAnswerSchema, kpiAnswerSchema } from '../../contract/answer-schemas.js';
import {
  bucketForRange,
  windowEnd,
  type BucketName,
  type FunnelAnswer,
  type FunnelName,
  type KpiAnswer,
  type Kpis,
  type Dimension,
  DAY,
} from '../../contract/kpis.js';

/** What other features may use of the aggregate. */
export interface AggregateApi {
  /** KPIs over a window; with `changedAfter`, only the points changed after that version. */
  kpis(query: KpiQuery, changedAfter?: number): KpiAnswer;
  /** Current state version and the epoch it belongs to. */
  version(): { epoch: string; version: number };
  funnel(name: FunnelName, query: Omit<KpiQuery, 'bucket'>): FunnelAnswer;
  /** The KPIs of the blobs that arrived after a deploy; undefined when none is kept for it. */
  arrivals(deployId: string): Kpis | undefined;
  /** The KPIs of the time buckets overlapping these windows (the baseline of a verdict). */
  windowsTotal(windows: readonly { from: number; to: number }[]): Kpis;
  status(): AggregateStatus;
  /** Buckets changed by each applied batch. */
  changes$: Observable<AggregateChange>;
}

declare module 'fastify' {
  interface FastifyInstance {
    aggregates: AggregateApi;
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
  // the checkpoint (and, when elected, the lease) live in the aggregates database
  await ensureDatabase(app.store, settings.stateDb);
  const { aggregate: running, leadership } = runningAggregate({ config, store: app.store, settings, log: app.log });
  await running.start();
  // Stop following, save a last checkpoint and give the lease up before the store closes.
  app.store.beforeClose(() => running.stop());

  app.decorate('aggregates', {
    kpis: (query: KpiQuery, changedAfter?: number) => queryKpis(running.state, query, changedAfter),
    version: () => ({ epoch: running.state.epoch, version: running.state.version }),
    funnel: (name: FunnelName, query: Omit<KpiQuery, 'bucket'>) => queryFunnel(running.state, name, query),
    arrivals: (deployId: string) => queryArrivals(running.state, deployId),
    windowsTotal: (windows) => queryWindowsTotal(running.state, windows),
    status: () => running.status,
    changes$: running.changes$,
  } satisfies AggregateApi);
  app.decorate('leadership', leadership);

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
