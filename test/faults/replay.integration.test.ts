/**
 * Replays into a running aggregate while blobs keep arriving:
 * - the feed jumps back to `0` or to an older position at seeded random
 *   moments (a rewinding cluster node, a lost position);
 * - the checkpoint is put back to an older one under the running service (a
 *   restored backup): the service reloads from it and reads the feed again
 *   from the older position.
 * Either way every stored blob ends up counted exactly once: totals equal the
 * number of stored blobs, and every answer equals a rebuild.
 */
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FeedFollower } from '../../src/aggregate/runtime/follower.js';
import { ROOT_ID } from '../../src/aggregate/runtime/checkpoint.js';
import { couchChangesReader, type ChangesReader } from '../../src/aggregate/runtime/feed.js';
import { queryKpis, type KpiQuery } from '../../src/aggregate/model/query.js';
import { defaultSegmentConfig } from '../../src/aggregate/model/segments.js';
import { defaultRetention } from '../../src/aggregate/model/state.js';
import { seededRandom, simulateSession } from '../../src/simulate/generator.js';
import { dropDb, startTestApp, storedBlobCount, type TestApp } from '../harness/app.js';
import { waitUntil } from '../harness/process.js';
import { rebuiltState } from '../harness/verify.js';
import { HOUR } from '../../src/contract/kpis.js';

const SEED = Number(process.env.KPI_FAULT_SEED ?? 5150);
const REWINDS = 8;

