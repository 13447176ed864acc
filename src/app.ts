/**
 * kpi-live as one Fastify plugin, with no `listen`: `src/server.ts` starts it,
 * tests drive it with `inject` or on an ephemeral port.
 *
 * The data path is the architecture: ingest → CouchDB → `_changes` →
 * aggregate → stream → web. Each feature is a plugin of its own folder; the
 * store is the leaf they share.
 */
import publicPlugin from './public/plugin.js';
import verdictsPlugin from './verdict/plugin.js';
import { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from './config/config.js';
import aggregatePlugin from './aggregate/routes/plugin.js';
import alertsPlugin from './alerts/plugin.js';
import authPlugin from './auth/plugin.js';
import dashboardPlugin from './dashboard-host/plugin.js';
import deploysPlugin from './deploys/plugin.js';
import healthPlugin from './health/plugin.js';
import { drainRefusedBodies } from './http/drain.js';
import { installErrorHandling } from './http/errors.js';
import probesPlugin from './health/probes.js';
import ingestPlugin from './ingest/plugin.js';
import featureMetricsPlugin from './metrics/features.js';
import metricsPlugin from './metrics/plugin.js';
import readPlugin from './blob-api/plugin.js';
import retentionPlugin from './retention/plugin.js';
import storePlugin from './store/plugin.js';
import streamPlugin from './stream/plugin.js';

/** Server options that follow from the configuration (shared by server and tests). */
export function serverOptions(config: Config): FastifyServerOptions {
  return {
    trustProxy: config.trustProxy,
    bodyLimit: config.bodyLimitBytes,
    // Request ids in every log line; a proxy's X-Request-Id is kept.
    requestIdHeader: 'x-request-id',
    // No per-request access lines: at thousands of ingest requests a second
    // they would dwarf everything else, and they would carry client
    // addresses, which kpi-live does not keep (privacy review). Errors and
    // rejections are logged with their request id.
    logController: new LogController({ requestIdLogLabel: 'reqId', disableRequestLogging: true }),
    connectionTimeout: 60_000,
    keepAliveTimeout: 10_000,
    requestTimeout: 60_000,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    ajv: { customOptions: { coerceTypes: true, removeAdditional: true, useDefaults: true, allErrors: false } },
  };
}

async function app(fastify: FastifyInstance, { config }: { config: Config }): Promise<void> {
  installErrorHandling(fastify, config.retryAfterSeconds);
  drainRefusedBodies(fastify);
  // Once closing, answers end their connection: a request answered after the
  // close began (its blobs were still being written) must not leave a
  // keep-alive socket that holds the shutdown for the keep-alive timeout.
  let closing = false;
  fastify.addHook('preClose', async () => {
    closing = true;
  });
  fastify.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });
  await fastify.register(authPlugin, { config });
  await fastify.register(metricsPlugin, { config });
  await fastify.register(storePlugin, { config });
  await fastify.register(deploysPlugin, { config });
  await fastify.register(aggregatePlugin, { config });
  await fastify.register(retentionPlugin, { config });
  await fastify.register(alertsPlugin, { config });
  await fastify.register(healthPlugin, { config });
  await fastify.register(ingestPlugin, { config });
  await fastify.register(readPlugin, { config });
  await fastify.register(verdictsPlugin, { config });
  await fastify.register(publicPlugin, { config });
  await fastify.register(streamPlugin, { config });
  await fastify.register(dashboardPlugin, { config });
  await fastify.register(probesPlugin, { config });
  await fastify.register(featureMetricsPlugin);
}

/** Not encapsulated: the error handler and `app.store` belong to the instance that registers kpi-live. */
export default fp(app, { name: 'kpi-live', fastify: '5.x' });
