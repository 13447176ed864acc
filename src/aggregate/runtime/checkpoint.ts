/**
 * Saving the aggregate and its feed position together, atomically, in
 * CouchDB, so a restart resumes exactly where the saved state ends. The one
 * codec of the checkpoint documents: the follower writes and loads them here,
 * and a standby reads them here too (standby.ts).
 *
 * CouchDB has no multi-document transactions, but one document update is
 * atomic. So a checkpoint is written like a shadow page:
 * 1. the buckets changed since the last checkpoint are written as new,
 *    immutable documents `b/<start>/<size>/<generation>-<random>` (a
 *    deploy's arrival bucket: `b/a/<deploy id>/<generation>-<random>`);
 * 2. one root document, `kpi-live-aggregate`, is replaced: it names the tag
 *    of every bucket, and holds the feed position, the watermark and the
 *    applied-blob set. Writing it is the commit.
 * A crash between 1 and 2 leaves the old root pointing at old documents,
 * which are still there: the old checkpoint is intact, and the unreferenced
 * new documents are removed at the next start. The documents a commit
 * supersedes are removed one commit later (the root lists them as
 * `retired`), so a root that conflicts with it on a cluster, which descends
 * from the same parent, still finds every document it names.
 *
 * The fence. The root is a normal document, updated with its `_rev`, so on
 * one node two writers cannot both win: the loser gets 409, and
 * {@link CheckpointConflictError}. (It is not a `_local` document: CouchDB
 * keeps no revisions for those, a stale `_rev` is accepted there, and a
 * rebuild's replace would be overwritten by the running service unnoticed.)
 * On a cluster two writes at one revision can both be kept, as conflicting
 * leaves of the root; CouchDB's own winner is arbitrary, so the checkpoint
 * picks by a rule of its own ({@link compareRoots}): the higher `era` (a
 * rebuild's replace starts a new era), then the higher generation, then the
 * tag. Every commit is read back with all leaves: a writer whose root is not
 * the pick lost, as if it got 409; the winner deletes the other leaves.
 * Readers apply the same rule, and a leaf whose bucket documents are gone
 * (another writer removed what it had superseded) is passed over for the next.
 *
 * The root also records a hash of the segment configuration and retention;
 * a state computed under other settings is not loaded (the aggregate is
 * then rebuilt from the feed).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Log } from '../../log.js';
import { ConflictError, Database } from '../../store/database.js';
import { ensureDatabase } from '../../store/setup.js';
import type { Store } from '../../store/store.js';
import { AppliedSet, type AppliedSetJson } from '../model/applied-set.js';
import { CorruptCellError } from '../model/cell.js';
import type { SegmentConfig } from '../model/segments.js';
import { AggregateState, bucketFromJson, bucketToJson, keyOf, type Bucket, type BucketJson, type RetentionConfig } from '../model/state.js';

export const ROOT_ID = 'kpi-live-aggregate';
/** Where versions before the normal-document root kept it; loaded once, then removed. */
export const LEGACY_ROOT_ID = '_local/kpi-live-aggregate';
const BUCKET_PREFIX = 'b/';

/** The checkpoint root. */
export interface Root {
  _id: string;
  _rev?: string;
  version: 1;
  settings: string;
  seq: unknown;
  /** Raised by every replace (a rebuild): a root of a higher era wins any conflict. Missing: 0. */
  era?: number;
  generation: number;
  watermark: number;
  /** bucket key → tag of its document (`<generation>-<random>`: unique per writer) */
  buckets: Record<string, string>;
  applied: AppliedSetJson;
  savedAt: number;
  /** Unique per commit: tells this writer's root from another writer's of the same generation. */
  tag?: string;
  /** Bucket documents this commit superseded: the next commit removes them. */
  retired?: string[];
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
    keys: state.allKeys(),
    changed: [...state.changedSince(sinceVersion), ...state.arrivalsChangedSince(sinceVersion)].map(bucketToJson),
    applied: state.applied.toJSON(),
    version: state.version,
  };
}

