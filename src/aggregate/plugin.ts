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
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Observable } from 'rxjs';
import type { Config } from '../config/config.js';
import { errorResponseSchema, HttpError } from '../http/errors.js';
import { Aggregator, type AggregateChange, type AggregatorStatus } from './aggregator.js';
import { kpisCsv, funnelCsv } from './csv.js';
import {
  BUCKET_SIZES,
  bucketForRange,
  FUNNELS,
  MAX_POINTS,
  MAX_RANGE_MS,
  MAX_TOP,
  queryFunnel,
  queryKpis,
  windowEnd,
  type BucketName,
  type FunnelAnswer,
  type FunnelName,
  type KpiAnswer,
  type KpiQuery,
} from './query.js';
import { DIMENSIONS, type Dimension } from './segments.js';
import { aggregateSettings } from './settings.js';
import { DAY } from './state.js';

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

declare module 'fastify' {
  interface FastifyInstance {
    aggregates: Aggregates;
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
    from: { type: 'integer', minimum: 0, description: 'inclusive, ms; default: 24 h before `to`' },
    to: { type: 'integer', minimum: 0, description: 'exclusive, ms; default: now' },
    bucket: { type: 'string', enum: Object.keys(BUCKET_SIZES), description: 'default: from the range' },
    segment: { type: 'string', enum: [...DIMENSIONS] },
    top: { type: 'integer', minimum: 1, maximum: MAX_TOP, description: 'with segment: the N biggest values, the rest merged into Other' },
    format: { type: 'string', enum: ['json', 'csv'] },
  },
} as const;

const { bucket: _noBucket, ...funnelWindowProperties } = windowSchema.properties;
const funnelWindowSchema = { ...windowSchema, properties: funnelWindowProperties };

const answerSchema = {
  type: 'object',
  additionalProperties: true,
  properties: { series: { type: 'array', items: { type: 'object', additionalProperties: true } } },
} as const;

const errors = { 400: errorResponseSchema, 401: errorResponseSchema, 403: errorResponseSchema, 404: errorResponseSchema, 503: errorResponseSchema };

/** The window a request asks for, with defaults: the last 24 h, a bucket that suits the range. */
export function resolveWindow(q: WindowQuery, now = Date.now()): KpiQuery {
  const to = q.to ?? windowEnd(now);
  const from = q.from ?? to - DAY;
  if (to <= from) throw new HttpError(400, 'query.to must be greater than query.from', 'query.to');
  if (to - from > MAX_RANGE_MS) throw new HttpError(400, `query.from..query.to spans more than ${MAX_RANGE_MS / DAY} days`, 'query.from');
  const bucket = q.bucket ?? bucketForRange(to - from);
  if ((to - from) / BUCKET_SIZES[bucket] > MAX_POINTS)
    throw new HttpError(400, `query.bucket ${bucket} gives too many points for this range; use a larger one`, 'query.bucket');
  if (q.top !== undefined && !q.segment) throw new HttpError(400, 'query.top needs query.segment (the values to keep the top of)', 'query.top');
  return { from, to, bucket, segment: q.segment, ...(q.top !== undefined ? { top: q.top } : {}) };
}

async function aggregates(app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  const aggregator = new Aggregator({
    ...aggregateSettings(config, app.store, app.log),
    longpollMs: config.feedLongpollMs,
    checkpointEveryChanges: config.checkpointEveryChanges,
    checkpointEveryMs: config.checkpointEveryMs,
  });
  await aggregator.start();
  // Stop following and save a last checkpoint before the store closes.
  app.store.beforeClose(() => aggregator.stop());

  app.decorate('aggregates', {
    kpis: (query: KpiQuery, changedAfter?: number) => queryKpis(aggregator.state, query, changedAfter),
    version: () => ({ epoch: aggregator.state.epoch, version: aggregator.state.version }),
    funnel: (name: FunnelName, query: Omit<KpiQuery, 'bucket'>) => queryFunnel(aggregator.state, name, query),
    status: () => aggregator.status,
    changes$: aggregator.changes$,
  } satisfies Aggregates);

  await app.register(async (api) => {
    api.addHook('onRequest', app.auth.requireReader);

    api.get<{ Querystring: WindowQuery }>(
      '/api/kpis',
      { schema: { querystring: windowSchema, response: { 200: answerSchema, ...errors } } },
      async (request, reply) => {
        const answer = queryKpis(aggregator.state, resolveWindow(request.query));
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
          response: { 200: answerSchema, ...errors },
        },
      },
      async (request, reply) => {
        const name = request.params.name;
        if (!Object.hasOwn(FUNNELS, name)) throw new HttpError(404, `no funnel "${name}"; one of ${Object.keys(FUNNELS).join(', ')}`, 'name');
        const { bucket: _bucket, ...window } = resolveWindow(request.query);
        const answer = queryFunnel(aggregator.state, name as FunnelName, window);
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
