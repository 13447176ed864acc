/**
 * Retention of raw blobs. The privacy review asks that interaction data be
 * "retained for as short a term as possible"; the KPIs need only the
 * aggregate, which keeps counting what was sent. So, at start and every
 * interval, a pass removes the blobs whose 10-minute bucket ends at or before
 * now − retentionDays:
 *
 * 1. note the database's update sequence, then list the expired blobs: ids
 *    sort by time (src/store/blob-ids.ts), so they are the `_all_docs` range
 *    below the cutoff's time key, read a page at a time after the last id
 *    seen (never from the start again: deleted entries stay in the id index,
 *    and rescanning them would make a large pass quadratic);
 * 2. wait until the aggregate has counted, and checkpointed, every blob
 *    written before the listing, so that nothing is removed uncounted, not
 *    even by a crash before its next checkpoint;
 * 3. move the retention horizon (horizon.ts) to the cutoff, so a rebuild
 *    knows which history only the checkpoint still holds;
 * 4. delete a page per `_bulk_docs` write, and purge the tombstones where the
 *    store can (purge.ts). Where KPI_MAX_BLOB_AGE_HOURS reaches past the
 *    retention, a late blob may be written in the expired range after step
 *    1, and may not be counted yet: the `_changes` since step 1 name such
 *    blobs, and they are left for the next pass.
 *
 * One pass at a time; a store that fails ends the pass, and the next interval
 * tries again. Deletions reach the aggregate on `_changes`, which ignores
 * them (src/aggregate/runtime/feed.ts).
 */
import type { Log } from '../log.js';
import { floorToBucket, timeKey } from '../store/blob-ids.js';
import { couchChangesReader, type ChangesReader } from '../store/changes.js';
import { Database, type AllDocsRow } from '../store/database.js';
import type { Store } from '../store/store.js';
import { advanceHorizon } from './horizon.js';
import { detectPurge, purgeTombstones, type PurgeSupport } from './purge.js';

const DAY = 24 * 60 * 60 * 1000;
/** Blobs per `_all_docs` page and `_bulk_docs` write. */
export const DEFAULT_BATCH = 500;
/** Changes per `_changes` read while looking for expired blobs written during a pass. */
const CHANGES_PAGE = 5000;
const CLOCK_MARGIN_MS = 60 * 60 * 1000;

/**
 * The time key below which blobs are expired: the start of the 10-minute
 * bucket holding now − retentionDays. A blob of an earlier bucket lies
 * entirely before now − retentionDays.
 *
 * @example
 * retentionCutoff(Date.UTC(2026, 10, 23, 14, 37), 90); // Date.UTC(2026, 7, 25, 14, 30)
 */
export function retentionCutoff(now: number, retentionDays: number): number {
  return floorToBucket(now - retentionDays * DAY);
}

export interface RetentionOptions {
  store: Store;
  /** The blob database. */
  db: string;
  retentionDays: number;
  intervalMs: number;
  log: Log;
  /**
   * The aggregate's progress: every blob written before `countedThrough`
   * (ms) is counted and checkpointed. Without it, blobs are removed
   * without waiting.
   */
  aggregate?: () => { countedThrough: number; phase: string };
  /** How long a pass waits for the aggregate; by default the interval, at most 5 minutes. */
  waitMs?: number;
  /**
   * Ingest refuses blobs older than this (KPI_MAX_BLOB_AGE_HOURS). When the
   * expired range lies beyond it, no blob can arrive there during a pass,
   * and the pass does not watch `_changes` for one. Unset: always watch.
   */
  maxBlobAgeMs?: number;
  /** Blobs per page and per delete write. */
  batchSize?: number;
  now?: () => number;
}

