import { describe, expect, it } from 'vitest';
import type { KpiAnswer, KpiPoint, Kpis } from '../../src/aggregate/kpi-types.js';
import type { FunnelStep } from '../../src/aggregate/kpi-types.js';
import {
  breached,
  change,
  compareFunnels,
  formatValue,
  mergeDelta,
  mergeDeploys,
  subscriptionFromUrl,
  subscriptionToUrl,
  twoProportionZ,
} from '../../web/src/model.js';

const kpis = (dialogs: number) => ({ dialogs }) as unknown as Kpis;
const point = (start: number, dialogs: number): KpiPoint => ({ start, end: start + 10, kpis: kpis(dialogs) });
const answer = (from: number, to: number, series: [string, number, KpiPoint[]][]): KpiAnswer => ({
  from,
  to,
  bucket: '10m',
  bucketMs: 10,
  segment: null,
  watermark: 0,
  series: series.map(([segment, total, points]) => ({ segment, total: kpis(total), points })),
});

describe('mergeDelta', () => {
  it('replaces totals and changed points, keeps the others, adds new ones', () => {
    const current = answer(0, 40, [['all', 3, [point(0, 1), point(10, 2)]]]);
    const delta = answer(0, 40, [['all', 9, [point(10, 5), point(20, 3)]]]);
    expect(mergeDelta(current, delta).series).toEqual([{ segment: 'all', total: kpis(9), points: [point(0, 1), point(10, 5), point(20, 3)] }]);
  });

  it('drops points that slid out of the window, and series the delta no longer has', () => {
    const current = answer(0, 40, [
      ['a', 3, [point(0, 1), point(10, 2)]],
      ['b', 1, [point(0, 1)]],
    ]);
    const delta = answer(10, 50, [['a', 4, [point(40, 2)]]]);
    const merged = mergeDelta(current, delta);
    expect(merged.from).toBe(10);
    expect(merged.series).toEqual([{ segment: 'a', total: kpis(4), points: [point(10, 2), point(40, 2)] }]);
  });
});

describe('helpers', () => {
  it('merge deploy markers by id, oldest first', () => {
    const a = { id: 'a', version: '1', at: 5 };
    const b = { id: 'b', version: '2', at: 1 };
    expect(mergeDeploys([a], [b, a])).toEqual([b, a]);
  });

  it('format values and changes', () => {
    expect(formatValue(0.1234, 'percent')).toBe('12.3%');
    expect(formatValue(1234.4, 'count')).toBe('1,234');
    expect(formatValue(2.5, 'number')).toBe('2.5');
    expect(formatValue(null, 'percent')).toBe('–');
    expect(change(0.6, 0.5)).toBeCloseTo(0.2);
    expect(change(1, 0)).toBeNull();
    expect(change(null, 1)).toBeNull();
  });

  it('keep the range and segmentation in the URL', () => {
    expect(subscriptionFromUrl('?range=86400000&segment=os')).toEqual({ rangeMs: 86_400_000, segment: 'os' });
    expect(subscriptionFromUrl('?range=12345')).toEqual({ rangeMs: 6 * 3_600_000 });
    expect(subscriptionFromUrl(subscriptionToUrl({ rangeMs: 3_600_000, segment: 'browser' }))).toEqual({ rangeMs: 3_600_000, segment: 'browser' });
  });
});

describe('alerts and comparisons', () => {
  it('breach a threshold below min or above max only', () => {
    expect(breached(0.8, { max: 0.7 })).toBe(true);
    expect(breached(0.7, { max: 0.7 })).toBe(false);
    expect(breached(3, { min: 10 })).toBe(true);
    expect(breached(null, { min: 10 })).toBe(false);
    expect(breached(5, undefined)).toBe(false);
  });

  it('compute the pooled two-proportion z statistic', () => {
    // 40/100 vs 25/100: pooled 0.325, se = sqrt(0.325 * 0.675 * 0.02) = 0.06624
    expect(twoProportionZ(40, 100, 25, 100)).toBeCloseTo(-2.2646, 3);
    expect(twoProportionZ(5, 10, 5, 10)).toBe(0);
    expect(twoProportionZ(1, 0, 1, 10)).toBeNull();
  });

  it('flag the funnel steps whose conversion changed significantly', () => {
    const funnel = (counts: number[]): FunnelStep[] =>
      counts.map((count, i) => ({
        step: i + 1,
        name: `s${i + 1}`,
        count,
        estimate: count,
        conversionFromStart: count / counts[0]!,
        conversionFromPrevious: null,
        dropOff: null,
      }));
    const rows = compareFunnels(funnel([200, 160, 100, 90]), funnel([200, 40, 30, 28]));
    expect(rows.map((r) => r.significant)).toEqual([false, true, true, true]);
    expect(rows[1]).toMatchObject({ before: 0.8, after: 0.2 });
    expect(compareFunnels(funnel([100, 50]), funnel([100, 48])).map((r) => r.significant)).toEqual([false, false]);
  });
});
