/**
 * What ingest checks before a blob is looked at: the two wire forms of the
 * original store as the only body parsers (anything else is 415), the
 * `Origin` allowlist with its CORS answers, and the opt-out headers.
 */
import type { FastifyInstance, onRequestHookHandler } from 'fastify';
import { HttpError } from '../http/errors.js';
import { parseFormStrictly, parseJsonSafely, utf8 } from './parse.js';

/** Only the two wire forms of the original store; anything else is 415. Both are parsed strictly (parse.ts). */
export function installWireParsers(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
    try {
      done(null, parseJsonSafely(utf8(body as Buffer), 'body'));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'buffer' }, (_req, body, done) => {
    try {
      done(null, parseFormStrictly(utf8(body as Buffer)));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
}

/**
 * The `Origin` check, run first: a page of another site gets 403 (and no
 * CORS grant), before its body is read. Posts without Origin (no browser)
 * pass: the allowlist stops other sites' pages, not scripts, which can send
 * any header. No allowlist: every origin may post (`*`).
 */
export function originCheck(allowed: readonly string[]): onRequestHookHandler {
  const origins = new Set(allowed);
  return async (request, reply) => {
    const origin = request.headers.origin;
    if (origin === undefined) return;
    if (origins.size > 0 && !origins.has(origin)) {
      throw new HttpError(403, 'this origin may not post interaction data (KPI_INGEST_ORIGINS)', 'headers.origin');
    }
    reply.header('access-control-allow-origin', origins.size > 0 ? origin : '*');
    reply.header('vary', 'origin');
  };
}

/** Whether a request says its user opted out of tracking (`DNT: 1` or `Sec-GPC: 1`). */
export function optsOut(headers: Record<string, string | string[] | undefined>): boolean {
  const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v)?.trim();
  return first(headers.dnt) === '1' || first(headers['sec-gpc']) === '1';
}
