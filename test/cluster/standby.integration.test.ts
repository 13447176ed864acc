/**
 * A standby's copy of the published aggregate, on the harness's CouchDB:
 * checkpoints written by the follower's own CheckpointStore load back equal;
 * a later checkpoint is applied incrementally (only the changed buckets are
 * new, with new versions, so live deltas hold just them, under the same
 * epoch), downsampling included; a replacement that drops a bucket no other
 * covers (as a rebuild may) starts a fresh state, with a new epoch.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointStore, snapshotOf } from '../../src/aggregate/runtime/checkpoint.js';
import type { AggregateChange } from '../../src/aggregate/runtime/follower.js';
import { StandbyAggregate } from '../../src/aggregate/runtime/standby.js';
import { queryKpis } from '../../src/aggregate/model/query.js';
import { defaultSegmentConfig } from '../../src/aggregate/model/segments.js';
import { AggregateState, defaultRetention } from '../../src/aggregate/model/state.js';
import { blobDocId, newRunId } from '../../src/store/blob-ids.js';
import { dropDb, startTestApp, uniqueDbName, type TestApp } from '../harness/app.js';
import { DAY, HOUR } from '../../src/contract/kpis.js';

const silent = pino({ level: 'silent' });
const T = Date.UTC(2026, 10, 20, 10, 0);
const run = newRunId();
let counter = 0;
const blob = (time: number) => ({ _id: blobDocId(time, run, counter++), timestamp: time, event_stream: [['screen.rp_info', 100]] as [string, number][] });

describe('StandbyAggregate', () => {
  let t: TestApp;
  const db = uniqueDbName('published');
  let checkpoints: CheckpointStore;
  let published: StandbyAggregate;
  const changes: AggregateChange[] = [];
  const live = new AggregateState(defaultSegmentConfig, defaultRetention);
  let saved = 0;
  const save = async (state: AggregateState, since = saved) => {
    await checkpoints.save(snapshotOf(state, 'seq', since));
    saved = state.version;
  };

  beforeAll(async () => {
    t = await startTestApp();
    checkpoints = new CheckpointStore(t.store, db, defaultSegmentConfig, defaultRetention, silent);
    await checkpoints.ensureDb();
    await checkpoints.load();
    published = new StandbyAggregate({
      store: t.store,
      stateDb: db,
      segments: defaultSegmentConfig,
      retention: defaultRetention,
      log: silent,
      pollMs: 60_000,
    });
    published.changes$.subscribe((c) => changes.push(c));
  });
  afterAll(async () => {
    published?.stop();
    await t?.close();
    await dropDb(db);
  });

  it('is empty and live while nothing is published, then loads the first checkpoint equal', async () => {
    await published.start();
    expect(published.status).toMatchObject({ phase: 'live', counted: 0, lastCheckpointAt: null });
    expect(published.state.buckets.size).toBe(0);
    for (let i = 0; i < 30; i++) live.apply(blob(T + (i % 6) * 600_000));
    live.downsample();
    await save(live);
    expect(await published.refresh()).toBe(true);
    expect(published.state.toJSON()).toEqual(live.toJSON());
    expect(published.status.lastCheckpointAt).not.toBeNull();
    expect(await published.refresh()).toBe(false); // same revision: nothing read but the root
  });

  it('applies a later checkpoint incrementally: only changed buckets are new, under the same epoch', async () => {
    const epoch = published.state.epoch;
    const before = published.state.version;
    changes.length = 0;
    live.apply(blob(T + 5 * 600_000));
    live.downsample();
    await save(live);
    expect(await published.refresh()).toBe(true);
    expect(published.state.toJSON()).toEqual(live.toJSON());
    expect(published.state.epoch).toBe(epoch);
    expect(changes).toHaveLength(1);
    expect(changes[0]!.keys).toEqual([`${T + 5 * 600_000}/600000`]);
    // a live delta after `before` holds only that bucket's point
    const delta = queryKpis(published.state, { from: T, to: T + HOUR, bucket: '10m' }, before);
    expect(delta.series[0]!.points.map((p) => p.start)).toEqual([T + 5 * 600_000]);
  });

  it('follows downsampling (removed buckets covered by a changed one) without a new epoch', async () => {
    const epoch = published.state.epoch;
    // a blob three days later moves the watermark: the 10-minute buckets of T merge into an hour
    live.apply(blob(T + 3 * DAY));
    live.downsample();
    expect(live.buckets.has(`${T}/3600000`)).toBe(true);
    await save(live);
    await published.refresh();
    expect(published.state.toJSON()).toEqual(live.toJSON());
    expect(published.state.epoch).toBe(epoch);
  });

  it('starts a fresh state (new epoch) when a replacement drops a bucket nothing covers', async () => {
    const epoch = published.state.epoch;
    const rebuilt = new AggregateState(defaultSegmentConfig, defaultRetention);
    rebuilt.apply(blob(T + 3 * DAY)); // the bucket of T is gone
    rebuilt.downsample();
    await checkpoints.load(); // as a rebuild does: learn the root's revision, then replace it
    await checkpoints.save(snapshotOf(rebuilt, 'seq-rebuilt', 0));
    await published.refresh();
    expect(published.state.toJSON()).toEqual(rebuilt.toJSON());
    expect(published.state.epoch).not.toBe(epoch);
  });
});
