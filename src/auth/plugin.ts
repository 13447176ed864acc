/**
 * Who may read: the one authentication of kpi-live (`app.auth`).
 *
 * Everything that returns data (dashboard, read and query APIs, the live
 * stream, deploy markers, settings) sits behind `app.auth.requireReader`;
 * ingest alone stays public, as browsers post to it. A request may read when
 * it carries
 * - `Authorization: Bearer <API token>` (machines: CI/CD, scripts), or
 * - a signed session cookie from the login page (people), or
 * - nothing, from a loopback socket, only when `KPI_TRUST_LOOPBACK` is on.
 * With neither users nor tokens configured, kpi-live makes one access token,
 * keeps it in the data directory (mode 0600) and says where; it never logs it.
 *
 * State-changing requests authenticated by the cookie also need the session's
 * `X-CSRF-Token` and, when the browser sends one, a same-origin `Origin`.
 *
 * A session ends at its expiry, at sign-out on any instance (kept in the
 * store: revocations.ts), or when the user or token that made it is no
 * longer configured. While the store cannot be read, sessions still read
 * (the list of sign-outs is the last one read), but may change nothing once
 * that list is older than {@link revocationTimings}' bound (503); before the
 * list was read at all, no session is accepted (503).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import type { Config } from '../config/config.js';
import { HttpError } from '../http/errors.js';
import { isTokenDigest, newApiToken, parseUsers, tokenChecker, tokenDigest, verifyPassword } from './credentials.js';
import { loginPage, LOGIN_CSS } from './login-page.js';
import { RevocationList, type RevocationOptions } from './revocations.js';
import { cookieValue, SESSION_COOKIE, SessionKeeper, type Session } from './sessions.js';

/** How a request proved it may read. */
export type Identity = { kind: 'token' } | { kind: 'session'; session: Session } | { kind: 'loopback' };