/** What one pass did. */
export interface RetentionPass {
  /** Blobs of buckets before this time (ms) were expired. */
  cutoff: number;
  removed: number;
  /** Tombstones purged; null where the store cannot purge. */
  purged: number | null;
  /** How long the pass took, ms. */
  ms: number;
  /** Of which deleting (and purging), after the wait for the aggregate. */
  deleteMs?: number;
  /** Why expired blobs were left for a later pass. */
  skipped?: string;
  /** Expired blobs the store refused to delete (they stay for the next pass). */
  refused?: number;
  /** Expired blobs written during the pass, left for the next one (the aggregate may not have counted them yet). */
  deferred?: number;
  /** Why the pass ended early (the store failed); the next interval tries again. */
  error?: string;
}

export interface RetentionStatus {
  running: boolean;
  /** When the last pass that completed ended, ms. */
  lastRunAt: number | null;
  /** Blobs the last completed pass removed. */
  removed: number;
  /** Blobs removed since kpi-live started. */
  removedTotal: number;
  /** Tombstones the last completed pass purged; null where the store cannot purge. */
  purged: number | null;
  purge: 'supported' | 'unsupported' | 'unknown';
  /** Cutoff of the last pass, ms. */
  cutoff: number | null;
  /** Why the last pass did not complete, or left expired blobs; null when it did its work. */
  lastError: string | null;
  nextRunAt: number | null;
  /**
   * Passes ended since this runner started: `ok` did its work (`lastError`
   * null after it), `failed` ended early or left expired blobs behind
   * (`lastError` set). A pass cut short by stop() is neither.
   */
  passes: { ok: number; failed: number };
}

/** An expired blob: its id and current revision. */
type Row = AllDocsRow<unknown> & { id: string; value: { rev: string } };

/**
 * @example
 * const retention = new Retention({ store, db: store.blobsDb, retentionDays: 90, intervalMs: 3_600_000, log });
 * retention.start();           // a pass now, then every interval
 * await retention.runNow();    // one more pass, after any pass in progress
 * await retention.stop();
 */
