/**
 * The sole instance: on the embedded store (no COUCHDB_URL, as `npm start`
 * runs) kpi-live follows the feed straight, with no lease. It counts every
 * stored blob once, equals a recompute, writes no lease document, says
 * `mode: sole` in `/health`, and a restart goes on from its checkpoint.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recomputeKpis } from '../../../src/aggregate/model/recompute.js';
import { defaultSegmentConfig } from '../../../src/aggregate/model/segments.js';
import { AggregateState, defaultRetention } from '../../../src/aggregate/model/state.js';
import { LEASE_ID } from '../../../src/cluster/lease.js';
import { loadConfig } from '../../../src/config/config.js';
import { HOUR, type KpiAnswer } from '../../../src/contract/kpis.js';
import type { FactsInput } from '../../../src/aggregate/model/facts.js';
import { seededRandom, simulateSession, USER_AGENTS } from '../../../src/simulate/generator.js';
import { postSessions, startTestApp, storedBlobs, uniqueDbName, type TestApp } from '../../harness/app.js';
import { waitUntil } from '../../harness/process.js';

const NOW = Date.now();
const random = seededRandom(61);
const sessions = (n: number) => Array.from({ length: n }, (_, i) => simulateSession(random, { now: NOW - 3 * HOUR + (i * 3 * HOUR) / n }));

describe('the sole instance on the embedded store', () => {
  let dataDir: string;
  let t: TestApp | undefined;
  const dbName = uniqueDbName('sole');
  const start = () => startTestApp({ couchdbUrl: undefined, dataDir, dbName, checkpointEveryMs: 200, checkpointEveryChanges: 50 });
  const counted = (app: TestApp) => app.app.aggregates.status().counted;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'kpi-live-sole-'));
    t = await start();
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('follows the feed at once with no lease, and says so', async () => {
    expect(t!.store.kind).toBe('embedded');
    expect(t!.app.leadership.isLeader()).toBe(true);
    expect(t!.app.leadership.status()).toMatchObject({ mode: 'sole', role: 'follower', following: true, holder: t!.app.leadership.instanceId, takeovers: 1 });
    const health = (await t!.app.inject('/health')).json();
    expect(health.lease).toMatchObject({ mode: 'sole', role: 'follower', following: true });
    // no lease document in the aggregates database
    const stateDb = `${t!.store.blobsDb}_aggregates`;
    await expect(t!.store.request({ db: stateDb, path: encodeURIComponent(LEASE_ID) })).rejects.toMatchObject({ statusCode: 404 });
  });

  it('counts every stored blob once and equals a recompute, also after a restart from the checkpoint', async () => {
    await postSessions(t!, sessions(300), { perRequest: 30, userAgent: USER_AGENTS[0]! });
    await waitUntil(() => counted(t!) >= 300, 30_000, `300 blobs counted (have ${counted(t!)})`);
    await waitUntil(() => t!.app.aggregates.status().lastCheckpointAt !== null, 10_000, 'a checkpoint');

    await t!.app.close(); // the store (its embedded server) and its data stay for the restart

    t = await start();
    expect(t.app.leadership.status()).toMatchObject({ mode: 'sole', following: true });
    await postSessions(t, sessions(120), { perRequest: 30, userAgent: USER_AGENTS[1]! });

    const query = { from: NOW - 4 * HOUR - (NOW % HOUR), to: NOW + HOUR - (NOW % HOUR), bucket: '1h' as const };
    const blobs = (await storedBlobs(t.store)) as unknown as FactsInput[];
    expect(blobs).toHaveLength(420);
    await waitUntil(
      async () => ((await t!.app.inject(`/api/kpis?from=${query.from}&to=${query.to}&bucket=1h`)).json() as KpiAnswer).series[0]!.total.dialogs === 420,
      30_000,
      'all 420 dialogs in the answer',
    );
    const answer = (await t.app.inject(`/api/kpis?from=${query.from}&to=${query.to}&bucket=1h`)).json() as KpiAnswer;
    const sizes = new AggregateState(defaultSegmentConfig, defaultRetention);
    sizes.watermark = answer.watermark;
    expect(answer).toEqual(
      JSON.parse(JSON.stringify(recomputeKpis(blobs, defaultSegmentConfig, { ...query, segment: undefined }, (time) => sizes.sizeFor(time)))),
    );
  });

  it('refuses KPI_ROLE=standby, which has no follower to stand by for, naming the variable', () => {
    expect(() => loadConfig({ env: { KPI_ROLE: 'standby' } })).toThrow(/KPI_ROLE=standby needs a store other instances share \(COUCHDB_URL\)/);
    expect(loadConfig({ env: { KPI_ROLE: 'standby', COUCHDB_URL: 'http://127.0.0.1:5984' } }).role).toBe('standby');
  });
});
