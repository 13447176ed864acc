/**
 * Always-valid comparison of two proportions: the mixture sequential
 * probability ratio test (mSPRT) of Johari, Koomen, Pekelis and Walsh,
 * "Peeking at A/B tests: why it matters, and what to do about it" (KDD 2017;
 * Operations Research 2022), on the normal approximation of the difference.
 *
 * Why this one: the on-call engineer watches the verdict continuously, and
 * a deploy is judged at every update. A fixed-sample test read that way
 * raises false alarms far more often than its level; the mSPRT's
 * probability of *ever* rejecting a true null, however often it is looked
 * at, is at most α. Its confidence sequence (the set of effects it does not
 * reject) is an interval valid at every look too, and needs no plan of how
 * many looks there will be (which a group-sequential design does).
 *
 * For an estimate θ̂ ~ N(θ, v) of the difference and a normal mixture
 * θ ~ N(0, τ²) over the alternatives, the mixture likelihood ratio is
 *
 *   Λ = √(v / (v + τ²)) · exp(τ² θ̂² / (2 v (v + τ²)))
 *
 * and H0 (θ = 0) is rejected once Λ ≥ 1/α. The effects θ0 it does not
 * reject (θ̂ − θ0 in place of θ̂) form θ̂ ± h with
 *
 *   h = √(v (v + τ²) / τ² · (2 ln(1/α) + ln((v + τ²) / v))).
 *
 * Proportions are estimated with one success and one failure added to each
 * side (Agresti and Caffo 2000), so that v is never 0 and small counts do
 * not make the normal approximation overconfident. Pure.
 */

export interface Proportion {
  /** Trials with the outcome. */
  successes: number;
  trials: number;
}

export interface Comparison {
  /** successes / trials of each side; null without trials. */
  baseline: number | null;
  after: number | null;
  /** after − baseline (from the adjusted estimates). */
  effect: number;
  /** The always-valid confidence interval of the effect at level α. */
  low: number;
  high: number;
  /** The mixture likelihood ratio Λ against "no change". */
  lambda: number;
}

/** Agresti–Caffo adjusted rate and its variance. */
function adjusted({ successes, trials }: Proportion): { p: number; v: number } {
  const p = (successes + 1) / (trials + 2);
  return { p, v: (p * (1 - p)) / (trials + 2) };
}

/** The mixture likelihood ratio for an estimate `effect` of variance `v`, mixing variance `tau2`. */
export function mixtureRatio(effect: number, v: number, tau2: number): number {
  return Math.sqrt(v / (v + tau2)) * Math.exp((tau2 * effect * effect) / (2 * v * (v + tau2)));
}

/** Half-width of the always-valid interval at level `alpha`. */
export function confidenceHalfWidth(v: number, tau2: number, alpha: number): number {
  return Math.sqrt(((v * (v + tau2)) / tau2) * (2 * Math.log(1 / alpha) + Math.log((v + tau2) / v)));
}

/**
 * The mixing scale used for a baseline rate p: τ = 0.2 · √(p(1−p)), a
 * "small to medium" standardised effect (Cohen's h ≈ 0.2), so the test is
 * most sensitive to changes of that order and still catches large ones
 * (a broken step) at once.
 */
export const mixingVariance = (baselineRate: number): number => {
  const p = Math.min(Math.max(baselineRate, 0.01), 0.99);
  return 0.04 * p * (1 - p);
};

/**
 * Compares the rate after a deploy with the baseline's, valid at every look.
 *
 * @example
 * compareProportions({ successes: 800, trials: 1000 }, { successes: 40, trials: 200 }, 0.05);
 * // { baseline: 0.8, after: 0.2, effect: ≈ −0.6, low: ≈ −0.69, high: ≈ −0.5, lambda: huge }
 */
export function compareProportions(baseline: Proportion, after: Proportion, alpha: number): Comparison {
  const b = adjusted(baseline);
  const a = adjusted(after);
  const effect = a.p - b.p;
  const v = a.v + b.v;
  const tau2 = mixingVariance(b.p);
  const h = confidenceHalfWidth(v, tau2, alpha);
  return {
    baseline: baseline.trials > 0 ? baseline.successes / baseline.trials : null,
    after: after.trials > 0 ? after.successes / after.trials : null,
    effect,
    low: effect - h,
    high: effect + h,
    lambda: mixtureRatio(effect, v, tau2),
  };
}
