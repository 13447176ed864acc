/**
 * Ingest's defences and privacy rules (security review: bogus submissions and
 * bogus data; privacy review: real choice, limited data, sampling), each
 * refusal a clear 4xx that stores nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KpiAnswer } from '../../src/contract/kpis.js';
import { NonceKeeper, NONCE_LIFETIME_MS } from '../../src/ingest/nonce.js';
import { nowTimestamp, startTestApp, storedBlobCount, storedBlobs, type TestApp } from '../harness/app.js';
import { waitUntil } from '../harness/process.js';

const NONCE_SECRET = 'n'.repeat(40);

function blob(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    timestamp: nowTimestamp(),
    event_stream: [
      ['screen.rp_info', 120],
      ['screen.pick_email', 900],
      ['assertion_generated', 2400],
    ],
    lang: 'en-US',
    ...extra,
  };
}

const post = (t: TestApp, payload: unknown, headers: Record<string, string> = {}) =>
  t.app.inject({
    method: 'POST',
    url: '/wsapi/interaction_data',
    headers: { 'content-type': 'application/json', ...headers },
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
  });

async function expectRefused(t: TestApp, payload: unknown, status: number, field: string, headers: Record<string, string> = {}) {
  const before = await storedBlobCount(t.store);
  const res = await post(t, payload, headers);
  expect(res.statusCode, res.body).toBe(status);
  expect(res.json().field).toBe(field);
  expect(await storedBlobCount(t.store)).toBe(before);
  return res.json().message as string;
}

describe('ingest plausibility and opt-out', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ ingestOrigins: ['https://login.example'] });
  });
  afterAll(async () => {
    await t.close();
  });

  it('refuses implausible blobs, naming the field', async () => {
    const stream = (events: unknown[]) => ({ data: [blob(), blob({ event_stream: events })] });
    expect(
      await expectRefused(
        t,
        stream([
          ['screen.rp_info', 10],
          ['<script>', 20],
        ]),
        400,
        'data[1].event_stream[1][0]',
      ),
    ).toMatch(/pattern/);
    await expectRefused(t, stream([['screen rp info', 10]]), 400, 'data[1].event_stream[0][0]');
    expect(
      await expectRefused(
        t,
        stream([
          ['screen.rp_info', 900],
          ['screen.pick_email', 100],
        ]),
        400,
        'data[1].event_stream[1][1]',
      ),
    ).toMatch(/never decrease/);
    await expectRefused(t, stream([['screen.rp_info', 86_400_001]]), 400, 'data[1].event_stream[0][1]');
    await expectRefused(t, stream([['screen.rp_info', 10, 90_000_000]]), 400, 'data[1].event_stream[0][2]');
    await expectRefused(t, { data: [blob({ number_sites_logged_in: 1001 })] }, 400, 'data[0].number_sites_logged_in');
    await expectRefused(t, { data: [blob({ number_emails: 5000 })] }, 400, 'data[0].number_emails');
    await expectRefused(t, { data: [blob({ screen_size: { width: 1e6, height: 10 } })] }, 400, 'data[0].screen_size.width');
    // The dialog's own vocabulary passes, legacy `::` names included.
    const ok = await post(t, {
      data: [
        blob({
          event_stream: [
            ['screen.rp_info', 1],
            ['picker::change', 2],
            ['xhr_complete', 2, 30],
            ['window.unload', 9],
          ],
        }),
      ],
    });
    expect(ok.statusCode, ok.body).toBe(200);
  });

  it('takes posts from allowed origins (with a CORS grant) and refuses others before reading them', async () => {
    const allowed = await post(t, { data: [blob()] }, { origin: 'https://login.example' });
    expect(allowed.statusCode).toBe(200);
    expect(allowed.headers['access-control-allow-origin']).toBe('https://login.example');
    await expectRefused(t, { data: [blob()] }, 403, 'headers.origin', { origin: 'https://elsewhere.example' });
    const preflight = await t.app.inject({ method: 'OPTIONS', url: '/wsapi/interaction_data', headers: { origin: 'https://login.example' } });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-methods']).toBe('POST');
    const foreign = await t.app.inject({ method: 'OPTIONS', url: '/wsapi/interaction_data', headers: { origin: 'https://elsewhere.example' } });
    expect(foreign.statusCode).toBe(403);
    expect(foreign.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('acknowledges and does not store a request with DNT: 1 or Sec-GPC: 1, and counts it', async () => {
    const before = (await t.app.inject({ url: '/api/ingest-stats' })).json() as { optedOut: number; accepted: number };
    const count = await storedBlobCount(t.store);
    for (const headers of [{ dnt: '1' }, { 'sec-gpc': '1' }] as Record<string, string>[]) {
      const res = await post(t, { data: [blob()] }, headers);
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ success: true, stored: 0, optedOut: true });
    }
    // Not even looked at: a body that would be refused is acknowledged too.
    expect((await post(t, '{not json', { dnt: '1' })).statusCode).toBe(200);
    expect((await post(t, { data: [blob()] }, { dnt: '0' })).json().stored).toBe(1);
    expect(await storedBlobCount(t.store)).toBe(count + 1);
    const after = (await t.app.inject({ url: '/api/ingest-stats' })).json() as { optedOut: number; accepted: number; rejected: number };
    expect(after.optedOut - before.optedOut).toBe(3);
    expect(after.accepted - before.accepted).toBe(1);
    expect(after.rejected).toBeGreaterThan(0);
  });

  it('stores opted-out requests when the deployment turns the rule off', async () => {
    const off = await startTestApp({ respectOptOut: false });
    try {
      expect((await post(off, { data: [blob()] }, { dnt: '1' })).json()).toEqual({ success: true, stored: 1 });
    } finally {
      await off.close();
    }
  });
});

describe('ingest nonce', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ ingestNonceSecret: NONCE_SECRET });
  });
  afterAll(async () => {
    await t.close();
  });

  it('needs a fresh nonce of this service in csrf (JSON or form) or X-CSRF-Token', async () => {
    const { csrf } = (await t.app.inject({ url: '/wsapi/interaction_nonce' })).json() as { csrf: string };
    expect(await expectRefused(t, { data: [blob()] }, 403, 'csrf')).toMatch(/interaction_nonce/);
    await expectRefused(t, { data: [blob()], csrf: 'made.up.nonce' }, 403, 'csrf');
    const stale = new NonceKeeper(NONCE_SECRET).issue(Date.now() - NONCE_LIFETIME_MS - 1000);
    expect(await expectRefused(t, { data: [blob()], csrf: stale }, 403, 'csrf')).toMatch(/expired/);
    const otherKey = new NonceKeeper('o'.repeat(40)).issue();
    await expectRefused(t, { data: [blob()], csrf: otherKey }, 403, 'csrf');

    expect((await post(t, { data: [blob()], csrf })).statusCode).toBe(200);
    expect((await post(t, { data: [blob()] }, { 'x-csrf-token': csrf })).statusCode).toBe(200);
    const form = await t.app.inject({
      method: 'POST',
      url: '/wsapi/interaction_data',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ data: JSON.stringify(blob()), csrf }).toString(),
    });
    expect(form.statusCode, form.body).toBe(200);
  });
});

describe('server-side sampling', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ sampleRate: 0.5, feedLongpollMs: 500 });
  });
  afterAll(async () => {
    await t.close();
  });

  it('keeps about the rate, decides the same for a retried blob, and makes counts honest estimates', async () => {
    const blobs = Array.from({ length: 300 }, (_, i) =>
      blob({ number_emails: i % 7, number_sites_logged_in: i % 13, lang: `l${i % 50}`, sample_rate: i % 2 ? 1 : 0.5 }),
    );
    const stored: number[] = [];
    for (let i = 0; i < blobs.length; i += 50) stored.push((await post(t, { data: blobs.slice(i, i + 50) })).json().stored as number);
    const kept = stored.reduce((a, b) => a + b, 0);
    // Binomial(300, 0.5): outside 100..200 with probability < 1e-8.
    expect(kept).toBeGreaterThan(100);
    expect(kept).toBeLessThan(200);
    // A dialog retrying the same blobs gets the same decisions.
    const again: number[] = [];
    for (let i = 0; i < blobs.length; i += 50) again.push((await post(t, { data: blobs.slice(i, i + 50) })).json().stored as number);
    expect(again).toEqual(stored);

    const docs = (await storedBlobs(t.store)) as { sample_rate: number; number_emails: number }[];
    expect(docs).toHaveLength(2 * kept);
    for (const doc of docs) expect([0.5, 0.25]).toContain(doc.sample_rate);
    const stats = (await t.app.inject({ url: '/api/ingest-stats' })).json() as { sampledOut: number };
    expect(stats.sampledOut).toBe(2 * (300 - kept));

    const expectedEstimate = docs.reduce((s, d) => s + 1 / d.sample_rate, 0);
    let total: KpiAnswer['series'][number]['total'] | undefined;
    await waitUntil(
      async () => {
        const answer = (await t.app.inject({ url: '/api/kpis' })).json() as KpiAnswer;
        total = answer.series[0]?.total;
        return total?.dialogs === docs.length;
      },
      10_000,
      'the aggregate to count every stored blob',
    );
    expect(total!.sampled).toBe(true);
    expect(total!.dialogsEstimate).toBeCloseTo(expectedEstimate, 6);
  });
});

describe('ingest logs', () => {
  it('keep no address, user agent, cookie, referrer or blob content, even at debug level and on errors', async () => {
    const lines: string[] = [];
    const t = await startTestApp({ logLevel: 'debug' }, { logStream: { write: (line: string) => lines.push(line) } });
    try {
      const headers = {
        'x-forwarded-for': '203.0.113.9',
        'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0',
        cookie: 'persona_session=cookie-value-2',
        referer: 'https://rp.example/account',
      };
      expect((await post(t, { data: [blob({ rp_api: 'logged-blob-marker' })] }, headers)).statusCode).toBe(200);
      expect((await post(t, { data: [blob({ number_emails: 'secret-content-marker' })] }, headers)).statusCode).toBe(400);
      expect((await post(t, '{"data": [', headers)).statusCode).toBe(400);
      const log = lines.join('');
      expect(log.length).toBeGreaterThan(0);
      for (const kept of ['203.0.113.9', 'Gecko', 'cookie-value-2', 'rp.example', 'logged-blob-marker', 'secret-content-marker']) {
        expect(log, kept).not.toContain(kept);
      }
    } finally {
      await t.close();
    }
  });
});
