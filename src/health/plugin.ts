/**
 * `GET /health`: is the process up and does the store answer. 200 when both,
 * 503 + Retry-After when the store does not, so a load balancer or an
 * orchestrator can act on the status alone. It also shows how far the
 * aggregate lags behind the feed. Reveals no data and no secrets.
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/config.js';

const healthSchema = {
  type: 'object',
  required: ['status', 'store', 'uptimeSeconds'],
  properties: {
    status: { type: 'string', enum: ['ok', 'unavailable'] },
    store: {
      type: 'object',
      required: ['kind', 'reachable'],
      properties: { kind: { type: 'string' }, reachable: { type: 'boolean' } },
    },
    uptimeSeconds: { type: 'number' },
    aggregate: {
      type: 'object',
      properties: {
        phase: { type: 'string' },
        lagChanges: { type: ['integer', 'null'] },
        lagSeconds: { type: 'number' },
        counted: { type: 'integer' },
        duplicates: { type: 'integer' },
        watermark: { type: 'number' },
        lastCheckpointAt: { type: ['number', 'null'] },
        lastError: { type: ['string', 'null'] },
      },
    },
  },
} as const;

async function health(app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  const started = Date.now();
  app.get('/health', { schema: { response: { 200: healthSchema, 503: healthSchema } } }, async (_request, reply) => {
    const reachable = await app.store.ping();
    const body = {
      status: reachable ? ('ok' as const) : ('unavailable' as const),
      store: { kind: app.store.kind, reachable },
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
      aggregate: app.aggregates.status(),
    };
    if (!reachable) reply.code(503).header('retry-after', String(config.retryAfterSeconds));
    return body;
  });
}

export default fp(health, { name: 'kpi-health', dependencies: ['kpi-store', 'kpi-aggregates'], encapsulate: true, fastify: '5.x' });
