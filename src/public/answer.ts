/**
 * The public view's answers: hourly points for the last 48 hours that ended
 * at least an hour ago, and daily points for the 30 days before those; each
 * point's KPIs with small numbers withheld (suppress.ts). Pure.
 *
 * Why these windows and nothing else: a reader cannot choose them, they
 * move only at hour (and day) edges, and the hourly and daily ranges do not
 * overlap, so no published number can be subtracted from another that
 * covers it to give away a withheld one. For the same reason no total over
 * points is published (it would give away, by subtraction, a number
 * withheld in one of them). An hour is published an hour after it ends,
 * when late blobs have mostly come in.
 */
import type { KpiQuery } from '../aggregate/model/query.js';
import { DAY, HOUR, type KpiAnswer } from '../contract/kpis.js';
import { publicKpis, type PublicKpis } from './suppress.js';

export const HOURLY_POINTS = 48;
export const DAILY_POINTS = 30;
/** An hour is published this long after it ends. */
export const SETTLE_MS = HOUR;

export type PublicBucket = '1h' | '1d';

/** A deploy marker as the public view shows it: only those marked public, with the note only if it is. */
export interface PublicDeploy {
  version: string;
  at: number;
  note?: string;
}

export interface PublicAnswer {
  bucket: PublicBucket;
  from: number;
  to: number;
  /** No number shown rests on fewer dialogs than this. */
  minCount: number;
  points: { start: number; end: number; kpis: PublicKpis }[];
  deploys: PublicDeploy[];
}

/** The fixed windows at `now`: hourly, then the days wholly before it. */
export function publicWindows(now: number): Record<PublicBucket, { from: number; to: number }> {
  const hourlyTo = Math.floor((now - SETTLE_MS) / HOUR) * HOUR;
  const hourlyFrom = hourlyTo - HOURLY_POINTS * HOUR;
  const dailyTo = Math.floor(hourlyFrom / DAY) * DAY;
  return { '1h': { from: hourlyFrom, to: hourlyTo }, '1d': { from: dailyTo - DAILY_POINTS * DAY, to: dailyTo } };
}

/** The public answer for one bucket size at `now`. */
export function publicAnswer(
  kpis: (query: KpiQuery) => KpiAnswer,
  bucket: PublicBucket,
  now: number,
  minCount: number,
  deploys: readonly { version: string; at: number; note?: string; public?: boolean }[],
): PublicAnswer {
  const { from, to } = publicWindows(now)[bucket];
  const answer = kpis({ from, to, bucket });
  const points = (answer.series[0]?.points ?? []).map((p) => ({ start: p.start, end: p.end, kpis: publicKpis(p.kpis, minCount) }));
  return {
    bucket,
    from,
    to,
    minCount,
    points,
    deploys: deploys
      .filter((d) => d.public === true && d.at >= from && d.at < to)
      .map((d) => ({ version: d.version, at: d.at, ...(d.note !== undefined ? { note: d.note } : {}) })),
  };
}
