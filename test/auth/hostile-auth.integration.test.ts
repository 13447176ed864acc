/**
 * Sign-in and loopback trust against hostile clients: no body or `next` of
 * any shape gets a 5xx or an unsafe `Location`; loopback trust takes only
 * loopback host names (DNS rebinding) and a browser's writes under it need
 * the CSRF token; a short or empty access-token file stops start-up.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tokenDigest, userEntry } from '../../src/auth/credentials.js';
import { isLoopbackHost, safeNext } from '../../src/auth/plugin.js';
import { startTestApp, TEST_TOKEN, type TestApp } from '../harness/app.js';

/** What a `Location` after sign-in may be: a path of this site, printable ASCII only. */
const SAFE_LOCATION = /^\/(?![/\\])[\x21-\x7e]*$/;

describe('safeNext', () => {
  it('keeps a local path, percent-encodes what is not ASCII, and sends anything else to /', () => {
    expect(safeNext('/?range=6h')).toBe('/?range=6h');
    expect(safeNext('/café?q=ü')).toBe('/caf%C3%A9?q=%C3%BC');
    for (const bad of ['//evil.example', '/\\evil.example', 'https://evil.example', '/a b', '/a\u0000', '/a\r\nSet-Cookie: x', '/\ud800', '', ['/x'], 5, null])
      expect(safeNext(bad)).toBe('/');
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary' }),
          fc.string().map((s) => `/${s}`),
        ),
        (next) => {
          expect(safeNext(next)).toMatch(SAFE_LOCATION);
        },
      ),
    );
  });
});

describe('POST /login with bodies of any shape', () => {
  let t: TestApp;
  beforeAll(async () => {
    // each request comes from an address of its own behind a proxy, so the 20-a-minute limit never answers for the code under test
    t = await startTestApp({ trustLoopback: false, trustProxy: 'loopback' });
  });
  afterAll(async () => {
    await t.close();
  });
  let n = 0;
  const post = (payload: string, contentType: string) =>
    t.app.inject({
      method: 'POST',
      url: '/login',
      headers: { 'content-type': contentType, 'x-forwarded-for': `198.51.${(++n >> 8) & 255}.${n & 255}` },
      payload,
    });

  it.each([['{"token":["a"]}'], ['{"password":5}'], ['{"user":{},"password":"x"}'], ['{"next":{"a":1},"token":"x"}'], ['[1,2]'], ['5'], ['null'], ['"text"']])(
    'answers %s with a 4xx and the form',
    async (payload) => {
      const res = await post(payload, 'application/json');
      expect(res.statusCode).toBeGreaterThanOrEqual(400);
      expect(res.statusCode).toBeLessThan(500);
    },
  );

  it('names the field of the wrong type', async () => {
    const res = await post('{"token":["a"]}', 'application/json');
    expect(res.statusCode).toBe(400);
    expect(res.body).toContain('token must be text');
  });

  it('never answers 5xx nor redirects anywhere unsafe, whatever JSON or form it gets (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.jsonValue().map((v) => ({ payload: JSON.stringify(v), type: 'application/json' })),
          fc
            .dictionary(fc.constantFrom('token', 'user', 'password', 'next', 'x'), fc.oneof(fc.jsonValue(), fc.string({ unit: 'binary' })))
            .map((d) => ({ payload: JSON.stringify(d), type: 'application/json' })),
          fc.string({ unit: 'binary' }).map((next) => ({ payload: JSON.stringify({ token: TEST_TOKEN, next }), type: 'application/json' })),
          fc
            .string({ unit: 'binary' })
            .map((next) => ({ payload: new URLSearchParams({ token: TEST_TOKEN, next }).toString(), type: 'application/x-www-form-urlencoded' })),
          fc.string({ unit: 'binary' }).map((raw) => ({ payload: raw, type: 'application/x-www-form-urlencoded' })),
        ),
        async ({ payload, type }) => {
          const res = await post(payload, type);
          expect(res.statusCode).toBeLessThan(500);
          if (res.statusCode === 303) expect(res.headers.location).toMatch(SAFE_LOCATION);
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe('KPI_TRUST_LOOPBACK', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ trustLoopback: true });
  });
  afterAll(async () => {
    await t.close();
  });

  it('trusts loopback only under a loopback host name: a rebound DNS name is not trusted', async () => {
    for (const host of ['localhost:3434', '127.0.0.1:3434', '[::1]:3434', 'LOCALHOST', '127.0.0.1'])
      expect((await t.app.inject({ url: '/api/kpis', headers: { host } })).statusCode, host).toBe(200);
    for (const host of ['evil.example', 'evil.example:3434', '127.0.0.1.evil.example', 'localhost.evil.example', '127.0.0.2'])
      expect((await t.app.inject({ url: '/api/kpis', headers: { host } })).statusCode, host).toBe(401);
    expect(['localhost', '[::1]:1'].every(isLoopbackHost)).toBe(true);
  });

  it("needs the CSRF token for a browser's write, which GET /api/session gives", async () => {
    const post = (headers: Record<string, string>) =>
      t.app.inject({
        method: 'POST',
        url: '/api/deploys',
        headers: { 'content-type': 'application/json', host: 'localhost:3434', ...headers },
        payload: { version: 'v-loopback' },
      });
    const origin = { origin: 'http://localhost:3434' };
    const refused = await post(origin);
    expect(refused.statusCode).toBe(403);
    expect(refused.json().field).toBe('headers.x-csrf-token');
    expect((await post({ ...origin, 'sec-fetch-site': 'same-origin', 'x-csrf-token': 'forged' })).statusCode).toBe(403);
    const session = (await t.app.inject({ url: '/api/session' })).json();
    expect(session).toMatchObject({ kind: 'loopback', csrfToken: expect.any(String) });
    expect((await post({ ...origin, 'x-csrf-token': session.csrfToken as string })).statusCode).toBeLessThan(300);
    // a script on this machine (no Origin, no Sec-Fetch-Site) is no forged browser request
    expect((await post({})).statusCode).toBeLessThan(300);
  });
});