/** The document of bucket `key` under `tag`. */
export const bucketDocId = (key: string, tag: string) => `${BUCKET_PREFIX}${key}/${tag}`;

export function settingsHash(segments: SegmentConfig, retention: RetentionConfig): string {
  return createHash('sha256').update(JSON.stringify({ segments, retention })).digest('hex').slice(0, 16);
}

/** Order of roots that conflict: era, then generation, then tag; the greatest is the checkpoint. */
export function compareRoots(a: Root, b: Root): number {
  return (a.era ?? 0) - (b.era ?? 0) || a.generation - b.generation || ((a.tag ?? '') < (b.tag ?? '') ? -1 : (a.tag ?? '') > (b.tag ?? '') ? 1 : 0);
}

/** The same commit: a root read back is the one written. */
export const sameRoot = (a: Root | undefined, b: Root | undefined): boolean =>
  a !== undefined && b !== undefined && a.tag === b.tag && a.generation === b.generation && a.savedAt === b.savedAt;

/** The checkpoint root's leaves, best first by {@link compareRoots}; the legacy `_local` root when there is no other. */
export async function readRoots(db: Database): Promise<Root[]> {
  const leaves = await db.leaves<Root>(ROOT_ID);
  if (leaves.length > 0) return leaves.sort((a, b) => compareRoots(b, a));
  const legacy = await db.get<Root>(LEGACY_ROOT_ID);
  return legacy ? [{ ...legacy, _rev: undefined } as Root] : [];
}

/** A bucket document a checkpoint root names is not in the store. */
export class MissingBucketError extends Error {
  override readonly name = 'MissingBucketError';
  constructor(readonly docId: string) {
    super(`checkpoint is missing bucket document ${docId}`);
  }
}

/**
 * The bucket documents of `entries` (bucket key → tag), checked: a missing
 * one throws {@link MissingBucketError}, one that holds another bucket or
 * something that is not a count throws (CorruptCellError for the latter).
 */
export async function readBuckets(db: Database, entries: readonly [string, string][]): Promise<Map<string, Bucket>> {
  const buckets = new Map<string, Bucket>();
  const rows = await db.getMany<BucketJson>(entries.map(([key, tag]) => bucketDocId(key, tag)));
  rows.forEach((row, i) => {
    if (!row.doc) throw new MissingBucketError(row.id);
    const bucket = bucketFromJson(row.doc);
    const key = entries[i]![0];
    if (keyOf(bucket) !== key) throw new Error(`checkpoint bucket document ${row.id} holds bucket ${keyOf(bucket)}`);
    buckets.set(key, bucket);
  });
  return buckets;
}

export interface LoadedCheckpoint {
  state: AggregateState;
  seq: unknown;
}

/** Reads of a checkpoint that another writer keeps replacing, before giving up. */
const LOAD_ATTEMPTS = 5;

/**
 * The embedded store keeps every revision of the root (each names every
 * bucket) until it is compacted, and never compacts by itself: it is asked
 * to after this many commits. CouchDB 3's compaction daemon does it there.
 */
export const COMPACT_EVERY_COMMITS = 500;

export class CheckpointStore {
  /** The root this writer last loaded or committed. */
  #root: Root | undefined;
  readonly #settings: string;
  readonly #db: Database;
  #commits = 0;

  constructor(
    readonly store: Store,
    readonly db: string,
    readonly segments: SegmentConfig,
    readonly retention: RetentionConfig,
    readonly log: Log,
  ) {
    this.#settings = settingsHash(segments, retention);
    this.#db = new Database(store, db);
  }

