/**
 * The value of each thing a threshold can watch, read from one set of KPIs.
 * The one place that says what number a tile shows for a KPI id: the
 * dashboard's tiles and the service's alerts must agree on it, so this file
 * depends on type files only and the dashboard can import it.
 */
import type { FunnelStep, Kpis, ThresholdKey, TileKpiId } from '../contract/kpis.js';

/**
 * The number a dashboard tile shows for a KPI id (null: nothing to show).
 *
 * @example
 * tileValue('bounceRate', answer.series[0].total); // 0.42
 */
export function tileValue(id: TileKpiId, kpis: Kpis): number | null {
  switch (id) {
    case 'newUsers':
      return kpis.newUsersEstimate;
    case 'newUserDropOff': {
      const fromStart = kpis.newUserFunnel[3]?.conversionFromStart ?? null;
      return fromStart === null ? null : 1 - fromStart;
    }
    case 'sitesMedian':
      return kpis.sitesLoggedIn.median;
    case 'resetSuccess':
      return kpis.passwordResetSuccess;
    case 'additionalEmail':
      return kpis.additionalEmailShare;
    case 'bounceRate':
      return kpis.bounceRate;
    case 'errorRate':
      return kpis.errorScreenRate;
  }
}

/** The funnels whose step conversions a threshold may watch. */
export type StepFunnel = 'new-user' | 'password-reset';

/**
 * The funnel and step a key like `new-user.step3` names (any step number:
 * whether the funnel has it is checked where thresholds are checked).
 */
export function stepKey(key: string): { funnel: StepFunnel; step: number } | undefined {
  const match = /^(new-user|password-reset)\.step([1-9][0-9]{0,2})$/.exec(key);
  return match ? { funnel: match[1] as StepFunnel, step: Number(match[2]) } : undefined;
}

function funnelSteps(kpis: Kpis, funnel: StepFunnel): FunnelStep[] {
  return funnel === 'new-user' ? kpis.newUserFunnel : kpis.passwordResetFunnel;
}

/** What a threshold judges: the value, and how many observations it rests on. */
export interface WatchedValue {
  value: number | null;
  /** Dialogs for a tile KPI; for a funnel step, blobs that reached the step before it. */
  support: number;
}

/**
 * The value a threshold key watches in a set of KPIs: a tile's value, or the
 * conversion into step k of a funnel from step k − 1. Undefined for a key
 * that names no such thing.
 *
 * @example
 * watchedValue('new-user.step3', kpis); // { value: 0.8, support: 120 }: 96 of the 120 who chose a password verified their email
 */
export function watchedValue(key: ThresholdKey, kpis: Kpis): WatchedValue | undefined {
  const step = stepKey(key);
  if (!step) return { value: tileValue(key as TileKpiId, kpis), support: kpis.dialogs };
  const steps = funnelSteps(kpis, step.funnel);
  const into = steps[step.step - 1];
  const before = steps[step.step - 2];
  if (step.step < 2 || !into || !before) return undefined;
  return { value: into.conversionFromPrevious, support: before.count };
}
