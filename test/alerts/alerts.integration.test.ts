/**
 * Alerts on the harness's real CouchDB: blobs posted over HTTP move the
 * bounce rate across a threshold, and a loopback receiver gets exactly one
 * `breached` and, once the rate is well back inside, exactly one `cleared`.
 * Thresholds set over the API survive a restart and are checked field by
 * field; a cookie session needs its CSRF token to change them.
 */
import { startReceiver, type Receiver } from '../harness/webhook-receiver.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AlertEvent, AlertsBody, AlertState, Thresholds } from '../../src/alerts/types.js';
import { dropDb, ingest, nowTimestamp, startTestApp, TEST_TOKEN, uniqueDbName, type TestApp } from '../harness/app.js';
import { waitUntil } from '../harness/process.js';

const fastFeed = { feedLongpollMs: 1000, checkpointEveryMs: 200, checkpointEveryChanges: 100 };

/** Dialogs shown that bounced (nothing but the first screen) or engaged (picked an email). */
function dialogs(bounced: number, engaged: number): Record<string, unknown>[] {
  const timestamp = nowTimestamp();
  const shown: [string, number] = ['screen.rp_info', 100];
  return [
    ...Array.from({ length: bounced }, () => ({ timestamp, event_stream: [shown] })),
    ...Array.from({ length: engaged }, () => ({ timestamp, event_stream: [shown, ['screen.pick_email', 900]] })),
  ];
}

const bearer = { authorization: `Bearer ${TEST_TOKEN}` };

async function alertOf(t: TestApp, key: string): Promise<AlertState | undefined> {
  const res = await t.app.inject({ url: '/api/alerts', headers: bearer });
  expect(res.statusCode).toBe(200);
  return (res.json() as AlertsBody).alerts.find((a) => a.key === key);
}

/** Waits until the bounce-rate alert has judged the given value. */
async function waitJudged(t: TestApp, value: number): Promise<AlertState> {
  let last: AlertState | undefined;
  await waitUntil(
    async () => {
      last = await alertOf(t, 'bounceRate');
      return last?.value !== null && last?.value !== undefined && Math.abs(last.value - value) < 1e-9;
    },
    30_000,
    `bounceRate judged at ${value} (last: ${JSON.stringify(last)})`,
  );
  return last!;
}

