/**
 * Blob document ids: `<ISO time of the 10-minute bucket>_<run>-<counter>`,
 * e.g. `2026-11-23T12:10:00.000Z_k3v9x0c1q8-1z4`.
 *
 * Time first, so ids sort by time: a time-range read is a plain `_all_docs`
 * range (no view to build, keep or wait for) and pagination is a stable
 * cursor on the id. ISO-8601 in UTC with a fixed width sorts lexically in time
 * order (years 0000–9999), in CouchDB's raw `_all_docs` collation and
 * PouchDB's alike. The `_` after the time sorts after every character of the
 * time, so `[iso(start), iso(end))` selects exactly the blobs whose timestamp
 * is in `[start, end)`. Design documents (`_design/…`) sort after every blob.
 *
 * Then `<run>-<counter>`: `run` is random per ingest process start, `counter`
 * counts the blobs that process writes. This is what makes counting exactly
 * once cheap: the aggregate remembers which blobs it has applied as a few
 * integer ranges per run (src/aggregate/model/applied-set.ts), not as a set of ids,
 * so its memory does not grow with the number of blobs, and a replay of the
 * feed from any position changes nothing. Counters are handed out per write
 * batch in shuffled order, so an id reveals no finer arrival order than
 * CouchDB's own `_changes` sequence does. Nothing in an id is derived from
 * the content: two dialogs can send identical blobs, and both must count.
 */
import { randomBytes, randomInt } from 'node:crypto';

export const BUCKET_MS = 10 * 60 * 1000;
/** Latest instant whose ISO form keeps the fixed width (9999-12-31T23:59:59.999Z). */
export const MAX_ID_TIME = 253402300799999;

const ALPHABET = '0123456789abcdefghijklmnopqrstuv';

/** Rounds a timestamp (ms) down to its 10-minute bucket. */
export function floorToBucket(timestamp: number): number {
  return Math.floor(timestamp / BUCKET_MS) * BUCKET_MS;
}

/** The sortable key of an instant: the prefix shared by the ids of its bucket. */
export function timeKey(timestamp: number): string {
  const clamped = Math.min(Math.max(timestamp, 0), MAX_ID_TIME);
  return new Date(clamped).toISOString();
}

const RUN_ID_LENGTH = 10;
const ID_PATTERN = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)_([0-9a-v]{10})-([0-9a-z]{1,11})$/;

/** A new run id: 50 random bits in base 32. */
export function newRunId(): string {
  const bytes = randomBytes(RUN_ID_LENGTH);
  let out = '';
  for (const byte of bytes) out += ALPHABET[byte & 31];
  return out;
}

/** The id of the blob with this (rounded) timestamp, run and counter. */
export function blobDocId(roundedTimestamp: number, run: string, counter: number): string {
  return `${timeKey(roundedTimestamp)}_${run}-${counter.toString(36)}`;
}

export interface ParsedBlobId {
  /** Bucket time, ms. */
  time: number;
  run: string;
  counter: number;
}

const RUN_COUNTER_PATTERN = /_([0-9a-v]{10})-([0-9a-z]{1,11})$/;

/** The run and counter of a blob id (what the aggregate needs, cheaply), or undefined. */
export function runAndCounter(id: string): { run: string; counter: number } | undefined {
  if (id.length < 36 || id.charCodeAt(24) !== 95 /* _ */) return undefined;
  const match = RUN_COUNTER_PATTERN.exec(id);
  return match ? { run: match[1]!, counter: Number.parseInt(match[2]!, 36) } : undefined;
}

/** The parts of a blob id, or undefined for anything else (design documents). */
export function parseBlobDocId(id: string): ParsedBlobId | undefined {
  const match = ID_PATTERN.exec(id);
  if (!match) return undefined;
  return { time: Date.parse(match[1]!), run: match[2]!, counter: Number.parseInt(match[3]!, 36) };
}

/**
 * Hands out blob ids for the current ingest run. {@link BlobIdAllocator.assign}
 * gives a write batch the next block of counters in a random order;
 * {@link BlobIdAllocator.startRun} begins a new run (ingest does at a deploy,
 * src/deploys/arrivals.ts), whose counters start at 0.
 *
 * @example
 * const ids = new BlobIdAllocator();
 * ids.assign(batch); // every doc of the batch gets its _id
 */
export class BlobIdAllocator {
  #run = newRunId();
  #next = 0;
  /** Counters handed out by the runs before the current one. */
  #earlier = 0;

  get run(): string {
    return this.#run;
  }

  /** Ids handed out, over every run of this allocator. */
  get assigned(): number {
    return this.#earlier + this.#next;
  }

  /** Makes `run` the current run: the next batch's ids are its first. */
  startRun(run: string): void {
    this.#earlier += this.#next;
    this.#run = run;
    this.#next = 0;
  }

  assign(docs: { _id?: string; timestamp: number }[]): void {
    const counters = Array.from({ length: docs.length }, (_, i) => this.#next + i);
    for (let i = counters.length - 1; i > 0; i--) {
      const j = randomInt(i + 1);
      [counters[i], counters[j]] = [counters[j]!, counters[i]!];
    }
    this.#next += docs.length;
    docs.forEach((doc, i) => {
      doc._id = blobDocId(doc.timestamp, this.#run, counters[i]!);
    });
  }
}