  /** Creates the database when missing. */
  async ensureDb(): Promise<void> {
    await ensureDatabase(this.store, this.db);
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
      const roots = await readRoots(this.#db);
      this.#root = roots[0];
      let missing: MissingBucketError | undefined;
      for (const root of roots) {
        try {
          const loaded = await this.#loadFrom(root);
          // the leaf loaded is the one the next commit replaces (its revision is the fence)
          this.#root = root;
          return loaded;
        } catch (err) {
          if (!(err instanceof MissingBucketError)) throw err;
          missing ??= err;
          if (roots.length > 1)
            this.log.warn({ missing: err.docId, leaves: roots.length }, 'a conflicting checkpoint root names removed documents: trying the next');
        }
      }
      if (!missing) return undefined;
      if (attempt >= LOAD_ATTEMPTS) throw missing;
      const now = (await readRoots(this.#db))[0];
      if (sameRoot(now, roots[0])) throw missing;
      this.log.info({ missing: missing.docId, attempt }, 'the checkpoint was replaced while it was read: reading the new one');
    }
  }

  async #loadFrom(root: Root | undefined): Promise<LoadedCheckpoint | undefined> {
    if (!root) return undefined;
    if (root.settings !== this.#settings) {
      this.log.warn({ saved: root.settings, now: this.#settings }, 'segment or retention settings changed: the aggregate is rebuilt from the feed');
      return undefined;
    }
    let buckets: Map<string, Bucket>;
    try {
      buckets = await readBuckets(this.#db, Object.entries(root.buckets));
    } catch (err) {
      if (!(err instanceof CorruptCellError)) throw err;
      // Counting it would put a wrong number on a tile, and dropping the
      // bucket would lose its blobs; the feed holds every blob still kept
      // (KPI_RETENTION_DAYS), so the rebuild loses only older ones.
      this.log.error({ problem: err.message }, 'a checkpoint bucket holds something that is not a count: the aggregate is rebuilt from the feed');
      return undefined;
    }
    const state = new AggregateState(this.segments, this.retention);
    for (const [key, bucket] of buckets) state.putBucket(key, bucket);
    state.watermark = root.watermark;
    state.applied = AppliedSet.fromJSON(root.applied);
    return { state, seq: root.seq };
  }

  /**
   * Commits a snapshot on top of the root this writer loaded or committed
   * last; throws {@link CheckpointConflictError} if another writer got there
   * first. `replace` (a rebuild) starts a new era, which wins any conflict
   * with a commit of an older one.
   */
  async save(snapshot: Snapshot, options: { replace?: boolean } = {}): Promise<void> {
    const previous = this.#root;
    const generation = (previous?.generation ?? 0) + 1;
    const era = (previous?.era ?? 0) + (options.replace ? 1 : 0);
    const tag = `${generation}-${randomBytes(4).toString('hex')}`;
    const buckets: Record<string, string> = {};
    const live = new Set(snapshot.keys);
    for (const [key, gen] of Object.entries(previous?.settings === this.#settings ? previous.buckets : {})) if (live.has(key)) buckets[key] = gen;
    const docs = snapshot.changed.map((b) => {
      const key = keyOf(b);
      buckets[key] = tag;
      return { ...b, _id: bucketDocId(key, tag) };
    });
    for (const key of snapshot.keys) {
      if (buckets[key] === undefined) throw new Error(`bucket ${key} is neither saved nor changed`);
    }
    for (let i = 0; i < docs.length; i += 500) {
      const results = await this.#db.bulk(docs.slice(i, i + 500));
      const failed = results.find((r) => r.error);
      if (failed) throw new Error(`checkpoint bucket write failed: ${failed.error}: ${failed.reason ?? ''}`);
    }
    const retired = Object.entries(previous?.buckets ?? {})
      .filter(([key, t]) => buckets[key] !== t)
      .map(([key, t]) => bucketDocId(key, t));
    const root: Root = {
      _id: ROOT_ID,
      ...(previous?._rev ? { _rev: previous._rev } : {}),
      version: 1,
      settings: this.#settings,
      seq: snapshot.seq,
      era,
      generation,
      watermark: snapshot.watermark,
      buckets,
      applied: snapshot.applied,
      savedAt: Date.now(),
      tag,
      retired,
    };
    let rev: string;
    try {
      rev = await this.#db.put(root);
    } catch (err) {
      if (err instanceof ConflictError) throw new CheckpointConflictError('the checkpoint was replaced by another writer');
      throw err;
    }
    this.#root = { ...root, _rev: rev };
    const others = await this.#verifyCommitted(this.#root);
    // What the commit before this one superseded is referenced by neither
    // root now (nor by a root that conflicts with this one: it descends from
    // the same parent), except by a leaf still standing that this commit
    // could not delete.
    const kept = new Set(others.flatMap((leaf) => Object.entries(leaf.buckets).map(([key, t]) => bucketDocId(key, t))));
    const removable = (previous?.retired ?? []).filter((id) => !kept.has(id));
    await this.#db
      .removeMany(removable)
      .catch((err: Error) => this.log.warn({ err: err.message }, 'could not remove superseded checkpoint documents; they go at the next start'));
    if (previous && previous._rev === undefined && previous._id === LEGACY_ROOT_ID) await this.#removeLegacyRoot();
    if (this.store.kind === 'embedded' && ++this.#commits % COMPACT_EVERY_COMMITS === 0)
      await this.#db.compact().catch((err: Error) => this.log.warn({ err: err.message }, 'could not compact the checkpoint database; tried again later'));
  }

  /**
   * Reads the root back with all its leaves. Another writer's root that wins
   * by {@link compareRoots} means this commit lost (two writes at one
   * revision kept by different copies on a cluster, or a newer checkpoint
   * already). A read that does not show this commit and shows nothing that
   * beats it is a copy the write has not reached yet: it cannot tell, and
   * counts as committed (the next save reads again). The winner deletes the
   * other leaves; those it could not delete are returned. The losing
   * writer's bucket documents are orphans the next start removes.
   */
  async #verifyCommitted(root: Root): Promise<Root[]> {
    let leaves: Root[];
    try {
      leaves = await readRoots(this.#db);
    } catch (err) {
      // the write was accepted; the next save's revision check still fences it
      this.log.warn({ err: (err as Error).message }, 'could not read the checkpoint back; counted as saved');
      return [];
    }
    const best = leaves[0];
    if (best && !sameRoot(best, root) && compareRoots(best, root) > 0) {
      throw new CheckpointConflictError(`another writer's checkpoint (era ${best.era ?? 0}, generation ${best.generation}) won on the cluster`);
    }
    const mine = leaves.find((leaf) => sameRoot(leaf, root));
    if (!mine || leaves.length === 1) return [];
    this.#root = mine;
    const left = await this.#db.resolve(mine, leaves);
    if (left.length) this.log.warn({ revisions: left.length }, 'could not remove the losing leaves of the checkpoint root; the next commit tries again');
    return leaves.filter((leaf) => left.includes(leaf._rev ?? ''));
  }

  /** The root of an older version is not needed once a normal root is committed. */
  async #removeLegacyRoot(): Promise<void> {
    const legacy = await this.#db.get<Root>(LEGACY_ROOT_ID).catch(() => undefined);
    if (legacy?._rev) await this.#db.remove(LEGACY_ROOT_ID, legacy._rev).catch(() => undefined);
  }

  /**
   * Removes bucket documents no root leaf references: left by a crash
   * mid-checkpoint, or by a writer whose commit lost a conflict. The roots
   * are read afresh, and a document of a newer generation than the best
   * root's is kept: it may belong to a checkpoint being written right now
   * (by this process or another one), whose root is not committed yet.
   */
  async removeOrphans(): Promise<number> {
    const roots = await readRoots(this.#db);
    const referenced = new Set(roots.flatMap((root) => Object.entries(root.buckets).map(([key, tag]) => bucketDocId(key, tag))));
    const generation = Math.max(0, ...roots.map((root) => root.generation));
    const rows = await this.#db.allDocs({ startkey: BUCKET_PREFIX, endkey: `${BUCKET_PREFIX}\uffff` });
    const orphans = rows.map((r) => r.id!).filter((id) => !referenced.has(id) && Number.parseInt(id.slice(id.lastIndexOf('/') + 1), 10) <= generation);
    await this.#db.removeMany(orphans);
    return orphans.length;
  }
}
