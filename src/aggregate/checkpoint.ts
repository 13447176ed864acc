/**
 * Saving the aggregate and its feed position together, atomically, in
 * CouchDB, so a restart resumes exactly where the saved state ends.
 *
 * CouchDB has no multi-document transactions, but one document update is
 * atomic. So a checkpoint is written like a shadow page:
 * 1. the buckets changed since the last checkpoint are written as new,
 *    immutable documents `b/<start>/<size>/<generation>-<random>`;
 * 2. one root document, `_local/kpi-live-aggregate`, is replaced: it names
 *    the generation of every bucket, and holds the feed position, the
 *    watermark and the applied-blob set. Writing it is the commit.
 * A crash between 1 and 2 leaves the old root pointing at old documents,
 * which are still there: the old checkpoint is intact, and the unreferenced
 * new documents are removed at the next start. Superseded documents are
 * removed after each commit. The root is updated with its revision, so two
 * writers cannot both win: the loser gets {@link CheckpointConflictError}.
 * On a CouchDB cluster two writes at one revision can both be accepted (each
 * by some copies of the shard; a `_local` document keeps no conflicting
 * revisions to tell them apart), so every commit is read back: a writer whose
 * root is not the one the cluster answers with lost, as if it got 409.
 *
 * The root also records a hash of the segment configuration and retention;
 * a state computed under other settings is not loaded (the aggregate is
 * then rebuilt from the feed).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Log } from '../log.js';
import { ensureDatabase } from '../store/setup.js';
import { StoreRequestError, type Store } from '../store/store.js';
import { AppliedSet, type AppliedSetJson } from './applied-set.js';
import { CorruptCellError } from './cell.js';
import type { SegmentConfig } from './segments.js';
import { AggregateState, bucketFromJson, bucketKey, bucketToJson, type BucketJson, type RetentionConfig } from './state.js';

export const ROOT_ID = '_local/kpi-live-aggregate';
const BUCKET_PREFIX = 'b/';

interface Root {
  _id: typeof ROOT_ID;
  _rev?: string;
  version: 1;
  settings: string;
  seq: unknown;
  generation: number;
  watermark: number;
  /** bucket key → tag of its document (`<generation>-<random>`: unique per writer) */
  buckets: Record<string, string>;
  applied: AppliedSetJson;
  savedAt: number;
  /** Unique per commit: tells this writer's root from another writer's of the same generation. */
  tag?: string;
}

/** Another writer (a rebuild, a second instance) replaced the checkpoint. */
export class CheckpointConflictError extends Error {
  override readonly name = 'CheckpointConflictError';
}

/** What a checkpoint saves, taken synchronously from the live state. */
export interface Snapshot {
  seq: unknown;
  watermark: number;
  /** Every bucket key of the state. */
  keys: string[];
  /** The buckets changed since the last checkpoint. */
  changed: BucketJson[];
  applied: AppliedSetJson;
  /** State version the snapshot was taken at. */
  version: number;
}

/** Takes a snapshot of the state: buckets changed after `sinceVersion`. */
export function snapshotOf(state: AggregateState, seq: unknown, sinceVersion: number): Snapshot {
  return {
    seq,
    watermark: state.watermark,
    keys: [...state.buckets.keys()],
    changed: state.changedSince(sinceVersion).map(bucketToJson),
    applied: state.applied.toJSON(),
    version: state.version,
  };
}

const docId = (key: string, tag: string) => `${BUCKET_PREFIX}${key}/${tag}`;

export function settingsHash(segments: SegmentConfig, retention: RetentionConfig): string {
  return createHash('sha256').update(JSON.stringify({ segments, retention })).digest('hex').slice(0, 16);
}

export interface LoadedCheckpoint {
  state: AggregateState;
  seq: unknown;
}

/** Reads of a checkpoint that another writer keeps replacing, before giving up. */
const LOAD_ATTEMPTS = 5;

/** A bucket document the checkpoint root names is not in the store. */
class MissingBucketError extends Error {
  constructor(readonly docId: string) {
    super(`checkpoint is missing bucket document ${docId}`);
  }
}

export class CheckpointStore {
  #root: Root | undefined;
  readonly #settings: string;

