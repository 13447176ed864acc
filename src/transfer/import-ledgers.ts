/**
 * What the blob database already holds of each bucket's import run: the
 * next free counter and the digests of the imported blobs there that no blob
 * of this import has matched yet (importer.ts says why imports match by
 * content, bucket by bucket). Reads the store; keeps one ledger per bucket
 * met.
 */
import { BUCKET_MS, blobDocId, parseBlobDocId, runAndCounter, timeKey } from '../store/blob-ids.js';
import type { AllDocsOptions, Database } from '../store/database.js';
import { blobDigest, importRun, runKeys } from './import-ids.js';
import type { Pending } from './import-screen.js';

/** A document of the blob database, by id, with its body when it was read. */
interface Row {
  id: string;
  doc?: object | undefined;
}

/** What the database holds of one bucket's import run. */
interface Ledger {
  run: string;
  /** The next free counter. */
  next: number;
  /** Digest → copies already there that no blob of this import has matched yet. */
  unmatched: Map<string, number>;
}

/** Runs a store request with the import's retries. */
export type WithRetries = <T>(request: () => Promise<T>, onUnavailable?: () => void) => Promise<T>;

const LOAD_PAGE = 5000;
const LOAD_CONCURRENCY = 4;
/** Ids one span read may list before the ledgers are read bucket by bucket instead. */
const SPAN_LIMIT = 10_000;

export class ImportLedgers {
  private readonly ledgers = new Map<number, Ledger>();

  constructor(
    private readonly database: Database,
    /** The source label that keeps this source's runs apart. */
    private readonly label: string,
    private readonly withRetries: WithRetries,
  ) {}

  /**
   * Loads the ledgers of buckets met for the first time. Usually one
   * ids-only `_all_docs` read over their time span finds the few imported
   * documents there (none, in a database that is new to the period), and
   * only those are read whole. Where the span holds many other blobs, each
   * bucket's run is read on its own instead.
   */
  async load(buckets: Iterable<number>): Promise<void> {
    const missing = [...new Set(buckets)].filter((b) => !this.ledgers.has(b)).sort((a, b) => a - b);
    if (missing.length === 0) return;
    const spanKeys = { startkey: timeKey(missing[0]!), endkey: timeKey(missing[missing.length - 1]! + BUCKET_MS), inclusive_end: false };
    const span = await this.withRetries(() => this.readRange({ ...spanKeys, limit: SPAN_LIMIT + 1 }));
    // ledgers join the map only once read whole
    const loaded = new Map(missing.map((bucket): [number, Ledger] => [bucket, { run: importRun(bucket, this.label), next: 0, unmatched: new Map() }]));
    const ledgerOf = (id: string): Ledger | undefined => {
      const parsed = parseBlobDocId(id);
      const ledger = parsed && loaded.get(parsed.time);
      return ledger && ledger.run === parsed.run ? ledger : undefined;
    };
    if (span.length <= SPAN_LIMIT) {
      const ours = span.filter((row) => ledgerOf(row.id) !== undefined);
      if (ours.length > 0 && ours.length >= span.length / 2) {
        // mostly imported blobs (a re-run): one range read with bodies beats looking each up
        const whole = await this.withRetries(() => this.readRange({ ...spanKeys, include_docs: true }));
        for (const row of whole) {
          const ledger = ledgerOf(row.id);
          if (ledger) note(ledger, row);
        }
      } else {
        const ids = ours.map((row) => row.id);
        const found = await this.withRetries(() => this.database.getMany<object>(ids, { batch: LOAD_PAGE }));
        for (const row of found) note(ledgerOf(row.id)!, row);
      }
    } else {
      const queue = [...loaded.entries()];
      const workers = Array.from({ length: Math.min(LOAD_CONCURRENCY, queue.length) }, async () => {
        for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
          const [bucket, ledger] = next;
          await this.readRun(bucket, ledger.run, true, (row) => note(ledger, row));
        }
      });
      await Promise.all(workers);
    }
    for (const [bucket, ledger] of loaded) this.ledgers.set(bucket, ledger);
  }

  /** Whether a copy of this blob is already there and unmatched; if so, it is matched now. Its bucket's ledger must be loaded. */
  matchExisting(p: Pending): boolean {
    const ledger = this.ledgers.get(p.bucket)!;
    const left = ledger.unmatched.get(p.digest);
    if (left === undefined) return false;
    if (left > 1) ledger.unmatched.set(p.digest, left - 1);
    else ledger.unmatched.delete(p.digest);
    return true;
  }

  /** Gives the blob the next free id of its bucket's run. */
  assignId(p: Pending): void {
    const ledger = this.ledgers.get(p.bucket)!;
    p.doc._id = blobDocId(p.bucket, ledger.run, ledger.next++);
  }

  /** Another writer moved these buckets' runs on: reads their counters again, to continue after the highest. */
  async catchUp(buckets: Iterable<number>): Promise<void> {
    for (const bucket of new Set(buckets)) {
      const ledger = this.ledgers.get(bucket)!;
      await this.readRun(bucket, ledger.run, false, (row) => {
        const parsed = runAndCounter(row.id);
        if (parsed) ledger.next = Math.max(ledger.next, parsed.counter + 1);
      });
    }
  }

  /** A range of `_all_docs`, as ids (and bodies, with `include_docs`). */
  private async readRange(range: AllDocsOptions): Promise<Row[]> {
    return (await this.database.allDocs<object>(range)).map((row) => ({ id: row.key, doc: row.doc ?? undefined }));
  }

  /** Calls `each` for every document of a run in one bucket (with its body when `includeDocs`), a page at a time. */
  private async readRun(bucket: number, run: string, includeDocs: boolean, each: (row: Row) => void): Promise<void> {
    const { startkey, endkey } = runKeys(bucket, run);
    let after: string | undefined;
    for (;;) {
      const rows = await this.withRetries(() =>
        this.readRange({ startkey: after ?? startkey, endkey, include_docs: includeDocs, limit: LOAD_PAGE + (after ? 1 : 0) }),
      );
      const page = after !== undefined && rows[0]?.id === after ? rows.slice(1) : rows.slice(0, LOAD_PAGE);
      page.forEach(each);
      if (page.length < LOAD_PAGE) return;
      after = page[page.length - 1]!.id;
    }
  }
}

/** Counts a document of a ledger's run: its counter, and its digest when read whole. */
function note(ledger: Ledger, row: Row): void {
  const parsed = runAndCounter(row.id);
  if (parsed) ledger.next = Math.max(ledger.next, parsed.counter + 1);
  if (row.doc) {
    const digest = blobDigest(row.doc);
    ledger.unmatched.set(digest, (ledger.unmatched.get(digest) ?? 0) + 1);
  }
}
