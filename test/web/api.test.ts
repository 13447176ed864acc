// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { getIfPresent, getJson, loadSession, loginUrl, navigation, request, resetSession, Unavailable } from '../../web/src/api.js';
import { stubFetch } from './fakes.js';

let assigned: string[];

beforeEach(() => {
  resetSession();
  assigned = [];
  vi.spyOn(navigation, 'assign').mockImplementation((url) => void assigned.push(url));
});

afterEach(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

describe('the dashboard API client', () => {
  it('sends the session CSRF token on every request that changes something, never on reads, and no bearer token', async () => {
    const { calls } = stubFetch({
      '/api/session': { status: 200, body: { kind: 'session', user: 'alice', csrfToken: 'csrf-1', expiresAt: 5 } },
      'PUT /api/thresholds': { status: 200, body: { thresholds: {} } },
      '/api/kpis': { status: 200, body: { series: [] } },
    });
    expect(await loadSession()).toEqual({ kind: 'session', user: 'alice', csrfToken: 'csrf-1', expiresAt: 5 });
    await request('PUT', '/api/thresholds', { body: { thresholds: {} } });
    await getJson('/api/kpis?from=1&to=2');
    const put = calls.find((c) => c.method === 'PUT')!;
    expect(put.headers['x-csrf-token']).toBe('csrf-1');
    expect(put.headers['content-type']).toBe('application/json');
    expect(put.body).toEqual({ thresholds: {} });
    for (const get of calls.filter((c) => c.method === 'GET')) expect(get.headers['x-csrf-token']).toBeUndefined();
    for (const call of calls) expect(call.headers.authorization).toBeUndefined();
    expect(localStorage.length).toBe(0);
  });

  it('goes to the login page, once, with the way back, when any call answers 401', async () => {
    history.replaceState(null, '', '/?range=3600000&segment=os');
    stubFetch({ '/api/kpis': { status: 401, body: { message: 'sign in' } } });
    expect(await getJson('/api/kpis')).toBeUndefined();
    expect((await request('GET', '/api/kpis')).status).toBe(401);
    expect(assigned).toEqual(['/login?next=%2F%3Frange%3D3600000%26segment%3Dos']);
    expect(loginUrl({ pathname: '/', search: '' })).toBe('/login?next=%2F');
  });

  it('tells a missing route (404) from a failure: undefined for the one, Unavailable for the other', async () => {
    stubFetch({ '/api/alerts': { status: 404 }, '/api/ingest-stats': { status: 503, body: { message: 'down' } } });
    expect(await getIfPresent('/api/alerts')).toBeUndefined();
    await expect(getIfPresent('/api/ingest-stats')).rejects.toBeInstanceOf(Unavailable);
    vi.stubGlobal('fetch', async () => {
      throw new TypeError('network down');
    });
    expect(await request('GET', '/api/alerts')).toEqual({ status: 0, body: undefined });
    await expect(getIfPresent('/api/alerts')).rejects.toBeInstanceOf(Unavailable);
  });

  it("returns the server's 400 body, so that its message can be shown", async () => {
    stubFetch({
      'PUT /api/thresholds': { status: 400, body: { message: 'body.thresholds.bounceRate.max must be ≤ 1', field: 'body.thresholds.bounceRate.max' } },
    });
    expect(await request('PUT', '/api/thresholds', { body: { thresholds: { bounceRate: { max: 70 } } } })).toEqual({
      status: 400,
      body: { message: 'body.thresholds.bounceRate.max must be ≤ 1', field: 'body.thresholds.bounceRate.max' },
    });
    expect(assigned).toEqual([]);
  });
});