/** Posts blobs (50 per request) until stopped; returns how many were stored. */
function keepPosting(t: TestApp, seed: number): { stop(): Promise<number> } {
  const random = seededRandom(seed);
  let stopped = false;
  let posted = 0;
  const loop = (async () => {
    while (!stopped) {
      const blobs = Array.from({ length: 50 }, () => simulateSession(random, { now: Date.now() - Math.floor(random() * 3 * HOUR) }).blob);
      const res = await t.app.inject({
        method: 'POST',
        url: '/wsapi/interaction_data',
        headers: { 'content-type': 'application/json' },
        payload: { data: blobs },
      });
      if (res.statusCode !== 200) throw new Error(`ingest answered ${res.statusCode}: ${res.body}`);
      posted += 50;
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return posted;
    },
  };
}

const windows = (): KpiQuery[] => {
  const now = Date.now();
  return [
    { from: now - 4 * HOUR, to: now + HOUR, bucket: '10m' },
    { from: now - 4 * HOUR, to: now + HOUR, bucket: '1h', segment: 'os' },
    { from: now - 4 * HOUR, to: now + HOUR, bucket: '10m', segment: 'emailType' },
  ];
};

describe('replays into a running aggregate under load', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ feedLongpollMs: 500, checkpointEveryMs: 100, checkpointEveryChanges: 100, feedBatchSize: 60 });
  });
  afterAll(async () => {
    await t.close();
    await dropDb(`${t.config.dbName}_replay`);
  });

  it('a feed that jumps back to 0 or to an older position at random moments counts every blob once', async () => {
    console.log(`replay: seed ${SEED} (KPI_FAULT_SEED=${SEED} repeats the rewinds)`);
    const random = seededRandom(SEED);
    const base = couchChangesReader(t.store, t.store.blobsDb, { limit: 40, longpollMs: 300 });
    const positions: unknown[] = [];
    const rewinds: string[] = [];
    const reader: ChangesReader = async (since, signal, wait) => {
      const batch = await base(since, signal, wait);
      positions.push(batch.lastSeq);
      if (rewinds.length < REWINDS && batch.changes.length > 0 && random() < 0.3) {
        const older = random() < 0.4 ? 0 : positions[Math.floor(random() * positions.length)];
        rewinds.push(older === 0 ? '0' : 'older');
        return { ...batch, lastSeq: older };
      }
      return batch;
    };
    const aggregator = new FeedFollower({
      store: t.store,
      blobsDb: t.store.blobsDb,
      stateDb: `${t.config.dbName}_replay`,
      segments: defaultSegmentConfig,
      retention: defaultRetention,
      batchSize: 40,
      longpollMs: 300,
      checkpointEveryChanges: 200,
      checkpointEveryMs: 300,
      log: pino({ level: 'silent' }),
      reader,
    });
    await aggregator.start();
    const load = keepPosting(t, SEED);
    try {
      await waitUntil(() => rewinds.length >= REWINDS, 60_000, `${REWINDS} rewinds (have ${rewinds.length})`);
    } finally {
      await load.stop();
    }
    try {
      const stored = await storedBlobCount(t.store);
      const dialogs = () => queryKpis(aggregator.state, windows()[0]!).series[0]?.total.dialogs ?? 0;
      await waitUntil(() => dialogs() === stored, 30_000, `the replaying aggregate to count ${stored} blobs (has ${dialogs()})`);
      console.log(`replay: ${stored} blobs, rewinds ${rewinds.join(', ')}; ${aggregator.status.duplicates} changes read again and not counted again`);
      expect(aggregator.status.duplicates).toBeGreaterThan(0);
      const rebuilt = await rebuiltState(t.store);
      for (const query of windows()) expect(queryKpis(aggregator.state, query)).toEqual(queryKpis(rebuilt.state, query));
    } finally {
      await aggregator.stop();
    }
  });

  it('an older checkpoint put back under the running service is reloaded, read on from, and ends equal to a rebuild', async () => {
    const stateDb = `${t.config.dbName}_aggregates`;
    const load = keepPosting(t, SEED + 1);
    let epochs: string[] = [];
    try {
      await waitUntil(() => t.app.aggregates.status().lastCheckpointAt !== null && t.app.aggregates.status().counted >= 300, 30_000, 'a checkpoint');
      // keep a copy of the checkpoint as it is now: its root and the bucket documents it names
      const root = await t.store.request<{ _rev: string; seq: unknown; buckets: Record<string, string> }>({ db: stateDb, path: ROOT_ID });
      const ids = Object.entries(root.buckets).map(([key, tag]) => `b/${key}/${tag}`);
      const copy = await t.store.request<{ rows: { doc: Record<string, unknown> }[] }>({
        method: 'POST',
        db: stateDb,
        path: '_all_docs',
        qs: { include_docs: true },
        body: { keys: ids },
      });
      // restored under ids of their own (same generation, another writer's suffix), as a backup
      // restore would be: the running service's own saves may remove the ids it knows meanwhile
      const suffix = randomBytes(4).toString('hex');
      const restoredTags = Object.fromEntries(Object.entries(root.buckets).map(([key, tag]) => [key, `${tag.split('-')[0]}-${suffix}`]));
      const buckets = copy.rows.map(({ doc }) => {
        const { _rev: _dropped, _id, ...rest } = doc;
        const key = String(_id).slice('b/'.length, String(_id).lastIndexOf('/'));
        return { ...rest, _id: `b/${key}/${restoredTags[key]}` };
      });
      const counted = t.app.aggregates.status().counted;
      await waitUntil(() => t.app.aggregates.status().counted >= counted + 500, 30_000, 'blobs counted after the copy');

      // put it back: bucket documents first (newer checkpoints removed some), then the root
      epochs = [t.app.aggregates.version().epoch];
      await t.store.request({ method: 'POST', db: stateDb, path: '_bulk_docs', body: { docs: buckets } });
      for (let attempt = 0; ; attempt++) {
        const current = await t.store.request<{ _rev: string }>({ db: stateDb, path: ROOT_ID });
        const { _rev: _old, ...older } = root;
        try {
          await t.store.request({ method: 'PUT', db: stateDb, path: ROOT_ID, body: { ...older, buckets: restoredTags, _rev: current._rev } });
          break;
        } catch (err) {
          if (attempt > 20) throw err; // the service checkpointed in between: read its revision again
        }
      }
      await waitUntil(() => t.app.aggregates.version().epoch !== epochs[0], 30_000, 'the service to reload the older checkpoint').catch((err: Error) => {
        const { phase, lastError } = t.app.aggregates.status();
        throw new Error(`${err.message} (aggregate ${phase}, last error: ${lastError ?? 'none'})`);
      });
      epochs.push(t.app.aggregates.version().epoch);
      const after = t.app.aggregates.status().counted;
      await waitUntil(() => t.app.aggregates.status().counted >= after + 200, 30_000, 'blobs counted after the reload');
    } finally {
      await load.stop();
    }
    const stored = await storedBlobCount(t.store);
    const dialogs = () => t.app.aggregates.kpis(windows()[0]!).series[0]?.total.dialogs ?? 0;
    await waitUntil(() => dialogs() === stored, 30_000, `the service to count ${stored} blobs (has ${dialogs()})`);
    console.log(`replay: older checkpoint restored under load, service reloaded (epoch ${epochs.join(' → ')}), ${stored} blobs counted once`);
    const rebuilt = await rebuiltState(t.store);
    for (const query of windows()) expect(t.app.aggregates.kpis(query)).toEqual(queryKpis(rebuilt.state, query));
  });
});