  constructor(
    readonly store: Store,
    readonly db: string,
    readonly segments: SegmentConfig,
    readonly retention: RetentionConfig,
    readonly log: Log,
  ) {
    this.#settings = settingsHash(segments, retention);
  }

  /** Creates the database when missing. */
  async ensureDb(): Promise<void> {
    await ensureDatabase(this.store, this.db);
  }

  async #readRoot(): Promise<Root | undefined> {
    try {
      return await this.store.request<Root>({ db: this.db, path: ROOT_ID });
    } catch (err) {
      if (err instanceof StoreRequestError && err.statusCode === 404) return undefined;
      throw err;
    }
  }

  /**
   * The saved state and position; undefined when there is none, or when it
   * was computed under other settings (then the next save replaces it).
   */
  async load(): Promise<LoadedCheckpoint | undefined> {
    // A writer that commits while we read supersedes (and then removes) the
    // bucket documents the root we read names: read its new root and start
    // over. The same root with a document missing is a broken checkpoint.
    for (let attempt = 1; ; attempt++) {
      const root = await this.#readRoot();
      this.#root = root;
      try {
        return await this.#loadFrom(root);
      } catch (err) {
        if (!(err instanceof MissingBucketError) || attempt >= LOAD_ATTEMPTS) throw err;
        const now = await this.#readRoot();
        if (now?.generation === root?.generation && now?.tag === root?.tag && now?.savedAt === root?.savedAt) throw err;
        this.log.info({ missing: err.docId, attempt }, 'the checkpoint was replaced while it was read: reading the new one');
      }
    }
  }

  async #loadFrom(root: Root | undefined): Promise<LoadedCheckpoint | undefined> {
    if (!root) return undefined;
    if (root.settings !== this.#settings) {
      this.log.warn({ saved: root.settings, now: this.#settings }, 'segment or retention settings changed: the aggregate is rebuilt from the feed');
      return undefined;
    }
    const ids = Object.entries(root.buckets).map(([key, generation]) => docId(key, generation));
    const state = new AggregateState(this.segments, this.retention);
    for (let i = 0; i < ids.length; i += 500) {
      const answer = await this.store.request<{ rows: { key: string; doc?: BucketJson; error?: string }[] }>({
        method: 'POST',
        db: this.db,
        path: '_all_docs',
        qs: { include_docs: true },
        body: { keys: ids.slice(i, i + 500) },
      });
      for (const row of answer.rows) {
        if (!row.doc) throw new MissingBucketError(row.key);
        let bucket: ReturnType<typeof bucketFromJson>;
        try {
          bucket = bucketFromJson(row.doc);
        } catch (err) {
          if (!(err instanceof CorruptCellError)) throw err;
          // Counting it would put a wrong number on a tile, and dropping the
          // bucket would lose its blobs; the feed holds every blob still kept
          // (KPI_RETENTION_DAYS), so the rebuild loses only older ones.
          this.log.error(
            { doc: row.key, problem: err.message },
            'a checkpoint bucket holds something that is not a count: the aggregate is rebuilt from the feed',
          );
          return undefined;
        }
        state.buckets.set(bucketKey(bucket.start, bucket.size), bucket);
      }
    }
    state.watermark = root.watermark;
    state.applied = AppliedSet.fromJSON(root.applied);
    return { state, seq: root.seq };
  }

  /** Commits a snapshot; throws {@link CheckpointConflictError} if another writer got there first. */
  async save(snapshot: Snapshot): Promise<void> {
    const previous = this.#root;
    const generation = (previous?.generation ?? 0) + 1;
    const tag = `${generation}-${randomBytes(4).toString('hex')}`;
    const buckets: Record<string, string> = {};
    const live = new Set(snapshot.keys);
    for (const [key, gen] of Object.entries(previous?.settings === this.#settings ? previous.buckets : {})) if (live.has(key)) buckets[key] = gen;
    const docs = snapshot.changed.map((b) => {
      const key = bucketKey(b.start, b.size);
      buckets[key] = tag;
      return { ...b, _id: docId(key, tag) };
    });
    for (const key of snapshot.keys) {
      if (buckets[key] === undefined) throw new Error(`bucket ${key} is neither saved nor changed`);
    }
    for (let i = 0; i < docs.length; i += 500) {
      const results = await this.store.request<{ id: string; error?: string; reason?: string }[]>({
        method: 'POST',
        db: this.db,
        path: '_bulk_docs',
        body: { docs: docs.slice(i, i + 500) },
      });
      const failed = results.find((r) => r.error);
      if (failed) throw new Error(`checkpoint bucket write failed: ${failed.error}: ${failed.reason ?? ''}`);
    }
    const root: Root = {
      _id: ROOT_ID,
      ...(previous?._rev ? { _rev: previous._rev } : {}),
      version: 1,
      settings: this.#settings,
      seq: snapshot.seq,
      generation,
      watermark: snapshot.watermark,
      buckets,
      applied: snapshot.applied,
      savedAt: Date.now(),
      tag,
    };
    let answer: { rev: string };
    try {
      answer = await this.store.request<{ rev: string }>({ method: 'PUT', db: this.db, path: ROOT_ID, body: root });
    } catch (err) {
      if (err instanceof StoreRequestError && err.statusCode === 409) throw new CheckpointConflictError('the checkpoint was replaced by another writer');
      throw err;
    }
    this.#root = { ...root, _rev: answer.rev };
    await this.#verifyCommitted(root);
    // Superseded bucket documents are no longer referenced: remove them.
    const superseded = Object.entries(previous?.buckets ?? {})
      .filter(([key, gen]) => buckets[key] !== gen)
      .map(([key, gen]) => docId(key, gen));
    await this.#remove(superseded).catch((err: Error) =>
      this.log.warn({ err: err.message }, 'could not remove superseded checkpoint documents; they go at the next start'),
    );
  }

  /**
   * Reads the root back: another writer's root of the same or a newer
   * generation means this commit lost (two writes at one revision accepted
   * by different copies on a cluster; or a newer checkpoint already). A root
   * of an older generation is a copy the write has not reached yet: it
   * cannot tell, and counts as committed (the next save reads again). The
   * losing writer's bucket documents are orphans the next start removes. On
   * one node, or the embedded store, the loser got 409 and this read finds
   * its own root.
   */
  async #verifyCommitted(root: Root): Promise<void> {
    let current: Root | undefined;
    try {
      current = await this.#readRoot();
    } catch (err) {
      // the write was accepted; the next save's revision check still fences it
      this.log.warn({ err: (err as Error).message }, 'could not read the checkpoint back; counted as saved');
      return;
    }
    if (current === undefined || current.tag === root.tag || current.generation < root.generation) return;
    throw new CheckpointConflictError(`another writer's checkpoint (generation ${current.generation}) won on the cluster`);
  }

  /**
   * Removes bucket documents the root does not reference: left by a crash
   * mid-checkpoint, or by a writer whose commit lost a conflict. The root is
   * read afresh, and a document of a newer generation than the root's is
   * kept: it may belong to a checkpoint being written right now (by this
   * process or another one), whose root is not committed yet.
   */
  async removeOrphans(): Promise<number> {
    const root = await this.#readRoot();
    const referenced = new Set(Object.entries(root?.buckets ?? {}).map(([key, tag]) => docId(key, tag)));
    const generation = root?.generation ?? 0;
    const answer = await this.store.request<{ rows: { id: string }[] }>({
      db: this.db,
      path: '_all_docs',
      qs: { startkey: BUCKET_PREFIX, endkey: `${BUCKET_PREFIX}\uffff` },
    });
    const orphans = answer.rows.map((r) => r.id).filter((id) => !referenced.has(id) && Number.parseInt(id.slice(id.lastIndexOf('/') + 1), 10) <= generation);
    await this.#remove(orphans);
    return orphans.length;
  }

  async #remove(ids: string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += 500) {
      const keys = ids.slice(i, i + 500);
      const answer = await this.store.request<{ rows: { id?: string; value?: { rev: string; deleted?: boolean } }[] }>({
        method: 'POST',
        db: this.db,
        path: '_all_docs',
        body: { keys },
      });
      const docs = answer.rows.filter((r) => r.id && r.value && !r.value.deleted).map((r) => ({ _id: r.id!, _rev: r.value!.rev, _deleted: true }));
      if (docs.length) await this.store.request({ method: 'POST', db: this.db, path: '_bulk_docs', body: { docs } });
    }
  }
}
