/**
 * `GET /health`: is the process up, does the store answer, and does it take
 * writes.
 *
 * - `ok` (200): the store answers and takes writes.
 * - `degraded` (200): the store answers, but its latest writes failed (it
 *   answers 5xx, refuses them, or times out): ingest answers 503 +
 *   Retry-After meanwhile, and reads still work, so the instance stays in
 *   rotation and is not restarted for a fault of the store. Once nothing
 *   has written for a while, a check probes one small write, so the state
 *   clears by itself when the store takes writes again, even with no
 *   traffic.
 * - `unavailable` (503 + Retry-After): the store does not answer.
 *
 * It also shows how far the aggregate lags behind the feed, and the last
 * retention pass. Reveals no data and no secrets.
 *
 * With the embedded store `lease.mode` is `sole`: this instance is the only
 * one that can reach the store and follows the feed with no lease. With a
 * shared store, `lease` says whether this one holds the lease
 * (`role: follower`; `following` once it has loaded the checkpoint and reads
 * the feed) or serves the published aggregate (`standby`), who
 * holds the lease and what the holder says of its aggregate; a standby's
 * `aggregate.lagSeconds` is how long since its copy last equalled the
 * published checkpoint.
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/config.js';

const healthSchema = {
  type: 'object',
  required: ['status', 'store', 'uptimeSeconds'],
  properties: {
    status: { type: 'string', enum: ['ok', 'degraded', 'unavailable'] },
    store: {
      type: 'object',
      required: ['kind', 'reachable', 'writable'],
      properties: {
        kind: { type: 'string' },
        reachable: { type: 'boolean' },
        writable: { type: 'boolean' },
        writesFailingSince: { type: 'number' },
        writeError: { type: 'string' },
      },
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
        deletions: { type: 'integer' },
        watermark: { type: 'number' },
        lastCheckpointAt: { type: ['number', 'null'] },
        countedThrough: { type: 'number' },
        lastError: { type: ['string', 'null'] },
      },
    },
    lease: {
      type: 'object',
      properties: {
        instanceId: { type: 'string' },
        mode: { type: 'string', enum: ['sole', 'auto', 'standby'] },
        role: { type: 'string', enum: ['follower', 'standby'] },
        following: { type: 'boolean' },
        holder: { type: ['string', 'null'] },
        expiresInMs: { type: ['integer', 'null'] },
        ttlMs: { type: 'integer' },
        takeovers: { type: 'integer' },
        roleSince: { type: ['number', 'null'] },
        holderStatus: {
          type: ['object', 'null'],
          properties: { phase: { type: 'string' }, lagSeconds: { type: 'number' }, watermark: { type: 'number' } },
        },
        lastError: { type: ['string', 'null'] },
      },
    },
    retention: {
      type: 'object',
      properties: {
        running: { type: 'boolean' },
        lastRunAt: { type: ['number', 'null'] },
        removed: { type: 'integer' },
        removedTotal: { type: 'integer' },
        purged: { type: ['integer', 'null'] },
        purge: { type: 'string', enum: ['supported', 'unsupported', 'unknown'] },
        cutoff: { type: ['number', 'null'] },
        lastError: { type: ['string', 'null'] },
        nextRunAt: { type: ['number', 'null'] },
      },
    },
  },
} as const;

async function health(app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  const started = Date.now();
  app.get('/health', { schema: { response: { 200: healthSchema, 503: healthSchema } } }, async (_request, reply) => {
    const reachable = await app.store.ping();
    const writes = reachable ? await app.store.checkWrites() : app.store.writeHealth();
    const writable = reachable && !writes.failing;
    const body = {
      status: !reachable ? ('unavailable' as const) : writable ? ('ok' as const) : ('degraded' as const),
      store: {
        kind: app.store.kind,
        reachable,
        writable,
        ...(writes.failing ? { writesFailingSince: writes.failingSince!, writeError: writes.lastError! } : {}),
      },
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
      aggregate: app.aggregates.status(),
      lease: app.leadership.status(),
      retention: app.retention.status(),
    };
    if (!reachable) reply.code(503).header('retry-after', String(config.retryAfterSeconds));
    return body;
  });
}

export default fp(health, { name: 'kpi-health', dependencies: ['kpi-store', 'kpi-aggregates', 'kpi-retention'], encapsulate: true, fastify: '5.x' });
