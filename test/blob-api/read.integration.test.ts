/**
 * The read API on the real store: time ranges, pagination, NDJSON, counts,
 * and who may read.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.js';
import { tokenDigest } from '../../src/auth/credentials.js';
import { INDEXING_RETRY_SECONDS } from '../../src/blob-api/plugin.js';
import { StoreUnavailableError, type Store, type StoreRequest } from '../../src/store/store.js';

const HOUR = 3_600_000;
const BASE = Math.floor((Date.now() - 48 * HOUR) / HOUR) * HOUR;

/** 60 blobs: 6 per hour over 10 hours, with a marker giving their order. */
const seeded = Array.from({ length: 60 }, (_, i) => ({
  timestamp: BASE + Math.floor(i / 6) * HOUR + (i % 6) * 600_000,
  event_stream: [['screen.rp_info', i]],
  number_emails: i,
}));

async function seed(t: TestApp): Promise<void> {
  // shuffled, in several requests: storage order must not matter
  const shuffled = [...seeded].sort((a, b) => ((a.number_emails * 37) % 61) - ((b.number_emails * 37) % 61));
  for (let i = 0; i < shuffled.length; i += 20) {
    const res = await t.app.inject({
      method: 'POST',
      url: '/wsapi/interaction_data',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ data: shuffled.slice(i, i + 20) }),
    });
    expect(res.statusCode).toBe(200);
  }
}

