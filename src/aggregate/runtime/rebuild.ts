/**
 * Recomputes the aggregate from the stored blobs (the feed from its start)
 * and replaces the checkpoint atomically. A running service notices the
 * replaced checkpoint at its next save and reloads from it, so live and
 * rebuilt aggregates cannot drift apart. Use it after changing segment
 * settings, or to check the live aggregate.
 *
 * Raw blobs do not last forever (src/retention/): what retention removed can
 * no longer be recomputed, but the aggregate still counts it. So a rebuild
 * keeps, from the current checkpoint, every bucket whose raw blobs may be
 * gone, and recomputes the rest:
 *
 * - kept: a bucket that begins before the retention horizon (retention
 *   removed blobs before it; a bucket that straddles it is kept whole), or
 *   that ends at or before the oldest blob still stored (its blobs are gone,
 *   however they went: deleted blobs are not subtracted);
 * - recomputed: every other bucket, from the blobs on the feed;
 * - a stored blob whose time falls in a kept bucket is added to it only if
 *   the checkpoint had not counted it (a late blob, or one the live
 *   aggregate had not reached yet), so nothing counts twice.
 *
 * With no checkpoint under the current settings there is nothing to keep: the
 * rebuild then starts at the oldest stored blob, and says so when retention
 * has removed older ones.
 */
import { defer, lastValueFrom } from 'rxjs';
import { parseBlobDocId } from '../../store/blob-ids.js';
import { Database } from '../../store/database.js';
import type { Store } from '../../store/store.js';
import { readHorizon } from '../../retention/horizon.js';
import { AppliedSet, type AppliedSetJson } from '../model/applied-set.js';
import { CheckpointConflictError, CheckpointStore, snapshotOf } from './checkpoint.js';
import { applyChanges, couchChangesReader, isTransient, withArrivals, type ChangeBatch, type ChangesReader, type FeedChange } from './feed.js';
import { RunRegistry } from '../../deploys/arrivals.js';
import { ensureDatabase } from '../../store/setup.js';
import { retryWithBackoff } from '../../retry.js';
import type { SegmentConfig } from '../model/segments.js';
import type { AggregateSettings } from './settings.js';
import { AggregateState, bucketFromJson, bucketKey, bucketToJson, type RetentionConfig } from '../model/state.js';
import { DAY, HOUR, TEN_MINUTES } from '../../contract/kpis.js';

export interface RebuildOptions extends AggregateSettings {
  /** Told after each batch: changes read so far. */
  onProgress?: (read: number) => void;
  /** Leave the checkpoint alone (compare only). */
  dryRun?: boolean;
}

export interface RebuildResult {
  state: AggregateState;
  seq: unknown;
  changesRead: number;
  counted: number;
  /** Buckets taken from the checkpoint because their raw blobs may be gone. */
  keptBuckets: number;
  /** The retention horizon the rebuild worked with (ms), if retention has removed blobs. */
  horizon: number | undefined;
}

/** How many times a rebuild starts over when retention removes blobs while it reads them. */
const ATTEMPTS = 3;
const BUCKET_SIZES = [TEN_MINUTES, HOUR, DAY] as const;

/** Number of blob documents (design documents excluded), for a progress total. */
export async function blobCount(store: Store, db: string): Promise<number> {
  const blobs = new Database(store, db);
  const info = await blobs.info();
  if (!info) throw new Error(`database ${db} does not exist`);
  const design = await blobs.allDocs({ startkey: '_design/', endkey: '_design0' });
  return info.doc_count - design.length;
}

/**
 * The (10-minute) time of the oldest stored blob: blob ids sort by time, so
 * it is the first id. Undefined when no blob is stored; -Infinity when the
 * first id is not a blob id (then it vouches for nothing).
 */
export async function oldestBlobTime(store: Store, db: string): Promise<number | undefined> {
  const rows = await new Database(store, db).allDocs({ endkey: '_', inclusive_end: false, limit: 1 });
  const first = rows.find((row) => !row.id!.startsWith('_design/'));
  if (!first) return undefined;
  return parseBlobDocId(first.id!)?.time ?? Number.NEGATIVE_INFINITY;
}

