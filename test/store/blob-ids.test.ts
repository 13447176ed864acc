import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { blobDocId, floorToBucket, MAX_ID_TIME, timeKey } from '../../src/store/blob-ids.js';

const bucket = fc.integer({ min: 0, max: Math.floor(MAX_ID_TIME / 600_000) }).map((n) => n * 600_000);

describe('blob ids', () => {
  it('sort in time order (property)', () => {
    fc.assert(
      fc.property(bucket, bucket, (a, b) => {
        const [ia, ib] = [blobDocId(a), blobDocId(b)];
        if (a < b) expect(ia < ib).toBe(true);
        if (a > b) expect(ia > ib).toBe(true);
      }),
    );
  });

  it('fall in [timeKey(start), timeKey(end)) exactly when start <= timestamp < end (property)', () => {
    fc.assert(
      fc.property(bucket, fc.integer({ min: 0, max: MAX_ID_TIME }), fc.integer({ min: 0, max: MAX_ID_TIME }), (ts, start, end) => {
        const id = blobDocId(ts);
        const inKeys = id >= timeKey(start) && id < timeKey(end);
        expect(inKeys).toBe(ts >= start && ts < end);
      }),
    );
  });

  it('sort before design documents', () => {
    expect(blobDocId(floorToBucket(MAX_ID_TIME)) < '_design/kpi-live').toBe(true);
  });

  it('are unique for the same bucket', () => {
    const ids = new Set(Array.from({ length: 10_000 }, () => blobDocId(0)));
    expect(ids.size).toBe(10_000);
  });

  it('round down to 10 minutes', () => {
    expect(floorToBucket(Date.UTC(2026, 0, 1, 10, 19, 59, 999))).toBe(Date.UTC(2026, 0, 1, 10, 10));
    expect(floorToBucket(Date.UTC(2026, 0, 1, 10, 20))).toBe(Date.UTC(2026, 0, 1, 10, 20));
  });
});