const marks = (blobs: { number_emails: number }[]) => blobs.map((b) => b.number_emails);
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('read API with tokens', () => {
  let t: TestApp;
  const auth = { authorization: 'Bearer reader-token-1' };
  beforeAll(async () => {
    t = await startTestApp({ apiTokens: [tokenDigest('reader-token-1'), tokenDigest('reader-token-2')], trustLoopback: false, maxBlobsPerRequest: 100 });
    await seed(t);
  });
  afterAll(async () => {
    await t.close();
  });

  it('returns the blobs of [start, end) in time order as a JSON array', async () => {
    const res = await t.app.inject({ url: `/wsapi/interaction_data?start=${BASE + 2 * HOUR}&end=${BASE + 4 * HOUR}`, headers: auth });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const blobs = res.json();
    expect(marks(blobs)).toEqual(range(12, 24));
    expect(blobs[0]).not.toHaveProperty('_id');
    expect(blobs[0]).not.toHaveProperty('_rev');
  });

  it('returns everything without a range, and nothing for an empty one', async () => {
    expect(marks((await t.app.inject({ url: '/wsapi/interaction_data', headers: auth })).json())).toEqual(range(0, 60));
    expect((await t.app.inject({ url: `/wsapi/interaction_data?start=${BASE - 5 * HOUR}&end=${BASE}`, headers: auth })).json()).toEqual([]);
  });

  it('streams NDJSON on request', async () => {
    const res = await t.app.inject({ url: `/wsapi/interaction_data?start=${BASE}&end=${BASE + HOUR}`, headers: { ...auth, accept: 'application/x-ndjson' } });
    expect(res.headers['content-type']).toBe('application/x-ndjson');
    const lines = res.body
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(marks(lines)).toEqual(range(0, 6));
  });

  it('pages with limit and cursor until every blob was seen once', async () => {
    const seen: number[] = [];
    let url = `/wsapi/interaction_data?start=${BASE + HOUR}&end=${BASE + 9 * HOUR}&limit=7`;
    let pages = 0;
    for (;;) {
      const res = await t.app.inject({ url, headers: auth });
      expect(res.statusCode).toBe(200);
      seen.push(...marks(res.json()));
      pages += 1;
      const next = res.headers['x-next-cursor'];
      if (!next) break;
      expect(res.headers.link).toMatch(/rel="next"/);
      url = /<([^>]+)>/.exec(String(res.headers.link))![1]!;
      expect(url).toContain(`cursor=${encodeURIComponent(String(next))}`);
    }
    expect(seen).toEqual(range(6, 54));
    expect(pages).toBe(Math.ceil(48 / 7));
  });

  it('says the count index is being built, with a longer Retry-After, when the view times out and the store answers', async () => {
    const request = t.store.request.bind(t.store);
    const viewTimesOut = (req: StoreRequest) =>
      req.path?.includes('_view/by_time') ? Promise.reject(new StoreUnavailableError('the store did not answer in time', true)) : request(req);
    t.store.request = viewTimesOut as Store['request'];
    try {
      const res = await t.app.inject({ url: '/wsapi/interaction_data/count', headers: auth });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe(String(INDEXING_RETRY_SECONDS));
      expect(res.json().message).toMatch(/still indexing the blobs for counting/);
      // the store answering nothing at all is the store down, not an index being built
      t.store.request = ((req: StoreRequest) =>
        req.path === '' ? Promise.reject(new StoreUnavailableError('the store did not answer in time', true)) : viewTimesOut(req)) as Store['request'];
      const down = await t.app.inject({ url: '/wsapi/interaction_data/count', headers: auth });
      expect(down.statusCode).toBe(503);
      expect(down.json().message).toBe('the store is unavailable; retry later');
    } finally {
      t.store.request = request;
    }
    expect((await t.app.inject({ url: '/wsapi/interaction_data/count', headers: auth })).json()).toEqual({ count: 60 });
  });

  it('counts blobs in a range and in all', async () => {
    expect((await t.app.inject({ url: '/wsapi/interaction_data/count', headers: auth })).json()).toEqual({ count: 60 });
    const res = await t.app.inject({ url: `/wsapi/interaction_data/count?start=${BASE + 3 * HOUR}&end=${BASE + 5 * HOUR + 1}`, headers: auth });
    expect(res.json()).toEqual({ count: 13, start: BASE + 3 * HOUR, end: BASE + 5 * HOUR + 1 });
  });

  it.each([
    ['start=abc', 'query.start'],
    ['limit=0', 'query.limit'],
    ['limit=10001', 'query.limit'],
    [`start=${BASE + HOUR}&end=${BASE}`, 'query.end'],
  ])('answers 400 to %s naming %s', async (query, field) => {
    const res = await t.app.inject({ url: `/wsapi/interaction_data?${query}`, headers: auth });
    expect(res.statusCode).toBe(400);
    expect(res.json().field).toBe(field);
  });

  it('answers 401 without a token or with a wrong one, whatever the address', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: 'Basic abc' }]) {
      for (const path of ['/wsapi/interaction_data', '/wsapi/interaction_data/count']) {
        const res = await t.app.inject({ url: path, headers });
        expect(res.statusCode).toBe(401);
        expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
        expect(res.body).not.toContain('reader-token');
      }
    }
    expect((await t.app.inject({ url: '/wsapi/interaction_data/count', headers: { authorization: 'Bearer reader-token-2' } })).statusCode).toBe(200);
  });
});

describe('read API trusting loopback', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ trustLoopback: true });
  });
  afterAll(async () => {
    await t.close();
  });

  it('lets loopback read without a token and refuses everyone else, even claiming loopback in X-Forwarded-For', async () => {
    expect((await t.app.inject({ url: '/wsapi/interaction_data/count', remoteAddress: '127.0.0.1' })).statusCode).toBe(200);
    expect((await t.app.inject({ url: '/wsapi/interaction_data/count', remoteAddress: '::1' })).statusCode).toBe(200);
    const remote = await t.app.inject({ url: '/wsapi/interaction_data', remoteAddress: '192.0.2.10', headers: { 'x-forwarded-for': '127.0.0.1' } });
    expect(remote.statusCode).toBe(401);
    expect(remote.json().message).toMatch(/sign in at \/login/);
  });

  it('keeps ingest open to everyone', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/wsapi/interaction_data',
      remoteAddress: '192.0.2.10',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ timestamp: Date.now() }),
    });
    expect(res.statusCode).toBe(200);
  });
});