/** The union of two applied sets, in the canonical form AppliedSet keeps (sorted ranges that neither overlap nor touch). */
export function unionApplied(a: AppliedSetJson, b: AppliedSetJson): AppliedSetJson {
  const runs: Record<string, number[]> = {};
  for (const run of [...new Set([...Object.keys(a.runs), ...Object.keys(b.runs)])].sort()) {
    const pairs: [number, number][] = [];
    for (const flat of [a.runs[run] ?? [], b.runs[run] ?? []]) for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i]!, flat[i + 1]!]);
    pairs.sort((x, y) => x[0] - y[0]);
    const merged: number[] = [];
    for (const [start, end] of pairs) {
      const last = merged.length - 1;
      if (merged.length > 0 && start <= merged[last]!) merged[last] = Math.max(merged[last]!, end);
      else merged.push(start, end);
    }
    runs[run] = merged;
  }
  return { runs, foreign: [...new Set([...a.foreign, ...b.foreign])].sort() };
}

/**
 * The history a rebuild keeps from a checkpoint, and the rule that keeps
 * blobs from counting twice. Pure: the rebuild feeds it changes.
 *
 * @example
 * const history = new KeptHistory(checkpoint.state, (b) => b.start < horizon, segments, retention);
 * for (const batch of feed) applyChanges(history.state, history.uncounted(batch.changes));
 * const state = history.finish();
 */
export class KeptHistory {
  /** The rebuilt state: the kept buckets, and what is applied to it. */
  readonly state: AggregateState;
  readonly keptBuckets: number;
  readonly #keys = new Set<string>();
  readonly #counted: AppliedSet | undefined;

  constructor(
    checkpoint: AggregateState | undefined,
    keep: (bucket: { start: number; size: number }) => boolean,
    segments: SegmentConfig,
    retention: RetentionConfig,
  ) {
    this.state = new AggregateState(segments, retention);
    for (const [key, bucket] of checkpoint?.buckets ?? []) {
      if (!keep(bucket)) continue;
      // a copy (late blobs may be added to it), saved as part of the new state like every recomputed bucket
      this.state.buckets.set(key, { ...bucketFromJson(bucketToJson(bucket)), version: ++this.state.version });
      this.#keys.add(key);
    }
    this.keptBuckets = this.#keys.size;
    this.#counted = checkpoint?.applied;
    // kept buckets have the sizes of the checkpoint's watermark; it only grows from there
    if (checkpoint && this.keptBuckets > 0) this.state.watermark = checkpoint.watermark;
  }

