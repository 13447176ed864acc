/**
 * The aggregate: KPI cells per time bucket and segment value, updated one
 * blob at a time, never by re-reading history. Pure: no IO.
 *
 * - Exactly once: a blob already counted (see applied-set.ts) changes
 *   nothing, so replaying any part of the feed is harmless.
 * - Bounded memory: buckets are 10 minutes for a recent span, then hourly,
 *   then daily (downsampling merges cells, so totals are identical). The span
 *   is measured from the watermark, the latest blob time seen, not from the
 *   clock, so a live run and a rebuild over the same blobs end in the same
 *   state.
 * - Late blobs (a client retrying days later) update their own old bucket,
 *   at whatever resolution that bucket has by then.
 */
import { randomBytes } from 'node:crypto';
import { AppliedSet, type AppliedSetJson } from './applied-set.js';
import { applyFacts, cellFromJson, cellToJson, emptyCell, mergeInto, type Cell, type CellJson } from './cell.js';
import { blobFacts, isStoredBlob, type FactsInput } from './facts.js';
import { type SegmentConfig } from './segments.js';

import { DAY, HOUR, TEN_MINUTES, DIMENSIONS, type Dimension } from '../../contract/kpis.js';

export interface RetentionConfig {
  /** Keep 10-minute buckets this long behind the watermark. */
  tenMinuteHours: number;
  /** Keep hourly buckets this long behind the watermark; daily beyond. */
  hourlyDays: number;
}

export const defaultRetention: RetentionConfig = { tenMinuteHours: 48, hourlyDays: 35 };

export interface Bucket {
  /** State version at the bucket's last change (see AggregateState.version). */
  version: number;
  start: number;
  /** Length of the bucket, ms: 10 minutes, an hour or a day. */
  size: number;
  all: Cell;
  dims: Record<Dimension, Map<string, Cell>>;
}

export interface BucketJson {
  start: number;
  size: number;
  all: CellJson;
  dims: Record<string, [string, CellJson][]>;
}

export interface StateJson {
  version: 1;
  watermark: number;
  buckets: BucketJson[];
  applied: AppliedSetJson;
}

/** `not-a-blob`: a document of another shape ({@link isStoredBlob}), left out (and not remembered as applied). */
export type ApplyResult = 'counted' | 'duplicate' | 'no-signal' | 'not-a-blob';

/** How many buckets of one size a state holds. */
export interface BucketCount {
  /** Length of the buckets, ms. */
  size: number;
  count: number;
}

/** Key of a bucket in the state: start and size. */
export const bucketKey = (start: number, size: number): string => `${start}/${size}`;

function emptyBucket(start: number, size: number): Bucket {
  const dims = {} as Record<Dimension, Map<string, Cell>>;
  for (const d of DIMENSIONS) dims[d] = new Map();
  return { version: 0, start, size, all: emptyCell(), dims };
}

function mergeBucketInto(into: Bucket, from: Bucket): void {
  mergeInto(into.all, from.all);
  for (const d of DIMENSIONS) {
    for (const [value, cell] of from.dims[d]) {
      const target = into.dims[d].get(value);
      if (target) mergeInto(target, cell);
      else into.dims[d].set(value, mergeInto(emptyCell(), cell));
    }
  }
}

export function bucketToJson(bucket: Bucket): BucketJson {
  const dims: Record<string, [string, CellJson][]> = {};
  for (const d of DIMENSIONS) {
    dims[d] = [...bucket.dims[d].entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([v, c]) => [v, cellToJson(c)]);
  }
  return { start: bucket.start, size: bucket.size, all: cellToJson(bucket.all), dims };
}

export function bucketFromJson(json: BucketJson): Bucket {
  const bucket = emptyBucket(json.start, json.size);
  bucket.all = cellFromJson(json.all);
  for (const d of DIMENSIONS) for (const [v, c] of json.dims[d] ?? []) bucket.dims[d].set(v, cellFromJson(c));
  return bucket;
}

/**
 * @example
 * const state = new AggregateState(defaultSegmentConfig);
 * state.apply(doc);           // 'counted'
 * state.apply(doc);           // 'duplicate': nothing changes
 * state.changedSince(v);      // the buckets that changed after version v
 */
