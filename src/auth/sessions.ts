/**
 * Dashboard sign-in sessions as signed cookies: `<payload>.<HMAC-SHA256>`,
 * the payload holding the user, a session id and the expiry. Nothing is kept
 * per session on the server, so any instance that shares the key accepts the
 * cookie (several instances behind one load balancer).
 *
 * Sign-out forgets the session id on this instance until the session would
 * have expired anyway, and clears the cookie; the short lifetime bounds what
 * a stolen cookie is worth elsewhere.
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

export class SessionKeeper {
  readonly #key: Buffer;
  readonly #lifetimeMs: number;
  /** Session ids signed out here, with their expiry. */
  readonly #revoked = new Map<string, number>();

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

  /** A new session for a user, and its cookie value. */
  issue(user: string, now = Date.now(), credential = ''): { session: Session; cookie: string } {
    const session: Session = { user, id: randomBytes(16).toString('base64url'), credential, expiresAt: now + this.#lifetimeMs };
    const payload = Buffer.from(JSON.stringify({ u: session.user, i: session.id, c: credential, e: session.expiresAt })).toString('base64url');
    return { session, cookie: `${payload}.${this.#sign(payload)}` };
  }

  /** The session a cookie value stands for, if it is genuine, current and not signed out. */
  verify(cookie: string | undefined, now = Date.now()): Session | undefined {
    if (!cookie || cookie.length > 1024) return undefined;
    const dot = cookie.indexOf('.');
    if (dot < 1) return undefined;
    const payload = cookie.slice(0, dot);
    const given = Buffer.from(cookie.slice(dot + 1), 'base64url');
    const expected = Buffer.from(this.#sign(payload), 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    let parsed: { u?: unknown; i?: unknown; c?: unknown; e?: unknown } | null;
    try {
      parsed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof parsed;
    } catch {
      return undefined;
    }
    if (typeof parsed !== 'object' || parsed === null) return undefined;
    if (typeof parsed.u !== 'string' || typeof parsed.i !== 'string' || typeof parsed.e !== 'number') return undefined;
    if (parsed.c !== undefined && typeof parsed.c !== 'string') return undefined;
    if (parsed.e <= now || this.#revoked.has(parsed.i)) return undefined;
    return { user: parsed.u, id: parsed.i, credential: parsed.c ?? '', expiresAt: parsed.e };
  }

  /** Signs a session out (on this instance). */
  revoke(session: Session, now = Date.now()): void {
    for (const [id, expiresAt] of this.#revoked) if (expiresAt <= now) this.#revoked.delete(id);
    this.#revoked.set(session.id, session.expiresAt);
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

/** The value of one cookie of a `Cookie` header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
