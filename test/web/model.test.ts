import { describe, expect, it } from 'vitest';
import type { KpiAnswer, KpiPoint, Kpis } from '../../src/contract/kpis.js';
import type { FunnelStep } from '../../src/contract/kpis.js';
import {
  announceAfter,
  breached,
  breachedAlerts,
  breachText,
  change,
  compareFunnels,
  customRangeProblem,
  formatValue,
  fromLocalInput,
  kpisUrl,
  mergeDelta,
  mergeDeploys,
  percentTicks,
  rangeEnded,
  roundRange,
  stepKey,
  subscriptionOf,
  sumFunnels,
  toLocalInput,
  twoProportionZ,
  viewFromUrl,
  viewToUrl,
  watchedValues,
  FUNNELS,
  zoomRange,
  zoomStep,
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
    expect(viewFromUrl('?range=86400000&segment=os')).toEqual({ range: { kind: 'last', ms: 86_400_000 }, segment: 'os' });
    expect(viewFromUrl('?range=12345&segment=planet')).toEqual({ range: { kind: 'last', ms: 6 * 3_600_000 } });
    const view = { range: { kind: 'last', ms: 3_600_000 }, segment: 'browser' } as const;
    expect(viewFromUrl(viewToUrl(view))).toEqual(view);
  });

  it('keep a custom range in the URL, next to parameters that are not theirs (tv)', () => {
    const custom = { range: { kind: 'custom', from: 1_795_400_000_000, to: 1_795_403_600_000 }, segment: 'os' } as const;
    const url = viewToUrl(custom, '?tv=1&range=3600000');
    expect(new URLSearchParams(url).get('tv')).toBe('1');
    expect(new URLSearchParams(url).has('range')).toBe(false);
    expect(viewFromUrl(url)).toEqual(custom);
    // an impossible custom range is not taken
    expect(viewFromUrl('?from=10&to=5&range=3600000').range).toEqual({ kind: 'last', ms: 3_600_000 });
    expect(viewFromUrl('?from=abc&to=1795403600000').range).toEqual({ kind: 'last', ms: 6 * 3_600_000 });
  });

  it('subscribe to the top 8 values and Other when split, to a fixed window for a custom range', () => {
    expect(subscriptionOf({ range: { kind: 'last', ms: 3_600_000 } })).toEqual({ rangeMs: 3_600_000 });
    expect(subscriptionOf({ range: { kind: 'last', ms: 3_600_000 }, segment: 'os' })).toEqual({ rangeMs: 3_600_000, segment: 'os', top: 8 });
    expect(subscriptionOf({ range: { kind: 'custom', from: 6_000_000, to: 9_600_000 } })).toEqual({ rangeMs: 3_600_000, from: 6_000_000 });
    expect(rangeEnded({ kind: 'custom', from: 0, to: 1000 }, 1000)).toBe(true);
    expect(rangeEnded({ kind: 'custom', from: 0, to: 1001 }, 1000)).toBe(false);
    expect(rangeEnded({ kind: 'last', ms: 1000 }, 5000)).toBe(false);
  });

  it('check and round custom ranges to whole 10-minute buckets', () => {
    expect(roundRange(Date.UTC(2026, 0, 1, 9, 7), Date.UTC(2026, 0, 1, 10, 1))).toEqual({ from: Date.UTC(2026, 0, 1, 9), to: Date.UTC(2026, 0, 1, 10, 10) });
    expect(customRangeProblem(2000, 1000)).toBe('The end must be after the start.');
    expect(customRangeProblem(0, 60_000)).toBe('A window is at least 10 minutes long.');
    expect(customRangeProblem(0, 401 * 86_400_000)).toBe('A window is at most 400 days long.');
    expect(customRangeProblem(NaN, 1)).toBe('Give a start and an end.');
    expect(customRangeProblem(0, 600_000)).toBeUndefined();
    const t = new Date(2026, 10, 23, 9, 30).getTime();
    expect(toLocalInput(t)).toBe('2026-11-23T09:30');
    expect(fromLocalInput('2026-11-23T09:30')).toBe(t);
    expect(fromLocalInput('')).toBeNaN();
  });

  it('ask /api/kpis for a window, split into the top values only when split', () => {
    expect(kpisUrl({ from: 1, to: 2, bucket: '10m' })).toBe('/api/kpis?from=1&to=2&bucket=10m');
    expect(kpisUrl({ from: 1, to: 2, segment: 'os', top: 8 })).toBe('/api/kpis?from=1&to=2&segment=os&top=8');
    expect(kpisUrl({ from: 1, to: 2, segment: null, top: 8 })).toBe('/api/kpis?from=1&to=2');
  });
});

