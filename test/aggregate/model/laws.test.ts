/**
 * The laws the incremental aggregate must obey, checked on random blobs.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyFacts, cellToJson, emptyCell, mergeCells } from '../../../src/aggregate/model/cell.js';
import { blobFacts } from '../../../src/aggregate/model/facts.js';
import { queryKpis, type KpiQuery } from '../../../src/aggregate/model/query.js';
import { recomputeKpis } from '../../../src/aggregate/model/recompute.js';
import { defaultSegmentConfig } from '../../../src/aggregate/model/segments.js';
import { AggregateState, type RetentionConfig } from '../../../src/aggregate/model/state.js';
import { BASE_TIME, blobList, type TestBlob, shuffled } from './blob-arbitrary.js';
import { type BucketName, type KpiAnswer, type Kpis, DIMENSIONS, OTHER, DAY, HOUR, TEN_MINUTES } from '../../../src/contract/kpis.js';

const config = defaultSegmentConfig;
const cellOf = (blobs: TestBlob[]) => {
  const cell = emptyCell();
  for (const b of blobs) {
    const f = blobFacts(b, config);
    if (f) applyFacts(cell, f);
  }
  return cell;
};

function stateOf(blobs: TestBlob[], retention?: RetentionConfig): AggregateState {
  const state = new AggregateState(config, retention);
  for (const b of blobs) state.apply(b);
  state.downsample();
  return state;
}

const json = (state: AggregateState) => JSON.stringify(state.toJSON());
describe('merge', () => {
  it('is associative and commutative, and equals applying the union (property)', () => {
    fc.assert(
      fc.property(blobList(1, 20), blobList(1, 20), blobList(1, 20), (a, b, c) => {
        const [ca, cb, cc] = [cellOf(a), cellOf(b), cellOf(c)];
        const left = cellToJson(mergeCells(mergeCells(ca, cb), cc));
        expect(cellToJson(mergeCells(ca, mergeCells(cb, cc)))).toEqual(left);
        expect(cellToJson(mergeCells(cb, ca))).toEqual(cellToJson(mergeCells(ca, cb)));
        expect(cellToJson(cellOf([...a, ...b, ...c]))).toEqual(left);
        expect(cellToJson(mergeCells(ca, emptyCell()))).toEqual(cellToJson(ca));
      }),
    );
  });
});

describe('AggregateState', () => {
  it('applying blobs one by one in any order gives the same state (property)', () => {
    fc.assert(
      fc.property(blobList(), fc.integer(), (blobs, seed) => {
        expect(json(stateOf(shuffled(blobs, seed)))).toBe(json(stateOf(blobs)));
      }),
    );
  });

  it('replaying any suffix of the feed changes nothing (property)', () => {
    fc.assert(
      fc.property(blobList(), fc.nat(), (blobs, cut) => {
        const state = stateOf(blobs);
        const before = json(state);
        const suffix = blobs.slice(blobs.length ? cut % blobs.length : 0);
        for (const b of suffix) expect(state.apply(b)).toBe('duplicate');
        state.downsample();
        expect(json(state)).toBe(before);
      }),
    );
  });

  it('a restart from a checkpoint at any split point, resuming from an earlier position, equals an uninterrupted run (property)', () => {
    fc.assert(
      fc.property(blobList(), fc.nat(), fc.nat(), (blobs, split, rewind) => {
        const at = blobs.length ? split % (blobs.length + 1) : 0;
        const first = stateOf(blobs.slice(0, at));
        const checkpoint = JSON.parse(JSON.stringify(first.toJSON()));
        const resumed = AggregateState.fromJSON(checkpoint, config);
        // the feed resumes at or before the checkpoint's position (at-least-once)
        for (const b of blobs.slice(Math.max(0, at - (rewind % (at + 1))))) resumed.apply(b);
        resumed.downsample();
        expect(json(resumed)).toBe(json(stateOf(blobs)));
      }),
    );
  });

  it('downsampling keeps totals identical and the result independent of when it ran (property)', () => {
    const retention = { tenMinuteHours: 6, hourlyDays: 1 };
    fc.assert(
      fc.property(blobList(5, 80), fc.nat(), (blobs, every) => {
        const live = new AggregateState(config, retention);
        blobs.forEach((b, i) => {
          live.apply(b);
          if (i % ((every % 7) + 1) === 0) live.downsample();
        });
        live.downsample();
        const batch = stateOf(blobs, retention);
        expect(json(live)).toBe(json(batch));
        const fine = stateOf(blobs);
        const everything = { from: 0, to: BASE_TIME + 10 * DAY, bucket: '1d' as const };
        expect(queryKpis(live, everything).series[0]!.total).toEqual(queryKpis(fine, everything).series[0]!.total);
        for (const bucket of live.buckets.values()) expect(bucket.size).toBe(live.sizeFor(bucket.start));
      }),
    );
  });
});

describe('live deltas', () => {
  it('list exactly the points changed after a version, with whole-window totals (property)', () => {
    fc.assert(
      fc.property(
        blobList(2, 60),
        fc.nat(),
        fc.constantFrom<BucketName>('10m', '1h'),
        fc.constantFrom(undefined, 'os' as const),
        (blobs, split, bucket, segment) => {
          const at = blobs.length ? split % (blobs.length + 1) : 0;
          const state = new AggregateState(config);
          for (const b of blobs.slice(0, at)) state.apply(b);
          state.downsample();
          const version = state.version;
          for (const b of blobs.slice(at)) state.apply(b);
          state.downsample();
          const query = { from: BASE_TIME, to: BASE_TIME + 2 * DAY, bucket, segment };
          const full = queryKpis(state, query);
          const delta = queryKpis(state, query, version);
          const changed = new Set(state.changedSince(version).map((b) => (bucket === '1h' ? Math.floor(b.start / HOUR) * HOUR : b.start)));
          for (const series of delta.series) {
            const whole = full.series.find((s) => s.segment === series.segment)!;
            expect(series.total).toEqual(whole.total);
            expect(series.points).toEqual(whole.points.filter((p) => changed.has(p.start)));
          }
        },
      ),
    );
  });
});

describe('queryKpis equals a recompute from raw blobs', () => {
  it('with documents that are no blob among them: both leave them out (property)', () => {
    const foreign = fc.constantFrom<Record<string, unknown>>(
      { timestamp: 'yesterday', event_stream: [['screen.rp_info', 5]] },
      { event_stream: {} },
      { event_stream: [5] },
      { lang: {} },
      { timestamp: BASE_TIME + 1 },
      { user_agent: 'Firefox' },
    );
    fc.assert(
      fc.property(
        blobList(3, 60),
        fc.array(fc.tuple(fc.nat(59), foreign), { maxLength: 10 }),
        fc.constantFrom<BucketName>('10m', '1h', '1d'),
        (blobs, wrongs, bucket) => {
          const mixed = blobs.map((b, i) => {
            const wrong = wrongs.find(([at]) => at === i);
            return wrong ? ({ ...b, ...wrong[1] } as TestBlob) : b;
          });
          const state = stateOf(mixed);
          const query = { from: BASE_TIME - HOUR, to: BASE_TIME + 4 * DAY, bucket, segment: 'os' as const };
          expect(queryKpis(state, query)).toEqual(recomputeKpis(mixed, config, query, (t) => state.sizeFor(t)));
        },
      ),
    );
  });

  it('for any window, bucket size and segmentation (property)', () => {
    fc.assert(
      fc.property(
        blobList(3, 80),
        fc.integer({ min: 0, max: 3 * 144 }),
        fc.integer({ min: 1, max: 3 * 144 }),
        fc.constantFrom<BucketName>('10m', '1h', '1d'),
        fc.constantFrom(undefined, ...DIMENSIONS),
        (blobs, fromSlot, length, bucket, segment) => {
          const state = stateOf(blobs);
          const query = { from: BASE_TIME + fromSlot * 600_000, to: BASE_TIME + (fromSlot + length) * 600_000, bucket, segment };
          expect(queryKpis(state, query)).toEqual(recomputeKpis(blobs, config, query, (t) => state.sizeFor(t)));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('also where the aggregate has downsampled (property)', () => {
    const retention = { tenMinuteHours: 12, hourlyDays: 2 };
    fc.assert(
      fc.property(
        blobList(5, 80),
        fc.constantFrom<BucketName>('10m', '1h', '1d'),
        fc.constantFrom(undefined, 'os' as const, 'emailType' as const),
        (blobs, bucket, segment) => {
          const state = stateOf(blobs, retention);
          const query = { from: BASE_TIME - HOUR, to: BASE_TIME + 6 * DAY, bucket, segment };
          expect(queryKpis(state, query)).toEqual(recomputeKpis(blobs, config, query, (t) => state.sizeFor(t)));
        },
      ),
      { numRuns: 100 },
    );
  });
});

/** The counts of a KPI set (integers) and its estimates (sums of weights), to add and subtract. */
const countsOf = (k: Kpis) => [
  k.dialogs,
  k.assertions,
  k.newUsers,
  k.timeToLoginMs.count,
  ...Object.values(k.outcomes),
  ...[...k.newUserFunnel, ...k.passwordResetFunnel, ...k.progress].map((s) => s.count),
];
const estimatesOf = (k: Kpis) => [
  k.dialogsEstimate,
  k.newUsersEstimate,
  ...[...k.newUserFunnel, ...k.passwordResetFunnel, ...k.progress].map((s) => s.estimate),
];
const minus = (a: number[], b: number[]) => a.map((v, i) => v - b[i]!);

