/**
 * Recomputes the whole aggregate from the stored blobs (the feed from its
 * start) and replaces the checkpoint atomically. A running service notices
 * the replaced checkpoint at its next save and reloads from it, so live and
 * rebuilt aggregates cannot drift apart. Use it after changing segment
 * settings, or to check the live aggregate.
 */
import type { Store } from '../store/store.js';
import { CheckpointConflictError, CheckpointStore, snapshotOf } from './checkpoint.js';
import { applyChanges, couchChangesReader } from './feed.js';
import type { AggregateSettings } from './settings.js';
import { AggregateState } from './state.js';

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
}

/** Number of blob documents (design documents excluded), for a progress total. */
export async function blobCount(store: Store, db: string): Promise<number> {
  const info = await store.request<{ doc_count: number }>({ db });
  const design = await store.request<{ rows: unknown[] }>({ db, path: '_all_docs', qs: { startkey: '_design/', endkey: '_design0' } });
  return info.doc_count - design.rows.length;
}

export async function rebuild(options: RebuildOptions): Promise<RebuildResult> {
  const read = couchChangesReader(options.store, options.blobsDb, { limit: options.batchSize, longpollMs: 0 });
  const state = new AggregateState(options.segments, options.retention);
  const abort = new AbortController();
  let seq: unknown = 0;
  let changesRead = 0;
  let counted = 0;
  for (;;) {
    const batch = await read(seq, abort.signal);
    counted += applyChanges(state, batch.changes).counted;
    changesRead += batch.changes.length;
    seq = batch.lastSeq;
    options.onProgress?.(changesRead);
    if (batch.changes.length === 0 || batch.caughtUp) break;
  }
  if (!options.dryRun) {
    const checkpoints = new CheckpointStore(options.store, options.stateDb, options.segments, options.retention, options.log);
    await checkpoints.ensureDb();
    for (let attempt = 1; ; attempt++) {
      await checkpoints.load(); // learns the current root's revision
      try {
        await checkpoints.save(snapshotOf(state, seq, 0));
        break;
      } catch (err) {
        // a running service saved in between: take its new revision and replace it again
        if (!(err instanceof CheckpointConflictError) || attempt >= 5) throw err;
      }
    }
    await checkpoints.removeOrphans();
  }
  return { state, seq, changesRead, counted };
}
