/** What the page shows, as its URL says it: the range, the segmentation, a custom window, the zoom, and the `/api/kpis` URL of a window. Pure. */
import { DAY, HOUR, MAX_RANGE_MS, TEN_MINUTES, type BucketName, type Dimension } from '../../../src/contract/kpis.js';
import type { Subscription } from '../../../src/contract/stream.js';

/** Segment values the chart draws as their own lines; the rest is one `Other` line. */
export const TOP_SEGMENTS = 8;

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
