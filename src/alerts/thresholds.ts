/**
 * Which keys a threshold may name, and the one check of a threshold set:
 * the configuration (`KPI_THRESHOLDS`) and `PUT /api/thresholds` both use it,
 * so a set one accepts the other accepts too. Pure.
 */

import { TILE_KPI_IDS, type ThresholdKey, type Thresholds, type TileKpiId, NEW_USER_STEPS, RESET_STEPS } from '../contract/kpis.js';
import { stepKey, type StepFunnel } from './values.js';

/** Steps of each funnel a threshold may watch the conversion into (2 up to its length). */
export const STEP_FUNNELS: Record<StepFunnel, number> = { 'new-user': NEW_USER_STEPS.length, 'password-reset': RESET_STEPS.length };

/** Every key a threshold may name, in the order alerts are listed. */
export const THRESHOLD_KEYS: readonly ThresholdKey[] = [
  ...TILE_KPI_IDS,
  ...(Object.entries(STEP_FUNNELS) as [StepFunnel, number][]).flatMap(([funnel, steps]) =>
    Array.from({ length: steps - 1 }, (_, i) => `${funnel}.step${i + 2}` as ThresholdKey),
  ),
];

const KEY_ORDER = new Map(THRESHOLD_KEYS.map((key, i) => [key, i]));

/** Tile KPIs that are counts or medians rather than shares (any value ≥ 0 is a bound). */
const NOT_SHARES: ReadonlySet<TileKpiId> = new Set(['newUsers', 'sitesMedian']);

/** True for a key a threshold may name. */
export function isThresholdKey(key: string): key is ThresholdKey {
  return KEY_ORDER.has(key as ThresholdKey);
}

/** True when the key watches a share (0..1): its bounds must be shares too. */
export function isShare(key: ThresholdKey): boolean {
  return stepKey(key) !== undefined || !NOT_SHARES.has(key as TileKpiId);
}

/** Keys in the order alerts are listed (tiles first, then funnel steps). */
export function byKeyOrder(a: ThresholdKey, b: ThresholdKey): number {
  return (KEY_ORDER.get(a) ?? Infinity) - (KEY_ORDER.get(b) ?? Infinity);
}

/** A threshold set that does not hold; `field` names the part at fault, e.g. `body.thresholds.bounceRate.max`. */
export class InvalidThresholdsError extends Error {
  override readonly name = 'InvalidThresholdsError';
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

const keyList = (): string =>
  `${TILE_KPI_IDS.join(', ')}, ${Object.entries(STEP_FUNNELS)
    .map(([f, n]) => `${f}.step2…${n}`)
    .join(', ')}`;

/**
 * Checks a threshold set and returns it as `Thresholds` (a copy holding only
 * `min` and `max`). Every key must name a tile KPI or a funnel step ≥ 2;
 * every threshold needs `min` and/or `max`, finite numbers, `min` below
 * `max`; bounds of shares lie in [0, 1] (0.7 means 70%), other bounds are ≥ 0.
 *
 * @param path how the set is named in messages: `KPI_THRESHOLDS`, `body.thresholds`.
 * @throws {InvalidThresholdsError} naming the first key or bound at fault.
 * @example
 * checkThresholds({ bounceRate: { max: 0.7 }, 'new-user.step3': { min: 0.5 } }, 'body.thresholds');
 */
export function checkThresholds(value: unknown, path: string): Thresholds {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidThresholdsError(`${path} must be a JSON object`, path);
  const out: Thresholds = {};
  for (const [key, bounds] of Object.entries(value)) {
    const at = `${path}.${key}`;
    if (!isThresholdKey(key)) throw new InvalidThresholdsError(`${path} names "${key}"; one of ${keyList()}`, at);
    const takes = `${at} takes numbers "min" and/or "max"`;
    if (typeof bounds !== 'object' || bounds === null || Array.isArray(bounds)) throw new InvalidThresholdsError(takes, at);
    const { min, max, ...rest } = bounds as Record<string, unknown>;
    const extra = Object.keys(rest)[0];
    if (extra !== undefined) throw new InvalidThresholdsError(`${takes}, not "${extra}"`, `${at}.${extra}`);
    if (min === undefined && max === undefined) throw new InvalidThresholdsError(`${takes}; it has neither`, at);
    const threshold: { min?: number; max?: number } = {};
    for (const [name, bound] of [
      ['min', min],
      ['max', max],
    ] as const) {
      if (bound === undefined) continue;
      if (typeof bound !== 'number' || !Number.isFinite(bound)) throw new InvalidThresholdsError(`${takes}; ${name} is not a finite number`, `${at}.${name}`);
      if (isShare(key) && (bound < 0 || bound > 1))
        throw new InvalidThresholdsError(`${at}.${name} must be between 0 and 1: ${key} is a share (0.7 means 70%)`, `${at}.${name}`);
      if (bound < 0) throw new InvalidThresholdsError(`${at}.${name} must be 0 or more`, `${at}.${name}`);
      threshold[name] = bound;
    }
    if (threshold.min !== undefined && threshold.max !== undefined && threshold.min >= threshold.max)
      throw new InvalidThresholdsError(`${at}.min must be below ${at}.max`, `${at}.min`);
    out[key] = threshold;
  }
  return out;
}
