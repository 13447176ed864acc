/**
 * `KPI_TRUST_PROXY` with forged `X-Forwarded-For`: the client address, and
 * so the ingest rate limit and the sign-in limit, is the real client's
 * whatever a client writes in the header.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { nowTimestamp, startTestApp, type TestApp } from '../harness/app.js';

const blob = () => ({ timestamp: nowTimestamp(), event_stream: [['screen.rp_info', 500]], lang: 'en-US' });

let t: TestApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

/** One ingest post from `socket` (the proxy, or the client itself) carrying `forwarded`. */
const post = (app: TestApp, socket: string, forwarded?: string) =>
  app.app.inject({
    method: 'POST',
    url: '/wsapi/interaction_data',
    remoteAddress: socket,
    headers: { 'content-type': 'application/json', ...(forwarded !== undefined ? { 'x-forwarded-for': forwarded } : {}) },
    payload: JSON.stringify({ data: [blob()] }),
  });

/** Status codes of `n` posts, each with a left-most entry of its own (as a forger writes). */
async function forgedPosts(app: TestApp, n: number, socket: string, realClient: string): Promise<number[]> {
  const codes: number[] = [];
  for (let i = 0; i < n; i++) codes.push((await post(app, socket, `203.0.113.${i % 250}, ${realClient}`)).statusCode);
  return codes;
}

describe('KPI_TRUST_PROXY', () => {
  it('takes the entry our proxy appended: a forged left-most entry buys no new rate limit', async () => {
    t = await startTestApp({ trustProxy: '10.0.0.2', rateLimitMax: 3, trustLoopback: false });
    expect(await forgedPosts(t, 5, '10.0.0.2', '198.51.100.7')).toEqual([200, 200, 200, 429, 429]);
    // another real client behind the same proxy has its own limit
    expect((await post(t, '10.0.0.2', '198.51.100.8')).statusCode).toBe(200);
  });

  it('behind a chain of proxies named by CIDR, takes the right-most address that is not one of them', async () => {
    t = await startTestApp({ trustProxy: '10.0.0.0/8', rateLimitMax: 2, trustLoopback: false });
    // the client 198.51.100.7 wrote 203.0.113.x itself; two proxies of ours appended the rest
    const codes: number[] = [];
    for (let i = 0; i < 4; i++) codes.push((await post(t, '10.0.0.2', `203.0.113.${i}, 198.51.100.7, 10.9.9.9`)).statusCode);
    expect(codes).toEqual([200, 200, 429, 429]);
    // a request straight from an address that is no proxy of ours: its header is not believed
    const direct: number[] = [];
    for (let i = 0; i < 3; i++) direct.push((await post(t, '192.0.2.1', `198.51.100.${20 + i}`)).statusCode);
    expect(direct).toEqual([200, 200, 429]);
  });

  it('off, ignores the header altogether', async () => {
    t = await startTestApp({ trustProxy: false, rateLimitMax: 2, trustLoopback: false });
    expect(await forgedPosts(t, 3, '192.0.2.9', '198.51.100.7')).toEqual([200, 200, 429]);
  });

  it('keys the sign-in limit (20 a minute) on the real client, so a forger cannot buy unlimited password checks', async () => {
    t = await startTestApp({ trustProxy: '10.0.0.0/8', trustLoopback: false });
    const codes: number[] = [];
    for (let i = 0; i < 22; i++) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/login',
        remoteAddress: '10.0.0.2',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': `203.0.113.${i}, 198.51.100.7` },
        payload: 'token=not-a-token',
      });
      codes.push(res.statusCode);
    }
    expect(codes.slice(0, 20).every((c) => c === 401)).toBe(true);
    expect(codes.slice(20)).toEqual([429, 429]);
  });
});
