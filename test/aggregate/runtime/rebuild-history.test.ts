/**
 * A rebuild after retention: the buckets whose raw blobs are gone come from
 * the checkpoint, the rest from the stored blobs, and the result is the
 * aggregate of every blob ever sent, whatever was removed, whatever the
 * checkpoint had not counted yet, and in whatever order the feed replays.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AppliedSet } from '../../../src/aggregate/model/applied-set.js';
import { applyChanges, type FeedChange } from '../../../src/aggregate/runtime/feed.js';
import { KeptHistory, unionApplied } from '../../../src/aggregate/runtime/rebuild.js';
import { defaultSegmentConfig } from '../../../src/aggregate/model/segments.js';
import { AggregateState, type RetentionConfig } from '../../../src/aggregate/model/state.js';
import { blobDocId } from '../../../src/store/blob-ids.js';
import { BASE_TIME, blobList, type TestBlob, shuffled } from '../model/blob-arbitrary.js';

const config = defaultSegmentConfig;
// short spans, so that 10-minute, hourly and daily buckets all occur and straddle the horizon
const retention: RetentionConfig = { tenMinuteHours: 6, hourlyDays: 1 };
const SPAN_DAYS = 4;

function stateOf(blobs: TestBlob[]): AggregateState {
  const state = new AggregateState(config, retention);
  for (const b of blobs) state.apply(b);
  state.downsample();
  return state;
}

const json = (state: AggregateState) => JSON.stringify(state.toJSON());
const change = (blob: TestBlob, seq: number): FeedChange => ({ id: blob._id, seq, doc: blob });

interface Scenario {
  blobs: TestBlob[];
  /** Retention horizon (ms) when retention has run. */
  horizon: number | undefined;
  /** Which blobs before the horizon retention removed (a late blob may still be there). */
  removed: boolean[];
  /** Which stored blobs the checkpoint had counted already. */
  inCheckpoint: boolean[];
  batch: number;
  seed: number;
}

const scenarios = fc.record({
  blobs: blobList(SPAN_DAYS, 80),
  horizon: fc
    .option(fc.integer({ min: 0, max: SPAN_DAYS * 144 }), { nil: undefined })
    .map((slot) => (slot === undefined ? undefined : BASE_TIME + slot * 600_000)),
  removed: fc.array(fc.boolean(), { minLength: 80, maxLength: 80 }),
  inCheckpoint: fc.array(fc.boolean(), { minLength: 80, maxLength: 80 }),
  batch: fc.integer({ min: 1, max: 20 }),
  seed: fc.integer(),
});

/** Runs a rebuild the way src/aggregate/runtime/rebuild.ts does, on a scenario; the rebuilt state and how many buckets it kept. */
function rebuildAfterRetention({ blobs, horizon, removed, inCheckpoint, batch, seed }: Scenario) {
  const gone = blobs.filter((b, i) => horizon !== undefined && b.timestamp < horizon && removed[i]);
  const stored = blobs.filter((b) => !gone.includes(b));
  // everything retention removed had been counted (it waits for a live aggregate); of the rest, any part
  const checkpoint = stateOf([...gone, ...stored.filter((_, i) => inCheckpoint[i])]);
  const oldest = stored.length ? Math.min(...stored.map((b) => b.timestamp)) : undefined;
  const keep = (bucket: { start: number; size: number }) =>
    (horizon !== undefined && bucket.start < horizon) || oldest === undefined || bucket.start + bucket.size <= oldest;
  const history = new KeptHistory(checkpoint, keep, config, retention);
  const feed = shuffled(stored, seed).map(change);
  for (let i = 0; i < feed.length; i += batch) applyChanges(history.state, history.uncounted(feed.slice(i, i + batch)));
  return { state: history.finish(), kept: history.keptBuckets, gone, checkpoint };
}

describe('rebuild after retention', () => {
  it('equals the aggregate of every blob ever sent (property)', () => {
    fc.assert(
      fc.property(scenarios, (scenario) => {
        const { state } = rebuildAfterRetention(scenario);
        expect(json(state)).toBe(json(stateOf(scenario.blobs)));
      }),
      { numRuns: 300 },
    );
  });

  it('keeps no bucket, and is a plain recompute, when nothing was removed (property)', () => {
    fc.assert(
      fc.property(scenarios, (scenario) => {
        const { state, kept } = rebuildAfterRetention({ ...scenario, horizon: undefined });
        expect(kept).toBe(0);
        expect(json(state)).toBe(json(stateOf(scenario.blobs)));
      }),
    );
  });

  it('leaves the checkpoint it keeps buckets from untouched (property)', () => {
    fc.assert(
      fc.property(scenarios, (scenario) => {
        const gone = scenario.blobs.filter((b, i) => scenario.horizon !== undefined && b.timestamp < scenario.horizon && scenario.removed[i]);
        const before = json(stateOf([...gone]));
        const { checkpoint } = rebuildAfterRetention({ ...scenario, inCheckpoint: scenario.inCheckpoint.map(() => false) });
        expect(json(checkpoint)).toBe(before);
      }),
    );
  });

  it('a straddled daily bucket keeps its removed blobs and gains a late one, counted once', () => {
    const day = BASE_TIME - (BASE_TIME % 86_400_000);
    const run = 'dddddddddd';
    const at = (hours: number, counter: number): TestBlob => {
      const timestamp = day + hours * 3_600_000;
      return { _id: blobDocId(timestamp, run, counter), timestamp, event_stream: [['screen.rp_info', 5]] };
    };
    const early = at(2, 0); // removed by retention
    const kept = at(20, 1); // stored, counted
    const late = at(21, 2); // stored, arrived after the checkpoint
    const recent = at(24 * 3, 3); // makes the first day a daily bucket
    const checkpoint = stateOf([early, kept, recent]);
    expect([...checkpoint.buckets.values()].some((b) => b.start === day && b.size === 86_400_000)).toBe(true);
    const horizon = day + 12 * 3_600_000; // straddles the daily bucket
    const history = new KeptHistory(checkpoint, (b) => b.start < horizon, config, retention);
    applyChanges(history.state, history.uncounted([late, kept, recent].map(change)));
    expect(json(history.finish())).toBe(json(stateOf([early, kept, late, recent])));
  });
});

describe('unionApplied', () => {
  it('equals adding both sets one id at a time (property)', () => {
    const ids = fc.array(fc.tuple(fc.constantFrom('aaaaaaaaaa', 'bbbbbbbbbb'), fc.integer({ min: 0, max: 60 })), { maxLength: 40 });
    fc.assert(
      fc.property(ids, ids, fc.array(fc.constantFrom('x', 'y', 'z')), (a, b, foreign) => {
        const set = (pairs: [string, number][], extra: string[]) => {
          const s = new AppliedSet();
          for (const [run, counter] of pairs) s.add(blobDocId(BASE_TIME, run, counter));
          for (const id of extra) s.add(id);
          return s;
        };
        const union = unionApplied(set(a, foreign).toJSON(), set(b, ['z']).toJSON());
        expect(union).toEqual(set([...a, ...b], [...foreign, 'z']).toJSON());
      }),
    );
  });
});
