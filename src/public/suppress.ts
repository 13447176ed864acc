/**
 * Small-number suppression for the public view (issue: transparency): what
 * of one cell's KPIs may be shown to anyone, so that no published number
 * rests on fewer than `min` dialogs. Pure.
 *
 * The rules, for one cell (an hour or a day, never finer):
 * - a cell with fewer than `min` dialogs is withheld whole;
 * - a count is shown only when it is at least `min`;
 * - a rate k / n is shown only when both k and n − k are at least `min`
 *   (otherwise the group with, or the group without, would be small, and
 *   k = rate × n would give it away from the shown denominator);
 * - a funnel step's count is shown only when it and the drop from the step
 *   before are each 0 or at least `min` (a shown step and the one before it
 *   would otherwise give a small drop away by subtraction), and its
 *   conversion from the step before only when both counts are shown;
 * - a median is shown only when the population it is taken over is at
 *   least `min`.
 * Segments are not published, so no segment can be had by subtracting the
 * others from a total. How windows are kept from overlapping (the other
 * way to subtract) is the publisher's part (public/plugin.ts).
 */
import type { FunnelStep, Kpis } from '../contract/kpis.js';

/** A funnel step as the public view shows it. */
export interface PublicStep {
  step: number;
  name: string;
  count: number | null;
  conversionFromPrevious: number | null;
}

/** One cell's KPIs as the public view shows them: null where withheld. */
export interface PublicKpis {
  dialogs: number | null;
  newUsers: number | null;
  /** Median of sites logged in, over the cell's dialogs. */
  sitesLoggedInMedian: number | null;
  bounceRate: number | null;
  passwordResetSuccess: number | null;
  additionalEmailShare: number | null;
  errorScreenRate: number | null;
  newUserFunnel: PublicStep[];
  passwordResetFunnel: PublicStep[];
  /** Some number of this cell is withheld (or all of it). */
  suppressed: boolean;
}

/** The counts each shown number rests on, for the property test and for audits. */
export interface Support {
  /** Each shown value: the sizes of the groups it describes (each must be 0 or ≥ min). */
  [field: string]: number[];
}

const count = (steps: { count: number }[], i: number): number => steps[i]?.count ?? 0;

/** A rate k / n, or null when either group is small. */
const rate = (k: number, n: number, min: number): number | null => (n > 0 && k >= min && n - k >= min ? k / n : null);
const shownCount = (c: number, min: number): number | null => (c >= min ? c : null);
/** A group of 0 describes no one; otherwise it must hold at least `min`. */
const safe = (size: number, min: number) => size === 0 || size >= min;

function publicFunnel(steps: FunnelStep[], min: number): PublicStep[] {
  const shown = steps.map((s, i) => {
    const drop = i === 0 ? 0 : count(steps, i - 1) - s.count;
    return s.count >= min && safe(drop, min);
  });
  return steps.map((s, i) => ({
    step: s.step,
    name: s.name,
    count: shown[i] ? s.count : null,
    // both counts shown: the drop between them is 0 or at least `min` (it is what `shown` checks)
    conversionFromPrevious: i === 0 ? (shown[0] ? 1 : null) : shown[i] && shown[i - 1] ? s.count / count(steps, i - 1) : null,
  }));
}

/** What of one cell's KPIs the public may see, with `min` the smallest group shown. */
export function publicKpis(k: Kpis, min: number): PublicKpis {
  const withheld: PublicKpis = {
    dialogs: null,
    newUsers: null,
    sitesLoggedInMedian: null,
    bounceRate: null,
    passwordResetSuccess: null,
    additionalEmailShare: null,
    errorScreenRate: null,
    newUserFunnel: k.newUserFunnel.map((s) => ({ step: s.step, name: s.name, count: null, conversionFromPrevious: null })),
    passwordResetFunnel: k.passwordResetFunnel.map((s) => ({ step: s.step, name: s.name, count: null, conversionFromPrevious: null })),
    suppressed: true,
  };
  if (k.dialogs < min) return withheld;
  const shown = count(k.progress, 1);
  const engaged = count(k.progress, 2);
  const loggedIn = count(k.progress, 4);
  const multi = Math.round((k.additionalEmailShare ?? 0) * loggedIn);
  const out: PublicKpis = {
    dialogs: k.dialogs,
    newUsers: shownCount(k.newUsers, min),
    sitesLoggedInMedian: k.dialogs >= min ? k.sitesLoggedIn.median : null,
    bounceRate: rate(shown - engaged, shown, min),
    passwordResetSuccess: rate(count(k.passwordResetFunnel, 2), count(k.passwordResetFunnel, 0), min),
    additionalEmailShare: rate(multi, loggedIn, min),
    errorScreenRate: rate(count(k.progress, 3), k.dialogs, min),
    newUserFunnel: publicFunnel(k.newUserFunnel, min),
    passwordResetFunnel: publicFunnel(k.passwordResetFunnel, min),
    suppressed: false,
  };
  out.suppressed =
    [out.newUsers, out.bounceRate, out.passwordResetSuccess, out.additionalEmailShare, out.errorScreenRate].some((v) => v === null) ||
    [...out.newUserFunnel, ...out.passwordResetFunnel].some((s) => s.count === null);
  return out;
}

/**
 * The groups each shown number of `pub` describes, from the cell's true
 * KPIs `k`: a shown count describes its group; a shown rate both its groups;
 * a shown step its own group and the drop from the step before. Every size
 * must be 0 or at least `min` (checked by the property test).
 */
export function supportOf(pub: PublicKpis, k: Kpis): Support {
  const support: Support = {};
  if (pub.dialogs !== null) support.dialogs = [k.dialogs];
  if (pub.newUsers !== null) support.newUsers = [k.newUsers];
  if (pub.sitesLoggedInMedian !== null) support.sitesLoggedInMedian = [k.dialogs];
  const shown = count(k.progress, 1);
  const engaged = count(k.progress, 2);
  if (pub.bounceRate !== null) support.bounceRate = [shown - engaged, engaged];
  if (pub.passwordResetSuccess !== null)
    support.passwordResetSuccess = [count(k.passwordResetFunnel, 2), count(k.passwordResetFunnel, 0) - count(k.passwordResetFunnel, 2)];
  const loggedIn = count(k.progress, 4);
  const multi = Math.round((k.additionalEmailShare ?? 0) * loggedIn);
  if (pub.additionalEmailShare !== null) support.additionalEmailShare = [multi, loggedIn - multi];
  if (pub.errorScreenRate !== null) support.errorScreenRate = [count(k.progress, 3), k.dialogs - count(k.progress, 3)];
  for (const [name, steps, truth] of [
    ['newUserFunnel', pub.newUserFunnel, k.newUserFunnel],
    ['passwordResetFunnel', pub.passwordResetFunnel, k.passwordResetFunnel],
  ] as const) {
    steps.forEach((s, i) => {
      if (s.count !== null) support[`${name}.${s.step}`] = [truth[i]!.count, i === 0 ? 0 : truth[i - 1]!.count - truth[i]!.count];
      if (s.conversionFromPrevious !== null && i > 0) support[`${name}.${s.step}.conversion`] = [truth[i]!.count, truth[i - 1]!.count - truth[i]!.count];
    });
  }
  return support;
}
