/** Thresholds and alerts on tiles and funnel steps, and the funnels summed over series. Pure. */
import { NEW_USER_STEPS, RESET_STEPS, type FunnelStep, type ThresholdKey } from '../../../src/contract/kpis.js';
import type { AlertsBody, AlertState } from '../../../src/alerts/types.js';
import { formatValue, TILE_KPIS, type TileKpi } from './tiles.js';

export type Threshold = { min?: number; max?: number };

/** True when a value is outside its threshold (a tile turns red). */
export function breached(value: number | null, threshold: Threshold | undefined): boolean {
  if (value === null || !threshold) return false;
  return (threshold.min !== undefined && value < threshold.min) || (threshold.max !== undefined && value > threshold.max);
}

/** What a breach is, in words (never colour alone): `below min 10`, `above max 70.0%`; '' when none. */
export function breachText(value: number | null, threshold: Threshold | undefined, format: TileKpi['format']): string {
  if (!breached(value, threshold)) return '';
  return threshold!.min !== undefined && value! < threshold!.min
    ? `below min ${formatValue(threshold!.min, format)}`
    : `above max ${formatValue(threshold!.max, format)}`;
}

export type FunnelId = 'new-user' | 'password-reset';

/** The threshold of the conversion into step `step` (≥ 2) of a funnel, from the step before. */
export const stepKey = (funnel: FunnelId, step: number): ThresholdKey => `${funnel}.step${step}`;

/** Something a threshold watches, as the editor lists it. */
export interface Watched {
  key: ThresholdKey;
  label: string;
  format: TileKpi['format'];
}

/** Everything a threshold can watch: the tiles, then each step conversion of both funnels. */
export function watchedValues(funnels: { id: FunnelId; label: string; steps: readonly string[] }[]): Watched[] {
  return [
    ...TILE_KPIS.map((k) => ({ key: k.id, label: k.label, format: k.format })),
    ...funnels.flatMap((f) =>
      f.steps.slice(1).map((name, i) => ({ key: stepKey(f.id, i + 2), label: `${f.label}: ${f.steps[i]} → ${name}`, format: 'percent' as const })),
    ),
  ];
}

export const FUNNELS: { id: FunnelId; label: string; steps: readonly string[]; field: 'newUserFunnel' | 'passwordResetFunnel' }[] = [
  { id: 'new-user', label: 'New-user funnel', steps: NEW_USER_STEPS, field: 'newUserFunnel' },
  { id: 'password-reset', label: 'Password-reset funnel', steps: RESET_STEPS, field: 'passwordResetFunnel' },
];

/** The server's alert states by key, breached ones only. */
export function breachedAlerts(body: AlertsBody | undefined): Map<ThresholdKey, AlertState> {
  return new Map((body?.alerts ?? []).filter((a) => a.state === 'breached').map((a) => [a.key, a]));
}

/**
 * One funnel over all series of an answer: counts and estimates added up
 * (every dialog has exactly one value of a dimension, so this is the whole
 * population), conversions recomputed from the sums.
 */
export function sumFunnels(funnels: FunnelStep[][]): FunnelStep[] {
  const first = funnels[0];
  if (!first) return [];
  const counts = first.map((_, i) => funnels.reduce((n, f) => n + (f[i]?.count ?? 0), 0));
  const estimates = first.map((_, i) => funnels.reduce((n, f) => n + (f[i]?.estimate ?? 0), 0));
  const ratio = (a: number, b: number) => (b > 0 ? a / b : null);
  return first.map((s, i) => {
    const fromPrevious = i > 0 ? ratio(counts[i]!, counts[i - 1]!) : counts[i]! > 0 ? 1 : null;
    return {
      step: s.step,
      name: s.name,
      count: counts[i]!,
      estimate: estimates[i]!,
      conversionFromStart: ratio(counts[i]!, counts[0]!),
      conversionFromPrevious: fromPrevious,
      dropOff: fromPrevious === null ? null : 1 - fromPrevious,
    };
  });
}
