import { pino, type Logger } from 'pino';
import type { Config } from './config/config.js';

/**
 * The process logger: pino JSON lines; pretty only when a person watches a
 * terminal (and pino-pretty is installed). Request and header fields that may
 * carry secrets are redacted wherever they appear.
 */
export function createLogger(config: Pick<Config, 'logLevel'>, destination?: NodeJS.WritableStream): Logger {
  const options = {
    level: config.logLevel,
    name: 'kpi-live',
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'headers.authorization',
        'headers.cookie',
        'couchdbUrl',
        'couchdbPassword',
        'apiTokens',
        'users',
        'sessionSecret',
        'ingestNonceSecret',
        'alertWebhookUrl',
        'password',
        'token',
      ],
      censor: '[redacted]',
    },
  };
  if (!destination && process.stdout.isTTY) {
    try {
      return pino({ ...options, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } });
    } catch {
      // pino-pretty missing: plain JSON lines.
    }
  }
  return destination ? pino(options, destination as pino.DestinationStream) : pino(options);
}