describe('alerts from ingested blobs to the webhook', () => {
  const dbName = uniqueDbName('alerts');
  let t: TestApp;
  let receiver: Receiver<AlertEvent>;
  const start = () =>
    startTestApp({
      ...fastFeed,
      dbName,
      thresholds: JSON.stringify({ bounceRate: { max: 0.5 } }),
      alertHysteresis: 0.2, // clears at ≤ 0.4
      alertMinDialogs: 10,
      alertWebhookUrl: receiver.url,
    });
  /** Transitions handed to the webhook so far, sent or not (counted as they are queued). */
  const handedOver = async () => {
    const { webhook } = (await t.app.inject({ url: '/api/alerts', headers: bearer })).json() as AlertsBody;
    return webhook!.queued + webhook!.delivered + webhook!.failed + webhook!.dropped;
  };

  beforeAll(async () => {
    receiver = await startReceiver<AlertEvent>();
    t = await start();
  });
  afterAll(async () => {
    await t?.close();
    await dropDb(`${dbName}_alerts`);
    await receiver.close();
  });

  it('judges nothing on too few dialogs', async () => {
    await ingest(t, dialogs(5, 0));
    await waitUntil(() => t.app.aggregates.status().counted >= 5, 30_000, '5 blobs counted');
    expect(await alertOf(t, 'bounceRate')).toMatchObject({ state: 'unknown', value: null });
  });

  it('posts one breached when the bounce rate crosses its max', async () => {
    await ingest(t, dialogs(1, 4)); // 6 of 10 bounced: 0.6 > 0.5
    const state = await waitJudged(t, 0.6);
    expect(state).toMatchObject({ state: 'breached', bound: 'max', limit: 0.5 });
    await waitUntil(() => receiver.received.length >= 1, 10_000, 'the breached post');
    expect(receiver.received).toEqual([
      { kind: 'breached', key: 'bounceRate', value: 0.6, bound: 'max', limit: 0.5, windowMs: 3_600_000, at: expect.any(Number), service: 'kpi-live' },
    ]);
  });

  it('posts nothing more while it stays breached', async () => {
    await ingest(t, dialogs(10, 0)); // 16 of 20: 0.8
    expect(await waitJudged(t, 0.8)).toMatchObject({ state: 'breached' });
    expect(await handedOver()).toBe(1); // the breach, and nothing since
  });

  it('does not announce a standing breach again after a restart', async () => {
    await t.app.close(); // keep the databases
    t = await start();
    await ingest(t, dialogs(1, 0)); // 17 of 21: alerts judge once the restarted aggregate has caught up with a change
    expect(await waitJudged(t, 17 / 21)).toMatchObject({ state: 'breached', bound: 'max' });
    expect(await handedOver()).toBe(0);
    expect(receiver.received).toHaveLength(1);
  });

  it('posts no cleared while the rate is back only within the hysteresis band', async () => {
    await ingest(t, dialogs(0, 16)); // 17 of 37: 0.459, inside the max but above 0.4
    expect(await waitJudged(t, 17 / 37)).toMatchObject({ state: 'breached' });
    expect(await handedOver()).toBe(0);
    expect(receiver.received).toHaveLength(1);
  });

  it('posts one cleared once the rate is well inside', async () => {
    await ingest(t, dialogs(0, 13)); // 17 of 50: 0.34
    expect(await waitJudged(t, 17 / 50)).toMatchObject({ state: 'ok', bound: 'max', limit: 0.5 });
    await waitUntil(() => receiver.received.length >= 2, 10_000, 'the cleared post');
    expect(receiver.received.map((e) => e.kind)).toEqual(['breached', 'cleared']);
    expect(receiver.received[1]).toMatchObject({ key: 'bounceRate', bound: 'max', limit: 0.5, windowMs: 3_600_000, service: 'kpi-live' });
    expect(receiver.received[1]!.value).toBeCloseTo(0.34, 12);
    const body = (await t.app.inject({ url: '/api/alerts', headers: bearer })).json() as AlertsBody;
    expect(body.windowMs).toBe(3_600_000);
    expect(body.webhook).toEqual({ queued: 0, delivered: 1, failed: 0, dropped: 0 });
  });

  it('posts cleared for a breach whose threshold is removed', async () => {
    await ingest(t, dialogs(50, 0)); // 67 of 100: 0.67
    expect(await waitJudged(t, 0.67)).toMatchObject({ state: 'breached' });
    await waitUntil(() => receiver.received.length >= 3, 10_000, 'the second breached post');
    const res = await t.app.inject({ method: 'PUT', url: '/api/thresholds', headers: bearer, payload: { thresholds: { errorRate: { max: 0.5 } } } });
    expect(res.statusCode).toBe(200);
    await waitUntil(() => receiver.received.length >= 4, 10_000, 'the cleared post');
    const [breached, cleared] = receiver.received.slice(2);
    expect([breached!.kind, cleared!.kind, cleared!.key, cleared!.bound]).toEqual(['breached', 'cleared', 'bounceRate', 'max']);
    expect(cleared!.value).toBe(breached!.value);
    expect(cleared!.value).toBeCloseTo(0.67, 12);
    expect(await alertOf(t, 'bounceRate')).toBeUndefined();
  });
});

