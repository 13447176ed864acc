/**
 * Blob document ids sort by time, so a time-range read is a plain
 * `_all_docs` range (no view to build, keep or wait for) and pagination is a
 * stable cursor on the id.
 *
 * An id is `<ISO time of the blob's 10-minute bucket>_<random>`, e.g.
 * `2026-11-23T12:10:00.000Z_k3v9x0c1q8m2z7d4`. ISO-8601 in UTC with a fixed
 * width sorts lexically in time order (years 0000–9999), in CouchDB's raw
 * `_all_docs` collation and PouchDB's alike. The `_` after the time sorts
 * after every character of the time, so every id of a bucket sorts after the
 * bucket's bare time: `[iso(start), iso(end))` selects exactly the blobs whose
 * timestamp is in `[start, end)`. Design documents (`_design/…`) sort after
 * every blob id.
 *
 * The random part is not derived from the content: two dialogs can send
 * identical blobs (two bounces in the same 10 minutes, same locale and
 * browser), and both must count.
 */
import { randomBytes } from 'node:crypto';

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

/** 80 random bits in base 32: collisions are out of reach. */
function randomSuffix(): string {
  const bytes = randomBytes(10);
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const byte of bytes) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(acc >> bits) & 31];
    }
  }
  return out;
}

/** A new document id for a blob whose timestamp is already rounded. */
export function blobDocId(roundedTimestamp: number): string {
  return `${timeKey(roundedTimestamp)}_${randomSuffix()}`;
}