export class AggregateState {
  readonly buckets = new Map<string, Bucket>();
  applied = new AppliedSet();
  /** Latest blob time seen, ms. */
  watermark = 0;
  /** Grows with every change to a bucket; each bucket keeps the version of its last change. */
  version = 0;
  /** Names this state instance: versions of one epoch mean nothing in another (a restart, a reload). */
  readonly epoch = randomBytes(6).toString('hex');

  constructor(
    readonly segments: SegmentConfig,
    readonly retention: RetentionConfig = defaultRetention,
  ) {}

  /**
   * Size of the bucket a time belongs in, at the current watermark. Decided
   * by the age of the enclosing day, then hour, so that every part of an
   * hour (or day) gets the same size, and a merged bucket never needs
   * merging again at the same watermark.
   */
  sizeFor(time: number): number {
    if (this.watermark - Math.floor(time / DAY) * DAY >= this.retention.hourlyDays * DAY) return DAY;
    if (this.watermark - Math.floor(time / HOUR) * HOUR >= this.retention.tenMinuteHours * HOUR) return HOUR;
    return TEN_MINUTES;
  }

  #bucketFor(time: number): Bucket {
    const size = this.sizeFor(time);
    const start = Math.floor(time / size) * size;
    const key = bucketKey(start, size);
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = emptyBucket(start, size);
      this.buckets.set(key, bucket);
    }
    bucket.version = ++this.version;
    return bucket;
  }

  /** Counts one stored blob, once. */
  apply(doc: FactsInput & { _id: string }): ApplyResult {
    if (!isStoredBlob(doc as unknown as Record<string, unknown>)) return 'not-a-blob';
    if (!this.applied.add(doc._id)) return 'duplicate';
    const facts = blobFacts(doc, this.segments);
    if (!facts) return 'no-signal';
    if (facts.time > this.watermark) this.watermark = facts.time;
    const bucket = this.#bucketFor(facts.time);
    applyFacts(bucket.all, facts);
    for (const d of DIMENSIONS) {
      const value = facts.segments[d];
      let cell = bucket.dims[d].get(value);
      if (!cell) {
        cell = emptyCell();
        bucket.dims[d].set(value, cell);
      }
      applyFacts(cell, facts, false);
    }
    return 'counted';
  }

  /** Merges buckets that the watermark has made too fine into coarser ones. */
  downsample(): void {
    for (const [key, bucket] of [...this.buckets]) {
      const size = this.sizeFor(bucket.start);
      if (size <= bucket.size) continue;
      const start = Math.floor(bucket.start / size) * size;
      const targetKey = bucketKey(start, size);
      let target = this.buckets.get(targetKey);
      if (!target) {
        target = emptyBucket(start, size);
        this.buckets.set(targetKey, target);
      }
      mergeBucketInto(target, bucket);
      target.version = ++this.version;
      this.buckets.delete(key);
    }
  }

  /**
   * Buckets held, by size (ms), smallest first: what the state costs in
   * memory. Counts the map at each call (a few thousand buckets at most
   * with the default retention), so it belongs to a status read, not to the
   * path of each change.
   */
  bucketCounts(): BucketCount[] {
    const counts = new Map<number, number>();
    for (const bucket of this.buckets.values()) counts.set(bucket.size, (counts.get(bucket.size) ?? 0) + 1);
    return [...counts].sort((a, b) => a[0] - b[0]).map(([size, count]) => ({ size, count }));
  }

  /** Buckets changed after `version` (late blobs included), oldest first. */
  changedSince(version: number): Bucket[] {
    return [...this.buckets.values()].filter((b) => b.version > version).sort((a, b) => a.start - b.start || a.size - b.size);
  }

  /** Canonical JSON: the same blobs give the same JSON, whatever their order. */
  toJSON(): StateJson {
    const buckets = [...this.buckets.values()].sort((a, b) => a.start - b.start || a.size - b.size).map(bucketToJson);
    return { version: 1, watermark: this.watermark, buckets, applied: this.applied.toJSON() };
  }

  static fromJSON(json: StateJson, segments: SegmentConfig, retention: RetentionConfig = defaultRetention): AggregateState {
    const state = new AggregateState(segments, retention);
    state.watermark = json.watermark;
    for (const b of json.buckets) state.buckets.set(bucketKey(b.start, b.size), bucketFromJson(b));
    state.applied = AppliedSet.fromJSON(json.applied);
    return state;
  }
}