describe('thresholds over the API', () => {
  const dbName = uniqueDbName('alerts');
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ dbName, thresholds: JSON.stringify({ errorRate: { max: 0.1 } }) });
  });
  afterAll(async () => {
    await t?.close();
    await dropDb(`${dbName}_alerts`);
  });

  const put = (app: TestApp, thresholds: unknown, headers: Record<string, string> = bearer) =>
    app.app.inject({
      method: 'PUT',
      url: '/api/thresholds',
      headers: { ...headers, 'content-type': 'application/json' },
      payload: JSON.stringify({ thresholds }),
    });
  const get = async (app: TestApp): Promise<Thresholds> => {
    const res = await app.app.inject({ url: '/api/thresholds', headers: bearer });
    expect(res.statusCode).toBe(200);
    return (res.json() as { thresholds: Thresholds }).thresholds;
  };

  it('shows the configured thresholds before any is stored', async () => {
    expect(await get(t)).toEqual({ errorRate: { max: 0.1 } });
  });

  it('stores a replacement set that GET shows and alerts watch, and that survives a restart', async () => {
    const set = { bounceRate: { max: 0.7 }, newUsers: { min: 5 }, 'new-user.step4': { min: 0.5 } };
    const res = await put(t, set);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ thresholds: set });
    expect(await get(t)).toEqual(set);
    const alerts = (await t.app.inject({ url: '/api/alerts', headers: bearer })).json() as AlertsBody;
    expect(alerts.alerts.map((a) => a.key)).toEqual(['newUsers', 'bounceRate', 'new-user.step4']);
    expect(alerts.webhook).toBeNull();

    await t.app.close(); // keep the databases
    t = await startTestApp({ dbName, thresholds: JSON.stringify({ errorRate: { max: 0.1 } }) });
    expect(await get(t)).toEqual(set);
  });

  it.each([
    [{ bounce: { max: 0.7 } }, 'body.thresholds.bounce'],
    [{ bounceRate: { max: 70 } }, 'body.thresholds.bounceRate.max'],
    [{ bounceRate: { max: '0.7' } }, 'body.thresholds.bounceRate.max'],
    [{ bounceRate: { max: null } }, 'body.thresholds.bounceRate.max'],
    [{ bounceRate: { maximum: 0.7 } }, 'body.thresholds.bounceRate.maximum'],
    [{ 'new-user.step5': { min: 0.5 } }, 'body.thresholds.new-user.step5'],
    [{ bounceRate: { min: 0.8, max: 0.7 } }, 'body.thresholds.bounceRate.min'],
    [[], 'body.thresholds'],
  ])('refuses %j with a 400 naming %s, and stores nothing', async (thresholds, field) => {
    const before = await get(t);
    const res = await put(t, thresholds);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ success: false, statusCode: 400, field });
    expect(res.json().message).toMatch(/^body\.thresholds/);
    expect(await get(t)).toEqual(before);
  });

  it('refuses a body without thresholds or with more', async () => {
    const res = await t.app.inject({ method: 'PUT', url: '/api/thresholds', headers: bearer, payload: { thresholds: {}, extra: 1 } });
    expect(res.statusCode).toBe(400);
    const missing = await t.app.inject({ method: 'PUT', url: '/api/thresholds', headers: bearer, payload: {} });
    expect(missing.json()).toMatchObject({ statusCode: 400, field: 'body.thresholds' });
  });

  it('needs a reader, and a cookie session needs its CSRF token to change them', async () => {
    expect((await t.app.inject({ url: '/api/alerts', headers: { authorization: 'Bearer wrong' } })).statusCode).toBe(401);
    expect((await put(t, {}, { authorization: 'Bearer wrong' })).statusCode).toBe(401);

    const login = await t.app.inject({
      method: 'POST',
      url: '/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ token: TEST_TOKEN, next: '/' }).toString(),
    });
    expect(login.statusCode).toBe(303);
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    const before = await get(t);

    const noCsrf = await put(t, { bounceRate: { max: 0.9 } }, { cookie });
    expect(noCsrf.statusCode).toBe(403);
    expect(noCsrf.json().field).toBe('headers.x-csrf-token');
    expect(await get(t)).toEqual(before);

    const csrf = (await t.app.inject({ url: '/api/session', headers: { cookie } })).json().csrfToken as string;
    const ok = await put(t, { bounceRate: { max: 0.9 } }, { cookie, 'x-csrf-token': csrf });
    expect(ok.statusCode).toBe(200);
    expect(await get(t)).toEqual({ bounceRate: { max: 0.9 } });
  });
});