export class Retention {
  readonly #options: RetentionOptions;
  readonly #blobs: Database;
  readonly #changes: ChangesReader;
  readonly #batch: number;
  readonly #now: () => number;
  readonly #abort = new AbortController();
  #queue: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #purge: PurgeSupport | undefined;
  #status: RetentionStatus = {
    running: false,
    lastRunAt: null,
    removed: 0,
    removedTotal: 0,
    purged: null,
    purge: 'unknown',
    cutoff: null,
    lastError: null,
    nextRunAt: null,
    passes: { ok: 0, failed: 0 },
  };

  constructor(options: RetentionOptions) {
    this.#options = options;
    this.#blobs = new Database(options.store, options.db);
    this.#changes = couchChangesReader(options.store, options.db, { limit: CHANGES_PAGE, longpollMs: 0, includeDocs: false });
    this.#batch = options.batchSize ?? DEFAULT_BATCH;
    this.#now = options.now ?? Date.now;
  }

  get status(): RetentionStatus {
    return { ...this.#status, passes: { ...this.#status.passes } };
  }

  /** Runs a pass now, then one every interval. */
  start(): void {
    this.#schedule(0);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#status.nextRunAt = this.#now() + delayMs;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#status.nextRunAt = null;
      void this.runNow().then((pass) => this.#schedule(Math.max(0, this.#options.intervalMs - pass.ms)));
    }, delayMs);
    this.#timer.unref();
  }

  /** One pass, after the one in progress if any (passes never overlap). Never rejects: failures are in the answer and the status. */
  runNow(): Promise<RetentionPass> {
    const pass = this.#queue.then(() => this.#pass());
    this.#queue = pass;
    return pass;
  }

  /** Stops the schedule, ends the pass in progress at its next request, and waits for it. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#status.nextRunAt = null;
    this.#abort.abort();
    await this.#queue;
  }

  async #pass(): Promise<RetentionPass> {
    const started = this.#now();
    const cutoff = retentionCutoff(started, this.#options.retentionDays);
    const pass: RetentionPass = { cutoff, removed: 0, purged: null, ms: 0 };
    if (this.#stopped) return { ...pass, skipped: 'stopped' };
    const { store, db, log } = this.#options;
    const signal = this.#abort.signal;
    this.#status.running = true;
    this.#status.cutoff = cutoff;
    let deleting: number | undefined;
    try {
      const info = await this.#blobs.info({ signal });
      if (!info) throw new Error(`the blob database ${db} does not exist`);
      const listedSeq = info.update_seq;
      const listedAt = this.#now();
      let page = await this.#expiredPage(cutoff, undefined);
      if (page.length > 0) {
        const blocked = await this.#waitForAggregate(listedAt);
        if (blocked) {
          pass.skipped = blocked;
          pass.ms = this.#now() - started;
          this.#status.lastError = `expired blobs kept until the next pass: ${blocked}`;
          this.#status.passes.failed += 1;
          log.warn({ cutoff: timeKey(cutoff), reason: blocked }, 'retention: expired blobs kept until the next pass');
          return pass;
        }
        deleting = this.#now();
        await advanceHorizon(store, db, cutoff, signal);
        const purge = await this.#purgeSupport();
        pass.purged = purge.supported ? 0 : null;
        let writes = 0;
        let since = listedSeq;
        const fresh = new Set<string>();
        const lateBlobsPossible = this.#lateBlobsPossible(cutoff, started);
        while (page.length > 0) {
          if (lateBlobsPossible) since = await this.#noteFresh(since, cutoff, fresh);
          const doomed = page.filter((row) => !fresh.has(row.id));
          if (doomed.length < page.length) pass.deferred = (pass.deferred ?? 0) + page.length - doomed.length;
          const { tombstones, refused } = await this.#delete(doomed);
          if (refused) pass.refused = (pass.refused ?? 0) + refused;
          pass.removed += tombstones.length;
          this.#status.removedTotal += tombstones.length;
          if (purge.supported) pass.purged! += await purgeTombstones(store, db, tombstones, signal);
          if (++writes % 100 === 0) log.info({ cutoff: timeKey(cutoff), removed: pass.removed }, 'retention pass in progress');
          if (page.length < this.#batch) break;
          page = await this.#expiredPage(cutoff, page[page.length - 1]!.id);
        }
      }
      pass.ms = this.#now() - started;
      if (deleting !== undefined) pass.deleteMs = this.#now() - deleting;
      const lastError = pass.refused ? `the store refused to delete ${pass.refused} expired blobs; the next pass tries again` : null;
      Object.assign(this.#status, { lastRunAt: this.#now(), removed: pass.removed, purged: pass.purged, lastError });
      this.#status.passes[lastError === null ? 'ok' : 'failed'] += 1;
      const perSecond = pass.deleteMs ? Math.round((pass.removed * 1000) / pass.deleteMs) : undefined;
      if (pass.removed > 0 || pass.deferred)
        log.info(
          { cutoff: timeKey(cutoff), removed: pass.removed, purged: pass.purged, deferred: pass.deferred, ms: pass.ms, perSecond },
          'retention: expired blobs removed',
        );
      else log.debug({ cutoff: timeKey(cutoff) }, 'retention: no expired blobs');
      return pass;
    } catch (err) {
      pass.ms = this.#now() - started;
      if (this.#stopped) return { ...pass, skipped: 'stopped' };
      pass.error = (err as Error).message;
      this.#status.lastError = pass.error;
      this.#status.passes.failed += 1;
      log.warn({ err: pass.error, cutoff: timeKey(cutoff), removed: pass.removed }, 'retention pass failed; the next interval tries again');
      return pass;
    } finally {
      this.#status.running = false;
    }
  }

  /** Up to a batch of expired blobs, after the id `after` if given. */
  async #expiredPage(cutoff: number, after: string | undefined): Promise<Row[]> {
    const rows = await this.#blobs.allDocs(
      {
        ...(after !== undefined ? { startkey: after } : {}),
        endkey: timeKey(cutoff),
        inclusive_end: false,
        // one more covers the cursor's own row, when it is still there
        limit: this.#batch + (after !== undefined ? 1 : 0),
      },
      { signal: this.#abort.signal },
    );
    return rows
      .filter((row): row is Row => row.id !== undefined && row.id !== after && !!row.value?.rev && !row.id.startsWith('_design/'))
      .slice(0, this.#batch);
  }

  /**
   * Whether ingest may still store a blob in the expired range: its oldest
   * accepted time, rounded down to 10 minutes, with an hour to spare for
   * clocks that differ between instances, is before the cutoff.
   */
  #lateBlobsPossible(cutoff: number, now: number): boolean {
    const maxAge = this.#options.maxBlobAgeMs;
    return maxAge === undefined || floorToBucket(now - maxAge) - CLOCK_MARGIN_MS < cutoff;
  }

  /**
   * Reads `_changes` after `since` (ids only) and adds to `fresh` the expired
   * blobs written there; the position read up to.
   */
  async #noteFresh(since: unknown, cutoff: number, fresh: Set<string>): Promise<unknown> {
    const endKey = timeKey(cutoff);
    for (;;) {
      const batch = await this.#changes(since, this.#abort.signal, false);
      for (const change of batch.changes) if (!change.deleted && change.id < endKey) fresh.add(change.id);
      since = batch.lastSeq;
      if (batch.caughtUp) return since;
    }
  }

  /** Deletes a page: the tombstones written, and how many blobs the store refused. A conflict means another instance deleted the blob first. */
  async #delete(rows: Row[]): Promise<{ tombstones: { id: string; rev: string }[]; refused: number }> {
    if (rows.length === 0) return { tombstones: [], refused: 0 };
    const results = await this.#blobs.bulk(
      rows.map((row) => ({ _id: row.id, _rev: row.value.rev, _deleted: true })),
      { signal: this.#abort.signal },
    );
    const refused = results.filter((r) => r.error && r.error !== 'conflict');
    if (refused.length > 0) {
      this.#options.log.warn(
        { refused: refused.length, error: refused[0]!.error, reason: refused[0]!.reason },
        'retention: the store refused to delete some expired blobs',
      );
    }
    return { tombstones: results.filter((r) => !r.error && r.id && r.rev).map((r) => ({ id: r.id!, rev: r.rev! })), refused: refused.length };
  }

  async #purgeSupport(): Promise<PurgeSupport> {
    if (this.#purge) return this.#purge;
    const support = await detectPurge(this.#options.store, this.#options.db, this.#abort.signal);
    this.#purge = support;
    this.#status.purge = support.supported ? 'supported' : 'unsupported';
    if (!support.supported)
      this.#options.log.info(
        { reason: support.reason },
        'retention: the store cannot purge; deleted blobs leave tombstones (an id and a revision, no blob field)',
      );
    return support;
  }

  /**
   * Waits until the aggregate has counted and checkpointed every blob written
   * before `time`: undefined then; after waiting too long, why not.
   */
  async #waitForAggregate(time: number): Promise<string | undefined> {
    const aggregate = this.#options.aggregate;
    if (!aggregate) return undefined;
    const deadline = this.#now() + (this.#options.waitMs ?? Math.min(this.#options.intervalMs, 5 * 60_000));
    for (;;) {
      const { countedThrough, phase } = aggregate();
      if (countedThrough >= time) return undefined;
      if (this.#now() >= deadline) return `the aggregate (${phase}) has not counted and checkpointed every expired blob yet`;
      await new Promise<void>((resolve, reject) => {
        const signal = this.#abort.signal;
        const onAbort = () => {
          clearTimeout(timer);
          reject(new Error('stopped'));
        };
        const timer = setTimeout(() => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        }, 250);
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      });
    }
  }
}
