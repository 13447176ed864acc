/**
 * The checkpoint store on the harness's CouchDB: a saved state loads back
 * equal; superseded documents go; the orphan sweep removes what a crashed or
 * losing writer left, but never a document of a checkpoint being written; a
 * cluster that accepts two commits at one revision keeps exactly one.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointConflictError, CheckpointStore, ROOT_ID, snapshotOf } from '../../src/aggregate/checkpoint.js';
import { defaultSegmentConfig } from '../../src/aggregate/segments.js';
import { AggregateState, bucketKey, defaultRetention } from '../../src/aggregate/state.js';
import { blobDocId, newRunId } from '../../src/store/blob-ids.js';
import { StoreRequestError, type Store, type StoreRequest } from '../../src/store/store.js';
import { dropDb, startTestApp, uniqueDbName, type TestApp } from '../harness/app.js';

const silent = pino({ level: 'silent' });
const T = Date.UTC(2026, 10, 20, 10, 0);

function stateWith(n: number): AggregateState {
  const state = new AggregateState(defaultSegmentConfig, defaultRetention);
  const run = newRunId();
  for (let i = 0; i < n; i++)
    state.apply({ _id: blobDocId(T + (i % 6) * 600_000, run, i), timestamp: T + (i % 6) * 600_000, event_stream: [['screen.rp_info', i]] });
  state.downsample();
  return state;
}

/**
 * The harness's store, except for the checkpoint root, which plays a CouchDB
 * cluster whose shard copies have not yet exchanged writes: a commit at the
 * revision that was current before the latest one is accepted too (by other
 * copies), and reads answer with the root most copies hold (the first
 * accepted at its revision). A `_local` document keeps no conflicts.
 */
function splitRootStore(inner: Store): Store & { acceptedTwice(): boolean } {
  const first = new Map<number, Record<string, unknown>>();
  let current = 0;
  let twice = false;
  const request = async (req: StoreRequest): Promise<unknown> => {
    if (req.path !== ROOT_ID) return inner.request(req);
    const method = (req.method ?? 'GET').toUpperCase();
    if (method === 'GET') {
      const root = first.get(current);
      if (!root) throw new StoreRequestError('missing', 404, 'not_found');
      return root;
    }
    const body = req.body as Record<string, unknown>;
    const base = typeof body._rev === 'string' ? Number(body._rev.split('-')[1]) : 0;
    if (base !== current && base !== current - 1) throw new StoreRequestError('Document update conflict.', 409, 'conflict');
    if (base === current - 1) twice = true;
    const rev = `0-${base + 1}`;
    if (!first.has(base + 1)) first.set(base + 1, { ...body, _rev: rev });
    current = Math.max(current, base + 1);
    return { ok: true, id: ROOT_ID, rev };
  };
  return { ...inner, request, acceptedTwice: () => twice } as Store & { acceptedTwice(): boolean };
}

