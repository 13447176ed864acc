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
import { BlobFieldError, normalizeBlob, type BlobDoc, type NewBlobDoc } from '../ingest/blob.js';
import { retentionCutoff } from '../retention/retention.js';
import { retrying } from '../retry.js';
import { sleep } from '../sleep.js';
import { BUCKET_MS, blobDocId, parseBlobDocId, runAndCounter, timeKey } from '../store/blob-ids.js';
import { Database, type AllDocsOptions } from '../store/database.js';
import { StoreUnavailableError, type Store } from '../store/store.js';
import { blobDigest, importRun, runKeys } from './import-ids.js';
import type { SourceItem } from './sources.js';

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

/** A document of the blob database, by id, with its body when it was read. */
interface Row {
  id: string;
  doc?: object | undefined;
}

interface Pending {
  doc: BlobDoc;
  digest: string;
  bucket: number;
  position: string;
  /** A write of it may have reached the store (the request failed without an answer). */
  attempted?: boolean;
}

/** What the database holds of one bucket's import run. */
interface Ledger {
  run: string;
  /** The next free counter. */
  next: number;
  /** Digest → copies already there that no blob of this import has matched yet. */
  unmatched: Map<string, number>;
}

const LOAD_PAGE = 5000;
const LOAD_CONCURRENCY = 4;
/** Ids one span read may list before the importer reads bucket by bucket instead. */
const SPAN_LIMIT = 10_000;
const CONFLICT_ROUNDS = 10;

