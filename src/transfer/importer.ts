/**
 * Loading blobs from a source into the blob database, idempotently.
 *
 * Every blob goes through ingest's one validation, {@link normalizeBlob}
 * (schema, plausibility, 10-minute rounding, minimisation), with an age and
 * future window of the import's own (historical data is the point), and
 * blobs of buckets that retention already removes are refused. What is
 * refused is reported with its position and field, and skipped.
 *
 * What is already there is not stored again. Imported blobs are matched by
 * content, bucket by bucket: each bucket's imported blobs live under one run
 * derived from the bucket (import-ids.ts). Before writing blobs of a bucket,
 * the importer reads that run's documents once (one `_all_docs` range) and
 * keeps a count per content digest. A blob whose digest is counted there
 * takes one of those (it is "already there"); any other is written under the
 * run's next counter. So the database holds, per bucket, as many copies of a
 * blob as the source with the most copies brought: two identical blobs in
 * one source are both stored, a re-run stores nothing, and overlapping
 * ranges, or the same data from an export file and from the range API, do
 * not double anything. Blobs kpi-live took in itself (ingest runs) are not
 * looked at: import ranges that kpi-live did not collect.
 *
 * Writes are `_bulk_docs` batches. A `conflict` answer means another writer
 * (a second import running at once) took that id first: if it holds the same
 * blob, ours is already there; if not, ours gets a later counter.
 *
 * For the aggregate, an imported blob is like any other: it reaches it on
 * `_changes`, and its id is counted once (src/aggregate/model/applied-set.ts). As
 * counters are dense per run, the applied set keeps about one range per
 * imported bucket: 144 a day of history, whatever the number of blobs.
 *
 * Memory: one batch of blobs, plus per bucket met its run, next counter and
 * the digests of its earlier imported blobs not matched yet (for a re-run of
 * a source in time order, about one bucket's worth at a time).
 */
import { retentionCutoff } from '../retention/retention.js';
import { retrying } from '../retry.js';
import { sleep } from '../sleep.js';
import { Database } from '../store/database.js';
import { StoreUnavailableError, type Store } from '../store/store.js';
import { blobDigest } from './import-ids.js';
import { ImportLedgers, type WithRetries } from './import-ledgers.js';
import { screenItem, topField, type Pending, type ScreenRules } from './import-screen.js';
import type { SourceItem } from './sources.js';

export { topField } from './import-screen.js';

export interface ImportCounts {
  /** Items read from the source. */
  read: number;
  /** Blobs written. */
  stored: number;
  /** Blobs found already imported (a re-run, an overlapping range). */
  alreadyThere: number;
  /** Items refused by validation (see `refusedByField`). */
  refused: number;
  /** Blobs the store refused (not a conflict), or could not take after retries. */
  failed: number;
  /** Items whose timestamp lies outside the asked range. */
  outside: number;
}

export interface ImportSummary extends ImportCounts {
  /** Refusals per field, by its top-level name (`timestamp`, `event_stream`, `json`, …). */
  refusedByField: Record<string, number>;
  seconds: number;
  /** Items read per second. */
  ratePerSec: number;
  /** Why the import stopped early (the source or the store failed, or it was interrupted); undefined when it read the whole source. */
  error?: string;
  /** Position of the last item read, when it stopped early. */
  stoppedAfter?: string;
}

/** One item not imported, and why. */
export interface Refusal {
  position: string;
  /** Field at fault as the source has it (`event_stream[2][1]`), `json`, or `store`. */
  field: string;
  message: string;
}

