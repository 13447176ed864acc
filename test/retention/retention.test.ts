/**
 * The retention cutoff: a blob goes once its whole 10-minute bucket is older
 * than the retention.
 */
import { describe, expect, it } from 'vitest';
import { retentionCutoff } from '../../src/retention/retention.js';
import { timeKey } from '../../src/store/blob-ids.js';

const DAY = 86_400_000;

describe('retentionCutoff', () => {
  it('is the start of the 10-minute bucket holding now - retention', () => {
    expect(retentionCutoff(Date.UTC(2026, 10, 23, 14, 37, 12), 90)).toBe(Date.UTC(2026, 7, 25, 14, 30));
    expect(retentionCutoff(Date.UTC(2026, 10, 23, 14, 30), 1)).toBe(Date.UTC(2026, 10, 22, 14, 30));
    expect(retentionCutoff(Date.UTC(2026, 10, 23, 0, 0), 0.5)).toBe(Date.UTC(2026, 10, 22, 12, 0));
  });

  it('expires exactly the buckets that end at or before now - retention', () => {
    const now = Date.UTC(2026, 10, 23, 14, 37);
    const cutoff = retentionCutoff(now, 90);
    const limit = now - 90 * DAY;
    for (let bucket = cutoff - 60 * 60_000; bucket <= cutoff + 60 * 60_000; bucket += 10 * 60_000) {
      const expired = bucket < cutoff;
      expect(expired).toBe(bucket + 10 * 60_000 <= limit);
      // the `_all_docs` range below the cutoff's time key holds exactly the expired ids
      expect(`${timeKey(bucket)}_aaaaaaaaaa-0` < timeKey(cutoff)).toBe(expired);
    }
  });
});
