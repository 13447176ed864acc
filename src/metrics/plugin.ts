/**
 * `GET /metrics`: kpi-live's metrics in the Prometheus text format (0.0.4),
 * and the registry features count into (`app.metrics`).
 *
 * Registered early, right after authentication, so every feature after it
 * can register its metrics; the text is built only when a scraper asks.
 * Features with events on their hot path (ingest, the live stream) keep
 * their own counters here; the states other features already publish
 * (store, aggregate, retention, alerts) are read at scrape through their
 * public accessors (`features.ts`).
 *
 * Who may scrape: a reader (`app.auth.requireReader`: an API token as
 * `Authorization: Bearer`, which Prometheus sends with its `authorization`
 * setting), or anyone with `KPI_METRICS_PUBLIC=true`, for a scraper on a
 * private network. Metrics reveal no blob, no address and no secret.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/config.js';
import { errorResponseSchema } from '../http/errors.js';
import { projectRoot } from '../project-root.js';
import { EXPOSITION_CONTENT_TYPE } from './exposition.js';
import { registerProcessMetrics } from './process.js';
import { MetricsRegistry } from './registry.js';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: MetricsRegistry;
  }
}

export const METRICS_PATH = '/metrics';

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

async function metrics(app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  const registry = new MetricsRegistry({
    onReadError: (name, err) => app.log.warn({ metric: name, err: (err as Error).message }, 'a metric could not be read; it is left out of this scrape'),
  });
  app.decorate('metrics', registry);
  const stopProcessMetrics = registerProcessMetrics(registry, packageVersion());
  app.addHook('onClose', async () => stopProcessMetrics());

  app.get(
    METRICS_PATH,
    {
      ...(config.metricsPublic ? {} : { onRequest: app.auth.requireReader }),
      schema: { response: { 200: { type: 'string' }, 401: errorResponseSchema } },
    },
    async (_request, reply) => {
      const text = await registry.render();
      return reply.type(EXPOSITION_CONTENT_TYPE).header('cache-control', 'no-store').send(text);
    },
  );
  if (config.metricsPublic) app.log.info({ path: METRICS_PATH }, 'metrics are open to anyone who reaches this port (KPI_METRICS_PUBLIC)');
}

export default fp(metrics, { name: 'kpi-metrics', dependencies: ['kpi-auth'], fastify: '5.x' });