describe('the access-token file', () => {
  it.each([[''], ['\n'], ['short-token']])('stops start-up when it holds %j, naming the file and not its content', async (content) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'kpi-auth-short-'));
    try {
      await writeFile(join(dataDir, 'access-token'), content, { mode: 0o600 });
      let message = '';
      try {
        const t = await startTestApp({ trustLoopback: false, apiTokens: [], users: [], dataDir });
        await t.close();
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toContain(join(dataDir, 'access-token'));
      expect(message).toContain('at least 32 characters');
      if (content.trim()) expect(message).not.toContain(content.trim());
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('a session whose credential left the configuration', () => {
  const PASSWORD = 'a password long enough';
  const TOKEN = 'klt_session-credential-test-token-0123456789';
  const oncall = userEntry('oncall', PASSWORD);
  const base = { trustLoopback: false, apiTokens: [tokenDigest(TOKEN)], users: [oncall, userEntry('other', PASSWORD)] };

  /** A session cookie signed in on an instance configured with `base`. */
  async function cookieFor(form: Record<string, string>): Promise<string> {
    const t = await startTestApp(base);
    try {
      const res = await t.app.inject({
        method: 'POST',
        url: '/login',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams(form).toString(),
      });
      expect(res.statusCode).toBe(303);
      return String(res.headers['set-cookie']).split(';')[0]!;
    } finally {
      await t.close();
    }
  }
  /** What an instance configured with `overrides` answers that cookie (the session key is the same on every test instance). */
  async function answer(cookie: string, overrides: Record<string, unknown>): Promise<number> {
    const t = await startTestApp({ ...base, ...overrides });
    try {
      return (await t.app.inject({ url: '/api/kpis', headers: { cookie } })).statusCode;
    } finally {
      await t.close();
    }
  }

  it('ends when its user is removed or their password changes, and lasts while they stay', async () => {
    const cookie = await cookieFor({ user: 'oncall', password: PASSWORD });
    expect(await answer(cookie, {})).toBe(200);
    expect(await answer(cookie, { users: [userEntry('other', PASSWORD)] })).toBe(401);
    expect(await answer(cookie, { users: [userEntry('oncall', 'a new password, changed')] })).toBe(401);
  });

  it('ends when the token it was made with is removed', async () => {
    const cookie = await cookieFor({ token: TOKEN });
    expect(await answer(cookie, {})).toBe(200);
    expect(await answer(cookie, { apiTokens: [tokenDigest('klt_another-token-of-the-team-0123456789')] })).toBe(401);
  });
});
