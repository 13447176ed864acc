/**
 * Ingest nonces (security review: "bogus submissions — mitigation via nonce
 * or CSRF token"), for deployments that can make their dialog fetch one.
 *
 * A nonce is `<issued at, base 36>.<random>.<HMAC>`: stateless, so any
 * instance sharing the key checks it, and valid for a day, as dialogs retry
 * stored blobs later (a refused one fetches a fresh nonce and retries).
 *
 * What it buys: a poster must first fetch a nonce from this service (each
 * fetch rate-limited by address), so blind floods from elsewhere fail. What it
 * does not: prove that a real dialog sent the blob; a script can fetch nonces
 * too. Plausibility checks and rate limits remain the main defence.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const NONCE_LIFETIME_MS = 86_400_000;

export class NonceKeeper {
  readonly #key: Buffer;

  constructor(secret: string) {
    this.#key = Buffer.from(secret, 'utf8');
  }

  #sign(text: string): string {
    return createHmac('sha256', this.#key).update(`ingest-nonce:${text}`).digest('base64url');
  }

  /** A fresh nonce. */
  issue(now = Date.now()): string {
    const body = `${now.toString(36)}.${randomBytes(12).toString('base64url')}`;
    return `${body}.${this.#sign(body)}`;
  }

  /** Why a nonce is refused, or undefined when it is good. */
  problem(nonce: string | undefined, now = Date.now()): string | undefined {
    if (!nonce) return 'is required: fetch one from GET /wsapi/interaction_nonce';
    const last = nonce.lastIndexOf('.');
    if (last < 0 || nonce.length > 256) return 'is not a nonce of this service';
    const body = nonce.slice(0, last);
    const given = Buffer.from(nonce.slice(last + 1));
    const expected = Buffer.from(this.#sign(body));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'is not a nonce of this service';
    const issuedAt = parseInt(body.slice(0, body.indexOf('.')), 36);
    if (!(issuedAt <= now + 60_000) || now - issuedAt > NONCE_LIFETIME_MS) return 'has expired: fetch a fresh one from GET /wsapi/interaction_nonce';
    return undefined;
  }
}