export interface Auth {
  /** `onRequest` hook: lets through only requests that may read (401/403 otherwise). */
  requireReader: onRequestHookHandler;
  /** How a request authenticates, if it does (an invalid bearer token counts as none). */
  identify(request: FastifyRequest): Identity | undefined;
  /** Checks an API token given outside a header (the live stream's `hello`). */
  checkToken(token: string | undefined): boolean;
  /** Whether the request's `Origin`, when it has one, is this service's own. */
  sameOrigin(request: FastifyRequest): boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    auth: Auth;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** What loopback access's CSRF token is the HMAC of (there is no session). */
const LOOPBACK_SESSION: Session = { user: 'loopback', id: 'loopback', credential: '', expiresAt: 0 };

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

/** A secret kept in a file of the data directory (made on first use, mode 0600). */
function keptSecret(dataDir: string, name: string, make: () => string): { value: string; path: string } {
  const path = resolve(join(dataDir, name));
  if (existsSync(path)) return { value: readFileSync(path, 'utf8').trim(), path };
  mkdirSync(dataDir, { recursive: true });
  const value = make();
  writeFileSync(path, value + '\n', { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600);
  return { value, path };
}

/** Shortest secret kept in a file that kpi-live accepts (its own are 43 characters or more). */
const MIN_SECRET_LENGTH = 32;

/** The session key kept in the data directory, made on first use. */
function keptSessionSecret(dataDir: string): string {
  const kept = keptSecret(dataDir, 'session-secret', () => randomBytes(32).toString('base64url'));
  if (kept.value.length < MIN_SECRET_LENGTH) {
    throw new Error(`the session key in ${kept.path} must have at least ${MIN_SECRET_LENGTH} characters (delete the file to make a new one)`);
  }
  return kept.value;
}

/**
 * A relative path to go back to after sign-in, fit for a `Location` header:
 * characters beyond ASCII are percent-encoded; control characters, spaces,
 * lone surrogates, other sites and anything but a string go to `/`.
 */
export function safeNext(next: unknown): string {
  if (typeof next !== 'string' || next.length > 512 || !/^\/(?![/\\])/.test(next) || /[\p{Cc}\s]/u.test(next)) return '/';
  try {
    return next.replace(/[^\u0021-\u007e]+/g, (text) => encodeURIComponent(text));
  } catch {
    return '/'; // a lone surrogate has no UTF-8 form
  }
}

/** Host names a loopback client may use under KPI_TRUST_LOOPBACK (any other is a rebound DNS name). */
export function isLoopbackHost(host: string | undefined): boolean {
  return host !== undefined && /^(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$/i.test(host);
}

/** Whether a request comes from a browser page (which a forged cross-site request always does). */
const fromBrowser = (request: FastifyRequest) => request.headers.origin !== undefined || request.headers['sec-fetch-site'] !== undefined;

/** The sign-in form's fields: text or absent; the first of another type is named. */
function loginFields(body: unknown): { fields: Record<'token' | 'user' | 'password' | 'next', string | undefined> } | { wrong: string } {
  const given = (typeof body === 'object' && body !== null && !Array.isArray(body) ? body : {}) as Record<string, unknown>;
  const fields = { token: undefined, user: undefined, password: undefined, next: undefined } as Record<
    'token' | 'user' | 'password' | 'next',
    string | undefined
  >;
  for (const name of Object.keys(fields) as (keyof typeof fields)[]) {
    const value = Object.hasOwn(given, name) ? given[name] : undefined;
    if (value === undefined) continue;
    if (typeof value !== 'string') return { wrong: name };
    fields[name] = value;
  }
  return { fields };
}

async function auth(app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  let users: Map<string, string>;
  try {
    users = parseUsers(config.users);
  } catch (err) {
    throw new Error(`invalid configuration: ${(err as Error).message}`);
  }
  const badDigest = config.apiTokens.findIndex((d) => !isTokenDigest(d));
  if (badDigest >= 0) throw new Error(`invalid configuration: KPI_API_TOKENS entry ${badDigest + 1} is not "sha256:<64 hex>" (make one with kpi-live token)`);

  const digests = [...config.apiTokens];
  if (digests.length === 0 && users.size === 0) {
    const kept = keptSecret(config.dataDir, 'access-token', () => newApiToken().token);
    // an empty file would make the empty token valid
    if (kept.value.length < MIN_SECRET_LENGTH) {
      throw new Error(`the access token in ${kept.path} must have at least ${MIN_SECRET_LENGTH} characters (delete the file to make a new one)`);
    }
    digests.push(tokenDigest(kept.value));
    app.log.warn(
      { file: kept.path },
      'no users or API tokens configured: sign in with the access token kept in this file (see kpi-live user / kpi-live token)',
    );
  }
  const validToken = tokenChecker(digests);
  // KPI_SESSION_SECRET's length is checked with the configuration
  const secret = config.sessionSecret ?? keptSessionSecret(config.dataDir);
  const sessions = new SessionKeeper(secret, config.sessionHours * 3_600_000);
  // the credentials configured now: a session made with any other ends
  const liveCredentials = new Set([...digests, ...users.values()].map((material) => sessions.credentialId(material)));
  const revocations = new RevocationList(`${config.dbName}_sessions`, app.log, revocationTimings(config.couchdbTimeoutMs));
  // at onReady: the store plugin registers after this one
  app.addHook('onReady', () => revocations.start(app.store));
  app.addHook('preClose', () => revocations.stop());

  /** The session of a request's cookie, and whether it may be used: `unknown` while no list of sign-outs was ever read. */
  const sessionOf = (request: FastifyRequest): { session: Session; state: 'live' | 'unknown' } | undefined => {
    const session = sessions.verify(cookieValue(request.headers.cookie, SESSION_COOKIE));
    if (!session || !liveCredentials.has(session.credential) || revocations.has(session.id)) return undefined;
    return { session, state: revocations.known ? 'live' : 'unknown' };
  };

  const sameOrigin = (request: FastifyRequest): boolean => {
    const origin = request.headers.origin;
    if (origin === undefined) return true;
    try {
      return new URL(origin).host === request.host;
    } catch {
      return false;
    }
  };

  const identify = (request: FastifyRequest): Identity | undefined => {
    const token = bearerToken(request);
    if (token !== undefined) return validToken(token) ? { kind: 'token' } : undefined;
    const found = sessionOf(request);
    if (found?.state === 'live') return { kind: 'session', session: found.session };
    // the Host check stops DNS rebinding: a page of evil.example resolved to
    // 127.0.0.1 is same-origin with itself, but its requests say its name
    if (config.trustLoopback && isLoopback(request.socket.remoteAddress) && isLoopbackHost(request.headers.host)) return { kind: 'loopback' };
    return undefined;
  };

  const requireReader: onRequestHookHandler = async (request: FastifyRequest, reply: FastifyReply) => {
    const who = identify(request);
    if (!who) {
      if (sessionOf(request)?.state === 'unknown')
        throw new HttpError(503, 'sign-outs cannot be read from the store yet, so no session is accepted; retry later');
      if (bearerToken(request) !== undefined) {
        reply.header('www-authenticate', 'Bearer realm="kpi-live", error="invalid_token"');
        throw new HttpError(401, 'the bearer token is not valid');
      }
      reply.header('www-authenticate', 'Bearer realm="kpi-live"');
      throw new HttpError(401, 'sign in at /login, or send "Authorization: Bearer <API token>"');
    }
    if (SAFE_METHODS.has(request.method) || who.kind === 'token') return;
    if (!sameOrigin(request)) throw new HttpError(403, 'cross-origin requests may not change anything', 'headers.origin');
    const csrf = headerValue(request.headers['x-csrf-token']);
    if (who.kind === 'session' && !sessions.checkCsrf(who.session, csrf)) {
      throw new HttpError(403, 'this request needs the X-CSRF-Token of the session (GET /api/session)', 'headers.x-csrf-token');
    }
    // fail closed: a session signed out elsewhere while the store was away changes nothing
    if (who.kind === 'session' && !revocations.current()) {
      throw new HttpError(503, 'sign-outs cannot be read from the store, so a session may change nothing now; retry later');
    }
    // Loopback trust has no cookie to forge, but a page the user opens may
    // post to loopback: a browser's write needs the token too.
    if (who.kind === 'loopback' && fromBrowser(request) && !sessions.checkCsrf(LOOPBACK_SESSION, csrf)) {
      throw new HttpError(403, 'this request needs the X-CSRF-Token of loopback access (GET /api/session)', 'headers.x-csrf-token');
    }
  };

  app.decorate('auth', { requireReader, identify, checkToken: validToken, sameOrigin } satisfies Auth);

  const setCookie = (request: FastifyRequest, reply: FastifyReply, value: string, maxAgeSeconds: number) => {
    const secure = request.protocol === 'https' ? '; Secure' : '';
    reply.header('set-cookie', `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure}`);
  };

  await app.register(async (pages) => {
    pages.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 8192 }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    await pages.register(rateLimit, {
      max: 20,
      timeWindow: 60_000,
      errorResponseBuilder: (_req, context) => ({ statusCode: 429, message: `too many sign-in attempts: retry in ${context.after}` }),
    });
    const html = (reply: FastifyReply, status: number, body: string) => reply.code(status).headers(PAGE_HEADERS).type('text/html; charset=utf-8').send(body);

    pages.get<{ Querystring: { next?: string } }>('/login', { config: { rateLimit: false } }, async (request, reply) =>
      html(reply, 200, loginPage({ next: safeNext(request.query.next), users: users.size > 0 })),
    );
    pages.get('/login.css', { config: { rateLimit: false } }, async (_request, reply) =>
      reply.headers(PAGE_HEADERS).type('text/css; charset=utf-8').send(LOGIN_CSS),
    );
    pages.post('/login', async (request, reply) => {
      const read = loginFields(request.body);
      if ('wrong' in read) {
        return html(reply, 400, loginPage({ next: '/', users: users.size > 0, error: `The form's ${read.wrong} must be text.` }));
      }
      const body = read.fields;
      const next = safeNext(body.next);
      if (!sameOrigin(request)) return html(reply, 403, loginPage({ next, users: users.size > 0, error: 'Sign-in must come from this page.' }));
      let user: string | undefined;
      let credential: string | undefined;
      if (body.token) {
        if (validToken(body.token)) {
          user = 'token';
          credential = sessions.credentialId(tokenDigest(body.token));
        }
      } else if (body.user && body.password !== undefined) {
        const hash = users.get(body.user);
        // Unknown users cost the same scrypt work as known ones.
        const ok = verifyPassword(body.password, hash ?? DUMMY_HASH);
        if (ok && hash) {
          user = body.user;
          credential = sessions.credentialId(hash);
        }
      }
      if (!user || !credential) {
        request.log.info({ user: body.user?.slice(0, 64) ?? null }, 'sign-in refused');
        return html(reply, 401, loginPage({ next, users: users.size > 0, error: 'That did not match. Try again.' }));
      }
      const { cookie } = sessions.issue(user, credential);
      setCookie(request, reply, cookie, Math.floor(sessions.lifetimeMs / 1000));
      request.log.info({ user }, 'signed in');
      return reply.code(303).header('location', next).send();
    });
    pages.post('/logout', { config: { rateLimit: false } }, async (request, reply) => {
      if (!sameOrigin(request)) throw new HttpError(403, 'cross-origin requests may not change anything', 'headers.origin');
      // any genuine session, even one whose credential is gone: signing out never hurts
      const session = sessions.verify(cookieValue(request.headers.cookie, SESSION_COOKIE));
      if (session && !(await revocations.revoke(session.id, session.expiresAt))) {
        request.log.warn({ user: session.user }, 'signed out on this instance; other instances learn of it when the store takes it');
      }
      setCookie(request, reply, '', 0);
      return reply.code(303).header('location', '/login').send();
    });
  });

  await app.register(async (api) => {
    api.addHook('onRequest', requireReader);
    api.get(
      '/api/session',
      {
        schema: {
          response: {
            200: {
              type: 'object',
              required: ['kind'],
              properties: { kind: { type: 'string' }, user: { type: 'string' }, csrfToken: { type: 'string' }, expiresAt: { type: 'integer' } },
            },
          },
        },
      },
      async (request) => {
        const who = identify(request)!;
        if (who.kind === 'loopback') return { kind: 'loopback', csrfToken: sessions.csrfToken(LOOPBACK_SESSION) };
        if (who.kind !== 'session') return { kind: who.kind };
        return { kind: 'session', user: who.session.user, csrfToken: sessions.csrfToken(who.session), expiresAt: who.session.expiresAt };
      },
    );
  });
}

/**
 * How sign-outs are followed, from the store's request timeout: the feed
 * waits that long for a change, every other request is bounded by it, and
 * the list is no longer trusted for state changes after three times that
 * without an answer (30 s by default), the longest a healthy feed takes.
 */
export function revocationTimings(couchdbTimeoutMs: number): RevocationOptions {
  return { longpollMs: couchdbTimeoutMs, requestTimeoutMs: couchdbTimeoutMs, staleAfterMs: 3 * couchdbTimeoutMs, sweepEveryMs: 3_600_000 };
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Headers of the login page: nothing inline, never framed, never cached. The
 * referrer stays same-origin (not `no-referrer`): under `no-referrer` a
 * browser's form post carries `Origin: null`, and the same-origin check
 * would refuse every sign-in.
 */
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
};

const DUMMY_HASH = 'scrypt:16384:8:1:AAAAAAAAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

export default fp(auth, { name: 'kpi-auth', fastify: '5.x' });
