/**
 * Verdicts through the service on the harness's CouchDB: the blobs
 * acknowledged after a deploy marker's 201 are exactly those counted as
 * arrived after it, on the instance that took the marker and on one that
 * learnt of it from the store, across a restart and a rebuild; and a deploy
 * that breaks a step reads `broken` at `GET /api/deploys/:id/verdict`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rebuild } from '../../src/aggregate/runtime/rebuild.js';
import { aggregateSettings } from '../../src/aggregate/runtime/settings.js';
import { queryArrivals } from '../../src/aggregate/model/query.js';
import { DAY, HOUR } from '../../src/contract/kpis.js';
import type { DeployVerdict } from '../../src/contract/verdict.js';
import { parseBreaks, seededRandom, simulateSession, USER_AGENTS } from '../../src/simulate/generator.js';
import { pino } from 'pino';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from '../../src/project-root.js';
import { postSessions, startTestApp, storedBlobCount, TEST_TOKEN, uniqueDbName, type TestApp } from '../harness/app.js';
import { waitUntil } from '../harness/process.js';
import { startReceiver, type Receiver } from '../harness/webhook-receiver.js';
import type { DeployBrokenEvent } from '../../src/alerts/types.js';

const random = seededRandom(2027);
const sessions = (n: number, now: number, breaks: string[] = []) =>
  Array.from({ length: n }, () => simulateSession(random, { now, breaks: parseBreaks(breaks) }));
const post = (t: TestApp, items: ReturnType<typeof sessions>) => postSessions(t, items, { perRequest: 20, userAgent: USER_AGENTS[1]! });

describe('deploy verdicts through the service', () => {
  const dbName = uniqueDbName('verdict');
  let receiver: Receiver<DeployBrokenEvent & { kind: string }>;
  const config = () => ({
    dbName,
    maxBlobAgeHours: 10 * 24,
    checkpointEveryMs: 200,
    checkpointEveryChanges: 100,
    feedLongpollMs: 500,
    alertWebhookUrl: receiver.url,
  });
  let a: TestApp;
  let b: TestApp | undefined;
  let deploy: { id: string; version: string; at: number };
  let afterCount = 0;
  const counted = (t: TestApp) => t.app.aggregates.status().counted;
  const verdict = async (t: TestApp, id = 'latest') => {
    const res = await t.app.inject(`/api/deploys/${encodeURIComponent(id)}/verdict`);
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as DeployVerdict;
  };
  const arrived = (t: TestApp) => t.app.aggregates.arrivals(deploy.id)?.dialogs ?? 0;

  beforeAll(async () => {
    receiver = await startReceiver();
    a = await startTestApp(config(), { listen: true });
    // a baseline: the same hours of the 7 days before, and the hours before the deploy
    const now = Date.now();
    for (let k = 1; k <= 7; k++) await post(a, sessions(150, now - k * DAY));
    await post(a, sessions(200, now - HOUR));
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await receiver?.close();
  });

  it('counts as arrived after a deploy exactly what was acknowledged after its 201', async () => {
    const res = await a.app.inject({ method: 'POST', url: '/api/deploys', payload: { version: 'v2.0-bad' } });
    expect(res.statusCode).toBe(201);
    deploy = res.json();
    const broken = sessions(400, Date.now(), ['user.user_staged=0.8']);
    await post(a, broken);
    afterCount = broken.length;
    const stored = await storedBlobCount(a.store);
    await waitUntil(() => counted(a) >= stored, 30_000, `every blob counted (have ${counted(a)} of ${stored})`);
    expect(arrived(a)).toBe(afterCount);
  });

  it('reads broken for a deploy that breaks the "choose password" step, naming it first', async () => {
    const v = await verdict(a);
    expect(v.deploy).toEqual(deploy);
    expect(v.state).toBe('broken');
    expect(v.faults[0]).toBe('new-user.step2');
    expect(v.dialogs.after).toBe(afterCount);
    expect(v.baselineWindows.length).toBeGreaterThanOrEqual(7);
    expect(v.dialogs.baseline).toBeGreaterThanOrEqual(1000);
    expect((await a.app.inject('/api/deploys/deploy%2Fnope/verdict')).statusCode).toBe(404);
    // the alert webhook hears of it once, naming the deploy and the step
    await waitUntil(() => receiver.received.some((e) => e.kind === 'deploy-broken'), 20_000, 'the deploy-broken post');
    const events = receiver.received.filter((e) => e.kind === 'deploy-broken');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ key: 'new-user.step2', deploy, service: 'kpi-live' });
    expect(events[0]!.faults[0]).toMatchObject({ key: 'new-user.step2', baseline: expect.any(Number), after: expect.any(Number) });
    // what it compares, whole
    const arrivals = (await a.app.inject(`/api/deploys/${encodeURIComponent(deploy.id)}/arrivals`)).json();
    expect(arrivals.after.dialogs).toBe(afterCount);
    expect(arrivals.baseline.dialogs).toBe(v.dialogs.baseline);
    expect(arrivals.after.newUserFunnel[1].count / arrivals.after.newUserFunnel[0].count).toBeLessThan(0.4);
  });

  it('makes `kpi-live verdict` exit 1 for it, the rollback gate', async () => {
    const { port } = a.app.server.address() as { port: number };
    const gate = (...args: string[]) =>
      new Promise<{ code: number; stdout: string }>((resolve) => {
        execFile(
          process.execPath,
          [join(projectRoot(), 'bin', 'kpi-live.js'), 'verdict', '--url', `http://127.0.0.1:${port}`, '--token', TEST_TOKEN, ...args],
          (err, stdout) => resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout }),
        );
      });
    const broken = await gate('--deploy', 'latest');
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(/^v2\.0-bad \(deploy\/.*: broken: new-user\.step2 /);
    expect((await gate('--deploy', 'deploy/none')).code).toBe(3);
  });

  it('counts on another instance what it takes after learning of the deploy, and a deploy taken there reaches this one', async () => {
    b = await startTestApp(config());
    const more = sessions(60, Date.now());
    await post(b, more);
    afterCount += more.length;
    await waitUntil(() => arrived(a) >= afterCount, 30_000, `the follower to count the second instance's arrivals (have ${arrived(a)})`);
    expect(arrived(a)).toBe(afterCount);

    // a marker taken by the second instance: the first learns of it from the store and starts its run after it
    const second = (await b.app.inject({ method: 'POST', url: '/api/deploys', payload: { version: 'v2.1' } })).json() as { id: string };
    await waitUntil(() => a.app.deploys.handled(second.id) !== undefined, 10_000, 'the first instance to learn of the marker');
    await a.app.deploys.handled(second.id);
    const late = sessions(30, Date.now());
    await post(a, late);
    await waitUntil(() => (a.app.aggregates.arrivals(second.id)?.dialogs ?? 0) >= 30, 30_000, 'the arrivals after the second marker');
    expect(a.app.aggregates.arrivals(second.id)!.dialogs).toBe(30);
    expect(arrived(a)).toBe(afterCount + 30); // after both
  });

  it('keeps the same arrivals across a restart and a rebuild', async () => {
    await b!.app.close();
    b = undefined;
    const before = a.app.aggregates.arrivals(deploy.id);
    await a.app.close();
    a = await startTestApp(config());
    await waitUntil(() => a.app.aggregates.status().phase === 'live', 30_000, 'live after the restart');
    expect(a.app.aggregates.arrivals(deploy.id)).toEqual(before);
    const rebuilt = await rebuild({ ...aggregateSettings(a.config, a.store, pino({ level: 'silent' })), dryRun: true });
    expect(queryArrivals(rebuilt.state, deploy.id)).toEqual(before);
  });
});
