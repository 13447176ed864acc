/**
 * The dashboard's data model: the live answer, kept up to date by merging the
 * stream's deltas into it. Pure functions, unit-tested.
 */
import {
  bucketForRange,
  DAY,
  HOUR,
  MAX_RANGE_MS,
  NEW_USER_STEPS,
  OTHER,
  RESET_STEPS,
  TEN_MINUTES,
  type BucketName,
  type Dimension,
  type FunnelStep,
  type KpiAnswer,
  type KpiPoint,
  type KpiSeries,
  type Kpis,
  type ThresholdKey,
  type Thresholds,
  type TileKpiId,
} from '../../src/contract/kpis.js';
import type { AlertsBody, AlertState } from '../../src/alerts/types.js';
// The one definition of what a tile shows, shared with the service's alerts (pure, types only).
import { tileValue } from '../../src/alerts/values.js';
import type { Deploy } from '../../src/deploys/types.js';
import type { ServerMessage, Subscription } from '../../src/contract/stream.js';

export type {
  AlertsBody,
  AlertState,
  BucketName,
  Deploy,
  Dimension,
  FunnelStep,
  KpiAnswer,
  KpiPoint,
  KpiSeries,
  Kpis,
  ServerMessage,
  Subscription,
  ThresholdKey,
  Thresholds,
};

export { bucketForRange, MAX_RANGE_MS, OTHER, TEN_MINUTES };
/** Segment values the chart draws as their own lines; the rest is one `Other` line. */
export const TOP_SEGMENTS = 8;

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

const TILES: Omit<TileKpi, 'value'>[] = [
  { id: 'newUsers', label: 'New users', format: 'count', better: 'up' },
  { id: 'newUserDropOff', label: 'New-user drop-off', format: 'percent', better: 'down' },
  { id: 'sitesMedian', label: 'Median sites logged in', format: 'number', better: 'up' },
  { id: 'resetSuccess', label: 'Password-reset success', format: 'percent', better: 'up' },
  { id: 'additionalEmail', label: 'Additional-email share', format: 'percent', better: 'up' },
  { id: 'bounceRate', label: 'Bounce rate', format: 'percent', better: 'down' },
  { id: 'errorRate', label: 'Error-screen rate', format: 'percent', better: 'down' },
];

export const TILE_KPIS: TileKpi[] = TILES.map((tile) => ({ ...tile, value: (k: Kpis) => tileValue(tile.id, k) }));

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
  { label: '1 h', ms: HOUR },
  { label: '6 h', ms: 6 * HOUR },
  { label: '24 h', ms: 24 * HOUR },
  { label: '7 d', ms: 7 * DAY },
  { label: '30 d', ms: 30 * DAY },
];

/** The window shown: the last `ms` up to now (live), or a custom one fixed in time. */
export type Range = { kind: 'last'; ms: number } | { kind: 'custom'; from: number; to: number };

/** What the dashboard shows, as kept in its URL. */
export interface View {
  range: Range;
  segment?: Dimension;
}

export const DEFAULT_RANGE: Range = { kind: 'last', ms: 6 * HOUR };

/** The segmentations on offer, as people call them. */
export const SEGMENTS: { value: Dimension | ''; label: string }[] = [
  { value: '', label: 'All' },
  { value: 'os', label: 'OS' },
  { value: 'browser', label: 'Browser' },
  { value: 'screen', label: 'Screen' },
  { value: 'emails', label: 'Emails' },
  { value: 'locale', label: 'Locale' },
  { value: 'api', label: 'API' },
  { value: 'emailType', label: 'Email type' },
];
const DIMENSION_NAMES: readonly string[] = SEGMENTS.map((s) => s.value).filter((v) => v !== '');

export const dimensionLabel = (d: Dimension): string => SEGMENTS.find((s) => s.value === d)?.label ?? d;

/**
 * The view of a URL's query: `range=<ms>` for the last so long, or
 * `from=<ms>&to=<ms>` for a custom window; `segment=<dimension>`. Anything
 * unknown or invalid falls back to the last 6 h, unsplit.
 *
 * @example
 * viewFromUrl('?from=1795400000000&to=1795486400000&segment=os');
 */
export function viewFromUrl(search: string): View {
  const params = new URLSearchParams(search);
  const segment = params.get('segment');
  const view: View = { range: DEFAULT_RANGE, ...(segment && DIMENSION_NAMES.includes(segment) ? { segment: segment as Dimension } : {}) };
  const [from, to] = [Number(params.get('from') ?? NaN), Number(params.get('to') ?? NaN)];
  if (params.has('from') && params.has('to') && customRangeProblem(from, to) === undefined) return { ...view, range: { kind: 'custom', from, to } };
  const range = Number(params.get('range'));
  if (RANGES.some((r) => r.ms === range)) return { ...view, range: { kind: 'last', ms: range } };
  return view;
}

/** The URL query of a view; other parameters of `search` (such as `tv`) are kept. */
export function viewToUrl(view: View, search = ''): string {
  const params = new URLSearchParams(search);
  for (const name of ['range', 'from', 'to', 'segment']) params.delete(name);
  if (view.range.kind === 'last') params.set('range', String(view.range.ms));
  else {
    params.set('from', String(view.range.from));
    params.set('to', String(view.range.to));
  }
  if (view.segment) params.set('segment', view.segment);
  return `?${params}`;
}

