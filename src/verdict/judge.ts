/**
 * The verdict on a deploy from two sets of KPIs, the baseline's and those
 * of the dialogs that arrived after the deploy: each watched rate is
 * compared with the always-valid test of sequential.ts, and the worst check
 * decides. Pure: the same KPIs give the same verdict, so a verdict read from
 * any instance, after a restart or a replay, is the one judged anywhere else.
 *
 * The rates are those of the tiles and the funnels (kpi-definitions §4),
 * each as successes over trials of raw counts (sampling thins both alike):
 *
 * | key                    | successes / trials                          | worse  |
 * | ---------------------- | ------------------------------------------- | ------ |
 * | newUsers               | new users / dialogs                         | lower  |
 * | newUserDropOff         | step 1 − step 4 / step 1 (new-user funnel)  | higher |
 * | resetSuccess           | step 3 / step 1 (password-reset funnel)     | lower  |
 * | additionalEmail        | logged in with ≥ 2 emails / logged in       | lower  |
 * | bounceRate             | shown − engaged / shown                     | higher |
 * | errorRate              | error screen / dialogs                      | higher |
 * | new-user.stepK (2–4)   | step K / step K−1                           | lower  |
 * | password-reset.stepK   | step K / step K−1 (2–3)                     | lower  |
 *
 * The median of sites logged in is not a rate: its two values are shown
 * with the tiles, not tested.
 */
import type { Kpis, ThresholdKey } from '../contract/kpis.js';
import type { CheckState, DeployVerdict, VerdictCheck, VerdictMethod, VerdictState } from '../contract/verdict.js';
import { compareProportions, type Proportion } from './sequential.js';

interface Rate {
  key: ThresholdKey;
  label: string;
  worse: 'higher' | 'lower';
  of: (k: Kpis) => Proportion;
}

const count = (steps: { count: number }[], i: number): number => steps[i]?.count ?? 0;
const ratio = (successes: number, trials: number): Proportion => ({ successes: Math.max(0, Math.min(successes, trials)), trials: Math.max(0, trials) });

/** The rates a verdict watches, in the order they are shown. */
export const VERDICT_RATES: readonly Rate[] = [
  { key: 'bounceRate', label: 'Bounce rate', worse: 'higher', of: (k) => ratio(count(k.progress, 1) - count(k.progress, 2), count(k.progress, 1)) },
  { key: 'errorRate', label: 'Error-screen rate', worse: 'higher', of: (k) => ratio(count(k.progress, 3), k.dialogs) },
  { key: 'newUsers', label: 'New users per dialog', worse: 'lower', of: (k) => ratio(k.newUsers, k.dialogs) },
  {
    key: 'newUserDropOff',
    label: 'New-user drop-off',
    worse: 'higher',
    of: (k) => ratio(count(k.newUserFunnel, 0) - count(k.newUserFunnel, 3), count(k.newUserFunnel, 0)),
  },
  ...[2, 3, 4].map((step): Rate => ({
    key: `new-user.step${step}`,
    label: `New-user funnel, step ${step} from ${step - 1}`,
    worse: 'lower',
    of: (k) => ratio(count(k.newUserFunnel, step - 1), count(k.newUserFunnel, step - 2)),
  })),
  { key: 'resetSuccess', label: 'Password-reset success', worse: 'lower', of: (k) => ratio(count(k.passwordResetFunnel, 2), count(k.passwordResetFunnel, 0)) },
  ...[2, 3].map((step): Rate => ({
    key: `password-reset.step${step}`,
    label: `Password-reset funnel, step ${step} from ${step - 1}`,
    worse: 'lower',
    of: (k) => ratio(count(k.passwordResetFunnel, step - 1), count(k.passwordResetFunnel, step - 2)),
  })),
  {
    key: 'additionalEmail',
    label: 'Additional-email share',
    worse: 'lower',
    // share = k / n of the logged-in blobs: n × share gives k back exactly
    of: (k) => ratio(Math.round((k.additionalEmailShare ?? 0) * count(k.progress, 4)), count(k.progress, 4)),
  },
];

export const VERDICT_METHOD: VerdictMethod = {
  name: 'mSPRT (normal mixture), always valid',
  alpha: 0.05,
  alphaSuspect: 0.3,
  minAfterTrials: 30,
  minBaselineTrials: 100,
  minHarm: { relative: 0.1, absolute: 0.005 },
  margin: { relative: 0.25, absolute: 0.03 },
};