export interface ImportOptions {
  store: Store;
  /** The blob database; the store's by default. */
  db?: string;
  /** Only blobs whose timestamp as sent is in [start, end); the others are counted as `outside`. */
  range?: { start?: number; end?: number };
  /** Oldest accepted timestamp as an age, ms; no limit by default. */
  maxAgeMs?: number;
  /** Latest accepted timestamp as ms ahead of now (ingest's tolerance, KPI_MAX_BLOB_FUTURE_MINUTES). */
  maxFutureMs: number;
  /** KPI_RETENTION_DAYS: blobs of buckets a retention pass would remove at once are refused. Unset: no such check. */
  retentionDays?: number;
  /** Keeps this source's blobs apart from other sources' in matching (see docs/operations.md, Import and export); '' by default. */
  sourceLabel?: string;
  /** Blobs per `_bulk_docs` write; 500. */
  batchSize?: number;
  /** Retries of a store request that found the store unavailable; 5. */
  storeRetries?: number;
  /** First retry delay, doubled each time; 500 ms. */
  retryDelayMs?: number;
  /** Stops reading at the next item; what was read is still written. */
  signal?: AbortSignal;
  now?: () => number;
  onProgress?: (counts: ImportCounts) => void;
  onRefused?: (refusal: Refusal) => void;
}

const CONFLICT_ROUNDS = 10;

/** Tallies what an import did with each item, and tells the caller of each refusal. */
class Tally {
  readonly counts: ImportCounts = { read: 0, stored: 0, alreadyThere: 0, refused: 0, failed: 0, outside: 0 };
  readonly refusedByField: Record<string, number> = {};

  constructor(private readonly onRefused: ImportOptions['onRefused']) {}

  refuse(position: string, field: string, message: string): void {
    this.counts.refused++;
    const top = topField(field);
    this.refusedByField[top] = (this.refusedByField[top] ?? 0) + 1;
    this.onRefused?.({ position, field, message });
  }

  fail(p: Pending, message: string): void {
    this.counts.failed++;
    this.onRefused?.({ position: p.position, field: 'store', message });
  }

  /** Blobs whose fate is known: stored, already there, or failed. */
  get settled(): number {
    return this.counts.stored + this.counts.alreadyThere + this.counts.failed;
  }
}

/**
 * Settles batches of valid blobs, one at a time and in order: blobs already
 * there are matched, the others get ids and are written, conflicts settled.
 */
class BatchWriter {
  constructor(
    private readonly database: Database,
    private readonly ledgers: ImportLedgers,
    private readonly withRetries: WithRetries,
    private readonly tally: Tally,
  ) {}

  async settle(batch: Pending[]): Promise<void> {
    if (batch.length === 0) return;
    const settledBefore = this.tally.settled;
    try {
      await this.ledgers.load(batch.map((p) => p.bucket));
      const toWrite: Pending[] = [];
      for (const p of batch) {
        if (this.ledgers.matchExisting(p)) {
          this.tally.counts.alreadyThere++;
        } else {
          this.ledgers.assignId(p);
          toWrite.push(p);
        }
      }
      await this.write(toWrite);
    } catch (err) {
      // what this batch did not settle is not written (or not known to be)
      this.tally.counts.failed += batch.length - (this.tally.settled - settledBefore);
      throw err;
    }
  }

  /** Writes blobs with their ids; sorts the answers; settles conflicts. */
  private async write(batch: Pending[], round = 1): Promise<void> {
    if (batch.length === 0) return;
    const { counts } = this.tally;
    const answer = await this.withRetries(
      () => this.database.bulk(batch.map((p) => p.doc)),
      () => batch.forEach((p) => (p.attempted = true)),
    );
    const byId = new Map(answer.map((result) => [result.id, result]));
    const conflicts: Pending[] = [];
    for (const p of batch) {
      const result = byId.get(p.doc._id);
      if (!result) this.tally.fail(p, 'the store gave no answer for this blob');
      else if (!result.error) counts.stored++;
      else if (result.error === 'conflict') conflicts.push(p);
      else this.tally.fail(p, `the store refused it: ${result.error}${result.reason ? `: ${result.reason}` : ''}`);
    }
    if (conflicts.length === 0) return;

    const there = await this.withRetries(() => this.database.getMany<object>(conflicts.map((p) => p.doc._id)));
    const docs = new Map(there.map((row) => [row.id, row.doc]));
    const again: Pending[] = [];
    for (const p of conflicts) {
      const existing = docs.get(p.doc._id);
      if (existing && blobDigest(existing) === p.digest) {
        // the same blob: ours, from a write whose answer was lost, or another import's
        if (p.attempted) counts.stored++;
        else counts.alreadyThere++;
      } else {
        again.push(p);
      }
    }
    if (again.length === 0) return;
    if (round >= CONFLICT_ROUNDS) {
      again.forEach((p) => this.tally.fail(p, `its id was taken by another writer ${CONFLICT_ROUNDS} times`));
      return;
    }
    // another writer moved the run on: let its write land, then continue after its highest counter
    await sleep(Math.random() * 50);
    await this.ledgers.catchUp(again.map((p) => p.bucket));
    again.forEach((p) => this.ledgers.assignId(p));
    await this.write(again, round + 1);
  }
}

