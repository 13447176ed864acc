/**
 * The checkpoint store on the harness's CouchDB: a saved state loads back
 * equal; superseded documents go; the orphan sweep removes what a crashed or
 * losing writer left, but never a document of a checkpoint being written; a
 * cluster that accepts two commits at one revision keeps exactly one.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointConflictError, CheckpointStore, LEGACY_ROOT_ID, ROOT_ID, snapshotOf } from '../../../src/aggregate/runtime/checkpoint.js';
import { defaultSegmentConfig } from '../../../src/aggregate/model/segments.js';
import { bucketKey, defaultRetention } from '../../../src/aggregate/model/state.js';
import { blobDocId, newRunId } from '../../../src/store/blob-ids.js';
import { Database } from '../../../src/store/database.js';
import { StoreRequestError, type Store, type StoreRequest } from '../../../src/store/store.js';
import { dropDb, startTestApp, uniqueDbName, type TestApp } from '../../harness/app.js';
import { stateOfBlobs } from '../../harness/kpi-fixtures.js';

const silent = pino({ level: 'silent' });
const T = Date.UTC(2026, 10, 20, 10, 0);

const stateWith = (n: number) => stateOfBlobs(n, { start: T });

/**
 * The harness's store, except for the checkpoint root, which plays a CouchDB
 * cluster whose shard copies have not yet exchanged writes: a write at a
 * revision that is a leaf replaces it; one at the revision a leaf was written
 * on (a copy that has not seen that leaf yet) is kept too, as a second leaf.
 * Reads answer as CouchDB does: the winner by its own rule (the higher
 * generation, then the greater revision id) with the other leaves in
 * `_conflicts`, and any leaf by `rev`.
 */