/** The harm of a change of `effect` (positive: the harmful way). */
const harm = (rate: Rate, effect: number): number => (rate.worse === 'higher' ? effect : -effect);
/** A change of `limit.relative` of the baseline rate, at least `limit.absolute`. */
const sized = (limit: { relative: number; absolute: number }, baseline: number): number => Math.max(limit.absolute, limit.relative * baseline);

/** One check: the rate after the deploy against the baseline, with its state. */
export function judgeRate(rate: Rate, baselineKpis: Kpis, afterKpis: Kpis, method: VerdictMethod = VERDICT_METHOD): VerdictCheck {
  const baseline = rate.of(baselineKpis);
  const after = rate.of(afterKpis);
  const m = VERDICT_RATES.length;
  const base = { successes: baseline.successes, trials: baseline.trials, rate: baseline.trials > 0 ? baseline.successes / baseline.trials : null };
  const aft = { successes: after.successes, trials: after.trials, rate: after.trials > 0 ? after.successes / after.trials : null };
  const check = (state: CheckState, extra: Partial<VerdictCheck> = {}): VerdictCheck => ({
    key: rate.key,
    label: rate.label,
    worse: rate.worse,
    baseline: base,
    after: aft,
    effect: null,
    relativeEffect: null,
    low: null,
    high: null,
    state,
    ...extra,
  });
  if (baseline.trials < method.minBaselineTrials) return check('no baseline');
  const strict = compareProportions(baseline, after, method.alpha / m);
  const effect = after.trials > 0 ? aft.rate! - base.rate! : null;
  const shown = {
    effect,
    relativeEffect: effect !== null && base.rate! > 0 ? effect / base.rate! : null,
    low: after.trials > 0 ? strict.low : null,
    high: after.trials > 0 ? strict.high : null,
  };
  if (after.trials < method.minAfterTrials) return check('not enough data', shown);
  const loose = compareProportions(baseline, after, method.alphaSuspect / m);
  const p0 = base.rate!;
  // the bound of the interval nearest to no harm, as a harm
  const surelyHarmful = (c: { low: number; high: number }) => (rate.worse === 'higher' ? c.low : -c.high);
  // the worst harm the evidence still allows (at the suspect level: `ok` is the absence of suspicion, bounded)
  const worstCase = rate.worse === 'higher' ? loose.high : -loose.low;
  const pointHarm = harm(rate, strict.effect);
  if (surelyHarmful(strict) > 0 && pointHarm >= sized(method.minHarm, p0)) return check('broken', shown);
  if (surelyHarmful(loose) > 0) return check('suspect', shown);
  if (worstCase <= sized(method.margin, p0)) return check('ok', shown);
  return check('unclear', shown);
}

const SEVERITY: Record<CheckState, number> = { broken: 5, suspect: 4, unclear: 3, 'not enough data': 2, ok: 1, 'no baseline': 0 };

/**
 * The verdict: `broken` if any check is, else `suspect` if any is; `healthy`
 * once every check with a baseline is `ok`; else not enough data yet.
 */
export function judgeDeploy(input: {
  deploy: { id: string; version: string; at: number };
  baseline: Kpis;
  after: Kpis;
  baselineWindows: { from: number; to: number }[];
  now: number;
  method?: VerdictMethod;
}): DeployVerdict {
  const method = input.method ?? VERDICT_METHOD;
  const checks = VERDICT_RATES.map((rate) => judgeRate(rate, input.baseline, input.after, method));
  // worst first: broken before suspect, then the largest relative harm
  const relativeHarm = (c: VerdictCheck) => Math.abs(c.relativeEffect ?? 0);
  const faults = checks
    .filter((c) => c.state === 'broken' || c.state === 'suspect')
    .sort((a, b) => SEVERITY[b.state] - SEVERITY[a.state] || relativeHarm(b) - relativeHarm(a))
    .map((c) => c.key);
  const based = checks.filter((c) => c.state !== 'no baseline');
  let state: VerdictState = 'not enough data yet';
  if (checks.some((c) => c.state === 'broken')) state = 'broken';
  else if (checks.some((c) => c.state === 'suspect')) state = 'suspect';
  else if (based.length > 0 && based.every((c) => c.state === 'ok')) state = 'healthy';
  return {
    deploy: { id: input.deploy.id, version: input.deploy.version, at: input.deploy.at },
    state,
    faults,
    ageMs: Math.max(0, input.now - input.deploy.at),
    dialogs: { after: input.after.dialogs, baseline: input.baseline.dialogs },
    baselineWindows: input.baselineWindows,
    checks,
    method,
    judgedAt: input.now,
  };
}
