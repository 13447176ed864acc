/**
 * The alert state machine: breaches exactly past a bound, clears exactly at
 * the hysteresis limit, never flaps, and keeps its judgement through
 * stretches with too few dialogs to judge.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { breachOf, clearingLimit, initialWatch, judge, release, type Bounds, type Transition, type Watch } from '../../src/alerts/hysteresis.js';

/** Runs a sequence of values through the machine; returns every transition and the last watch. */
function run(bounds: Bounds, hysteresis: number, values: (number | null)[], start: Watch = initialWatch('bounceRate', 0)) {
  let watch = start;
  const transitions: Transition[] = [];
  values.forEach((value, i) => {
    const judged = judge(watch, bounds, hysteresis, value, i + 1);
    watch = judged.watch;
    transitions.push(...judged.transitions);
  });
  return { watch, transitions, kinds: transitions.map((t) => t.kind) };
}

const unit = fc.double({ min: 0, max: 1, noNaN: true });
const hysteresis = fc.double({ min: 0.01, max: 0.5, noNaN: true });

describe('clearingLimit', () => {
  it('moves the bound inside by hysteresis × |bound|, as decimals read', () => {
    expect(clearingLimit('max', 0.7, 0.1)).toBe(0.63);
    expect(clearingLimit('min', 0.5, 0.1)).toBe(0.55);
    expect(clearingLimit('min', 10, 0.2)).toBe(12);
    expect(clearingLimit('max', 0, 0.1)).toBe(0);
  });
});