/** What to ask the live stream for: the view's window, and the top values with `Other` when split. */
export function subscriptionOf(view: View): Subscription {
  const split = view.segment ? { segment: view.segment, top: TOP_SEGMENTS } : {};
  if (view.range.kind === 'last') return { rangeMs: view.range.ms, ...split };
  return { rangeMs: view.range.to - view.range.from, from: view.range.from, ...split };
}

/** A custom window ends in the past: nothing but a late blob can change it. */
export function rangeEnded(range: Range, now = Date.now()): boolean {
  return range.kind === 'custom' && range.to <= now;
}

/** Why a custom window cannot be shown, or undefined when it can. */
export function customRangeProblem(from: number, to: number): string | undefined {
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0) return 'Give a start and an end.';
  if (to <= from) return 'The end must be after the start.';
  if (to - from < TEN_MINUTES) return 'A window is at least 10 minutes long.';
  if (to - from > MAX_RANGE_MS) return `A window is at most ${MAX_RANGE_MS / DAY} days long.`;
  return undefined;
}

/** A window widened to whole 10-minute buckets, the finest the service keeps. */
export function roundRange(from: number, to: number): { from: number; to: number } {
  return { from: Math.floor(from / TEN_MINUTES) * TEN_MINUTES, to: Math.ceil(to / TEN_MINUTES) * TEN_MINUTES };
}

/** A bucket size in words: `10-minute`, `hourly`, `daily`. */
export const bucketWords = (bucket: BucketName): string => ({ '10m': '10-minute', '1h': 'hourly', '1d': 'daily' })[bucket];

/** `GET /api/kpis` of a window. */
export function kpisUrl(q: { from: number; to: number; bucket?: BucketName; segment?: Dimension | null; top?: number }): string {
  const params = new URLSearchParams({ from: String(q.from), to: String(q.to) });
  if (q.bucket) params.set('bucket', q.bucket);
  if (q.segment) {
    params.set('segment', q.segment);
    if (q.top !== undefined) params.set('top', String(q.top));
  }
  return `/api/kpis?${params}`;
}

/** The shortest span the chart zooms to. */
export const MIN_ZOOM_MS = HOUR;

/**
 * A zoom window for a selection on the chart: whole 10-minute buckets, at
 * least {@link MIN_ZOOM_MS} (widened around the selection's middle), inside
 * the window shown.
 */
export function zoomRange(from: number, to: number, within: { from: number; to: number }): { from: number; to: number } {
  const span = Math.min(within.to - within.from, Math.max(MIN_ZOOM_MS, to - from));
  const middle = (from + to) / 2;
  const start = Math.max(within.from, Math.min(middle - span / 2, within.to - span));
  // whole buckets, rounded outwards: the selection stays in view
  return {
    from: Math.max(within.from, Math.floor(start / TEN_MINUTES) * TEN_MINUTES),
    to: Math.min(within.to, Math.ceil((start + span) / TEN_MINUTES) * TEN_MINUTES),
  };
}

/** Zooming by keyboard: halve the span (in), or move it by half a span (earlier, later). */
export function zoomStep(
  current: { from: number; to: number },
  step: 'in' | 'earlier' | 'later',
  within: { from: number; to: number },
): { from: number; to: number } {
  const span = current.to - current.from;
  if (step === 'in') return zoomRange(current.from + span / 4, current.to - span / 4, within);
  const shift = (step === 'earlier' ? -span : span) / 2;
  return zoomRange(current.from + shift, current.to + shift, within);
}

const pad = (n: number) => String(n).padStart(2, '0');

/** Local time as `HH:MM`. */
export function hhmm(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A time as a person reads it: `HH:MM` today, `YYYY-MM-DD HH:MM` otherwise (local time). */
export function shortTime(ms: number, now = Date.now()): string {
  const d = new Date(ms);
  const today = new Date(now);
  const sameDay = d.getFullYear() === today.getFullYear() && d.getMonth() === today.getMonth() && d.getDate() === today.getDate();
  return sameDay ? hhmm(ms) : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hhmm(ms)}`;
}

/** ms → the value of an `<input type="datetime-local">` (local time, minutes). */
export function toLocalInput(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${hhmm(ms)}`;
}

/** The value of an `<input type="datetime-local">` → ms, or NaN. */
export function fromLocalInput(value: string): number {
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(value) ? new Date(value).getTime() : NaN;
}

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

/**
 * When a polite announcement may go out: at once if the last one is at least
 * `gapMs` old, or if it is urgent (a breach began or ended); else after
 * `wait` ms, with whatever is latest by then.
 *
 * @example
 * announceAfter(lastAt, Date.now(), 30_000, false); // 0: now; > 0: later
 */
export function announceAfter(lastAt: number | undefined, now: number, gapMs: number, urgent: boolean): number {
  if (urgent || lastAt === undefined) return 0;
  return Math.max(0, lastAt + gapMs - now);
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

/**
 * Axis labels of shares as percentages, with as many decimals as the
 * spacing of the ticks needs (0.25% apart: one), so no two labels of a
 * narrow range read alike.
 *
 * @example
 * percentTicks([0.63, 0.6325, 0.635]); // ['63.0%', '63.2%', '63.5%']
 */
export function percentTicks(ticks: readonly number[]): string[] {
  const step = ticks.length > 1 ? Math.abs(ticks[1]! - ticks[0]!) * 100 : 1;
  const decimals = step > 0 && step < 1 ? Math.min(4, Math.ceil(-Math.log10(step) - 1e-9)) : 0;
  return ticks.map((t) => `${(t * 100).toFixed(decimals)}%`);
}
