/**
 * Who may read blobs and KPIs. Ingest stays open (browsers post to it); every
 * route that returns data is guarded by this hook:
 *
 * - tokens configured (`KPI_READ_TOKENS`): `Authorization: Bearer <token>`;
 *   compared as SHA-256 digests in constant time, so neither the token nor
 *   its length leaks through timing;
 * - no token configured: only clients on loopback may read. The check uses
 *   the socket's address, never `X-Forwarded-For`, which anyone can forge.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import { HttpError } from './errors.js';

const digest = (token: string) => createHash('sha256').update(token, 'utf8').digest();

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

/** The bearer token of a request, if it carries one. */
export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  return match?.[1];
}

/** A check of presented tokens against the configured ones (constant time, by digest). */
export function tokenCheck(tokens: readonly string[]): (token: string | undefined) => boolean {
  const digests = tokens.map(digest);
  return (token) => {
    if (token === undefined) return false;
    const presented = digest(token);
    let ok = false;
    for (const known of digests) ok = timingSafeEqual(presented, known) || ok;
    return ok;
  };
}

/**
 * An `onRequest` hook that lets a request through only when it may read.
 *
 * @example
 * app.addHook('onRequest', readAuth(config.readTokens));
 */
export function readAuth(tokens: readonly string[]): onRequestHookHandler {
  const valid = tokenCheck(tokens);
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (tokens.length === 0) {
      if (isLoopback(request.socket.remoteAddress)) return;
      throw new HttpError(403, 'reading needs a bearer token, and none is configured (KPI_READ_TOKENS): only loopback clients may read');
    }
    const token = bearerToken(request);
    if (token === undefined) {
      reply.header('www-authenticate', 'Bearer realm="kpi-live"');
      throw new HttpError(401, 'reading needs "Authorization: Bearer <token>"');
    }
    if (!valid(token)) {
      reply.header('www-authenticate', 'Bearer realm="kpi-live", error="invalid_token"');
      throw new HttpError(401, 'the bearer token is not valid');
    }
  };
}
