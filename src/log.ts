import type { Logger } from 'pino';

/** What kpi-live's parts need of a logger: a pino logger or Fastify's both fit. */
export type Log = Pick<Logger, 'fatal' | 'error' | 'warn' | 'info' | 'debug'>;