function splitRootStore(inner: Store): Store & { acceptedTwice(): boolean; leaves(): number } {
  const leaves = new Map<string, Record<string, unknown>>();
  const parents = new Map<string, string | undefined>();
  let twice = false;
  let n = 0;
  const generation = (rev: string) => Number.parseInt(rev, 10);
  const winner = () => [...leaves.keys()].sort((a, b) => generation(b) - generation(a) || (a < b ? 1 : -1))[0];
  const request = async (req: StoreRequest): Promise<unknown> => {
    if (req.path !== ROOT_ID) return inner.request(req);
    const method = (req.method ?? 'GET').toUpperCase();
    const qs = (req.qs ?? {}) as { rev?: string; conflicts?: boolean };
    if (method === 'GET') {
      const rev = qs.rev ?? winner();
      const leaf = rev === undefined ? undefined : leaves.get(rev);
      if (!leaf) throw new StoreRequestError('missing', 404, 'not_found');
      const conflicts = [...leaves.keys()].filter((r) => r !== rev);
      return { ...leaf, ...(qs.conflicts && !qs.rev && conflicts.length ? { _conflicts: conflicts } : {}) };
    }
    if (method === 'DELETE') {
      if (!qs.rev || !leaves.delete(qs.rev)) throw new StoreRequestError('Document update conflict.', 409, 'conflict');
      return { ok: true };
    }
    const body = req.body as Record<string, unknown>;
    const base = typeof body._rev === 'string' ? body._rev : undefined;
    const isLeaf = base === undefined ? leaves.size === 0 : leaves.has(base);
    const sibling = [...leaves.keys()].some((leaf) => parents.get(leaf) === base);
    if (!isLeaf && !sibling) throw new StoreRequestError('Document update conflict.', 409, 'conflict');
    if (!isLeaf) twice = true;
    const rev = `${(base ? generation(base) : 0) + 1}-${(++n).toString(16).padStart(8, '0')}${Math.random().toString(16).slice(2, 10)}`;
    if (base) leaves.delete(base);
    leaves.set(rev, { ...body, _rev: rev });
    parents.set(rev, base);
    return { ok: true, id: ROOT_ID, rev };
  };
  return { ...inner, request, acceptedTwice: () => twice, leaves: () => leaves.size } as Store & { acceptedTwice(): boolean; leaves(): number };
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

  it('reads the new checkpoint when another writer commits twice while it is read (the buckets it read removed)', async () => {
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
            await writer.save(snapshotOf(stateWith(16), 'seq-16', 0));
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

  it('writes only changed buckets and removes the documents they supersede one commit later', async () => {
    const store = new CheckpointStore(t.store, db, defaultSegmentConfig, defaultRetention, silent);
    const loaded = (await store.load())!;
    const before = await bucketDocs();
    const blob = (i: number) => ({ _id: blobDocId(T, newRunId(), i), timestamp: T, event_stream: [['screen.rp_info', i] as [string, number]] });
    loaded.state.apply(blob(1));
    await store.save(snapshotOf(loaded.state, 'seq-31', 0));
    const after = await bucketDocs();
    const added = after.filter((id) => !before.includes(id));
    expect(added).toEqual([expect.stringMatching(new RegExp(`^b/${bucketKey(T, 600_000)}/2-`))]);
    // the superseded document stays while a root of the same parent could still name it
    expect(after).toHaveLength(before.length + 1);
    const version = loaded.state.version;
    loaded.state.apply(blob(2));
    await store.save(snapshotOf(loaded.state, 'seq-32', version));
    const last = await bucketDocs();
    expect(last).toHaveLength(before.length + 1);
    expect(last.filter((id) => !after.includes(id))).toEqual([expect.stringMatching(new RegExp(`^b/${bucketKey(T, 600_000)}/3-`))]);
    expect(last).not.toContain(before.find((id) => id.startsWith(`b/${bucketKey(T, 600_000)}/`)));
  });

  it('sweeps orphans but keeps the documents of a checkpoint still being written', async () => {
    const store = new CheckpointStore(t.store, db, defaultSegmentConfig, defaultRetention, silent);
    await store.load();
    const key = bucketKey(T, 600_000);
    // left by a writer that lost: generation 3, not referenced (the root is at 3)
    // being written now by another writer: generation 4
    await t.store.request({ method: 'POST', db, path: '_bulk_docs', body: { docs: [{ _id: `b/${key}/3-deadbeef` }, { _id: `b/${key}/4-c0ffee00` }] } });
    const root = await t.store.request<{ generation: number; buckets: Record<string, string>; retired: string[] }>({ db, path: ROOT_ID });
    expect(root.generation).toBe(3);
    // the documents the last commit retired go too: no root names them
    expect(await store.removeOrphans()).toBe(1 + root.retired.length);
    const ids = await bucketDocs();
    expect(ids.sort()).toEqual([...Object.entries(root.buckets).map(([k, tag]) => `b/${k}/${tag}`), `b/${key}/4-c0ffee00`].sort());
  });

  it('refuses to overwrite a checkpoint another writer replaced', async () => {
    const stale = new CheckpointStore(t.store, db, defaultSegmentConfig, defaultRetention, silent);
    const fresh = new CheckpointStore(t.store, db, defaultSegmentConfig, defaultRetention, silent);
    const state = (await stale.load())!.state;
    await fresh.load();
    await fresh.save(snapshotOf(state, 'seq-40', 0));
    await expect(stale.save(snapshotOf(state, 'seq-41', 0))).rejects.toBeInstanceOf(CheckpointConflictError);
  });

  it("on a cluster that keeps two commits at one revision, one root wins by the checkpoint's rule and the other writer learns it lost", async () => {
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
      const versions = states.map((state) => state.version);
      const outcomes = await Promise.allSettled(writers.map((w, i) => w.save(snapshotOf(states[i]!, `seq-${i}`, versions[i]! - 1))));
      expect(split.acceptedTwice()).toBe(true); // the cluster took both writes
      for (const o of outcomes) if (o.status === 'rejected') expect(o.reason).toBeInstanceOf(CheckpointConflictError);
      // everybody loads one writer's state, the same whoever asks, with every document it names
      const loaded = (await open().load())!;
      const won = Number(String(loaded.seq).slice('seq-'.length));
      expect(JSON.stringify(loaded.state.toJSON())).toBe(JSON.stringify(states[won]!.toJSON()));
      expect(JSON.stringify((await open().load())!.state.toJSON())).toBe(JSON.stringify(states[won]!.toJSON()));
      // a writer that lost learns it at its commit, or at its next one at the latest
      const loser = writers[1 - won]!;
      if (outcomes[1 - won]!.status === 'fulfilled')
        await expect(loser.save(snapshotOf(states[1 - won]!, 'seq-late', 0))).rejects.toBeInstanceOf(CheckpointConflictError);
      // the winner's next commit leaves one root and removes what the loser wrote
      const winner = writers[won]!;
      if (outcomes[won]!.status === 'rejected') await winner.load();
      await winner.save(snapshotOf(states[won]!, `seq-${won}-next`, 0));
      expect(split.leaves()).toBe(1);
      await winner.removeOrphans();
      const docs = await t.store.request<{ rows: unknown[] }>({ db: splitDb, path: '_all_docs', qs: { startkey: 'b/', endkey: 'b/\uffff' } });
      expect(docs.rows).toHaveLength(states[won]!.buckets.size);
    } finally {
      await dropDb(splitDb);
    }
  });

  it("on a cluster that keeps a rebuild's replace and a running writer's commit at one revision, the replace wins, in either order", async () => {
    for (const order of [
      ['commit', 'replace'],
      ['replace', 'commit'],
    ] as const) {
      const splitDb = uniqueDbName('ckpt-era');
      const split = splitRootStore(t.store);
      const open = () => new CheckpointStore(split, splitDb, defaultSegmentConfig, defaultRetention, silent);
      try {
        await open().ensureDb();
        await open().save(snapshotOf(stateWith(12), 'seq-seed', 0));
        const running = open();
        const rebuilding = open();
        const live = (await running.load())!.state;
        await rebuilding.load();
        // both commit at the next generation on the same parent: only the era tells them apart
        live.apply({ _id: blobDocId(T, newRunId(), 0), timestamp: T, event_stream: [['screen.rp_info', 1]] });
        const rebuilt = stateWith(13);
        const outcomes: Record<string, PromiseSettledResult<void>> = {};
        for (const step of order) {
          outcomes[step] = await Promise.allSettled([
            step === 'commit' ? running.save(snapshotOf(live, 'seq-live', 0)) : rebuilding.save(snapshotOf(rebuilt, 'seq-rebuilt', 0), { replace: true }),
          ]).then((r) => r[0]!);
        }
        expect(split.acceptedTwice()).toBe(true);
        expect(outcomes.replace!.status).toBe('fulfilled');
        const loaded = (await open().load())!;
        expect(loaded.seq).toBe('seq-rebuilt');
        expect(JSON.stringify(loaded.state.toJSON())).toBe(JSON.stringify(rebuilt.toJSON()));
        // the running writer learns it at once, or at its next commit
        if (outcomes.commit!.status === 'fulfilled')
          await expect(running.save(snapshotOf(live, 'seq-live-2', 0))).rejects.toBeInstanceOf(CheckpointConflictError);
        else expect((outcomes.commit as PromiseRejectedResult).reason).toBeInstanceOf(CheckpointConflictError);
      } finally {
        await dropDb(splitDb);
      }
    }
  });

  it('loads a checkpoint an older version kept as a _local document, and its first commit moves it to the fenced root', async () => {
    const other = uniqueDbName('ckpt-legacy');
    try {
      const writer = new CheckpointStore(t.store, other, defaultSegmentConfig, defaultRetention, silent);
      await writer.ensureDb();
      const state = stateWith(12);
      await writer.save(snapshotOf(state, 'seq-12', 0));
      // as the older version left it: the same root, under _local, and no normal root
      const root = await t.store.request<Record<string, unknown>>({ db: other, path: ROOT_ID });
      const { _rev, _id, era: _era, retired: _retired, ...legacy } = root;
      await t.store.request({ method: 'PUT', db: other, path: LEGACY_ROOT_ID, body: legacy });
      await t.store.request({ method: 'DELETE', db: other, path: ROOT_ID, qs: { rev: _rev } });
      const upgraded = new CheckpointStore(t.store, other, defaultSegmentConfig, defaultRetention, silent);
      const loaded = (await upgraded.load())!;
      expect(loaded.seq).toBe('seq-12');
      expect(JSON.stringify(loaded.state.toJSON())).toBe(JSON.stringify(state.toJSON()));
      await upgraded.save(snapshotOf(loaded.state, 'seq-13', loaded.state.version));
      expect((await t.store.request<{ seq: unknown }>({ db: other, path: ROOT_ID })).seq).toBe('seq-13');
      await expect(t.store.request({ db: other, path: LEGACY_ROOT_ID })).rejects.toMatchObject({ statusCode: 404 });
      expect((await new CheckpointStore(t.store, other, defaultSegmentConfig, defaultRetention, silent).load())!.seq).toBe('seq-13');
    } finally {
      await dropDb(other);
    }
  });

  it('the store compacts the checkpoint database when asked (the embedded store keeps every root revision until then)', async () => {
    const checkpoints = new Database(t.store, db);
    await checkpoints.compact();
    expect(await new CheckpointStore(t.store, db, defaultSegmentConfig, defaultRetention, silent).load()).toBeDefined();
  });
});
