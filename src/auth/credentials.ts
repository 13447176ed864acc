/**
 * Credentials kpi-live accepts, and how it keeps them: never in clear.
 *
 * - API tokens (machines): 32 random bytes, shown once by `kpi-live token`;
 *   the configuration keeps only `sha256:<hex>`. A token carries 256 bits of
 *   entropy, so a plain SHA-256 digest cannot be brute-forced; comparing
 *   digests in constant time leaks neither the token nor its length.
 * - Passwords (people): scrypt with a random salt (`scrypt:<N>:<r>:<p>:<salt>:<hash>`,
 *   base64url), as passwords have little entropy and need a slow hash.
 */
import { createHash, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';

const TOKEN_PREFIX = 'klt_';
const DIGEST_PATTERN = /^sha256:[0-9a-f]{64}$/;
const SCRYPT = { N: 16384, r: 8, p: 1, keyLength: 32 } as const;

/** The digest form of a token, as the configuration holds it. */
export function tokenDigest(token: string): string {
  return `sha256:${createHash('sha256').update(token, 'utf8').digest('hex')}`;
}

/** A new API token and the digest to configure. */
export function newApiToken(): { token: string; digest: string } {
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  return { token, digest: tokenDigest(token) };
}

/** Whether a configured value is a token digest. */
export const isTokenDigest = (value: string): boolean => DIGEST_PATTERN.test(value);

/**
 * A check of presented tokens against configured digests, in constant time.
 *
 * @example
 * const valid = tokenChecker([tokenDigest('t')]);
 * valid('t'); // true
 */
export function tokenChecker(digests: readonly string[]): (token: string | undefined) => boolean {
  const known = digests.map((d) => Buffer.from(d.slice('sha256:'.length), 'hex'));
  return (token) => {
    // a hello's or a header's token may be anything a client sent: only a string can match
    if (typeof token !== 'string' || token.length > 512) return false;
    const presented = createHash('sha256').update(token, 'utf8').digest();
    let ok = false;
    for (const k of known) ok = timingSafeEqual(presented, k) || ok;
    return ok;
  };
}

/** A password hash for `KPI_USERS` (scrypt, random salt). */
export function hashPassword(password: string, salt: Buffer = randomBytes(16)): string {
  const hash = scryptSync(password.normalize('NFC'), salt, SCRYPT.keyLength, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p });
  return `scrypt:${SCRYPT.N}:${SCRYPT.r}:${SCRYPT.p}:${salt.toString('base64url')}:${hash.toString('base64url')}`;
}

const HASH_PATTERN = /^scrypt:(\d+):(\d+):(\d+):([A-Za-z0-9_-]+):([A-Za-z0-9_-]+)$/;

/** Whether a password matches its stored hash (constant time in the hash). */
export function verifyPassword(password: string, stored: string): boolean {
  const m = HASH_PATTERN.exec(stored);
  if (!m || password.length > 1024) return false;
  const [, n, r, p, salt, hash] = m;
  const expected = Buffer.from(hash!, 'base64url');
  const actual = scryptSync(password.normalize('NFC'), Buffer.from(salt!, 'base64url'), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: 64 * 1024 * 1024,
  });
  return timingSafeEqual(actual, expected);
}

const USER_NAME = /^[A-Za-z0-9._@-]{1,64}$/;

/** One `KPI_USERS` entry: `<name>:<password hash>`. */
export function userEntry(name: string, password: string): string {
  if (!USER_NAME.test(name)) throw new Error('a user name is 1–64 letters, digits or . _ @ -');
  return `${name}:${hashPassword(password)}`;
}

/**
 * The users of the configuration by name; throws naming the entry at fault
 * (by position, never by its content).
 */
export function parseUsers(entries: readonly string[]): Map<string, string> {
  const users = new Map<string, string>();
  entries.forEach((entry, i) => {
    const at = entry.indexOf(':');
    const name = entry.slice(0, at);
    const hash = entry.slice(at + 1);
    if (at < 1 || !USER_NAME.test(name) || !HASH_PATTERN.test(hash)) {
      throw new Error(`KPI_USERS entry ${i + 1} is not "<name>:scrypt:…" (make one with kpi-live user <name>)`);
    }
    users.set(name, hash);
  });
  return users;
}
