import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { NewBlobDoc } from '../../src/ingest/blob.js';
import { sampled, sampleKey } from '../../src/ingest/sampling.js';

const doc = (i: number, sample_rate?: number): NewBlobDoc => ({
  timestamp: 1_795_400_000_000,
  event_stream: [['screen.rp_info', i]],
  ...(sample_rate === undefined ? {} : { sample_rate }),
});

describe('server-side sampling', () => {
  it('decides by content alone, and a kept blob carries client rate × server rate', () => {
    fc.assert(
      fc.property(
        fc.nat(1e6),
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        fc.option(fc.double({ min: 0.01, max: 1, noNaN: true }), { nil: undefined }),
        (i, rate, client) => {
          const first = sampled(doc(i, client), rate);
          expect(sampled(doc(i, client), rate)).toEqual(first);
          // an unsampled blob (rate 1) keeps no sample_rate of its own: it counts as 1
          if (first) expect(first.sample_rate ?? 1).toBeCloseTo((client ?? 1) * rate, 12);
          if (rate === 1) expect(first).toEqual(doc(i, client));
        },
      ),
    );
  });

  it('keeps a blob at a lower rate only if it keeps it at every higher one (nested samples)', () => {
    fc.assert(
      fc.property(fc.nat(1e6), fc.double({ min: 0.01, max: 1, noNaN: true }), fc.double({ min: 0.01, max: 1, noNaN: true }), (i, a, b) => {
        const [low, high] = a < b ? [a, b] : [b, a];
        if (sampled(doc(i), low)) expect(sampled(doc(i), high)).toBeDefined();
      }),
    );
  });

  it('keeps close to the rate over many blobs', () => {
    const n = 20_000;
    const keys = Array.from({ length: n }, (_, i) => sampleKey(doc(i)));
    for (const rate of [0.1, 0.5, 0.9]) {
      const kept = keys.filter((k) => k < rate).length / n;
      // 20,000 draws: 5 standard deviations is under 0.011.
      expect(Math.abs(kept - rate)).toBeLessThan(0.011);
    }
    expect(Math.min(...keys)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...keys)).toBeLessThan(1);
  });
});
