/**
 * Sign-out is kept in the store (`<KPI_DB>_sessions`): it survives a restart,
 * reaches every instance on the store, and a store that stops answering
 * makes no request hang (reads go on with the last list of sign-outs read;
 * state changes by session are refused 503 once that list is too old).
 */
import { pino } from 'pino';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { tokenDigest } from '../../src/auth/credentials.js';
import { revocationTimings } from '../../src/auth/plugin.js';
import { RevocationList } from '../../src/auth/revocations.js';
import { openStore, type Store } from '../../src/store/store.js';
import { dropDb, startTestApp, testConfig, uniqueDbName, type TestApp } from '../harness/app.js';
import { TcpProxy } from '../harness/tcp-proxy.js';

const TOKEN = 'klt_sign-out-test-token-0123456789abcdef';
const settings = { trustLoopback: false, apiTokens: [tokenDigest(TOKEN)] };

async function signIn(t: TestApp): Promise<string> {
  const res = await t.app.inject({
    method: 'POST',
    url: '/login',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ token: TOKEN }).toString(),
  });
  expect(res.statusCode).toBe(303);
  return String(res.headers['set-cookie']).split(';')[0]!;
}

const read = async (t: TestApp, cookie: string) => (await t.app.inject({ url: '/api/session', headers: { cookie } })).statusCode;
const signOut = async (t: TestApp, cookie: string) => (await t.app.inject({ method: 'POST', url: '/logout', headers: { cookie } })).statusCode;

/** Waits until `check` holds (polled every 20 ms), at most `ms`; the time it took. */
async function within(ms: number, check: () => Promise<boolean>, what: string): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - started;
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A test app on database `dbName`, closed (and its databases dropped) after the test. */
async function instance(dbName: string, overrides: Record<string, unknown> = {}): Promise<TestApp> {
  const t = await startTestApp({ ...settings, dbName, ...overrides });
  cleanups.push(async () => {
    await t.close();
    await dropDb(`${dbName}_sessions`);
  });
  return t;
}

describe('sign-out', () => {
  it('survives a restart on the same store', async () => {
    const dbName = uniqueDbName();
    const first = await startTestApp({ ...settings, dbName });
    const cookie = await signIn(first);
    expect(await read(first, cookie)).toBe(200);
    expect(await signOut(first, cookie)).toBe(303);
    expect(await read(first, cookie)).toBe(401);
    await first.app.close(); // the databases stay: the same store after a restart
    const again = await instance(dbName);
    expect(await read(again, cookie)).toBe(401);
    // another session, never signed out, still works after the restart
    const other = await signIn(again);
    expect(await read(again, other)).toBe(200);
  });

  it('made on one instance reaches another on the same store at once, and works from any instance', async () => {
    const dbName = uniqueDbName();
    const a = await instance(dbName);
    const b = await instance(dbName);
    const cookie = await signIn(a);
    expect(await read(b, cookie)).toBe(200);
    expect(await signOut(b, cookie)).toBe(303);
    expect(await read(b, cookie)).toBe(401);
    const took = await within(5000, async () => (await read(a, cookie)) === 401, 'the other instance to refuse the signed-out session');
    expect(took).toBeLessThan(2000);
    // the other way round
    const second = await signIn(b);
    expect(await signOut(a, second)).toBe(303);
    await within(5000, async () => (await read(b, second)) === 401, 'the first instance to refuse it');
  });
});