/**
 * Imports the items of a source; resolves with the counts once everything
 * read is written (or refused). Does not throw for the source's or the
 * store's failures: the summary says where it stopped and why, and running
 * the same import again is safe.
 *
 * @example
 * const summary = await importBlobs(fileSource('backup.ndjson'), { store, maxFutureMs: 86_400_000, retentionDays: 90 });
 * // { read: 1000, stored: 998, alreadyThere: 0, refused: 2, refusedByField: { timestamp: 2 }, … }
 */
export async function importBlobs(source: AsyncIterable<SourceItem>, options: ImportOptions): Promise<ImportSummary> {
  const { store } = options;
  const database = new Database(store, options.db ?? store.blobsDb);
  const now = options.now ?? Date.now;
  const started = now();
  const batchSize = options.batchSize ?? 500;
  const withRetries: WithRetries = (request, onUnavailable) =>
    retrying(request, {
      initialMs: options.retryDelayMs ?? 500,
      maxMs: 30_000,
      retries: options.storeRetries ?? 5,
      shouldRetry: (err) => err instanceof StoreUnavailableError,
      onRetry: () => onUnavailable?.(),
    });
  const rules: ScreenRules = {
    start: options.range?.start ?? Number.NEGATIVE_INFINITY,
    end: options.range?.end ?? Number.POSITIVE_INFINITY,
    context: { now: started, maxAgeMs: options.maxAgeMs ?? Number.POSITIVE_INFINITY, maxFutureMs: options.maxFutureMs, userAgent: undefined },
    ...(options.retentionDays !== undefined ? { retention: { cutoff: retentionCutoff(started, options.retentionDays), days: options.retentionDays } } : {}),
  };
  const tally = new Tally(options.onRefused);
  const { counts } = tally;
  const writer = new BatchWriter(database, new ImportLedgers(database, options.sourceLabel ?? '', withRetries), withRetries, tally);
  const progress = () => options.onProgress?.({ ...counts });

  // One batch is written while the next is read: at most two in memory, and
  // batches are settled in order (a bucket's ledger is never loaded twice).
  let pending: Pending[] = [];
  let writing: Promise<void> = Promise.resolve();
  let writeError: Error | undefined;
  async function queueBatch(): Promise<void> {
    await writing;
    if (writeError) throw writeError;
    const batch = pending;
    pending = [];
    writing = writer.settle(batch).then(
      () => (batch.length > 0 ? progress() : undefined),
      (err: Error) => {
        writeError = err;
      },
    );
  }

  let position: string | undefined;
  let error: string | undefined;
  try {
    for await (const item of source) {
      counts.read++;
      position = item.position;
      const screened = screenItem(item, rules);
      if (screened.kind === 'outside') counts.outside++;
      else if (screened.kind === 'refused') tally.refuse(item.position, screened.field, screened.message);
      else pending.push(screened.pending);
      if (pending.length >= batchSize) await queueBatch();
      else if (counts.read % 1000 === 0) progress();
      if (options.signal?.aborted) {
        error = 'interrupted';
        break;
      }
    }
  } catch (err) {
    error = (err as Error).message;
  }
  try {
    if (!writeError) await queueBatch();
    await writing;
    if (writeError) throw writeError;
  } catch (err) {
    error = (err as Error).message;
    counts.failed += pending.length; // read, valid, never written
  }
  progress();
  const seconds = Math.max((now() - started) / 1000, 1e-3);
  return {
    ...counts,
    refusedByField: tally.refusedByField,
    seconds,
    ratePerSec: counts.read / seconds,
    ...(error !== undefined ? { error, ...(position ? { stoppedAfter: position } : {}) } : {}),
  };
}
