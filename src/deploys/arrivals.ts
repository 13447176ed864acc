/**
 * Which blobs arrived after a deploy, exactly, without storing any finer
 * time per blob than its 10-minute timestamp.
 *
 * Blob ids already carry an ingest *run* (src/store/blob-ids.ts). An ingest
 * process starts a new run whenever it learns of a deploy marker, and
 * before the run's first blob is written it records which deploys the run
 * comes after: `run/<run>` in the deploys database, `{after: [{id, at}]}`,
 * the markers of the last {@link ARRIVAL_WINDOW_MS} it knew of. A blob is
 * "after deploy D" iff its run's record lists D. So:
 *
 * - the instance that takes `POST /api/deploys` starts its new run before it
 *   answers 201: what it acknowledges after that answer is after D; other
 *   instances learn of D within their poll of the deploys database (about a
 *   second) and start theirs then;
 * - the classification is a property of the blob's id and of records that
 *   exist before the blob does, so every instance, a restart, a replay of
 *   the feed and a rebuild classify every blob alike, and the applied set
 *   still counts each once;
 * - a run without a record (blobs of an older version, imported blobs) is
 *   after no deploy.
 *
 * The aggregate keeps, per deploy, one cell of the blobs after it whose
 * bucket lies within {@link ARRIVAL_WINDOW_MS} of the deploy (state.ts),
 * checkpointed like any bucket. A record names deploys, never a time or a
 * blob; what a run id tells of a blob is which deploy markers its ingest
 * process knew when it took it (PRIVACY.md).
 */
import { ARRIVAL_WINDOW_MS } from '../contract/verdict.js';
import { runAndCounter } from '../store/blob-ids.js';
import type { Database } from '../store/database.js';

/** A deploy as an arrival record names it. */
export interface ArrivalDeploy {
  id: string;
  /** When it went out, ms. */
  at: number;
}

export interface RunRecord {
  _id: string;
  _rev?: string;
  /** The deploys of the arrival window this run comes after, oldest first. */
  after: ArrivalDeploy[];
}

const RUN_PREFIX = 'run/';
export const runRecordId = (run: string): string => `${RUN_PREFIX}${run}`;

/** The deploys among `known` a run started at `now` comes after: those of the arrival window, oldest first. */
export function deploysToRecord(known: readonly ArrivalDeploy[], now: number): ArrivalDeploy[] {
  return known
    .filter((d) => d.at <= now && d.at > now - ARRIVAL_WINDOW_MS)
    .map((d) => ({ id: d.id, at: d.at }))
    .sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1));
}

/** Writes a run's record (before the run's first blob). */
export async function recordRun(db: Database, run: string, after: readonly ArrivalDeploy[]): Promise<void> {
  const record: RunRecord = { _id: runRecordId(run), after: [...after] };
  await db.put(record);
}

const NONE: readonly ArrivalDeploy[] = Object.freeze([]);

/**
 * The aggregate's view of the run records: which deploys a blob arrived
 * after. {@link prepare} reads the records of runs not seen yet (one
 * request per batch of changes, records never change once written), then
 * {@link afterOf} answers synchronously.
 *
 * @example
 * await runs.prepare(batch.changes.map((c) => c.id));
 * runs.afterOf('2026-11-23T12:10:00.000Z_k3v9x0c1q8-1z4'); // [{ id: 'deploy/…', at: … }]
 */
export class RunRegistry {
  readonly #runs = new Map<string, readonly ArrivalDeploy[]>();

  constructor(private readonly db: Database) {}

  /** Reads the records of the runs of these blob ids that are not known yet. */
  async prepare(ids: Iterable<string>): Promise<void> {
    const missing = new Set<string>();
    for (const id of ids) {
      const parsed = runAndCounter(id);
      if (parsed && !this.#runs.has(parsed.run)) missing.add(parsed.run);
    }
    if (missing.size === 0) return;
    const runs = [...missing];
    const rows = await this.db.getMany<RunRecord>(runs.map(runRecordId));
    rows.forEach((row, i) => this.#runs.set(runs[i]!, row.doc?.after?.length ? validAfter(row.doc.after) : NONE));
  }

  /** The deploys a blob arrived after (its run must have been prepared; unknown: none). */
  afterOf(blobId: string): readonly ArrivalDeploy[] {
    const parsed = runAndCounter(blobId);
    return (parsed && this.#runs.get(parsed.run)) || NONE;
  }

  /** Runs known (for tests and status). */
  get size(): number {
    return this.#runs.size;
  }
}

/** Only well-formed entries of a record (it is read from the store). */
function validAfter(after: unknown[]): readonly ArrivalDeploy[] {
  return after.filter(
    (d): d is ArrivalDeploy => typeof d === 'object' && d !== null && typeof (d as ArrivalDeploy).id === 'string' && Number.isFinite((d as ArrivalDeploy).at),
  );
}
