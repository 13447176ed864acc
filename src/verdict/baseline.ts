/**
 * The baseline a deploy's arrivals are compared with: the same hours of the
 * 7 days before the deploy, pooled, for as long as the deploy has been out
 * (at least 10 minutes, at most the arrival window): time of day and day of
 * week weigh alike on both sides, and the baseline holds about 7 times what
 * arrived since. Where those days hold fewer than {@link MIN_POOLED_DIALOGS}
 * dialogs (a service younger than a week, a quiet site), the 6 hours before
 * the deploy are added. Windows are on 10-minute edges; for the days whose
 * buckets are hourly or daily by now, the bucket around the window counts
 * whole (query.ts, queryWindowsTotal). Pure.
 */
import { DAY, HOUR, TEN_MINUTES } from '../contract/kpis.js';
import { ARRIVAL_WINDOW_MS } from '../contract/verdict.js';

export const BASELINE_DAYS = 7;
export const HOURS_BEFORE = 6;
export const MIN_POOLED_DIALOGS = 1000;

const floor10 = (t: number) => Math.floor(t / TEN_MINUTES) * TEN_MINUTES;
const ceil10 = (t: number) => Math.ceil(t / TEN_MINUTES) * TEN_MINUTES;

/** The same hours of each of the days before, oldest first. */
export function sameHoursWindows(deployAt: number, now: number): { from: number; to: number }[] {
  const age = Math.min(Math.max(now - deployAt, TEN_MINUTES), ARRIVAL_WINDOW_MS);
  const windows: { from: number; to: number }[] = [];
  for (let k = BASELINE_DAYS; k >= 1; k--) windows.push({ from: floor10(deployAt - k * DAY), to: ceil10(deployAt - k * DAY + age) });
  // with an age near a day, a window may reach into the next day's: clip so that none overlap,
  // and none reaches the deploy's own bucket (what arrived after it may be there)
  for (let i = 1; i < windows.length; i++) windows[i]!.from = Math.max(windows[i]!.from, windows[i - 1]!.to);
  for (const w of windows) w.to = Math.min(w.to, floor10(deployAt));
  return windows.filter((w) => w.to > w.from);
}

/** The hours before the deploy, as a window (clipped so as not to overlap the last same-hours window). */
export function hoursBeforeWindow(deployAt: number, after: { from: number; to: number } | undefined): { from: number; to: number } {
  const to = floor10(deployAt);
  return { from: Math.max(to - HOURS_BEFORE * HOUR, after?.to ?? Number.NEGATIVE_INFINITY), to };
}