describe('judge', () => {
  it('breaches only past the bound: a value equal to it is inside', () => {
    expect(run({ max: 0.7 }, 0.1, [0.7]).kinds).toEqual([]);
    expect(run({ max: 0.7 }, 0.1, [0.7]).watch.state).toBe('ok');
    expect(run({ max: 0.7 }, 0.1, [0.7000000000000001]).kinds).toEqual(['breached']);
    expect(run({ min: 0.5 }, 0.1, [0.5]).kinds).toEqual([]);
    expect(run({ min: 0.5 }, 0.1, [0.49999999999999994]).kinds).toEqual(['breached']);
  });

  it('clears exactly at the hysteresis limit, not before', () => {
    expect(run({ max: 0.7 }, 0.1, [0.8, 0.6300000000000001]).kinds).toEqual(['breached']);
    expect(run({ max: 0.7 }, 0.1, [0.8, 0.63]).kinds).toEqual(['breached', 'cleared']);
    expect(run({ min: 0.5 }, 0.1, [0.4, 0.5499999999999999]).kinds).toEqual(['breached']);
    expect(run({ min: 0.5 }, 0.1, [0.4, 0.55]).kinds).toEqual(['breached', 'cleared']);
  });

  it('says what crossed which bound, and since when the state holds', () => {
    const { transitions, watch } = run({ min: 0.2, max: 0.7 }, 0.1, [0.5, 0.9, 0.95]);
    expect(transitions).toEqual([{ kind: 'breached', key: 'bounceRate', value: 0.9, bound: 'max', limit: 0.7, at: 2 }]);
    expect(watch).toMatchObject({ state: 'breached', value: 0.95, bound: 'max', limit: 0.7, since: 2 });
  });

  it('judges nothing without a value, and keeps the breach it had', () => {
    const quiet = run({ max: 0.7 }, 0.1, [0.9, null, null]);
    expect(quiet.kinds).toEqual(['breached']);
    expect(quiet.watch).toMatchObject({ state: 'unknown', value: null, bound: 'max', limit: 0.7, since: 2, latched: 'max' });
    // still breached after the quiet spell: not announced again
    expect(run({ max: 0.7 }, 0.1, [0.9, null, 0.8]).kinds).toEqual(['breached']);
    // ended during the quiet spell: announced as cleared
    expect(run({ max: 0.7 }, 0.1, [0.9, null, 0.5]).kinds).toEqual(['breached', 'cleared']);
    expect(run({ max: 0.7 }, 0.1, [null, null]).watch.state).toBe('unknown');
  });

  it('resumes a breach remembered across a restart without announcing it again', () => {
    const remembered = initialWatch('bounceRate', 0, { bound: 'max', limit: 0.7 });
    expect(run({ max: 0.7 }, 0.1, [0.75], remembered).kinds).toEqual([]);
    expect(run({ max: 0.7 }, 0.1, [0.5], remembered).kinds).toEqual(['cleared']);
  });

  it('uses a changed bound at once, and clears a breach whose bound was removed', () => {
    const breached = run({ max: 0.7 }, 0.1, [0.75]).watch;
    expect(run({ max: 0.7 }, 0.1, [0.75], breached).kinds).toEqual([]);
    expect(run({ max: 0.8 }, 0.1, [0.75], breached).kinds).toEqual(['cleared']);
    expect(run({ max: 0.72 }, 0.1, [0.75], breached).watch).toMatchObject({ state: 'breached', limit: 0.72 });
    expect(run({ min: 0.1 }, 0.1, [0.75], breached).kinds).toEqual(['cleared']);
    expect(release(breached, 9)).toEqual([{ kind: 'cleared', key: 'bounceRate', value: 0.75, bound: 'max', limit: 0.7, at: 9 }]);
    expect(release(run({ max: 0.7 }, 0.1, [0.5]).watch, 9)).toEqual([]);
  });

  it('announces a jump from past one bound to past the other as cleared, then breached', () => {
    const { transitions } = run({ min: 0.2, max: 0.7 }, 0.1, [0.9, 0.1]);
    expect(transitions.map((t) => [t.kind, t.bound])).toEqual([
      ['breached', 'max'],
      ['cleared', 'max'],
      ['breached', 'min'],
    ]);
  });

  it('never flaps: values oscillating inside the hysteresis band give at most one breach and no clear', () => {
    fc.assert(
      fc.property(unit, hysteresis, fc.boolean(), fc.array(unit, { maxLength: 60 }), (limit, h, isMax, unitValues) => {
        const bound = isMax ? 'max' : 'min';
        const clearAt = clearingLimit(bound, limit, h);
        // every value stays on the breached side of the clearing limit (past the bound or within the band)
        const values = unitValues.map((u) => (isMax ? clearAt + 1e-9 + u * Math.max(1 - clearAt, 0.01) : clearAt - 1e-9 - u * Math.max(clearAt, 0.01)));
        const { kinds } = run(isMax ? { max: limit } : { min: limit }, h, values);
        expect(kinds.filter((k) => k === 'breached').length).toBeLessThanOrEqual(1);
        expect(kinds).not.toContain('cleared');
      }),
    );
  });

  it('alternates breached and cleared, each exactly when its condition holds', () => {
    const value = fc.option(fc.double({ min: -0.5, max: 1.5, noNaN: true }), { nil: null, freq: 8 });
    fc.assert(
      fc.property(unit, unit, hysteresis, fc.array(value, { maxLength: 80 }), (a, b, h, values) => {
        fc.pre(a !== b);
        const bounds = { min: Math.min(a, b), max: Math.max(a, b) };
        const { transitions, watch } = run(bounds, h, values);
        let breached: 'min' | 'max' | null = null;
        for (const t of transitions) {
          if (t.kind === 'breached') {
            expect(breached).toBeNull();
            expect(breachOf(t.value!, bounds)).toBe(t.bound);
            breached = t.bound;
          } else {
            expect(t.bound).toBe(breached);
            const clearAt = clearingLimit(t.bound, bounds[t.bound], h);
            expect(t.bound === 'max' ? t.value! <= clearAt : t.value! >= clearAt).toBe(true);
            breached = null;
          }
        }
        expect(watch.latched).toBe(breached);
      }),
    );
  });
});