/** `event_stream[2][1]` → `event_stream`. */
export const topField = (field: string): string => field.split(/[.[]/)[0] || field;

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
  const retries = options.storeRetries ?? 5;
  const retryDelayMs = options.retryDelayMs ?? 500;
  const label = options.sourceLabel ?? '';
  const ctx = { now: started, maxAgeMs: options.maxAgeMs ?? Number.POSITIVE_INFINITY, maxFutureMs: options.maxFutureMs, userAgent: undefined };
  const cutoff = options.retentionDays !== undefined ? retentionCutoff(started, options.retentionDays) : undefined;
  const start = options.range?.start ?? Number.NEGATIVE_INFINITY;
  const end = options.range?.end ?? Number.POSITIVE_INFINITY;

  const counts: ImportCounts = { read: 0, stored: 0, alreadyThere: 0, refused: 0, failed: 0, outside: 0 };
  const refusedByField: Record<string, number> = {};
  const ledgers = new Map<number, Ledger>();
  let pending: Pending[] = [];
  let position: string | undefined;
  let error: string | undefined;

  const refuse = (where: string, field: string, message: string) => {
    counts.refused++;
    const top = topField(field);
    refusedByField[top] = (refusedByField[top] ?? 0) + 1;
    options.onRefused?.({ position: where, field, message });
  };
  const fail = (p: Pending, message: string) => {
    counts.failed++;
    options.onRefused?.({ position: p.position, field: 'store', message });
  };

  /** A range of `_all_docs`, as ids (and bodies, with `include_docs`). */
  const readRange = async (range: AllDocsOptions): Promise<Row[]> =>
    (await database.allDocs<object>(range)).map((row) => ({ id: row.key, doc: row.doc ?? undefined }));

  const withRetries = <T>(request: () => Promise<T>, onUnavailable?: () => void): Promise<T> =>
    retrying(request, {
      initialMs: retryDelayMs,
      maxMs: 30_000,
      retries,
      shouldRetry: (err) => err instanceof StoreUnavailableError,
      onRetry: () => onUnavailable?.(),
    });

  /** Calls `each` for every document of a run in one bucket (with its body when `includeDocs`), a page at a time. */
  async function readRun(bucket: number, run: string, includeDocs: boolean, each: (row: Row) => void): Promise<void> {
    const { startkey, endkey } = runKeys(bucket, run);
    let after: string | undefined;
    for (;;) {
      const rows = await withRetries(() => readRange({ startkey: after ?? startkey, endkey, include_docs: includeDocs, limit: LOAD_PAGE + (after ? 1 : 0) }));
      const page = after !== undefined && rows[0]?.id === after ? rows.slice(1) : rows.slice(0, LOAD_PAGE);
      page.forEach(each);
      if (page.length < LOAD_PAGE) return;
      after = page[page.length - 1]!.id;
    }
  }

  const newLedger = (bucket: number): Ledger => ({ run: importRun(bucket, label), next: 0, unmatched: new Map() });
  const note = (ledger: Ledger, row: Row) => {
    const parsed = runAndCounter(row.id);
    if (parsed) ledger.next = Math.max(ledger.next, parsed.counter + 1);
    if (row.doc) {
      const digest = blobDigest(row.doc);
      ledger.unmatched.set(digest, (ledger.unmatched.get(digest) ?? 0) + 1);
    }
  };

  /**
   * Loads the ledgers of buckets met for the first time. Usually one
   * ids-only `_all_docs` read over their time span finds the few imported
   * documents there (none, in a database that is new to the period), and
   * only those are read whole. Where the span holds many other blobs, each
   * bucket's run is read on its own instead.
   */
  async function loadLedgers(buckets: number[]): Promise<void> {
    const missing = buckets.filter((b) => !ledgers.has(b)).sort((a, b) => a - b);
    if (missing.length === 0) return;
    const spanKeys = { startkey: timeKey(missing[0]!), endkey: timeKey(missing[missing.length - 1]! + BUCKET_MS), inclusive_end: false };
    const span = await withRetries(() => readRange({ ...spanKeys, limit: SPAN_LIMIT + 1 }));
    // ledgers join the map only once read whole
    const loaded = new Map(missing.map((bucket) => [bucket, newLedger(bucket)]));
    if (span.length <= SPAN_LIMIT) {
      const ours = span.filter((row) => {
        const parsed = parseBlobDocId(row.id);
        return parsed !== undefined && loaded.get(parsed.time)?.run === parsed.run;
      });
      if (ours.length > 0 && ours.length >= span.length / 2) {
        // mostly imported blobs (a re-run): one range read with bodies beats looking each up
        const whole = await withRetries(() => readRange({ ...spanKeys, include_docs: true }));
        for (const row of whole) {
          const parsed = parseBlobDocId(row.id);
          const ledger = parsed && loaded.get(parsed.time);
          if (ledger && ledger.run === parsed.run) note(ledger, row);
        }
      } else {
        const found = await withRetries(() =>
          database.getMany<object>(
            ours.map((row) => row.id),
            { batch: LOAD_PAGE },
          ),
        );
        for (const row of found) note(loaded.get(parseBlobDocId(row.id)!.time)!, row);
      }
    } else {
      const queue = [...loaded.entries()];
      const workers = Array.from({ length: Math.min(LOAD_CONCURRENCY, queue.length) }, async () => {
        for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
          const [bucket, ledger] = next;
          await readRun(bucket, ledger.run, true, (row) => note(ledger, row));
        }
      });
      await Promise.all(workers);
    }
    for (const [bucket, ledger] of loaded) ledgers.set(bucket, ledger);
  }

  const assign = (p: Pending) => {
    const ledger = ledgers.get(p.bucket)!;
    p.doc._id = blobDocId(p.bucket, ledger.run, ledger.next++);
  };

  /** Writes blobs with their ids; sorts the answers; settles conflicts. */
  async function write(batch: Pending[], round = 1): Promise<void> {
    if (batch.length === 0) return;
    const answer = await withRetries(
      () => database.bulk(batch.map((p) => p.doc)),
      () => batch.forEach((p) => (p.attempted = true)),
    );
    const byId = new Map(answer.map((result) => [result.id, result]));
    const conflicts: Pending[] = [];
    for (const p of batch) {
      const result = byId.get(p.doc._id);
      if (!result) fail(p, 'the store gave no answer for this blob');
      else if (!result.error) counts.stored++;
      else if (result.error === 'conflict') conflicts.push(p);
      else fail(p, `the store refused it: ${result.error}${result.reason ? `: ${result.reason}` : ''}`);
    }
    if (conflicts.length === 0) return;

    const there = await withRetries(() => database.getMany<object>(conflicts.map((p) => p.doc._id)));
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
      again.forEach((p) => fail(p, `its id was taken by another writer ${CONFLICT_ROUNDS} times`));
      return;
    }
    // another writer moved the run on: let its write land, then continue after its highest counter
    await sleep(Math.random() * 50);
    for (const bucket of new Set(again.map((p) => p.bucket))) {
      const ledger = ledgers.get(bucket)!;
      await readRun(bucket, ledger.run, false, (row) => {
        const parsed = runAndCounter(row.id);
        if (parsed) ledger.next = Math.max(ledger.next, parsed.counter + 1);
      });
    }
    again.forEach(assign);
    await write(again, round + 1);
  }

  async function flush(batch: Pending[]): Promise<void> {
    if (batch.length === 0) return;
    const settledBefore = counts.stored + counts.alreadyThere + counts.failed;
    try {
      await loadLedgers([...new Set(batch.map((p) => p.bucket))]);
      const toWrite: Pending[] = [];
      for (const p of batch) {
        const ledger = ledgers.get(p.bucket)!;
        const left = ledger.unmatched.get(p.digest);
        if (left !== undefined) {
          counts.alreadyThere++;
          if (left > 1) ledger.unmatched.set(p.digest, left - 1);
          else ledger.unmatched.delete(p.digest);
        } else {
          assign(p);
          toWrite.push(p);
        }
      }
      await write(toWrite);
    } catch (err) {
      // what this batch did not settle is not written (or not known to be)
      counts.failed += batch.length - (counts.stored + counts.alreadyThere + counts.failed - settledBefore);
      throw err;
    }
    options.onProgress?.({ ...counts });
  }

  // One batch is written while the next is read: at most two in memory, and
  // batches are settled in order (a bucket's ledger is never loaded twice).
  let writing: Promise<void> = Promise.resolve();
  let writeError: Error | undefined;
  async function queueFlush(): Promise<void> {
    await writing;
    if (writeError) throw writeError;
    const batch = pending;
    pending = [];
    writing = flush(batch).catch((err: Error) => {
      writeError = err;
    });
  }

  try {
    for await (const item of source) {
      counts.read++;
      position = item.position;
      if (item.problem) {
        refuse(item.position, item.problem.field, item.problem.message);
      } else {
        const raw = item.value;
        const sent = raw !== null && typeof raw === 'object' ? (raw as { timestamp?: unknown }).timestamp : undefined;
        if (typeof sent === 'number' && (sent < start || sent >= end)) {
          counts.outside++;
        } else if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
          refuse(item.position, 'blob', 'is not a JSON object');
        } else {
          let doc: NewBlobDoc | undefined;
          try {
            doc = normalizeBlob(raw, '', ctx);
          } catch (err) {
            if (!(err instanceof BlobFieldError)) throw err;
            refuse(item.position, err.field, err.message.slice(err.field.length + 1));
          }
          if (doc && cutoff !== undefined && doc.timestamp < cutoff) {
            refuse(
              item.position,
              'timestamp',
              `is before the retention cutoff ${timeKey(cutoff)} (KPI_RETENTION_DAYS=${options.retentionDays}): a retention pass would remove it at once`,
            );
          } else if (doc) {
            pending.push({ doc: doc as BlobDoc, digest: blobDigest(doc), bucket: doc.timestamp, position: item.position });
          }
        }
      }
      if (pending.length >= batchSize) await queueFlush();
      else if (counts.read % 1000 === 0) options.onProgress?.({ ...counts });
      if (options.signal?.aborted) {
        error = 'interrupted';
        break;
      }
    }
  } catch (err) {
    error = (err as Error).message;
  }
  try {
    if (!writeError) await queueFlush();
    await writing;
    if (writeError) throw writeError;
  } catch (err) {
    error = (err as Error).message;
    counts.failed += pending.length; // read, valid, never written
  }
  options.onProgress?.({ ...counts });
  const seconds = Math.max((now() - started) / 1000, 1e-3);
  return {
    ...counts,
    refusedByField,
    seconds,
    ratePerSec: counts.read / seconds,
    ...(error !== undefined ? { error, ...(position ? { stoppedAfter: position } : {}) } : {}),
  };
}
