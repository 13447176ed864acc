/**
 * Sign-in for everything that reads (security review: access controls on the
 * stored data): API tokens, the login page and its session cookie, CSRF and
 * Origin checks on state-changing requests, and the live stream.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { tokenDigest, userEntry } from '../../src/auth/credentials.js';
import { dropDb, startTestApp, type TestApp } from '../harness/app.js';

const PASSWORD = 'a password long enough';
const MACHINE_TOKEN = 'klt_machine-token-for-the-auth-test';

function sessionCookie(setCookie: string | string[] | undefined): string {
  const header = Array.isArray(setCookie) ? setCookie[0]! : setCookie!;
  return header.split(';')[0]!;
}

async function signIn(t: TestApp, body: Record<string, string>, headers: Record<string, string> = {}) {
  return t.app.inject({
    method: 'POST',
    url: '/login',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    payload: new URLSearchParams(body).toString(),
  });
}

describe('sign-in', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(
      { trustLoopback: false, apiTokens: [tokenDigest(MACHINE_TOKEN)], users: [userEntry('oncall', PASSWORD)], streamCoalesceMs: 50 },
      { listen: true },
    );
  });
  afterAll(async () => {
    await t.close();
    await dropDb(`${t.config.dbName}_sessions`); // made by the sign-out test
  });

  it('guards every route that returns data, and leaves ingest and health open', async () => {
    for (const url of [
      '/api/kpis',
      '/api/funnels/new-user',
      '/wsapi/interaction_data/count',
      '/api/deploys',
      '/api/settings',
      '/api/session',
      '/api/ingest-stats',
    ]) {
      const res = await t.app.inject({ url, remoteAddress: '127.0.0.1' });
      expect(res.statusCode, url).toBe(401);
      expect(res.json().message).toMatch(/sign in at \/login/);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="kpi-live"');
    }
    expect((await t.app.inject({ url: '/health' })).statusCode).toBe(200);
    const page = await t.app.inject({ url: '/', headers: { accept: 'text/html' } });
    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toBe('/login?next=%2F');
    expect((await t.app.inject({ url: '/', headers: { accept: 'application/json' } })).statusCode).toBe(401);
  });

  it('lets machines in with an API token and refuses a wrong one', async () => {
    const ok = await t.app.inject({ url: '/api/kpis', headers: { authorization: `Bearer ${MACHINE_TOKEN}` } });
    expect(ok.statusCode).toBe(200);
    const bad = await t.app.inject({ url: '/api/kpis', headers: { authorization: 'Bearer klt_wrong' } });
    expect(bad.statusCode).toBe(401);
    expect(bad.headers['www-authenticate']).toContain('invalid_token');
    // The digest itself is not a token.
    expect((await t.app.inject({ url: '/api/kpis', headers: { authorization: `Bearer ${tokenDigest(MACHINE_TOKEN)}` } })).statusCode).toBe(401);
  });

  it('serves a login page without script, and signs people in with a session cookie', async () => {
    const page = await t.app.inject({ url: '/login?next=/%3Frange%3D6h' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");
    expect(page.body).not.toMatch(/<script/i);
    expect(page.body).toContain('value="/?range=6h"');

    const wrong = await signIn(t, { user: 'oncall', password: 'not it' });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.headers['set-cookie']).toBeUndefined();
    expect((await signIn(t, { user: 'nobody', password: PASSWORD })).statusCode).toBe(401);

    const ok = await signIn(t, { user: 'oncall', password: PASSWORD, next: '/?range=6h' });
    expect(ok.statusCode).toBe(303);
    expect(ok.headers.location).toBe('/?range=6h');
    const setCookie = String(ok.headers['set-cookie']);
    expect(setCookie).toMatch(/^kpi_session=[^;]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
    const cookie = sessionCookie(ok.headers['set-cookie']);
    expect((await t.app.inject({ url: '/api/kpis', headers: { cookie } })).statusCode).toBe(200);
    const session = await t.app.inject({ url: '/api/session', headers: { cookie } });
    expect(session.json()).toMatchObject({ kind: 'session', user: 'oncall' });
    expect(session.json().csrfToken).toEqual(expect.any(String));
  });

  it('marks the cookie Secure behind TLS, and never redirects off the site', async () => {
    const tls = await startTestApp({ trustLoopback: false, trustProxy: 'loopback', users: [userEntry('oncall', PASSWORD)] });
    try {
      const ok = await signIn(tls, { user: 'oncall', password: PASSWORD, next: '//evil.example/x' }, { 'x-forwarded-proto': 'https' });
      expect(String(ok.headers['set-cookie'])).toContain('; Secure');
      expect(ok.headers.location).toBe('/');
    } finally {
      await tls.close();
    }
  });

  it('signs in with an access token too', async () => {
    const ok = await signIn(t, { token: MACHINE_TOKEN });
    expect(ok.statusCode).toBe(303);
    expect((await t.app.inject({ url: '/api/kpis', headers: { cookie: sessionCookie(ok.headers['set-cookie']) } })).statusCode).toBe(200);
  });

  it('refuses state changes by cookie without the CSRF token or from another origin', async () => {
    const cookie = sessionCookie((await signIn(t, { user: 'oncall', password: PASSWORD })).headers['set-cookie']);
    const csrf = (await t.app.inject({ url: '/api/session', headers: { cookie } })).json().csrfToken as string;
    const post = (headers: Record<string, string>) =>
      t.app.inject({
        method: 'POST',
        url: '/api/deploys',
        headers: { cookie, 'content-type': 'application/json', ...headers },
        payload: { version: 'v-csrf' },
      });

    const noToken = await post({});
    expect(noToken.statusCode).toBe(403);
    expect(noToken.json().field).toBe('headers.x-csrf-token');
    expect((await post({ 'x-csrf-token': 'forged' })).statusCode).toBe(403);
    const otherSite = await post({ 'x-csrf-token': csrf, origin: 'https://evil.example' });
    expect(otherSite.statusCode).toBe(403);
    expect(otherSite.json().field).toBe('headers.origin');
    expect((await post({ 'x-csrf-token': csrf })).statusCode).toBe(201);
    // A machine's bearer token is not sent by browsers on their own: no CSRF token needed.
    const machine = await t.app.inject({
      method: 'POST',
      url: '/api/deploys',
      headers: { authorization: `Bearer ${MACHINE_TOKEN}`, 'content-type': 'application/json' },
      payload: { version: 'v-ci' },
    });
    expect(machine.statusCode).toBe(201);
    const { deploys } = (await t.app.inject({ url: '/api/deploys', headers: { cookie } })).json() as { deploys: { version: string }[] };
    expect(deploys.map((d) => d.version)).toEqual(['v-csrf', 'v-ci']);
  });

  it('refuses a sign-in posted from another site', async () => {
    const res = await signIn(t, { user: 'oncall', password: PASSWORD }, { origin: 'https://evil.example' });
    expect(res.statusCode).toBe(403);
    expect(res.headers['set-cookie']).toBeUndefined();
  });

  it('signs out: the cookie stops working', async () => {
    const cookie = sessionCookie((await signIn(t, { user: 'oncall', password: PASSWORD })).headers['set-cookie']);
    const out = await t.app.inject({ method: 'POST', url: '/logout', headers: { cookie } });
    expect(out.statusCode).toBe(303);
    expect(String(out.headers['set-cookie'])).toContain('Max-Age=0');
    expect((await t.app.inject({ url: '/api/kpis', headers: { cookie } })).statusCode).toBe(401);
  });

  it('opens the live stream to a session cookie from its own pages only', async () => {
    const cookie = sessionCookie((await signIn(t, { user: 'oncall', password: PASSWORD })).headers['set-cookie']);
    const { port } = t.app.server.address() as { port: number };
    const open = (headers: Record<string, string>) =>
      new Promise<{ first: string | undefined; code: number }>((resolve, reject) => {
        const socket = new WebSocket(`ws://127.0.0.1:${port}/api/live`, { headers });
        let first: string | undefined;
        socket.once('open', () => socket.send(JSON.stringify({ type: 'hello', subscribe: { rangeMs: 3_600_000 } })));
        socket.once('message', (data) => {
          first = JSON.parse(data.toString()).type;
          socket.close();
        });
        socket.once('close', (code) => resolve({ first, code }));
        socket.once('error', reject);
      });
    expect(await open({ cookie, origin: `http://127.0.0.1:${port}` })).toEqual({ first: 'snapshot', code: 1005 });
    expect((await open({ cookie, origin: 'https://evil.example' })).code).toBe(4401);
    expect((await open({})).code).toBe(4401);
  });

  it('limits sign-in attempts per address', async () => {
    const other = await startTestApp({ trustLoopback: false, users: [userEntry('oncall', PASSWORD)] });
    try {
      const codes: number[] = [];
      for (let i = 0; i < 22; i++) codes.push((await signIn(other, { user: 'oncall', password: 'guess' })).statusCode);
      expect(codes.slice(0, 20).every((c) => c === 401)).toBe(true);
      expect(codes.slice(20)).toEqual([429, 429]);
    } finally {
      await other.close();
    }
  });
});

describe('a new installation without users or tokens', () => {
  it('makes an access token in the data directory, never logs it, and accepts it', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'kpi-auth-'));
    const lines: string[] = [];
    const t = await startTestApp(
      { trustLoopback: false, apiTokens: [], users: [], dataDir, logLevel: 'warn' },
      { logStream: { write: (line: string) => lines.push(line) } },
    );
    try {
      const file = join(dataDir, 'access-token');
      const token = (await readFile(file, 'utf8')).trim();
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect(lines.join('')).toContain(file);
      expect(lines.join('')).not.toContain(token);
      expect((await t.app.inject({ url: '/api/kpis', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(200);
      expect((await t.app.inject({ url: '/api/kpis' })).statusCode).toBe(401);
    } finally {
      await t.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
