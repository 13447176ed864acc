/**
 * The dashboard's data model: the live answer, kept up to date by merging the
 * stream's deltas into it. Pure functions, unit-tested.
 */
import type { FunnelStep, KpiAnswer, KpiPoint, KpiSeries, Kpis, Thresholds, TileKpiId } from '../../src/aggregate/kpi-types.js';
import type { Deploy } from '../../src/deploys/types.js';
import type { ServerMessage, Subscription } from '../../src/stream/protocol.js';

export type { Deploy, FunnelStep, KpiAnswer, KpiPoint, KpiSeries, Kpis, ServerMessage, Subscription, Thresholds };

/**
 * The answer after a delta: totals replaced, changed points replaced or
 * added, points that slid out of the window dropped.
 *
 * @example
 * answer = mergeDelta(answer, delta.kpis);
 */
export function mergeDelta(current: KpiAnswer, delta: KpiAnswer): KpiAnswer {
  const previous = new Map(current.series.map((s) => [s.segment, s]));
  const series: KpiSeries[] = delta.series.map((d) => {
    const points = new Map<number, KpiPoint>();
    for (const p of previous.get(d.segment)?.points ?? []) if (p.start >= delta.from && p.start < delta.to) points.set(p.start, p);
    for (const p of d.points) points.set(p.start, p);
    return { segment: d.segment, total: d.total, points: [...points.values()].sort((a, b) => a.start - b.start) };
  });
  return { ...delta, series };
}

/** Merges deploy markers by id, oldest first. */
export function mergeDeploys(current: Deploy[], added: Deploy[]): Deploy[] {
  const byId = new Map(current.map((d) => [d.id, d]));
  for (const d of added) byId.set(d.id, d);
  return [...byId.values()].sort((a, b) => a.at - b.at);
}

/** A KPI shown on a tile: how to read it from the KPIs, and how to show it. */
export interface TileKpi {
  id: TileKpiId;
  label: string;
  value: (k: Kpis) => number | null;
  format: 'percent' | 'count' | 'number';
  /** Up is good (green) or bad (red). */
  better: 'up' | 'down';
}

export const TILE_KPIS: TileKpi[] = [
  { id: 'newUsers', label: 'New users', value: (k) => k.newUsersEstimate, format: 'count', better: 'up' },
  {
    id: 'newUserDropOff',
    label: 'New-user drop-off',
    value: (k) => (k.newUserFunnel[3]!.conversionFromStart === null ? null : 1 - k.newUserFunnel[3]!.conversionFromStart),
    format: 'percent',
    better: 'down',
  },
  { id: 'sitesMedian', label: 'Median sites logged in', value: (k) => k.sitesLoggedIn.median, format: 'number', better: 'up' },
  { id: 'resetSuccess', label: 'Password-reset success', value: (k) => k.passwordResetSuccess, format: 'percent', better: 'up' },
  { id: 'additionalEmail', label: 'Additional-email share', value: (k) => k.additionalEmailShare, format: 'percent', better: 'up' },
  { id: 'bounceRate', label: 'Bounce rate', value: (k) => k.bounceRate, format: 'percent', better: 'down' },
  { id: 'errorRate', label: 'Error-screen rate', value: (k) => k.errorScreenRate, format: 'percent', better: 'down' },
];

export function formatValue(value: number | null | undefined, format: TileKpi['format']): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  if (format === 'percent') return `${(value * 100).toFixed(1)}%`;
  if (format === 'count') return Math.round(value).toLocaleString('en-US');
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

/** Relative change from `before` to `now`, or null when it means nothing. */
export function change(now: number | null, before: number | null): number | null {
  if (now === null || before === null || before === 0) return null;
  return (now - before) / Math.abs(before);
}

/** The window ranges on offer. */
export const RANGES: { label: string; ms: number }[] = [
  { label: '1 h', ms: 3_600_000 },
  { label: '6 h', ms: 6 * 3_600_000 },
  { label: '24 h', ms: 24 * 3_600_000 },
  { label: '7 d', ms: 7 * 86_400_000 },
  { label: '30 d', ms: 30 * 86_400_000 },
];

/** Subscription ↔ URL (shareable state). */
export function subscriptionFromUrl(search: string): Subscription {
  const params = new URLSearchParams(search);
  const range = Number(params.get('range'));
  const segment = params.get('segment');
  return {
    rangeMs: RANGES.some((r) => r.ms === range) ? range : 6 * 3_600_000,
    ...(segment ? { segment: segment as Subscription['segment'] } : {}),
  };
}

export function subscriptionToUrl(sub: Subscription): string {
  const params = new URLSearchParams({ range: String(sub.rangeMs) });
  if (sub.segment) params.set('segment', sub.segment);
  return `?${params}`;
}

/** True when a value is outside its threshold (a tile turns red). */
export function breached(value: number | null, threshold: { min?: number; max?: number } | undefined): boolean {
  if (value === null || !threshold) return false;
  return (threshold.min !== undefined && value < threshold.min) || (threshold.max !== undefined && value > threshold.max);
}

/**
 * Two-proportion z statistic of x1/n1 against x2/n2 (pooled), or null when a
 * side has no trials. |z| ≥ 1.96 is a significant change at the 5% level.
 *
 * @example
 * twoProportionZ(40, 100, 25, 100); // ≈ −2.24: a significant drop
 */
export function twoProportionZ(x1: number, n1: number, x2: number, n2: number): number | null {
  if (n1 <= 0 || n2 <= 0) return null;
  const pooled = (x1 + x2) / (n1 + n2);
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2));
  if (se === 0) return 0;
  return (x2 / n2 - x1 / n1) / se;
}

export const SIGNIFICANT_Z = 1.96;

/** One step of two funnels side by side: conversion from the first step in each, and the test. */
export interface ComparedStep {
  step: number;
  name: string;
  before: number | null;
  after: number | null;
  z: number | null;
  significant: boolean;
}

export function compareFunnels(before: FunnelStep[], after: FunnelStep[]): ComparedStep[] {
  return after.map((b, i) => {
    const a = before[i];
    const z = a ? twoProportionZ(a.count, before[0]?.count ?? 0, b.count, after[0]?.count ?? 0) : null;
    return {
      step: b.step,
      name: b.name,
      before: a?.conversionFromStart ?? null,
      after: b.conversionFromStart,
      z,
      significant: i > 0 && z !== null && Math.abs(z) >= SIGNIFICANT_Z,
    };
  });
}
