/**
 * The contract between the service and the dashboard, part 1: the shapes
 * of the KPI answers (what `/api/kpis`, `/api/funnels` and the live stream
 * send) and the numbers both sides must agree on: bucket sizes, the window
 * a range is shown in, the limits of a query, the merged rest (`Other`) and
 * the funnel steps' names. Pure, with no dependency: `web/` imports it as
 * the service does, so the two cannot drift apart.
 */

export const MINUTE = 60_000;
export const TEN_MINUTES = 10 * MINUTE;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

/** The name of the merged rest of a segmentation (values below the top, or outside the configured list). */
export const OTHER = 'Other';

/** Funnel steps (kpi-definitions §4), in order. */
export const NEW_USER_STEPS = ['Enter email', 'Choose password', 'Email verified', 'Logged in'] as const;
export const RESET_STEPS = ['Begin', 'New password confirmed', 'Logged in'] as const;
export const PROGRESS_STEPS = ['Blob sent', 'Dialog shown', 'User engaged', 'Error screen', 'Logged in'] as const;

export const DIMENSIONS = ['os', 'browser', 'screen', 'emails', 'locale', 'api', 'emailType'] as const;
export type Dimension = (typeof DIMENSIONS)[number];

export type BucketName = '10m' | '1h' | '1d';
export type Outcome = 'bounce' | 'fallback' | 'idp' | 'assertion' | 'fail';
export type FunnelName = 'new-user' | 'password-reset' | 'progress';

/** The KPIs the dashboard shows as tiles, by id (thresholds name them too). */
export const TILE_KPI_IDS = ['newUsers', 'newUserDropOff', 'sitesMedian', 'resetSuccess', 'additionalEmail', 'bounceRate', 'errorRate'] as const;
export type TileKpiId = (typeof TILE_KPI_IDS)[number];

/**
 * What a threshold can watch: a tile KPI, or the conversion into step `k`
 * (k ≥ 2) of a funnel, from the step before it (`new-user.step3`).
 */
export type ThresholdKey = TileKpiId | `${'new-user' | 'password-reset'}.step${number}`;

/** Alert thresholds: breached below `min` or above `max`. */
export type Thresholds = Partial<Record<ThresholdKey, { min?: number; max?: number }>>;

export interface FunnelStep {
  step: number;
  name: string;
  count: number;
  /** count scaled by 1/sample_rate */
  estimate: number;
  /** count / count of step 1 */
  conversionFromStart: number | null;
  /** count / count of the previous step */
  conversionFromPrevious: number | null;
  /** 1 − conversionFromPrevious */
  dropOff: number | null;
}

export interface Kpis {
  /**
   * Some blob counted here had a sample rate below 1 (the client's, the
   * server's or both): the `…Estimate` counts are estimates, not counts.
   */
  sampled: boolean;
  /** Blobs with events (the original "assertions" report counted these). */
  dialogs: number;
  dialogsEstimate: number;
  /** Blobs with `assertion_generated`. */
  assertions: number;
  newUsers: number;
  newUsersEstimate: number;
  sitesLoggedIn: { median: number | null; mean: number | null; p90: number | null };
  newUserFunnel: FunnelStep[];
  passwordResetFunnel: FunnelStep[];
  progress: FunnelStep[];
  /** step 3 / step 1 of the password-reset funnel */
  passwordResetSuccess: number | null;
  /** logged-in blobs with number_emails ≥ 2 / logged-in blobs */
  additionalEmailShare: number | null;
  /** 1 − engaged / shown */
  bounceRate: number | null;
  /** bounce / (bounce + idp + fallback + fail) */
  newUserBounce: number | null;
  /** blobs with an error screen / dialogs */
  errorScreenRate: number | null;
  outcomes: Record<Outcome, number>;
  timeToLoginMs: { median: number | null; p90: number | null; count: number };
  /** Unsegmented series only (null per segment value). */
  newUserStepTimesMs: { step: number; name: string; median: number | null; p90: number | null }[];
}

export interface KpiPoint {
  start: number;
  /** Exclusive; wider than the asked bucket where only coarser data is kept. */
  end: number;
  kpis: Kpis;
}

export interface KpiSeries {
  /** `all`, or a value of the segmentation. */
  segment: string;
  total: Kpis;
  points: KpiPoint[];
}

export interface KpiAnswer {
  from: number;
  to: number;
  bucket: BucketName;
  bucketMs: number;
  segment: Dimension | null;
  /** Latest blob time counted. */
  watermark: number;
  series: KpiSeries[];
  /**
   * With a segmentation: every KPI over the whole window and every value,
   * exact (medians included; not a sum of the series). Absent without one,
   * where the `all` series is the same thing.
   */
  overall?: Kpis;
}

export interface FunnelAnswer {
  funnel: FunnelName;
  from: number;
  to: number;
  segment: Dimension | null;
  series: { segment: string; steps: FunnelStep[] }[];
}

export const BUCKET_SIZES: Record<BucketName, number> = { '10m': TEN_MINUTES, '1h': HOUR, '1d': DAY };

/** Longest window a query or a live subscription may ask for. */
export const MAX_RANGE_MS = 400 * DAY;
/** Most points a window may be cut into. */
export const MAX_POINTS = 5000;
/** Most segment values a `top` query keeps as series of their own. */
export const MAX_TOP = 20;

/** The end of a window that reaches "now": the end of the current 10-minute bucket. */
export function windowEnd(now: number): number {
  return Math.ceil((now + 1) / TEN_MINUTES) * TEN_MINUTES;
}

/** The bucket a range is shown in when none is asked: about 36–1,000 points. */
export function bucketForRange(rangeMs: number): BucketName {
  return rangeMs <= 12 * HOUR ? '10m' : rangeMs <= 7 * DAY ? '1h' : '1d';
}
