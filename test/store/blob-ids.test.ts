import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BlobIdAllocator, blobDocId, floorToBucket, MAX_ID_TIME, newRunId, parseBlobDocId, timeKey } from '../../src/store/blob-ids.js';

const bucket = fc.integer({ min: 0, max: Math.floor(MAX_ID_TIME / 600_000) }).map((n) => n * 600_000);
const counter = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const run = newRunId();

describe('blob ids', () => {
  it('sort in time order, whatever run and counter (property)', () => {
    fc.assert(
      fc.property(bucket, bucket, counter, counter, (a, b, ca, cb) => {
        const [ia, ib] = [blobDocId(a, run, ca), blobDocId(b, newRunId(), cb)];
        if (a < b) expect(ia < ib).toBe(true);
        if (a > b) expect(ia > ib).toBe(true);
      }),
    );
  });

  it('fall in [timeKey(start), timeKey(end)) exactly when start <= timestamp < end (property)', () => {
    fc.assert(
      fc.property(bucket, counter, fc.integer({ min: 0, max: MAX_ID_TIME }), fc.integer({ min: 0, max: MAX_ID_TIME }), (ts, c, start, end) => {
        const id = blobDocId(ts, run, c);
        expect(id >= timeKey(start) && id < timeKey(end)).toBe(ts >= start && ts < end);
      }),
    );
  });

  it('parse back into time, run and counter (property)', () => {
    fc.assert(
      fc.property(bucket, counter, (ts, c) => {
        expect(parseBlobDocId(blobDocId(ts, run, c))).toEqual({ time: ts, run, counter: c });
      }),
    );
    expect(parseBlobDocId('_design/kpi-live')).toBeUndefined();
    expect(parseBlobDocId('2026-11-23T12:10:00.000Z_short-1')).toBeUndefined();
    expect(parseBlobDocId('2026-11-23T12:10:00.000Z_abcdefghij-1x')).toEqual({ time: Date.UTC(2026, 10, 23, 12, 10), run: 'abcdefghij', counter: 69 });
  });

  it('sort before design documents', () => {
    expect(blobDocId(floorToBucket(MAX_ID_TIME), run, Number.MAX_SAFE_INTEGER) < '_design/kpi-live').toBe(true);
  });

  it('round down to 10 minutes', () => {
    expect(floorToBucket(Date.UTC(2026, 0, 1, 10, 19, 59, 999))).toBe(Date.UTC(2026, 0, 1, 10, 10));
    expect(floorToBucket(Date.UTC(2026, 0, 1, 10, 20))).toBe(Date.UTC(2026, 0, 1, 10, 20));
  });
});

describe('BlobIdAllocator', () => {
  it('gives each batch the next block of counters, shuffled, never twice', () => {
    const ids = new BlobIdAllocator();
    const counters: number[] = [];
    let inOrder = 0;
    for (let batch = 0; batch < 50; batch++) {
      const docs = Array.from({ length: 20 }, () => ({ timestamp: 0 }) as { _id?: string; timestamp: number });
      ids.assign(docs);
      const got = docs.map((d) => parseBlobDocId(d._id!)!);
      expect(new Set(got.map((g) => g.run))).toEqual(new Set([ids.run]));
      const block = got.map((g) => g.counter);
      expect([...block].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => batch * 20 + i));
      if (block.every((c, i) => i === 0 || c > block[i - 1]!)) inOrder += 1;
      counters.push(...block);
    }
    expect(new Set(counters).size).toBe(1000);
    expect(ids.assigned).toBe(1000);
    // a shuffled block of 20 is in order with probability 1/20!
    expect(inOrder).toBe(0);
  });

  it('uses a different run per allocator', () => {
    expect(new BlobIdAllocator().run).not.toBe(new BlobIdAllocator().run);
  });
});
