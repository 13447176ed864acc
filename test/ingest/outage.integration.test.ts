/**
 * The store goes away and comes back: ingest and health answer 503 with
 * Retry-After meanwhile (never 500, never a hang), and recover by themselves.
 * A TCP proxy in front of the harness's store stands for the network.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { nowTimestamp, startTestApp, storedBlobCount, type TestApp } from '../harness/app.js';
import { TcpProxy } from '../harness/tcp-proxy.js';

describe('store outage', () => {
  let proxy: TcpProxy;
  let t: TestApp;

  beforeAll(async () => {
    proxy = await TcpProxy.inFrontOf(inject('couchUrl'));
    t = await startTestApp({ couchdbUrl: proxy.urlFor(inject('couchUrl')), couchdbTimeoutMs: 2000, retryAfterSeconds: 7 });
  });
  afterAll(async () => {
    await proxy.open().catch(() => undefined);
    await t.close();
    await proxy.cut();
  });

  const post = (rp: string) =>
    t.app.inject({
      method: 'POST',
      url: '/wsapi/interaction_data',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ data: [{ timestamp: nowTimestamp(), event_stream: [['screen.rp_info', 1]], rp_api: rp }] }),
    });

  it('answers 503 + Retry-After while the store is unreachable, then recovers', async () => {
    expect((await post('before')).statusCode).toBe(200);
    expect((await t.app.inject('/health')).statusCode).toBe(200);

    await proxy.cut();
    const down = await post('during');
    expect(down.statusCode).toBe(503);
    expect(down.headers['retry-after']).toBe('7');
    expect(down.json()).toEqual({ success: false, statusCode: 503, error: 'Service Unavailable', message: 'the store is unavailable; retry later' });
    const health = await t.app.inject('/health');
    expect(health.statusCode).toBe(503);
    expect(health.headers['retry-after']).toBe('7');
    expect(health.json()).toMatchObject({ status: 'unavailable', store: { reachable: false } });
    const read = await t.app.inject('/wsapi/interaction_data?limit=5');
    expect(read.statusCode).toBe(503);
    expect(JSON.stringify(down.json()) + JSON.stringify(read.json())).not.toMatch(/127\.0\.0\.1|http:/);

    await proxy.open();
    const up = await post('after');
    expect(up.statusCode).toBe(200);
    expect((await t.app.inject('/health')).json()).toMatchObject({ status: 'ok', store: { reachable: true } });
    // what was refused is not stored; what was acknowledged is
    expect(await storedBlobCount(t.store)).toBe(2);
  });
});
