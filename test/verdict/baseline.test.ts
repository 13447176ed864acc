/**
 * The baseline's windows: the same hours of the 7 days before the deploy, on
 * 10-minute edges, as long as the deploy has been out (at least 10 minutes,
 * at most a day, never overlapping), and the hours before it.
 */
import { describe, expect, it } from 'vitest';
import { DAY, HOUR, MINUTE } from '../../src/contract/kpis.js';
import { BASELINE_DAYS, hoursBeforeWindow, sameHoursWindows } from '../../src/verdict/baseline.js';

const at = Date.UTC(2026, 11, 4, 17, 15, 11);

describe('the baseline windows', () => {
  it('are the same hours of each of the 7 days before, on 10-minute edges, as long as the deploy has been out', () => {
    const windows = sameHoursWindows(at, at + 25 * MINUTE);
    expect(windows).toHaveLength(BASELINE_DAYS);
    expect(windows[0]).toEqual({ from: Date.UTC(2026, 10, 27, 17, 10), to: Date.UTC(2026, 10, 27, 17, 50) });
    expect(windows.at(-1)).toEqual({ from: Date.UTC(2026, 11, 3, 17, 10), to: Date.UTC(2026, 11, 3, 17, 50) });
  });

  it('span at least 10 minutes just after the deploy, at most a day, and never overlap', () => {
    const early = sameHoursWindows(at, at + 1000);
    expect(early[0]!.to - early[0]!.from).toBe(20 * MINUTE); // 17:10 to 17:30 holds 17:15:11 + 10 min
    const late = sameHoursWindows(at, at + 3 * DAY);
    for (let i = 1; i < late.length; i++) expect(late[i]!.from).toBeGreaterThanOrEqual(late[i - 1]!.to);
    expect(late.at(-1)!.to).toBe(Date.UTC(2026, 11, 4, 17, 10)); // not into the deploy's own bucket
  });

  it('add the 6 hours before the deploy, clipped at the last same-hours window', () => {
    expect(hoursBeforeWindow(at, undefined)).toEqual({ from: Date.UTC(2026, 11, 4, 11, 10), to: Date.UTC(2026, 11, 4, 17, 10) });
    expect(hoursBeforeWindow(at, { from: 0, to: Date.UTC(2026, 11, 4, 14, 0) }).from).toBe(Date.UTC(2026, 11, 4, 14, 0));
    expect(hoursBeforeWindow(at, undefined).to - hoursBeforeWindow(at, undefined).from).toBe(6 * HOUR);
  });
});
