/**
 * Dashboard sign-in sessions as signed cookies: `<payload>.<HMAC-SHA256>`,
 * the payload holding the user, a session id, the credential that signed in
 * and the expiry. Nothing is kept per session on the server, so any instance
 * that shares the key accepts the cookie (several instances behind one load
 * balancer).
 *
 * Sign-out is kept in the store, apart from the cookie (revocations.ts); a
 * session also ends when its credential leaves the configuration (the
 * plugin compares {@link Session.credential} with the configured ones).
 *
 * CSRF: the cookie is `SameSite=Strict`, and every state-changing request
 * authenticated by it must also carry `X-CSRF-Token`, an HMAC of the session
 * id that only a page of this origin can read (from `GET /api/session`).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export interface Session {
  user: string;
  id: string;
  /**
   * Which configured credential signed in (an HMAC of the user's password
   * hash or of the token's digest, never either): the session ends when that
   * user or token leaves the configuration, or the password changes.
   */
  credential: string;
  /** Expiry, ms since the epoch. */
  expiresAt: number;
}

export const SESSION_COOKIE = 'kpi_session';

const SESSION_ID = /^[A-Za-z0-9_-]{22}$/;

export class SessionKeeper {
  readonly #key: Buffer;
  readonly #lifetimeMs: number;

  constructor(secret: string, lifetimeMs: number) {
    this.#key = Buffer.from(secret, 'utf8');
    this.#lifetimeMs = lifetimeMs;
  }

  get lifetimeMs(): number {
    return this.#lifetimeMs;
  }

  #sign(text: string): string {
    return createHmac('sha256', this.#key).update(text).digest('base64url');
  }

  /** The id a session keeps of the credential it was made with (see {@link Session.credential}). */
  credentialId(material: string): string {
    return this.#sign(`credential:${material}`).slice(0, 22);
  }

  /** A new session for a user signed in with `credential` (a {@link credentialId}), and its cookie value. */
  issue(user: string, credential: string, now = Date.now()): { session: Session; cookie: string } {
    const session: Session = { user, id: randomBytes(16).toString('base64url'), credential, expiresAt: now + this.#lifetimeMs };
    const payload = Buffer.from(JSON.stringify({ u: session.user, i: session.id, c: credential, e: session.expiresAt })).toString('base64url');
    return { session, cookie: `${payload}.${this.#sign(payload)}` };
  }

  /**
   * The session a cookie value stands for, if it is genuine and current
   * (whether it was signed out, or its credential is still configured, is
   * the caller's to check). Total: any value gives a session or undefined.
   */
  verify(cookie: unknown, now = Date.now()): Session | undefined {
    if (typeof cookie !== 'string' || cookie.length > 1024) return undefined;
    const dot = cookie.indexOf('.');
    if (dot < 1) return undefined;
    const payload = cookie.slice(0, dot);
    const given = Buffer.from(cookie.slice(dot + 1), 'base64url');
    const expected = Buffer.from(this.#sign(payload), 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return undefined;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
    const { u, i, c, e } = parsed as Record<string, unknown>;
    if (typeof u !== 'string' || typeof i !== 'string' || typeof c !== 'string' || typeof e !== 'number') return undefined;
    // the id names the session's revocation document: only ids of the form issue() makes
    if (!SESSION_ID.test(i) || !Number.isFinite(e) || e <= now) return undefined;
    return { user: u, id: i, credential: c, expiresAt: e };
  }

  /** The CSRF token of a session. */
  csrfToken(session: Session): string {
    return this.#sign(`csrf:${session.id}`);
  }

  /** Whether a presented CSRF token belongs to the session. */
  checkCsrf(session: Session, token: string | undefined): boolean {
    if (!token) return false;
    const a = Buffer.from(token);
    const b = Buffer.from(this.csrfToken(session));
    return a.length === b.length && timingSafeEqual(a, b);
  }
}

/**
 * The value of the first cookie called `name` in a `Cookie` header of any
 * shape (several headers arrive as an array; anything else has none).
 */
export function cookieValue(header: unknown, name: string): string | undefined {
  const text = Array.isArray(header) ? header.filter((h) => typeof h === 'string').join('; ') : header;
  if (typeof text !== 'string' || text === '') return undefined;
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
