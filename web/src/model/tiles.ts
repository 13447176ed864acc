/** The KPI tiles: what each shows, how a value is formatted, its change, and how often a change is announced. Pure. */
import { type Kpis, type TileKpiId } from '../../../src/contract/kpis.js';
import { tileValue } from '../../../src/alerts/values.js';

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
