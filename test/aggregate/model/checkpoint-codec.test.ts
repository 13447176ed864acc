/**
 * A checkpoint keeps every number exactly: buckets through their JSON form
 * and back are the same buckets, whatever sample rates the blobs carried,
 * and a saved cell that holds anything but counts is refused, never read.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cellFromJson, cellToJson, CorruptCellError, COUNTERS, emptyCell } from '../../../src/aggregate/model/cell.js';
import { MIN_COUNTED_SAMPLE_RATE } from '../../../src/aggregate/model/facts.js';
import { queryKpis } from '../../../src/aggregate/model/query.js';
import { defaultSegmentConfig } from '../../../src/aggregate/model/segments.js';
import { AggregateState, bucketFromJson, bucketKey, bucketToJson } from '../../../src/aggregate/model/state.js';
import { BASE_TIME, blobList } from './blob-arbitrary.js';
import { DAY } from '../../../src/contract/kpis.js';

/** Sample rates as stored blobs may carry them: ordinary ones, the floors, and below every floor. */
const storedRate = fc.oneof(
  fc.constantFrom(undefined, 1, 0.5, 0.3, 0.01, 0.01 * 0.0001, MIN_COUNTED_SAMPLE_RATE, 1e-9, 5e-324),
  fc.double({ min: Number.MIN_VALUE, max: 1, noNaN: true }),
);

const roundTrip = (state: AggregateState) => {
  const saved = JSON.parse(JSON.stringify([...state.buckets.values()].map(bucketToJson))) as ReturnType<typeof bucketToJson>[];
  const loaded = new AggregateState(defaultSegmentConfig);
  for (const json of saved) loaded.buckets.set(bucketKey(json.start, json.size), bucketFromJson(json));
  loaded.watermark = state.watermark;
  return { saved, loaded };
};

describe('checkpoint codec', () => {
  it('keeps every number exactly through JSON, at any sample rate (property)', () => {
    fc.assert(
      fc.property(blobList(2, 40), fc.array(storedRate, { minLength: 40, maxLength: 40 }), (blobs, rates) => {
        const state = new AggregateState(defaultSegmentConfig);
        blobs.forEach((b, i) => state.apply(rates[i] === undefined ? b : { ...b, sample_rate: rates[i] }));
        const { saved, loaded } = roundTrip(state);
        for (const json of saved) {
          const again = bucketToJson(bucketFromJson(json));
          expect(again).toEqual(json);
          for (const n of [...json.all.c, ...json.all.w]) expect(Number.isSafeInteger(n)).toBe(true);
        }
        const window = { from: BASE_TIME, to: BASE_TIME + 2 * DAY, bucket: '1h' as const };
        const before = queryKpis(state, window);
        const after = queryKpis(loaded, window);
        expect(after).toEqual(before);
        const total = before.series[0]!.total;
        for (const n of [total.dialogsEstimate, total.newUsersEstimate]) expect(Number.isFinite(n)).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it('refuses a saved cell holding null (how JSON keeps Infinity), a fraction or a negative, naming where', () => {
    const good = cellToJson(emptyCell());
    const withCounter = (field: 'c' | 'w', at: number, value: unknown) => ({ ...good, [field]: good[field].map((n, i) => (i === at ? value : n)) });
    const cases: [unknown, RegExp][] = [
      [withCounter('w', 0, null), /^w\[0\] is null, not a count$/],
      [withCounter('w', 3, 1.5), /^w\[3\] is 1.5, not a count$/],
      [withCounter('c', 2, -1), /^c\[2\] is -1, not a count$/],
      [withCounter('c', 0, '7'), /^c\[0\] is "7", not a count$/],
      [withCounter('c', 0, 2 ** 53), /^c\[0\] is 9007199254740992, not a count$/],
      [{ ...good, c: good.c.slice(1) }, new RegExp(`^c must be ${COUNTERS} counts$`)],
      [{ ...good, s: [[1, null]] }, /^s\[0\] is \[1,null\], not a \[key, count\] pair$/],
      [{ ...good, t: {} }, /^t must be \[key, count\] pairs$/],
      [{ ...good, n: [[], []] }, /^n must be 4 histograms$/],
      [{ ...good, n: [[], [], [], [[0.5, 1]]] }, /^n\[3\]\[0\] is/],
    ];
    for (const [json, message] of cases) {
      expect(() => cellFromJson(json as never)).toThrow(CorruptCellError);
      expect(() => cellFromJson(json as never)).toThrow(message);
    }
    expect(cellToJson(cellFromJson(good))).toEqual(good);
  });
});
