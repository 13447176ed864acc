/**
 * POST /wsapi/interaction_data against the harness's real CouchDB backend.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBlobDocId } from '../../src/store/blob-ids.js';
import { nowTimestamp, startTestApp, storedBlobCount, storedBlobs, type TestApp } from '../harness/app.js';

const FIREFOX_WIN7 = 'Mozilla/5.0 (Windows NT 6.1; WOW64; rv:15.0) Gecko/20100101 Firefox/15.0';

function blob(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    timestamp: nowTimestamp(),
    event_stream: [
      ['screen.rp_info', 120],
      ['screen.pick_email', 900],
    ],
    lang: 'en-US',
    sample_rate: 1,
    ...extra,
  };
}

describe('ingest on the real store', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ maxBlobsPerRequest: 5, bodyLimitBytes: 4096 });
  });
  afterAll(async () => {
    await t.close();
  });

  const post = (payload: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    t.app.inject({
      method: 'POST',
      url: '/wsapi/interaction_data',
      headers: { 'user-agent': FIREFOX_WIN7, ...headers },
      payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
    });

  async function expectNothingStored<T>(action: () => Promise<T>): Promise<T> {
    const before = await storedBlobCount(t.store);
    const result = await action();
    expect(await storedBlobCount(t.store)).toBe(before);
    return result;
  }

  it('stores the dialog\'s backlog form {"data": [blobs], "csrf"} and answers {success, stored}', async () => {
    const before = await storedBlobCount(t.store);
    const res = await post({ data: [blob({ rp_api: 'backlog-1' }), blob({ rp_api: 'backlog-2' })], csrf: 'token' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ success: true, stored: 2 });
    expect(await storedBlobCount(t.store)).toBe(before + 2);
  });

  it('stores {"data": blob} and a bare blob', async () => {
    expect((await post({ data: blob({ rp_api: 'single' }) })).json()).toEqual({ success: true, stored: 1 });
    expect((await post(blob({ rp_api: 'bare' }))).json()).toEqual({ success: true, stored: 1 });
  });

  it('stores the form-encoded form: data = JSON text of a blob or an array', async () => {
    const form = (data: unknown) => new URLSearchParams({ data: JSON.stringify(data), csrf: 'x' }).toString();
    const headers = { 'content-type': 'application/x-www-form-urlencoded' };
    expect((await post(form(blob({ rp_api: 'form-1' })), headers)).json()).toEqual({ success: true, stored: 1 });
    expect((await post(form([blob({ rp_api: 'form-2' }), blob({ rp_api: 'form-3' })]), headers)).json()).toEqual({ success: true, stored: 2 });
    const stored = await storedBlobs(t.store);
    expect(stored.filter((d) => String(d.rp_api).startsWith('form-'))).toHaveLength(3);
  });

  it('stores the minimised document: rounded time, aliases resolved, unknown fields dropped, coarse user agent, no IP, cookie or referrer', async () => {
    const sent = {
      timestamp: nowTimestamp() + 123_456,
      event_stream: [['screen.rp_info', 10, 3]],
      language: 'de',
      number_sites_signed_in: 4,
      number_sites_remembered: 2,
      orphaned: true,
      email: 'person@example.com',
      rp_api: 'minimised',
    };
    const headers = {
      'content-type': 'application/json',
      'x-forwarded-for': '203.0.113.9',
      cookie: 'persona_session=cookie-value-1',
      referer: 'https://rp.example/checkout?order=77',
    };
    expect((await post({ data: [sent] }, headers)).statusCode).toBe(200);
    const doc = (await storedBlobs(t.store)).find((d) => d.rp_api === 'minimised')!;
    const { _id, _rev, ...stored } = doc;
    expect(stored).toEqual({
      timestamp: nowTimestamp(),
      event_stream: [['screen.rp_info', 10, 3]],
      lang: 'de',
      number_sites_logged_in: 4,
      rp_api: 'minimised',
      user_agent: { os: 'Windows NT 6.1', browser: 'Firefox', version: 15 },
    });
    expect(parseBlobDocId(String(_id))).toMatchObject({ time: nowTimestamp() });
    const text = JSON.stringify(doc);
    expect(text).not.toContain('Gecko');
    expect(text).not.toContain('203.0.113.9');
    expect(text).not.toContain('127.0.0.1');
    expect(text).not.toContain('person@example.com');
    expect(text).not.toContain('cookie-value-1');
    expect(text).not.toContain('rp.example');
  });

  it('answers 400 naming the field, and stores nothing of an array with one bad blob', async () => {
    const res = await expectNothingStored(() => post({ data: [blob(), blob(), blob({ number_emails: 'three' })] }));
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({
      success: false,
      statusCode: 400,
      error: 'Bad Request',
      message: 'data[2].number_emails must be integer,null',
      field: 'data[2].number_emails',
    });
  });

  it.each([
    ['malformed JSON', '{"data": [', 'body'],
    ['a JSON string', '"blob"', 'body'],
    ['data that is a number', '{"data": 5}', 'data'],
    ['a missing timestamp', JSON.stringify({ data: { event_stream: [] } }), 'data.timestamp'],
    ['a timestamp from last year', JSON.stringify({ data: { timestamp: Date.now() - 400 * 86_400_000 } }), 'data.timestamp'],
    ['a timestamp next week', JSON.stringify({ data: { timestamp: Date.now() + 7 * 86_400_000 } }), 'data.timestamp'],
    ['a __proto__ key', '{"data": {"timestamp": 1, "__proto__": {"x": 1}}}', 'body'],
  ])('answers 400 to %s', async (_name, payload, field) => {
    const res = await expectNothingStored(() => post(payload));
    expect(res.statusCode).toBe(400);
    expect(res.json().field).toBe(field);
    expect(res.json().success).toBe(false);
  });

  it('answers 400 to a form without data', async () => {
    const res = await expectNothingStored(() => post('csrf=x', { 'content-type': 'application/x-www-form-urlencoded' }));
    expect(res.statusCode).toBe(400);
    expect(res.json().field).toBe('data');
  });

  it('answers 413 to more blobs than allowed per request, and to a body over the limit', async () => {
    const many = await expectNothingStored(() => post({ data: Array.from({ length: 6 }, () => blob()) }));
    expect(many.statusCode).toBe(413);
    expect(many.json().message).toBe('data holds 6 blobs; at most 5 per request');
    const big = await expectNothingStored(() => post({ data: blob({ rp_api: 'x'.repeat(5000) }) }));
    expect(big.statusCode).toBe(413);
    expect(big.json().message).toBe('request body is too large');
  });

  it('answers 415 to other content types', async () => {
    for (const type of ['text/plain', 'application/xml', 'multipart/form-data; boundary=x']) {
      const res = await expectNothingStored(() => post(JSON.stringify(blob()), { 'content-type': type }));
      expect(res.statusCode).toBe(415);
      expect(res.json().message).toBe('content type must be application/json or application/x-www-form-urlencoded');
    }
  });

  it('accepts an empty array as nothing to store', async () => {
    expect((await post({ data: [] })).json()).toEqual({ success: true, stored: 0 });
  });

  it('stores exactly 1,000 blobs from 1,000 concurrent POSTs', async () => {
    const before = await storedBlobCount(t.store);
    const responses = await Promise.all(Array.from({ length: 1000 }, (_, i) => post({ data: [blob({ number_emails: i })] })));
    expect(responses.map((r) => r.statusCode).filter((s) => s !== 200)).toEqual([]);
    expect(await storedBlobCount(t.store)).toBe(before + 1000);
    const emails = (await storedBlobs(t.store)).map((d) => d.number_emails).filter((n): n is number => typeof n === 'number');
    expect(new Set(emails).size).toBe(1000);
  });
});

describe('ingest rate limit', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ rateLimitMax: 3, rateLimitWindowMs: 60_000 });
  });
  afterAll(async () => {
    await t.close();
  });

  it('answers 429 past the per-address limit, stores nothing then, and counts addresses apart', async () => {
    const send = (remoteAddress: string) =>
      t.app.inject({
        method: 'POST',
        url: '/wsapi/interaction_data',
        remoteAddress,
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({ data: [blob()] }),
      });
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await send('198.51.100.7')).statusCode);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    const limited = await send('198.51.100.7');
    expect(limited.json()).toMatchObject({ success: false, statusCode: 429, error: 'Too Many Requests' });
    expect(limited.headers['retry-after']).toBeDefined();
    expect(await storedBlobCount(t.store)).toBe(3);
    expect((await send('198.51.100.8')).statusCode).toBe(200);
  });
});
