/**
 * Threshold keys, the one check of a threshold set (configuration and API),
 * and the values thresholds watch, read the way the dashboard's tiles read them.
 */
import { describe, expect, it } from 'vitest';
import { TILE_KPI_IDS, type Kpis } from '../../src/contract/kpis.js';
import { cellKpis } from '../../src/aggregate/model/query.js';
import { emptyAccumulator } from '../../src/aggregate/model/cell.js';
import { checkThresholds, InvalidThresholdsError, isShare, THRESHOLD_KEYS } from '../../src/alerts/thresholds.js';
import { stepKey, tileValue, watchedValue } from '../../src/alerts/values.js';
import { loadConfig, parseThresholds } from '../../src/config/config.js';
import { funnelSteps } from '../harness/kpi-fixtures.js';

function fieldOf(value: unknown): string | undefined {
  try {
    checkThresholds(value, 'body.thresholds');
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidThresholdsError);
    return (err as InvalidThresholdsError).field;
  }
}

describe('threshold keys', () => {
  it('are the tile KPIs and the conversions into funnel steps 2 and up', () => {
    expect(THRESHOLD_KEYS).toEqual([...TILE_KPI_IDS, 'new-user.step2', 'new-user.step3', 'new-user.step4', 'password-reset.step2', 'password-reset.step3']);
    expect(stepKey('new-user.step3')).toEqual({ funnel: 'new-user', step: 3 });
    expect(stepKey('progress.step2')).toBeUndefined();
    expect(stepKey('new-user.step03')).toBeUndefined();
    expect(isShare('newUsers')).toBe(false);
    expect(isShare('sitesMedian')).toBe(false);
    expect(isShare('bounceRate')).toBe(true);
    expect(isShare('password-reset.step2')).toBe(true);
  });
});

describe('checkThresholds', () => {
  it('accepts tile KPIs and funnel steps, keeping only min and max', () => {
    const set = { bounceRate: { max: 0.7 }, newUsers: { min: 10 }, 'new-user.step3': { min: 0.5, max: 0.99 }, 'password-reset.step3': { min: 0 } };
    expect(checkThresholds(set, 'body.thresholds')).toEqual(set);
    expect(checkThresholds({}, 'body.thresholds')).toEqual({});
  });

  it.each([
    [[], 'body.thresholds'],
    [{ bounce: { max: 1 } }, 'body.thresholds.bounce'],
    [{ 'new-user.step1': { min: 0.5 } }, 'body.thresholds.new-user.step1'],
    [{ 'new-user.step5': { min: 0.5 } }, 'body.thresholds.new-user.step5'],
    [{ 'password-reset.step4': { min: 0.5 } }, 'body.thresholds.password-reset.step4'],
    [{ bounceRate: null }, 'body.thresholds.bounceRate'],
    [{ bounceRate: {} }, 'body.thresholds.bounceRate'],
    [{ bounceRate: { maximum: 0.7 } }, 'body.thresholds.bounceRate.maximum'],
    [{ bounceRate: { max: '0.7' } }, 'body.thresholds.bounceRate.max'],
    [{ bounceRate: { max: Infinity } }, 'body.thresholds.bounceRate.max'],
    [{ bounceRate: { max: 70 } }, 'body.thresholds.bounceRate.max'],
    [{ errorRate: { min: -0.1 } }, 'body.thresholds.errorRate.min'],
    [{ newUsers: { min: -1 } }, 'body.thresholds.newUsers.min'],
    [{ bounceRate: { min: 0.7, max: 0.7 } }, 'body.thresholds.bounceRate.min'],
    [{ bounceRate: { max: 0.7 }, oops: { max: 1 } }, 'body.thresholds.oops'],
  ])('refuses %j, naming %s', (value, field) => {
    expect(fieldOf(value)).toBe(field);
  });

  it('checks KPI_THRESHOLDS the same way, funnel steps included', () => {
    expect(parseThresholds('{"new-user.step4":{"min":0.6},"bounceRate":{"max":0.7}}')).toEqual({ 'new-user.step4': { min: 0.6 }, bounceRate: { max: 0.7 } });
    expect(() => loadConfig({ env: { KPI_THRESHOLDS: '{"bounceRate":{"max":70}}' } })).toThrow(
      'invalid configuration: KPI_THRESHOLDS.bounceRate.max must be between 0 and 1',
    );
    expect(() => loadConfig({ env: { KPI_THRESHOLDS: '{"new-user.step9":{"min":0.5}}' } })).toThrow(
      /KPI_THRESHOLDS names "new-user.step9"; one of .*new-user.step2…4/,
    );
    expect(() => loadConfig({ env: { KPI_THRESHOLDS: '[]' } })).toThrow('KPI_THRESHOLDS must be a JSON object');
  });
});

/** KPIs of an empty window with the given counts set. */
function kpis(overrides: Partial<Kpis>): Kpis {
  return { ...cellKpis(emptyAccumulator()), ...overrides };
}

describe('watched values', () => {
  const k = kpis({
    dialogs: 200,
    newUsersEstimate: 42.5,
    newUsers: 40,
    bounceRate: 0.3,
    errorScreenRate: 0.02,
    additionalEmailShare: 0.1,
    passwordResetSuccess: 0.6,
    sitesLoggedIn: { median: 3, mean: 3.4, p90: 8 },
    newUserFunnel: funnelSteps([100, 80, 60, 50]),
    passwordResetFunnel: funnelSteps([10, 7, 6]),
  });

  it('reads each tile KPI the way the dashboard tile shows it', () => {
    expect(TILE_KPI_IDS.map((id) => [id, tileValue(id, k)])).toEqual([
      ['newUsers', 42.5],
      ['newUserDropOff', 0.5],
      ['sitesMedian', 3],
      ['resetSuccess', 0.6],
      ['additionalEmail', 0.1],
      ['bounceRate', 0.3],
      ['errorRate', 0.02],
    ]);
    expect(tileValue('newUserDropOff', kpis({}))).toBeNull();
  });

  it('rests tile KPIs on the dialogs, funnel steps on the step before', () => {
    expect(watchedValue('bounceRate', k)).toEqual({ value: 0.3, support: 200 });
    expect(watchedValue('new-user.step3', k)).toEqual({ value: 0.75, support: 80 });
    expect(watchedValue('password-reset.step2', k)).toEqual({ value: 0.7, support: 10 });
    expect(watchedValue('new-user.step9' as never, k)).toBeUndefined();
  });
});