describe('CheckpointStore', () => {
  let t: TestApp;
  const db = uniqueDbName('ckpt');
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await dropDb(db);
    await t.close();
  });

  const bucketDocs = async () =>
    (await t.store.request<{ rows: { id: string }[] }>({ db, path: '_all_docs', qs: { startkey: 'b/', endkey: 'b/\uffff' } })).rows.map((r) => r.id);

  it('saves state and position together and loads them back equal', async () => {
    const store = new CheckpointStore(t.store, db, defaultSegmentConfig, defaultRetention, silent);
    await store.ensureDb();
    const state = stateWith(30);
    await store.save(snapshotOf(state, 'seq-30', 0));
    const loaded = await new CheckpointStore(t.store, db, defaultSegmentConfig, defaultRetention, silent).load();
    expect(loaded?.seq).toBe('seq-30');
    expect(JSON.stringify(loaded?.state.toJSON())).toBe(JSON.stringify(state.toJSON()));
    expect(await bucketDocs()).toHaveLength(state.buckets.size);
  });

  it('refuses a checkpoint whose bucket holds null where a count was (JSON turns Infinity into null): the aggregate is rebuilt, not counted wrong', async () => {
    const other = uniqueDbName('ckpt-corrupt');
    try {
      const store = new CheckpointStore(t.store, other, defaultSegmentConfig, defaultRetention, silent);
      await store.ensureDb();
      await store.save(snapshotOf(stateWith(12), 'seq-12', 0));
      expect(await new CheckpointStore(t.store, other, defaultSegmentConfig, defaultRetention, silent).load()).toBeDefined();
      const ids = (await t.store.request<{ rows: { id: string }[] }>({ db: other, path: '_all_docs', qs: { startkey: 'b/', endkey: 'b/\uffff' } })).rows;
      const doc = await t.store.request<{ all: { w: (number | null)[] } }>({ db: other, path: encodeURIComponent(ids[0]!.id) });
      doc.all.w[0] = null;
      await t.store.request({ method: 'PUT', db: other, path: encodeURIComponent(ids[0]!.id), body: doc });
      const lines: string[] = [];
      const log = pino({ level: 'error' }, { write: (line: string) => void lines.push(line) });
      expect(await new CheckpointStore(t.store, other, defaultSegmentConfig, defaultRetention, log).load()).toBeUndefined();
      expect(lines.join('')).toContain('w[0] is null, not a count');
    } finally {
      await dropDb(other);
    }
  });

  it('reads the new checkpoint when another writer replaces it while it is read (its superseded buckets already removed)', async () => {
    const other = uniqueDbName('ckpt-replaced');
    try {
      const writer = new CheckpointStore(t.store, other, defaultSegmentConfig, defaultRetention, silent);
      await writer.ensureDb();
      await writer.save(snapshotOf(stateWith(12), 'seq-12', 0));
      const newer = stateWith(20);
      let replaced = false;
      // the first read of bucket documents comes after the other writer's next commit
      const racing = {
        ...t.store,
        request: async (req: StoreRequest) => {
          if (!replaced && req.path === '_all_docs' && req.method === 'POST') {
            replaced = true;
            await writer.save(snapshotOf(newer, 'seq-20', 0));
          }
          return t.store.request(req);
        },
      } as Store;
      const loaded = await new CheckpointStore(racing, other, defaultSegmentConfig, defaultRetention, silent).load();
      expect(replaced).toBe(true);
      expect(loaded?.seq).toBe('seq-20');
      expect(JSON.stringify(loaded?.state.toJSON())).toBe(JSON.stringify(newer.toJSON()));
    } finally {
      await dropDb(other);
    }
  });

  it('writes only changed buckets and removes the documents they supersede', async () => {
    const store = new CheckpointStore(t.store, db, defaultSegmentConfig, defaultRetention, silent);
    const loaded = (await store.load())!;
    const before = await bucketDocs();
    loaded.state.apply({ _id: blobDocId(T, newRunId(), 0), timestamp: T, event_stream: [['screen.rp_info', 1]] });
    await store.save(snapshotOf(loaded.state, 'seq-31', 0));
    const after = await bucketDocs();
    expect(after).toHaveLength(before.length);
    expect(after.filter((id) => !before.includes(id))).toEqual([expect.stringMatching(new RegExp(`^b/${bucketKey(T, 600_000)}/2-`))]);
  });

  it('sweeps orphans but keeps the documents of a checkpoint still being written', async () => {
    const store = new CheckpointStore(t.store, db, defaultSegmentConfig, defaultRetention, silent);
    await store.load();
    const key = bucketKey(T, 600_000);
    // left by a writer that lost: generation 2, not referenced (the root is at 2)
    // being written now by another writer: generation 3
    await t.store.request({ method: 'POST', db, path: '_bulk_docs', body: { docs: [{ _id: `b/${key}/2-deadbeef` }, { _id: `b/${key}/3-c0ffee00` }] } });
    expect(await store.removeOrphans()).toBe(1);
    const ids = await bucketDocs();
    expect(ids).toContain(`b/${key}/3-c0ffee00`);
    expect(ids).not.toContain(`b/${key}/2-deadbeef`);
  });

  it('refuses to overwrite a checkpoint another writer replaced', async () => {
    const stale = new CheckpointStore(t.store, db, defaultSegmentConfig, defaultRetention, silent);
    const fresh = new CheckpointStore(t.store, db, defaultSegmentConfig, defaultRetention, silent);
    const state = (await stale.load())!.state;
    await fresh.load();
    await fresh.save(snapshotOf(state, 'seq-40', 0));
    await expect(stale.save(snapshotOf(state, 'seq-41', 0))).rejects.toBeInstanceOf(CheckpointConflictError);
  });

  it('on a cluster that accepts two commits at one revision, exactly one writer keeps its checkpoint', async () => {
    const splitDb = uniqueDbName('ckpt-split');
    const split = splitRootStore(t.store);
    const open = () => new CheckpointStore(split, splitDb, defaultSegmentConfig, defaultRetention, silent);
    try {
      await open().ensureDb();
      const seed = open();
      await seed.save(snapshotOf(stateWith(12), 'seq-seed', 0));
      const writers = [open(), open()];
      const states = await Promise.all(writers.map(async (w) => (await w.load())!.state));
      // each writer counts a different blob, then both commit at the same root revision
      states.forEach((state, i) => state.apply({ _id: blobDocId(T, newRunId(), 0), timestamp: T + i * 600_000, event_stream: [['screen.rp_info', i]] }));
      const outcomes = await Promise.allSettled(writers.map((w, i) => w.save(snapshotOf(states[i]!, `seq-${i}`, 0))));
      expect(split.acceptedTwice()).toBe(true); // the cluster took both writes
      const won = outcomes.findIndex((o) => o.status === 'fulfilled');
      const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      expect(lost).toHaveLength(1);
      expect(lost[0]!.reason).toBeInstanceOf(CheckpointConflictError);
      // everybody loads the winner's state; the loser's documents are orphans the sweep removes
      const loaded = (await open().load())!;
      expect(loaded.seq).toBe(`seq-${won}`);
      expect(JSON.stringify(loaded.state.toJSON())).toBe(JSON.stringify(states[won]!.toJSON()));
      await writers[1 - won]!.removeOrphans();
      const docs = await t.store.request<{ rows: unknown[] }>({ db: splitDb, path: '_all_docs', qs: { startkey: 'b/', endkey: 'b/\uffff' } });
      expect(docs.rows).toHaveLength(loaded.state.buckets.size);
    } finally {
      await dropDb(splitDb);
    }
  });
});
