/**
 * Starts kpi-live: builds the app, listens, and shuts down gracefully on
 * SIGINT/SIGTERM: stop accepting, answer every request in flight (their
 * blobs are written first), close the store, exit.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import app, { serverOptions } from './app.js';
import { redactedConfig, type Config } from './config/config.js';

export interface RunningServer {
  app: FastifyInstance;
  /** Base URL the server listens on. */
  url: string;
  /** Graceful stop; resolves when everything is closed. */
  close(): Promise<void>;
}

/** Builds and starts the server (no signal handling: see {@link runUntilSignalled}). */
export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const fastify = Fastify({ ...serverOptions(config), loggerInstance: log as FastifyBaseLogger });
  log.info({ config: redactedConfig(config) }, 'starting kpi-live');
  await fastify.register(app, { config });
  const url = await fastify.listen({ host: config.host, port: config.port });
  log.info({ url }, 'kpi-live listening');
  return { app: fastify, url, close: () => fastify.close() };
}

/** Runs until SIGINT or SIGTERM, then closes gracefully; a second signal forces exit. */
export async function runUntilSignalled(config: Config, log: Logger, closeTimeoutMs = 30_000): Promise<number> {
  const server = await startServer(config, log);
  return new Promise<number>((resolve) => {
    let closing = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (closing) {
        log.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      closing = true;
      log.info({ signal }, 'shutting down: no new requests; finishing those in flight');
      const timer = setTimeout(() => {
        log.error({ closeTimeoutMs }, 'shutdown took too long: exiting');
        process.exit(1);
      }, closeTimeoutMs);
      timer.unref();
      server.close().then(
        () => {
          clearTimeout(timer);
          log.info('kpi-live stopped');
          resolve(0);
        },
        (err: Error) => {
          log.error({ err }, 'error while shutting down');
          resolve(1);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
