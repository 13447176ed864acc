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
 * - Arrivals after a deploy: a blob whose ingest run came after deploy D
 *   (src/deploys/arrivals.ts) is also added to D's arrival bucket (`all`
 *   only), if its bucket begins within ARRIVAL_WINDOW_MS of D. Arrival
 *   buckets live apart from the time buckets (`arrivals`), are kept
 *   ARRIVALS_KEPT_MS behind the watermark, and are checkpointed alike.
 */
import { randomBytes } from 'node:crypto';
import { AppliedSet, type AppliedSetJson } from './applied-set.js';
import { applyFacts, cellFromJson, cellToJson, emptyCell, mergeInto, type Cell, type CellJson } from './cell.js';
import { blobFacts, isStoredBlob, type FactsInput } from './facts.js';
import { type SegmentConfig } from './segments.js';

import { DAY, HOUR, TEN_MINUTES, DIMENSIONS, type Dimension } from '../../contract/kpis.js';
import { ARRIVAL_WINDOW_MS, ARRIVALS_KEPT_MS } from '../../contract/verdict.js';

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
  /** Length of the bucket, ms: 10 minutes, an hour or a day; 0 for an arrival bucket. */
  size: number;
  all: Cell;
  dims: Record<Dimension, Map<string, Cell>>;
  /** An arrival bucket: the blobs that arrived after this deploy (start: its time). */
  deploy?: string;
}

export interface BucketJson {
  start: number;
  size: number;
  all: CellJson;
  dims: Record<string, [string, CellJson][]>;
  deploy?: string;
}

export interface StateJson {
  version: 1;
  watermark: number;
  buckets: BucketJson[];
  /** Arrival buckets, by deploy time then id (absent in states saved before they existed). */
  arrivals?: BucketJson[];
  applied: AppliedSetJson;
}

/** A deploy a blob arrived after, as the arrival records name it. */
export interface AfterDeploy {
  id: string;
  at: number;
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

const ARRIVAL_PREFIX = 'a/';
/** Key of a deploy's arrival bucket. */
export const arrivalKey = (deploy: string): string => `${ARRIVAL_PREFIX}${deploy}`;
export const isArrivalKey = (key: string): boolean => key.startsWith(ARRIVAL_PREFIX);
/** The key of any bucket, time or arrival. */
export const keyOf = (bucket: { start: number; size: number; deploy?: string }): string =>
  bucket.deploy !== undefined ? arrivalKey(bucket.deploy) : bucketKey(bucket.start, bucket.size);

const byStart = (a: Bucket, b: Bucket) =>
  a.start - b.start || a.size - b.size || ((a.deploy ?? '') < (b.deploy ?? '') ? -1 : (a.deploy ?? '') > (b.deploy ?? '') ? 1 : 0);

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
  return { start: bucket.start, size: bucket.size, all: cellToJson(bucket.all), dims, ...(bucket.deploy !== undefined ? { deploy: bucket.deploy } : {}) };
}

export function bucketFromJson(json: BucketJson): Bucket {
  const bucket = emptyBucket(json.start, json.size);
  if (typeof json.deploy === 'string') bucket.deploy = json.deploy;
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
  /** Per deploy (by {@link arrivalKey}): the blobs that arrived after it. */
  readonly arrivals = new Map<string, Bucket>();
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

  /** Counts one stored blob, once; also in the arrival bucket of each deploy of `after` it falls within the window of. */
  apply(doc: FactsInput & { _id: string }, after: readonly AfterDeploy[] = []): ApplyResult {
    if (!isStoredBlob(doc as unknown as Record<string, unknown>)) return 'not-a-blob';
    if (!this.applied.add(doc._id)) return 'duplicate';
    const facts = blobFacts(doc, this.segments);
    if (!facts) return 'no-signal';
    if (facts.time > this.watermark) this.watermark = facts.time;
    for (const deploy of after) {
      if (facts.time >= deploy.at + ARRIVAL_WINDOW_MS) continue;
      const key = arrivalKey(deploy.id);
      let arrival = this.arrivals.get(key);
      if (!arrival) {
        arrival = { ...emptyBucket(deploy.at, 0), deploy: deploy.id };
        this.arrivals.set(key, arrival);
      }
      applyFacts(arrival.all, facts);
      arrival.version = ++this.version;
    }
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

  /** Merges buckets that the watermark has made too fine into coarser ones; drops arrival buckets kept long enough. */
  downsample(): void {
    for (const [key, arrival] of [...this.arrivals]) if (arrival.start < this.watermark - ARRIVALS_KEPT_MS) this.arrivals.delete(key);
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

  /** Time buckets changed after `version` (late blobs included), oldest first. */
  changedSince(version: number): Bucket[] {
    return [...this.buckets.values()].filter((b) => b.version > version).sort(byStart);
  }

  /** Arrival buckets changed after `version`, by deploy time. */
  arrivalsChangedSince(version: number): Bucket[] {
    return [...this.arrivals.values()].filter((b) => b.version > version).sort(byStart);
  }

  /** Every key held, time buckets then arrival buckets (what a checkpoint names). */
  allKeys(): string[] {
    return [...this.buckets.keys(), ...this.arrivals.keys()];
  }

  /** Puts a bucket read from a checkpoint in its place, time or arrival. */
  putBucket(key: string, bucket: Bucket): void {
    (isArrivalKey(key) ? this.arrivals : this.buckets).set(key, bucket);
  }

  /** Removes a bucket by key, time or arrival. */
  deleteBucket(key: string): void {
    (isArrivalKey(key) ? this.arrivals : this.buckets).delete(key);
  }

  /** Canonical JSON: the same blobs give the same JSON, whatever their order. */
  toJSON(): StateJson {
    const buckets = [...this.buckets.values()].sort(byStart).map(bucketToJson);
    const arrivals = [...this.arrivals.values()].sort(byStart).map(bucketToJson);
    return { version: 1, watermark: this.watermark, buckets, ...(arrivals.length > 0 ? { arrivals } : {}), applied: this.applied.toJSON() };
  }

  static fromJSON(json: StateJson, segments: SegmentConfig, retention: RetentionConfig = defaultRetention): AggregateState {
    const state = new AggregateState(segments, retention);
    state.watermark = json.watermark;
    for (const b of [...json.buckets, ...(json.arrivals ?? [])]) state.putBucket(keyOf(b), bucketFromJson(b));
    state.applied = AppliedSet.fromJSON(json.applied);
    return state;
  }
}
