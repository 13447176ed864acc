/**
 * The alert state machine of one watched key, pure: given where the key
 * stood, its threshold, the hysteresis and the value just measured, where
 * it stands now and which transitions that was.
 *
 * - No value (too few dialogs to judge): state `unknown`, and no transition.
 *   The last judgement is kept, so a breach that goes quiet at night and is
 *   still there in the morning is not announced twice, and one that ended
 *   meanwhile is announced as cleared.
 * - Breached when the value is below `min` or above `max` (a value equal to
 *   the bound is inside).
 * - A breach clears only once the value is back inside by `hysteresis` ×
 *   |bound|: with `max` 0.7 and hysteresis 0.1 it clears at ≤ 0.63, with
 *   `min` 0.5 at ≥ 0.55. A value oscillating around the bound therefore
 *   gives one breach, not a storm of them.
 */
import type { AlertEvent, AlertState, ThresholdKey } from './types.js';

export interface Bounds {
  min?: number;
  max?: number;
}

export type Bound = 'min' | 'max';

/** Where one key stands, plus the breach the last judgement found (it survives `unknown`). */
export interface Watch extends AlertState {
  /** The bound breached at the last judgement, or null when it was inside. */
  latched: Bound | null;
}

/** One change of judgement: what the webhook is told. */
export type Transition = Omit<AlertEvent, 'windowMs' | 'service'>;

/**
 * The value at which a breach of `bound` clears: `limit` moved inside by
 * `hysteresis` × |limit|, rounded to 12 significant digits so that decimal
 * bounds give the decimal one expects (0.7 and 0.1 give 0.63, not 0.6300000000000001).
 *
 * @example
 * clearingLimit('max', 0.7, 0.1); // 0.63
 * clearingLimit('min', 0.5, 0.1); // 0.55
 */
export function clearingLimit(bound: Bound, limit: number, hysteresis: number): number {
  const margin = hysteresis * Math.abs(limit);
  return Number((bound === 'max' ? limit - margin : limit + margin).toPrecision(12));
}

/** The bound a value breaches, if any. */
export function breachOf(value: number, bounds: Bounds): Bound | null {
  if (bounds.max !== undefined && value > bounds.max) return 'max';
  if (bounds.min !== undefined && value < bounds.min) return 'min';
  return null;
}

/** A key not judged yet. */
export function initialWatch(key: ThresholdKey, at: number, latched: { bound: Bound; limit: number } | null = null): Watch {
  return { key, state: 'unknown', value: null, bound: latched?.bound ?? null, limit: latched?.limit ?? null, since: at, latched: latched?.bound ?? null };
}

function settle(watch: Watch, next: Omit<Watch, 'since' | 'key'>, at: number): Watch {
  return { key: watch.key, ...next, since: next.state === watch.state ? watch.since : at };
}

/**
 * Judges one new value of a key.
 *
 * A breach of one bound that ends with the value past the other bound
 * (possible only when both are set) is two transitions: `cleared`, then
 * `breached`. When the breached bound was changed since (a new threshold
 * set), the value is judged against the new bound without the band: whoever
 * moved it meant values inside it to be fine.
 *
 * @example
 * let w = initialWatch('bounceRate', 0);
 * ({ watch: w } = judge(w, { max: 0.7 }, 0.1, 0.75, 1)); // breached (transition: breached)
 * ({ watch: w } = judge(w, { max: 0.7 }, 0.1, 0.65, 2)); // still breached: 0.65 is above 0.63
 * judge(w, { max: 0.7 }, 0.1, 0.63, 3).transitions; // [{ kind: 'cleared', … }]
 */
export function judge(watch: Watch, bounds: Bounds, hysteresis: number, value: number | null, at: number): { watch: Watch; transitions: Transition[] } {
  if (value === null) return { watch: settle(watch, { ...watch, state: 'unknown', value: null }, at), transitions: [] };
  const transitions: Transition[] = [];
  const latched = watch.latched;
  if (latched !== null) {
    const limit = bounds[latched];
    // A bound someone just moved judges afresh: the band belongs to the bound that was crossed.
    const band = limit === watch.limit ? hysteresis : 0;
    const stillBreached = limit !== undefined && (latched === 'max' ? value > clearingLimit('max', limit, band) : value < clearingLimit('min', limit, band));
    if (stillBreached) return { watch: settle(watch, { state: 'breached', value, bound: latched, limit, latched }, at), transitions };
    transitions.push({ kind: 'cleared', key: watch.key, value, bound: latched, limit: limit ?? watch.limit ?? 0, at });
  }
  const breach = breachOf(value, bounds);
  if (breach === null) {
    const last = latched !== null ? { bound: latched, limit: bounds[latched] ?? watch.limit } : { bound: watch.bound, limit: watch.limit };
    return { watch: settle(watch, { state: 'ok', value, ...last, latched: null }, at), transitions };
  }
  const limit = bounds[breach]!;
  transitions.push({ kind: 'breached', key: watch.key, value, bound: breach, limit, at });
  return { watch: { key: watch.key, state: 'breached', value, bound: breach, limit, since: at, latched: breach }, transitions };
}

/**
 * A key whose threshold was removed: a standing breach is announced as
 * cleared (nobody watches it any more, so nobody should wait for its end).
 */
export function release(watch: Watch, at: number): Transition[] {
  if (watch.latched === null) return [];
  return [{ kind: 'cleared', key: watch.key, value: watch.value, bound: watch.latched, limit: watch.limit ?? 0, at }];
}
