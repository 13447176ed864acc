/**
 * Small-number suppression: over random traffic, every number the public
 * view shows rests on groups of 0 or at least the minimum (property), and
 * what rests on enough is shown.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { FactsInput } from '../../src/aggregate/model/facts.js';
import { queryKpis } from '../../src/aggregate/model/query.js';
import { defaultSegmentConfig } from '../../src/aggregate/model/segments.js';
import { AggregateState, defaultRetention } from '../../src/aggregate/model/state.js';
import { HOUR } from '../../src/contract/kpis.js';
import { normalizeBlob } from '../../src/ingest/blob.js';
import { publicKpis, supportOf } from '../../src/public/suppress.js';
import { parseBreaks, seededRandom, simulateSession } from '../../src/simulate/generator.js';

const NOW = Date.UTC(2026, 11, 4, 12, 0);
const ctx = { now: NOW, maxAgeMs: HOUR, maxFutureMs: HOUR, userAgent: undefined };

/** The KPIs of `n` simulated dialogs (some with a break), as one cell. */
function kpisOf(n: number, seed: number, breaks: string[]) {
  const random = seededRandom(seed);
  const broken = parseBreaks(breaks);
  const state = new AggregateState(defaultSegmentConfig, defaultRetention);
  for (let i = 0; i < n; i++)
    state.apply({ ...(normalizeBlob(simulateSession(random, { now: NOW, breaks: broken }).blob, 'data', ctx) as FactsInput), _id: `b${i}` });
  return queryKpis(state, { from: NOW - HOUR, to: NOW + HOUR, bucket: '1d' }).series[0]!.total;
}

describe('publicKpis', () => {
  it('shows no number that rests on a group of fewer than the minimum, over random traffic (property)', () => {
    const breakable = ['user.user_staged', 'screen.pick_email', 'user.reset_password_staged', 'assertion_generated', 'screen.error'];
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 400 }), fc.integer(), fc.subarray(breakable), fc.integer({ min: 2, max: 50 }), (n, seed, broken, min) => {
        const kpis = kpisOf(
          n,
          seed,
          broken.map((b) => `${b}=${(Math.abs(seed) % 10) / 10}`),
        );
        const shown = publicKpis(kpis, min);
        for (const [field, groups] of Object.entries(supportOf(shown, kpis))) {
          for (const size of groups) expect(size === 0 || size >= min, `${field} rests on a group of ${size} (min ${min})`).toBe(true);
        }
        if (kpis.dialogs < min) expect(shown).toMatchObject({ dialogs: null, suppressed: true });
      }),
      { numRuns: 150 },
    );
  });

  it('shows what rests on enough dialogs, with the numbers of the signed-in view', () => {
    const kpis = kpisOf(3000, 1, []);
    const shown = publicKpis(kpis, 20);
    expect(shown.dialogs).toBe(3000);
    expect(shown.bounceRate).toBeCloseTo(kpis.bounceRate!, 12);
    expect(shown.newUsers).toBe(kpis.newUsers);
    expect(shown.newUserFunnel.map((s) => s.count)).toEqual(kpis.newUserFunnel.map((s) => s.count));
    expect(shown.newUserFunnel[1]!.conversionFromPrevious).toBeCloseTo(kpis.newUserFunnel[1]!.conversionFromPrevious!, 12);
    expect(shown.sitesLoggedInMedian).toBe(kpis.sitesLoggedIn.median);
  });

  it('withholds a cell below the minimum whole, and a small group inside a shown cell', () => {
    expect(publicKpis(kpisOf(19, 2, []), 20)).toMatchObject({ dialogs: null, bounceRate: null, newUsers: null, suppressed: true });
    // few password resets in 300 dialogs: the reset funnel's small steps are withheld, the rest is shown
    const shown = publicKpis(kpisOf(300, 3, []), 20);
    expect(shown.dialogs).toBe(300);
    expect(shown.passwordResetFunnel.some((s) => s.count === null)).toBe(true);
    expect(shown.suppressed).toBe(true);
  });
});