describe('zoom', () => {
  const H = 3_600_000;
  const within = { from: 0, to: 24 * H };

  it('widens a small selection to an hour around its middle, in whole buckets, inside the window', () => {
    expect(zoomRange(10 * H + 60_000, 10 * H + 120_000, within)).toEqual({ from: 9.5 * H, to: 10.5 * H + 600_000 });
    expect(zoomRange(2 * H + 7 * 60_000, 5 * H + 3 * 60_000, within)).toEqual({ from: 2 * H, to: 5 * H + 600_000 });
    expect(zoomRange(-5 * H, 2 * H, within)).toEqual({ from: 0, to: 7 * H });
    expect(zoomRange(23.9 * H, 30 * H, within)).toEqual({ from: 17 * H + 50 * 60_000, to: 24 * H });
  });

  it('steps in, earlier and later by keyboard without leaving the window', () => {
    expect(zoomStep(within, 'in', within)).toEqual({ from: 6 * H, to: 18 * H });
    expect(zoomStep({ from: 6 * H, to: 18 * H }, 'earlier', within)).toEqual({ from: 0, to: 12 * H });
    expect(zoomStep({ from: 0, to: 12 * H }, 'earlier', within)).toEqual({ from: 0, to: 12 * H });
    expect(zoomStep({ from: 6 * H, to: 18 * H }, 'later', within)).toEqual({ from: 12 * H, to: 24 * H });
    expect(zoomStep({ from: 0, to: H }, 'in', within)).toEqual({ from: 0, to: H });
  });
});

describe('thresholds and alerts', () => {
  it('say a breach in words', () => {
    expect(breachText(0.8, { max: 0.7 }, 'percent')).toBe('above max 70.0%');
    expect(breachText(3, { min: 10, max: 100 }, 'count')).toBe('below min 10');
    expect(breachText(0.5, { max: 0.7 }, 'percent')).toBe('');
    expect(breachText(null, { max: 0.7 }, 'percent')).toBe('');
  });

  it('list every tile and every step conversion of both funnels', () => {
    const keys = watchedValues(FUNNELS).map((w) => w.key);
    expect(keys).toEqual([
      'newUsers',
      'newUserDropOff',
      'sitesMedian',
      'resetSuccess',
      'additionalEmail',
      'bounceRate',
      'errorRate',
      'new-user.step2',
      'new-user.step3',
      'new-user.step4',
      'password-reset.step2',
      'password-reset.step3',
    ]);
    expect(watchedValues(FUNNELS).find((w) => w.key === stepKey('new-user', 3))).toEqual({
      key: 'new-user.step3',
      label: 'New-user funnel: Choose password → Email verified',
      format: 'percent',
    });
  });

  it('keep the breached alerts by key', () => {
    const alerts = breachedAlerts({
      windowMs: 3_600_000,
      alerts: [
        { key: 'bounceRate', state: 'breached', value: 0.9, bound: 'max', limit: 0.7, since: 5 },
        { key: 'newUsers', state: 'ok', value: 20, bound: null, limit: null, since: 1 },
      ],
    });
    expect([...alerts.keys()]).toEqual(['bounceRate']);
    expect(breachedAlerts(undefined).size).toBe(0);
  });

  it('announce at once, then at most once per gap, except a breach beginning or ending', () => {
    expect(announceAfter(undefined, 1000, 60_000, false)).toBe(0);
    expect(announceAfter(1000, 31_000, 60_000, false)).toBe(30_000);
    expect(announceAfter(1000, 61_000, 60_000, false)).toBe(0);
    expect(announceAfter(1000, 2000, 60_000, true)).toBe(0);
  });
});

describe('sumFunnels', () => {
  const funnel = (counts: number[]): FunnelStep[] =>
    counts.map((count, i) => ({
      step: i + 1,
      name: `s${i + 1}`,
      count,
      estimate: count * 2,
      conversionFromStart: null,
      conversionFromPrevious: null,
      dropOff: null,
    }));

  it('adds the series up and recomputes conversions from the sums', () => {
    const sum = sumFunnels([funnel([10, 5, 2]), funnel([30, 15, 0])]);
    expect(sum.map((s) => [s.count, s.estimate])).toEqual([
      [40, 80],
      [20, 40],
      [2, 4],
    ]);
    expect(sum[1]).toMatchObject({ conversionFromStart: 0.5, conversionFromPrevious: 0.5, dropOff: 0.5 });
    expect(sum[2]).toMatchObject({ conversionFromStart: 0.05, conversionFromPrevious: 0.1 });
    expect(sumFunnels([funnel([0, 0])])[1]).toMatchObject({ conversionFromStart: null, conversionFromPrevious: null, dropOff: null });
    expect(sumFunnels([])).toEqual([]);
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

describe('percentTicks', () => {
  it('labels a narrow range with as many decimals as keep every label apart', () => {
    // the chart once read 64%, 64%, 63%, 63% for a bounce rate between 63.2% and 63.9%
    expect(percentTicks([0.63, 0.6325, 0.635, 0.6375])).toEqual(['63.0%', '63.2%', '63.5%', '63.7%']);
    expect(percentTicks([0.631, 0.632, 0.633])).toEqual(['63.1%', '63.2%', '63.3%']);
    expect(percentTicks([0.6301, 0.6302])).toEqual(['63.01%', '63.02%']);
  });

  it('uses whole percents where the ticks are a percent or more apart, or alone', () => {
    expect(percentTicks([0, 0.05, 0.1])).toEqual(['0%', '5%', '10%']);
    expect(percentTicks([0.6, 0.61])).toEqual(['60%', '61%']);
    expect(percentTicks([0.5])).toEqual(['50%']);
    expect(percentTicks([])).toEqual([]);
  });
});