/**
 * The oracle of a top-N answer: the segmented recompute's N biggest values
 * (the configured `Other` aside), and `Other` recomputed from the raw blobs of
 * every other value as one population.
 */
function recomputeTop(
  blobs: TestBlob[],
  query: KpiQuery & { segment: NonNullable<KpiQuery['segment']>; top: number },
  storedSize: (t: number) => number,
): KpiAnswer {
  const { top, ...plain } = query;
  const segmented = recomputeKpis(blobs, config, plain, storedSize);
  const kept = segmented.series.filter((s) => s.segment !== OTHER).slice(0, top);
  const names = new Set(kept.map((s) => s.segment));
  const rest = blobs.filter((b) => {
    const value = blobFacts(b, config)?.segments[query.segment];
    return value !== undefined && !names.has(value);
  });
  const { segment: _segment, ...unsegmented } = plain;
  const other = recomputeKpis(rest, config, unsegmented, storedSize).series[0]!;
  // a segmented series carries no new-user step times
  const stepless = (k: Kpis): Kpis => ({ ...k, newUserStepTimesMs: k.newUserStepTimesMs.map((s) => ({ ...s, median: null, p90: null })) });
  const otherSeries = { segment: OTHER, total: stepless(other.total), points: other.points.map((p) => ({ ...p, kpis: stepless(p.kpis) })) };
  return { ...segmented, series: [...kept, ...(other.total.dialogs > 0 ? [otherSeries] : [])] };
}

