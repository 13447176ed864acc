/**
 * The public view through the service: off by default (404); on, anyone
 * (not signed in) gets the hourly points of fixed windows with small cells
 * withheld, the deploy markers marked public and no other, cacheable
 * answers with an ETag, CORS for other sites, and a rate limit of its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOUR } from '../../src/contract/kpis.js';
import type { PublicAnswer } from '../../src/public/answer.js';
import { seededRandom, simulateSession, USER_AGENTS } from '../../src/simulate/generator.js';
import { postSessions, startTestApp, TEST_TOKEN, type TestApp } from '../harness/app.js';
import { waitUntil } from '../harness/process.js';

const bearer = { authorization: `Bearer ${TEST_TOKEN}` };

describe('the public view', () => {
  let on: TestApp;
  let off: TestApp;
  const hourAgo = (h: number) => Math.floor((Date.now() - h * HOUR) / HOUR) * HOUR + 5 * 60_000;

  beforeAll(async () => {
    off = await startTestApp({ trustLoopback: false });
    on = await startTestApp({ trustLoopback: false, publicView: true, publicMinCount: 20 });
    const random = seededRandom(16);
    const at = (n: number, time: number) => Array.from({ length: n }, () => simulateSession(random, { now: time }));
    await postSessions(on, [...at(300, hourAgo(3)), ...at(10, hourAgo(5))], { userAgent: USER_AGENTS[0]! });
    for (const body of [
      { version: 'v3.0', at: hourAgo(4), note: 'new sign-in screen', public: true },
      { version: 'v3.0-internal', at: hourAgo(4) + 1000, note: 'an internal note' },
    ]) {
      const res = await on.app.inject({ method: 'POST', url: '/api/deploys', headers: bearer, payload: body });
      expect(res.statusCode).toBe(201);
    }
    await waitUntil(() => on.app.aggregates.status().counted >= 310, 20_000, 'every blob counted');
  });
  afterAll(async () => {
    await on?.close();
    await off?.close();
  });

  it('answers 404 when off, and needs no sign-in when on', async () => {
    expect((await off.app.inject('/api/public/kpis')).statusCode).toBe(404);
    expect((await off.app.inject('/api/kpis')).statusCode).toBe(401); // the signed-in view still needs a reader
    expect((await on.app.inject('/api/kpis')).statusCode).toBe(401);
    expect((await on.app.inject('/api/public/kpis')).statusCode).toBe(200);
  });

  it('shows hourly points of a fixed window, a cell under the minimum withheld whole', async () => {
    const res = await on.app.inject('/api/public/kpis?bucket=1h');
    const answer = res.json() as PublicAnswer;
    expect(answer).toMatchObject({ bucket: '1h', minCount: 20 });
    expect(answer.to % HOUR).toBe(0);
    expect(answer.to - answer.from).toBe(48 * HOUR);
    const big = answer.points.find((p) => p.start === Math.floor(hourAgo(3) / HOUR) * HOUR)!;
    expect(big.kpis.dialogs).toBe(300);
    expect(big.kpis.bounceRate).not.toBeNull();
    const small = answer.points.find((p) => p.start === Math.floor(hourAgo(5) / HOUR) * HOUR)!;
    expect(small.kpis).toMatchObject({ dialogs: null, bounceRate: null, suppressed: true });
    expect(JSON.stringify(answer)).not.toContain('segment');
  });

  it('lists the deploy markers marked public, with their note, and no other', async () => {
    const answer = (await on.app.inject('/api/public/kpis')).json() as PublicAnswer;
    expect(answer.deploys).toEqual([{ version: 'v3.0', at: hourAgo(4), note: 'new sign-in screen' }]);
    expect(JSON.stringify(answer)).not.toContain('internal');
  });

  it('is cacheable, answers 304 to its ETag, and lets other sites read it', async () => {
    const first = await on.app.inject({ url: '/api/public/kpis', headers: { origin: 'https://example.org' } });
    expect(first.headers['cache-control']).toBe('public, max-age=60');
    expect(first.headers['access-control-allow-origin']).toBe('*');
    const etag = first.headers.etag as string;
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await on.app.inject({ url: '/api/public/kpis', headers: { 'if-none-match': etag } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    const preflight = await on.app.inject({
      method: 'OPTIONS',
      url: '/api/public/kpis',
      headers: { origin: 'https://example.org', 'access-control-request-method': 'GET' },
    });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('*');
  });

  it('refuses a bucket finer than an hour, naming the field', async () => {
    const res = await on.app.inject('/api/public/kpis?bucket=10m');
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toMatch(/bucket/);
    const chosen = await on.app.inject('/api/public/kpis?from=0');
    expect(chosen.statusCode).toBe(400);
    expect(chosen.json()).toMatchObject({ field: 'query.from' });
  });

  it('limits requests per address', async () => {
    const limited = await startTestApp({ publicView: true, publicRateLimitMax: 3 });
    try {
      const codes = [];
      for (let i = 0; i < 5; i++) codes.push((await limited.app.inject({ url: '/api/public/kpis', remoteAddress: '192.0.2.9' })).statusCode);
      expect(codes).toEqual([200, 200, 200, 429, 429]);
      expect((await limited.app.inject({ url: '/api/public/kpis', remoteAddress: '192.0.2.10' })).statusCode).toBe(200);
    } finally {
      await limited.close();
    }
  });
});

describe('the public page', () => {
  it('is served to anyone under the dashboard CSP when on, with its scripts, and the privacy text; 404 when off', async () => {
    const on = await startTestApp({ trustLoopback: false, publicView: true });
    const off = await startTestApp({ trustLoopback: false });
    try {
      const page = await on.app.inject({ url: '/public', headers: { accept: 'text/html' } });
      expect(page.statusCode).toBe(200);
      expect(page.headers['content-security-policy']).toContain("script-src 'self'");
      expect(page.body).toContain('<kpi-public>');
      const script = /src="\.\/(assets\/[^"]+\.js)"/.exec(page.body)![1]!;
      expect((await on.app.inject(`/${script}`)).statusCode).toBe(200);
      const privacy = await on.app.inject('/public/privacy');
      expect(privacy.statusCode).toBe(200);
      expect(privacy.body).toContain('rounded down to 10 minutes');
      // the dashboard itself still needs a reader
      expect((await on.app.inject({ url: '/', headers: { accept: 'text/html' } })).statusCode).toBe(303);
      expect((await off.app.inject('/public')).statusCode).toBe(404);
      expect((await off.app.inject('/public/privacy')).statusCode).toBe(404);
      expect((await off.app.inject(`/${script}`)).statusCode).toBe(401);
    } finally {
      await on.close();
      await off.close();
    }
  });
});
