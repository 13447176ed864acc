/**
 * The contract between the service and the dashboard, part 3: the verdict
 * on a deploy ("did it break sign-ups?"), as `GET /api/deploys/:id/verdict`,
 * the live stream, the alert webhook and `kpi-live verdict` give it. Pure.
 */
import type { ThresholdKey } from './kpis.js';

/**
 * - `not enough data yet`: too few dialogs since the deploy to tell (or no baseline);
 * - `healthy`: every rate with a baseline is known well enough to rule out a harmful change beyond the margin;
 * - `suspect`: some rate moved the harmful way, on weaker evidence than `broken` needs;
 * - `broken`: some rate moved the harmful way by more than the smallest change that matters, at the family-wise level α.
 */
export type VerdictState = 'not enough data yet' | 'healthy' | 'suspect' | 'broken';

export const VERDICT_STATES: readonly VerdictState[] = ['not enough data yet', 'healthy', 'suspect', 'broken'];

/** Where one check stands. */
export type CheckState = 'no baseline' | 'not enough data' | 'ok' | 'unclear' | 'suspect' | 'broken';

/** One rate compared, after the deploy against its baseline. */
export interface VerdictCheck {
  key: ThresholdKey;
  label: string;
  /** Which way is harm. */
  worse: 'higher' | 'lower';
  baseline: { successes: number; trials: number; rate: number | null };
  after: { successes: number; trials: number; rate: number | null };
  /** after − baseline; null until both sides have trials. */
  effect: number | null;
  /** effect / baseline rate; null when the baseline rate is 0 or unknown. */
  relativeEffect: number | null;
  /** The always-valid confidence interval of the effect, at the level `broken` uses. */
  low: number | null;
  high: number | null;
  state: CheckState;
}

export interface DeployVerdict {
  deploy: { id: string; version: string; at: number };
  state: VerdictState;
  /** The checks at fault (suspect or broken), worst first. */
  faults: ThresholdKey[];
  /** How long the deploy has been out when this was judged, ms. */
  ageMs: number;
  /** Dialogs that arrived after the deploy, and those of the baseline. */
  dialogs: { after: number; baseline: number };
  /** The windows the baseline was taken from, oldest first. */
  baselineWindows: { from: number; to: number }[];
  checks: VerdictCheck[];
  /** The method and its constants, as the README states them. */
  method: VerdictMethod;
  /** When it was judged (ms). */
  judgedAt: number;
}

export interface VerdictMethod {
  name: 'mSPRT (normal mixture), always valid';
  /** Family-wise level of `broken`, over all checks (Bonferroni). */
  alpha: number;
  /** Family-wise level of `suspect`. */
  alphaSuspect: number;
  /** Trials a check needs after the deploy, and in its baseline, before it is judged. */
  minAfterTrials: number;
  minBaselineTrials: number;
  /** The smallest harmful change that makes `broken`: a share of the baseline rate, with an absolute floor. */
  minHarm: { relative: number; absolute: number };
  /** The harm `healthy` rules out (at the suspect level), sized the same way. */
  margin: { relative: number; absolute: number };
}

/** How long after a deploy the blobs that arrive are told apart (and counted in its arrival cell). */
export const ARRIVAL_WINDOW_MS = 24 * 3_600_000;

/** How long behind the watermark a deploy's arrival cell is kept (its verdict can be asked for that long). */
export const ARRIVALS_KEPT_MS = 7 * 24 * 3_600_000;
