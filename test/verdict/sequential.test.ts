/**
 * The always-valid test against what it claims: the closed form of the
 * mixture likelihood ratio against numerical integration of its
 * definition, the interval as exactly the effects the test does not reject,
 * and, by brute-force simulation, a false-alarm rate under continuous
 * monitoring within α where a fixed-sample z-test read the same way is far
 * above it.
 */
import { describe, expect, it } from 'vitest';
import { compareProportions, confidenceHalfWidth, mixingVariance, mixtureRatio } from '../../src/verdict/sequential.js';
import { seededRandom } from '../../src/simulate/generator.js';

/** ∫ N(x; θ, v) / N(x; 0, v) · N(θ; 0, τ²) dθ by Simpson's rule. */
function integratedRatio(x: number, v: number, tau2: number): number {
  const tau = Math.sqrt(tau2);
  const n = 20_000;
  const [a, b] = [-12 * tau, 12 * tau];
  const h = (b - a) / n;
  const f = (theta: number) => Math.exp((x * theta - (theta * theta) / 2) / v) * (Math.exp(-(theta * theta) / (2 * tau2)) / Math.sqrt(2 * Math.PI * tau2));
  let sum = f(a) + f(b);
  for (let i = 1; i < n; i++) sum += f(a + i * h) * (i % 2 ? 4 : 2);
  return (sum * h) / 3;
}

/** A binomial draw (exact, by summing Bernoulli trials; n is small here). */
const binomial = (random: () => number, n: number, p: number) => {
  let k = 0;
  for (let i = 0; i < n; i++) if (random() < p) k++;
  return k;
};

describe('the mixture likelihood ratio', () => {
  it('equals the numerical integral of its definition', () => {
    for (const [x, v, tau2] of [
      [0, 0.001, 0.004],
      [0.05, 0.0004, 0.002],
      [-0.12, 0.002, 0.01],
      [0.3, 0.01, 0.0016],
    ] as const) {
      expect(mixtureRatio(x, v, tau2) / integratedRatio(x, v, tau2)).toBeCloseTo(1, 6);
    }
  });

  it('gives an interval whose ends are the effects it rejects at exactly 1/α', () => {
    for (const [v, tau2, alpha] of [
      [0.001, 0.004, 0.05],
      [0.0001, 0.01, 0.005],
      [0.02, 0.0016, 0.3],
    ] as const) {
      const h = confidenceHalfWidth(v, tau2, alpha);
      expect(mixtureRatio(h, v, tau2)).toBeCloseTo(1 / alpha, 6);
      expect(mixtureRatio(h * 0.99, v, tau2)).toBeLessThan(1 / alpha);
    }
  });

  it('mixes at 0.2 standard deviations of the baseline rate', () => {
    expect(mixingVariance(0.5)).toBeCloseTo(0.04 * 0.25, 12);
    expect(mixingVariance(0)).toBeCloseTo(0.04 * 0.01 * 0.99, 12); // clamped away from 0 and 1
  });
});

describe('compareProportions', () => {
  it('reports the raw rates and the adjusted effect, its interval containing it', () => {
    const c = compareProportions({ successes: 800, trials: 1000 }, { successes: 40, trials: 200 }, 0.05);
    expect(c.baseline).toBe(0.8);
    expect(c.after).toBe(0.2);
    expect(c.effect).toBeCloseTo(41 / 202 - 801 / 1002, 12);
    expect(c.low).toBeLessThan(c.effect);
    expect(c.high).toBeLessThan(0); // a drop this large is certain at once
    expect(compareProportions({ successes: 0, trials: 0 }, { successes: 0, trials: 0 }, 0.05)).toMatchObject({ baseline: null, after: null, effect: 0 });
  });

  it('raises false alarms at most α of the time however often it is looked at, where a z-test read as often does not', () => {
    const random = seededRandom(2026);
    const runs = 600;
    const alpha = 0.05;
    let alarms = 0;
    let zAlarms = 0;
    for (let run = 0; run < runs; run++) {
      const p = 0.2 + 0.6 * random();
      const baseline = { successes: binomial(random, 2000, p), trials: 2000 };
      const after = { successes: 0, trials: 0 };
      let alarmed = false;
      let zAlarmed = false;
      // 200 looks, 10 more trials each: the same rate before and after
      for (let look = 0; look < 200; look++) {
        after.successes += binomial(random, 10, p);
        after.trials += 10;
        const c = compareProportions(baseline, after, alpha);
        if (c.low > 0 || c.high < 0) alarmed = true;
        const p0 = baseline.successes / baseline.trials;
        const p1 = after.successes / after.trials;
        const se = Math.sqrt((p0 * (1 - p0)) / baseline.trials + (p1 * (1 - p1)) / after.trials);
        if (se > 0 && Math.abs(p1 - p0) / se > 1.96) zAlarmed = true;
      }
      if (alarmed) alarms++;
      if (zAlarmed) zAlarms++;
    }
    console.log(`continuous monitoring, ${runs} runs of 200 looks: mSPRT false alarms ${alarms / runs}, fixed z-test ${zAlarms / runs}`);
    expect(alarms / runs).toBeLessThanOrEqual(alpha);
    expect(zAlarms / runs).toBeGreaterThan(2 * alpha);
  });

  it('covers the true effect at every look with probability at least 1 − α', () => {
    const random = seededRandom(7);
    const runs = 400;
    let missed = 0;
    for (let run = 0; run < runs; run++) {
      const [p0, p1] = [0.6, 0.5];
      const baseline = { successes: binomial(random, 3000, p0), trials: 3000 };
      const after = { successes: 0, trials: 0 };
      let miss = false;
      for (let look = 0; look < 100 && !miss; look++) {
        after.successes += binomial(random, 20, p1);
        after.trials += 20;
        const c = compareProportions(baseline, after, 0.1);
        if (p1 - p0 < c.low || p1 - p0 > c.high) miss = true;
      }
      if (miss) missed++;
    }
    expect(missed / runs).toBeLessThanOrEqual(0.1);
  });
});