describe('a store that stops answering', () => {
  it('makes no request hang: reads go on, state changes by session are refused 503, and a sign-out is written once it is back', async () => {
    const dbName = uniqueDbName();
    const proxy = await TcpProxy.inFrontOf(inject('couchUrl'));
    cleanups.push(() => proxy.cut());
    const timeoutMs = 500;
    const a = await instance(dbName, { couchdbUrl: proxy.urlFor(inject('couchUrl')), couchdbTimeoutMs: timeoutMs });
    const b = await instance(dbName); // straight to the store
    const cookie = await signIn(a);
    const csrf = (await a.app.inject({ url: '/api/session', headers: { cookie } })).json().csrfToken as string;
    const write = () =>
      a.app.inject({
        method: 'POST',
        url: '/api/deploys',
        headers: { cookie, 'x-csrf-token': csrf, 'content-type': 'application/json' },
        payload: { version: 'v1' },
      });
    expect((await write()).statusCode).toBe(201);

    await proxy.cut();
    // past the bound on the list's age: 3 × KPI_COUCHDB_TIMEOUT_MS
    await new Promise((r) => setTimeout(r, revocationTimings(timeoutMs).staleAfterMs + 200));
    let started = Date.now();
    expect(await read(a, cookie)).toBe(200);
    const refused = await write();
    expect(refused.statusCode).toBe(503);
    expect(refused.json().message).toMatch(/sign-outs cannot be read/);
    expect(Date.now() - started).toBeLessThan(1000);

    started = Date.now();
    expect(await signOut(a, cookie)).toBe(303);
    expect(Date.now() - started).toBeLessThan(3 * timeoutMs);
    expect(await read(a, cookie)).toBe(401); // refused here at once
    expect(await read(b, cookie)).toBe(200); // the other instance cannot know yet

    await proxy.open();
    await within(10_000, async () => (await read(b, cookie)) === 401, 'the sign-out made during the outage to reach the other instance');
    const fresh = await signIn(a);
    const freshCsrf = (await a.app.inject({ url: '/api/session', headers: { cookie: fresh } })).json().csrfToken as string;
    await within(
      10_000,
      async () =>
        (
          await a.app.inject({
            method: 'POST',
            url: '/api/deploys',
            headers: { cookie: fresh, 'x-csrf-token': freshCsrf, 'content-type': 'application/json' },
            payload: { version: 'v2' },
          })
        ).statusCode === 201,
      'state changes by session to work again',
    );
  });
});

describe('RevocationList', () => {
  const log = pino({ level: 'silent' });

  async function storeFor(url: string, dbName: string): Promise<Store> {
    const config = testConfig({ couchdbUrl: url, dbName, couchdbTimeoutMs: 500 });
    const store = await openStore(config, log, { setup: false });
    cleanups.push(() => store.close());
    return store;
  }

  it('knows nothing, and so accepts no session, until the store has answered once', async () => {
    const dbName = uniqueDbName();
    const proxy = await TcpProxy.inFrontOf(inject('couchUrl'));
    cleanups.push(() => proxy.cut());
    const store = await storeFor(proxy.urlFor(inject('couchUrl')), dbName);
    await proxy.cut();
    const list = new RevocationList(`${dbName}_sessions`, log, revocationTimings(300));
    cleanups.push(() => list.stop());
    const started = Date.now();
    await list.start(store);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(list.known).toBe(false);
    expect(list.current()).toBe(false);
    await proxy.open();
    await within(10_000, async () => list.current(), 'the list to be read');
  });

  it('deletes revocations of sessions that have expired anyway', async () => {
    const dbName = uniqueDbName();
    cleanups.push(() => dropDb(`${dbName}_sessions`));
    const store = await storeFor(inject('couchUrl'), dbName);
    const db = `${dbName}_sessions`;
    const writer = new RevocationList(db, log, revocationTimings(500));
    await writer.start(store);
    expect(await writer.revoke('E'.repeat(22), Date.now() - 1)).toBe(true);
    expect(await writer.revoke('L'.repeat(22), Date.now() + 3_600_000)).toBe(true);
    await writer.stop();
    const ids = async () => (await store.request<{ rows: { id: string }[] }>({ db, path: '_all_docs' })).rows.map((r) => r.id);
    expect(await ids()).toEqual([`revoked/${'E'.repeat(22)}`, `revoked/${'L'.repeat(22)}`]);
    const sweeper = new RevocationList(db, log, { ...revocationTimings(500), sweepEveryMs: 0 });
    cleanups.push(() => sweeper.stop());
    await sweeper.start(store);
    await within(5000, async () => (await ids()).length === 1, 'the expired revocation to be deleted');
    expect(await ids()).toEqual([`revoked/${'L'.repeat(22)}`]);
    expect(sweeper.has('L'.repeat(22))).toBe(true);
  });
});
