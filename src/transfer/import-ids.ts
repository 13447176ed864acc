/**
 * Ids of imported blobs, and the content digest that says whether a blob is
 * already there. Pure: no IO.
 *
 * An imported blob gets an id of the same form as an ingested one,
 * `<ISO bucket>_<run>-<counter>` (src/store/blob-ids.ts), so it sorts by time
 * with every other blob (range reads, retention), and the aggregate's
 * applied set keeps it as part of a
 * counter range, not as an id of its own. What differs is where the run
 * comes from: not a random run per process, but one derived from the blob's
 * 10-minute bucket (and an optional source label):
 *
 *   run = first 50 bits of SHA-256("kpi-live import\n" + label + "\n" + ISO bucket), in base 32
 *
 * so every import, on any machine, puts the blobs of one bucket under one run,
 * numbered 0, 1, 2, … The importer reads that run's documents of the bucket
 * (one `_all_docs` range), compares their content digests with the blobs it
 * brings, and writes only those not there yet, under the next counters
 * (src/transfer/importer.ts). Counters stay dense, so the applied set holds
 * about one range per imported bucket, whatever the number of blobs.
 *
 * @example
 * importRun(Date.UTC(2026, 10, 23, 12, 10)); // e.g. 'q3k0v7b1m2', always the same
 * blobDigest({ timestamp: 1795400400000, event_stream: [] }) === blobDigest({ event_stream: [], timestamp: 1795400400000 }); // true
 */
import { createHash } from 'node:crypto';
import { timeKey } from '../store/blob-ids.js';

const ALPHABET = '0123456789abcdefghijklmnopqrstuv';
const RUN_LENGTH = 10;

/** The run of the imported blobs of one bucket (and source label). */
export function importRun(bucketTime: number, sourceLabel = ''): string {
  const digest = createHash('sha256')
    .update(`kpi-live import\n${sourceLabel}\n${timeKey(bucketTime)}`)
    .digest();
  let out = '';
  for (let i = 0; i < RUN_LENGTH; i++) out += ALPHABET[digest[i]! & 31];
  return out;
}

/**
 * `_all_docs` keys covering exactly the ids of one run in one bucket:
 * `<ISO>_<run>-` up to `<ISO>_<run>.` ('.' is the character after '-', and
 * counters are base-36 digits, which sort after both).
 */
export function runKeys(bucketTime: number, run: string): { startkey: string; endkey: string } {
  const prefix = `${timeKey(bucketTime)}_${run}`;
  return { startkey: `${prefix}-`, endkey: `${prefix}.` };
}

/** JSON with object keys sorted at every level: equal content, equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}

/** 128 bits of SHA-256 over the blob's canonical JSON, `_id` and `_rev` left out. */
export function blobDigest(doc: object): string {
  const { _id, _rev, ...blob } = doc as { _id?: unknown; _rev?: unknown };
  return createHash('sha256').update(canonicalJson(blob)).digest('base64url').slice(0, 22);
}