  /** The changes still to count: those of blobs a kept bucket already counts are dropped. */
  uncounted(changes: FeedChange[]): FeedChange[] {
    if (this.keptBuckets === 0) return changes;
    return changes.filter((change) => !this.#countedInKeptBucket(change));
  }

  #countedInKeptBucket(change: FeedChange): boolean {
    const time = change.doc?.timestamp;
    if (typeof time !== 'number' || !this.#counted!.has(change.id)) return false;
    // buckets never overlap, so the blob was counted in the one bucket holding its time
    return BUCKET_SIZES.some((size) => this.#keys.has(bucketKey(Math.floor(time / size) * size, size)));
  }

  /**
   * The rebuilt state. It also remembers every blob the kept buckets count,
   * including those whose raw blobs are gone, so that counting stays exactly
   * once whatever the feed replays.
   */
  finish(): AggregateState {
    this.state.downsample();
    if (this.#counted) this.state.applied = AppliedSet.fromJSON(unionApplied(this.state.applied.toJSON(), this.#counted.toJSON()));
    return this.state;
  }
}

const iso = (time: number | undefined) => (time === undefined || !Number.isFinite(time) ? String(time) : new Date(time).toISOString());

/** Reads the checkpoint, the horizon and the oldest stored blob, and decides what to keep. */
async function historyToKeep(options: RebuildOptions, checkpoints: CheckpointStore): Promise<{ history: KeptHistory; horizon: number | undefined }> {
  const horizon = await readHorizon(options.store, options.blobsDb);
  const loaded = await checkpoints.load();
  const oldest = await oldestBlobTime(options.store, options.blobsDb);
  const keep = (bucket: { start: number; size: number }) =>
    (horizon !== undefined && bucket.start < horizon) || oldest === undefined || bucket.start + bucket.size <= oldest;
  const history = new KeptHistory(loaded?.state, keep, options.segments, options.retention);
  if (!loaded && horizon !== undefined) {
    options.log.warn(
      { horizon: iso(horizon) },
      'no checkpoint under the current settings: blobs before the retention horizon are gone, so the rebuilt aggregate starts at the oldest stored blob',
    );
  } else if (history.keptBuckets > 0) {
    options.log.info(
      { keptBuckets: history.keptBuckets, horizon: iso(horizon), oldestBlob: iso(oldest) },
      'rebuild keeps the checkpoint buckets whose raw blobs may be gone',
    );
  }
  return { history, horizon };
}

/** A read that meets a slow or absent store is tried again (0.5, 1, 2, 4 s later) before the rebuild gives up. */
function readRetrying(read: ChangesReader, since: unknown, signal: AbortSignal): Promise<ChangeBatch> {
  return lastValueFrom(defer(() => read(since, signal)).pipe(retryWithBackoff({ initialMs: 500, maxMs: 4000, retries: 4, shouldRetry: isTransient })));
}

export async function rebuild(options: RebuildOptions): Promise<RebuildResult> {
  const couch = couchChangesReader(options.store, options.blobsDb, { limit: options.batchSize, longpollMs: 0 });
  const runs = options.deploysDb !== undefined ? new RunRegistry(new Database(options.store, options.deploysDb)) : undefined;
  if (options.deploysDb !== undefined) await ensureDatabase(options.store, options.deploysDb);
  const read = runs ? withArrivals(couch, runs) : couch;
  const afterOf = runs && ((id: string) => runs.afterOf(id));
  const checkpoints = new CheckpointStore(options.store, options.stateDb, options.segments, options.retention, options.log);
  const abort = new AbortController();
  for (let attempt = 1; ; attempt++) {
    const { history, horizon } = await historyToKeep(options, checkpoints);
    let seq: unknown = 0;
    let changesRead = 0;
    let counted = 0;
    for (;;) {
      const batch = await readRetrying(read, seq, abort.signal);
      counted += applyChanges(history.state, history.uncounted(batch.changes), afterOf).counted;
      changesRead += batch.changes.length;
      seq = batch.lastSeq;
      options.onProgress?.(changesRead);
      if (batch.changes.length === 0 || batch.caughtUp) break;
    }
    // Retention moved on while the feed was read: blobs it removed meanwhile
    // were neither in the kept buckets nor read. Start over.
    const horizonAfter = await readHorizon(options.store, options.blobsDb);
    if (horizonAfter !== horizon) {
      if (attempt >= ATTEMPTS)
        throw new Error(`retention removed blobs during each of ${ATTEMPTS} rebuild attempts; run the rebuild again between retention passes`);
      options.log.warn({ before: iso(horizon), after: iso(horizonAfter), attempt }, 'retention removed blobs while the rebuild read them; starting over');
      continue;
    }
    const state = history.finish();
    if (!options.dryRun) await replaceCheckpoint(checkpoints, state, seq);
    return { state, seq, changesRead, counted, keptBuckets: history.keptBuckets, horizon };
  }
}

async function replaceCheckpoint(checkpoints: CheckpointStore, state: AggregateState, seq: unknown): Promise<void> {
  await checkpoints.ensureDb();
  for (let attempt = 1; ; attempt++) {
    await checkpoints.load(); // learns the current root's revision
    try {
      await checkpoints.save(snapshotOf(state, seq, 0), { replace: true });
      break;
    } catch (err) {
      // a running service saved in between: take its new revision and replace it again
      if (!(err instanceof CheckpointConflictError) || attempt >= 5) throw err;
    }
  }
  await checkpoints.removeOrphans();
}