describe('top N + Other', () => {
  const topQuery = () =>
    fc.record({
      fromSlot: fc.integer({ min: 0, max: 3 * 144 }),
      length: fc.integer({ min: 1, max: 3 * 144 }),
      bucket: fc.constantFrom<BucketName>('10m', '1h', '1d'),
      segment: fc.constantFrom(...DIMENSIONS),
      top: fc.integer({ min: 1, max: 6 }),
    });

  it("Other's counts are everything's minus the top values', in total and at every point (property)", () => {
    fc.assert(
      fc.property(blobList(3, 80), topQuery(), (blobs, { fromSlot, length, bucket, segment, top }) => {
        const state = stateOf(blobs);
        const window = { from: BASE_TIME + fromSlot * 600_000, to: BASE_TIME + (fromSlot + length) * 600_000, bucket };
        const all = queryKpis(state, window).series[0]!;
        const answer = queryKpis(state, { ...window, segment, top });
        const topSeries = answer.series.filter((s) => s.segment !== OTHER);
        expect(topSeries.length).toBeLessThanOrEqual(top);
        expect(answer.series.findIndex((s) => s.segment === OTHER)).toBeOneOf([-1, answer.series.length - 1]);
        const other = answer.series.find((s) => s.segment === OTHER);
        const sum = (pick: (k: Kpis) => number[], of: (Kpis | undefined)[]) =>
          of.reduce<number[]>(
            (acc, k) => (k ? acc.map((v, i) => v + pick(k)[i]!) : acc),
            pick(all.total).map(() => 0),
          );
        expect(other ? countsOf(other.total) : countsOf(all.total).map(() => 0)).toEqual(
          minus(
            countsOf(all.total),
            sum(
              countsOf,
              topSeries.map((s) => s.total),
            ),
          ),
        );
        const restEstimates = minus(
          estimatesOf(all.total),
          sum(
            estimatesOf,
            topSeries.map((s) => s.total),
          ),
        );
        (other ? estimatesOf(other.total) : restEstimates.map(() => 0)).forEach((v, i) => expect(v).toBeCloseTo(restEstimates[i]!, 6));
        for (const point of all.points) {
          const at = (s: { points: { start: number; kpis: Kpis }[] } | undefined) => s?.points.find((p) => p.start === point.start)?.kpis;
          const otherAt = at(other);
          expect(otherAt ? countsOf(otherAt) : countsOf(point.kpis).map(() => 0)).toEqual(minus(countsOf(point.kpis), sum(countsOf, topSeries.map(at))));
        }
      }),
      { numRuns: 200 },
    );
  });

  it('top values and Other equal a recompute from the raw blobs, downsampled or not (property)', () => {
    fc.assert(
      fc.property(blobList(3, 80), topQuery(), fc.boolean(), (blobs, { fromSlot, length, bucket, segment, top }, downsampled) => {
        const state = stateOf(blobs, downsampled ? { tenMinuteHours: 12, hourlyDays: 2 } : undefined);
        const query = { from: BASE_TIME + fromSlot * 600_000, to: BASE_TIME + (fromSlot + length) * 600_000, bucket, segment, top };
        expect(queryKpis(state, query)).toEqual(recomputeTop(blobs, query, (t) => state.sizeFor(t)));
      }),
      { numRuns: 200 },
    );
  });

  it('a live delta names the same series as the full answer, with whole-window totals and only the changed points (property)', () => {
    fc.assert(
      fc.property(blobList(2, 60), fc.nat(), fc.constantFrom<BucketName>('10m', '1h'), fc.integer({ min: 1, max: 3 }), (blobs, split, bucket, top) => {
        const at = blobs.length ? split % (blobs.length + 1) : 0;
        const state = stateOf(blobs.slice(0, at));
        const version = state.version;
        for (const b of blobs.slice(at)) state.apply(b);
        state.downsample();
        const query = { from: BASE_TIME, to: BASE_TIME + 2 * DAY, bucket, segment: 'os' as const, top };
        const full = queryKpis(state, query);
        const delta = queryKpis(state, query, version);
        expect(delta.series.map((s) => s.segment)).toEqual(full.series.map((s) => s.segment));
        const changed = new Set(state.changedSince(version).map((b) => (bucket === '1h' ? Math.floor(b.start / HOUR) * HOUR : b.start)));
        delta.series.forEach((series, i) => {
          expect(series.total).toEqual(full.series[i]!.total);
          expect(series.points).toEqual(full.series[i]!.points.filter((p) => changed.has(p.start)));
        });
      }),
    );
  });
});

describe('the overall of a segmented answer', () => {
  it('equals the unsegmented total, live and in deltas, with or without top (property)', () => {
    fc.assert(
      fc.property(
        blobList(3, 60),
        fc.record({
          fromSlot: fc.integer({ min: 0, max: 400 }),
          length: fc.integer({ min: 1, max: 500 }),
          bucket: fc.constantFrom<BucketName>('10m', '1h', '1d'),
          segment: fc.constantFrom(...DIMENSIONS),
          top: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
        }),
        (blobs, { fromSlot, length, bucket, segment, top }) => {
          const state = stateOf(blobs);
          const from = BASE_TIME + fromSlot * TEN_MINUTES;
          const window = { from, to: from + length * TEN_MINUTES, bucket };
          const plain = queryKpis(state, window);
          expect(plain.overall).toBeUndefined();
          const split = queryKpis(state, { ...window, segment, top });
          expect(split.overall).toEqual(plain.series[0]!.total);
          expect(queryKpis(state, { ...window, segment, top }, state.version).overall).toEqual(plain.series[0]!.total);
        },
      ),
    );
  });
});
