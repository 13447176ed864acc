/**
 * Liveness and readiness probes, for an orchestrator or a load balancer.
 * `GET /health` stays the full picture for people.
 *
 * - `GET /health/live`: 200 while the process serves HTTP. It checks no
 *   dependency: a store outage must not get a healthy process restarted.
 * - `GET /health/ready`: 200 when this instance can do its work: the store
 *   answers a ping, and the aggregate has been behind the feed for less than
 *   `KPI_READY_MAX_LAG_SECONDS` (and has not stopped for good). A standby
 *   (phase `standby`: another instance follows the feed, this one serves the
 *   state it publishes) is ready while its copy of that state was confirmed
 *   current less than the same bound ago. Otherwise 503 + Retry-After, with
 *   every reason. Failing writes alone keep it ready, as in `/health`: reads
 *   still work and ingest answers 503 by itself.
 *
 * A starting instance that must catch up with a long feed is not ready
 * until it is within the bound. While kpi-live shuts down, every request,
 * probes included, gets 503.
 *
 * Both are public, like `/health`, and reveal no data and no secret.
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/config.js';

/** What readiness is judged on. */
export interface ReadinessInput {
  storeReachable: boolean;
  phase: string;
  lagSeconds: number;
}

/** Phases an aggregate does not leave by itself. */
const STOPPED_PHASES = new Set(['failed', 'stopped']);

/**
 * Whether an instance is ready, and why not: pure, so the rule is tested on its own.
 *
 * @example
 * readiness({ storeReachable: true, phase: 'live', lagSeconds: 0 }, 60); // { ready: true, reasons: [] }
 * readiness({ storeReachable: false, phase: 'retrying', lagSeconds: 75 }, 60).reasons;
 * // ['the store does not answer', 'the aggregate has been behind the feed for 75 s (at most 60 s)']
 */
export function readiness(input: ReadinessInput, maxLagSeconds: number): { ready: boolean; reasons: string[] } {
  const reasons: string[] = [];
  if (!input.storeReachable) reasons.push('the store does not answer');
  if (STOPPED_PHASES.has(input.phase)) reasons.push(`the aggregate has ${input.phase === 'failed' ? 'failed' : 'stopped'}: it no longer follows the feed`);
  else if (input.lagSeconds >= maxLagSeconds) {
    reasons.push(
      input.phase === 'standby'
        ? `the published state this standby serves was last confirmed current ${input.lagSeconds} s ago (at most ${maxLagSeconds} s)`
        : `the aggregate has been behind the feed for ${input.lagSeconds} s (at most ${maxLagSeconds} s)`,
    );
  }
  return { ready: reasons.length === 0, reasons };
}

const liveSchema = {
  type: 'object',
  required: ['status', 'uptimeSeconds'],
  properties: { status: { type: 'string', const: 'live' }, uptimeSeconds: { type: 'number' } },
} as const;

const readySchema = {
  type: 'object',
  required: ['status', 'reasons', 'store', 'aggregate', 'maxLagSeconds'],
  properties: {
    status: { type: 'string', enum: ['ready', 'not-ready'] },
    reasons: { type: 'array', items: { type: 'string' } },
    store: { type: 'object', required: ['reachable'], properties: { reachable: { type: 'boolean' } } },
    aggregate: {
      type: 'object',
      required: ['phase', 'lagSeconds'],
      properties: { phase: { type: 'string' }, lagSeconds: { type: 'number' } },
    },
    maxLagSeconds: { type: 'number' },
  },
} as const;

async function probes(app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  const started = Date.now();

  app.get('/health/live', { schema: { response: { 200: liveSchema } } }, async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    return { status: 'live' as const, uptimeSeconds: Math.round((Date.now() - started) / 1000) };
  });

  app.get('/health/ready', { schema: { response: { 200: readySchema, 503: readySchema } } }, async (_request, reply) => {
    const storeReachable = await app.store.ping();
    const { phase, lagSeconds } = app.aggregates.status();
    const { ready, reasons } = readiness({ storeReachable, phase, lagSeconds }, config.readyMaxLagSeconds);
    reply.header('cache-control', 'no-store');
    if (!ready) reply.code(503).header('retry-after', String(config.retryAfterSeconds));
    return {
      status: ready ? ('ready' as const) : ('not-ready' as const),
      reasons,
      store: { reachable: storeReachable },
      aggregate: { phase, lagSeconds },
      maxLagSeconds: config.readyMaxLagSeconds,
    };
  });
}

export default fp(probes, { name: 'kpi-health-probes', dependencies: ['kpi-store', 'kpi-aggregates'], encapsulate: true, fastify: '5.x' });
