import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AppliedSet } from '../../../src/aggregate/model/applied-set.js';
import { blobDocId } from '../../../src/store/blob-ids.js';

const RUNS = ['aaaaaaaaaa', 'bbbbbbbbbb'];
const id = (run: number, counter: number) => blobDocId(Date.UTC(2026, 0, 1), RUNS[run]!, counter);

describe('AppliedSet', () => {
  it('behaves as a set of ids (property, against a model Set)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 60 }))), (ops) => {
        const set = new AppliedSet();
        const model = new Set<string>();
        for (const [run, counter] of ops) {
          const key = id(run, counter);
          expect(set.add(key)).toBe(!model.has(key));
          model.add(key);
        }
        for (let run = 0; run < 2; run++) for (let c = 0; c <= 61; c++) expect(set.has(id(run, c))).toBe(model.has(id(run, c)));
        expect(AppliedSet.fromJSON(JSON.parse(JSON.stringify(set.toJSON()))).toJSON()).toEqual(set.toJSON());
      }),
    );
  });

  it('holds a million blobs of one run, arriving out of order, in one range', () => {
    const set = new AppliedSet();
    const n = 1_000_000;
    for (let base = 0; base < n; base += 500) {
      // batches of 500 whose members arrive shuffled, and two writes in flight at once
      for (let k = 499; k >= 0; k -= 2) set.add(id(0, base + k));
      for (let k = 0; k < 500; k += 2) set.add(id(0, base + k));
    }
    expect(set.size).toEqual({ runs: 1, ranges: 1, foreign: 0 });
    expect(set.add(id(0, 123_456))).toBe(false);
    expect(set.has(id(0, n))).toBe(false);
  });

  it('keeps a hole where a write failed, and fills it if the blobs appear after all', () => {
    const set = new AppliedSet();
    for (let c = 0; c < 100; c++) if (c < 40 || c >= 60) set.add(id(1, c));
    expect(set.size.ranges).toBe(2);
    for (let c = 40; c < 60; c++) set.add(id(1, c));
    expect(set.size.ranges).toBe(1);
  });

  it('remembers ids of another shape exactly', () => {
    const set = new AppliedSet();
    expect(set.add('legacy-id-1')).toBe(true);
    expect(set.add('legacy-id-1')).toBe(false);
    expect(set.has('legacy-id-2')).toBe(false);
    expect(set.size.foreign).toBe(1);
  });
});
