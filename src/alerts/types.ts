/**
 * Wire types of alerts, shared with the dashboard (web/ imports this file, so
 * it depends on nothing but other type files).
 */
import type { ThresholdKey, Thresholds } from '../aggregate/kpi-types.js';

export type { ThresholdKey, Thresholds };

/** `GET /api/thresholds`, and the body and answer of `PUT /api/thresholds`. */
export interface ThresholdsBody {
  /** The thresholds in force: the stored ones, or the configured defaults before any was stored. */
  thresholds: Thresholds;
}

/** Where one watched value stands. */
export interface AlertState {
  key: ThresholdKey;
  state: 'ok' | 'breached' | 'unknown';
  /** The value over the alert window; null when too few dialogs to judge. */
  value: number | null;
  /** The bound that is (or was last) crossed. */
  bound: 'min' | 'max' | null;
  /** That bound's value. */
  limit: number | null;
  /** Since when the state holds (ms). */
  since: number;
}

/** `GET /api/alerts`. */
export interface AlertsBody {
  windowMs: number;
  alerts: AlertState[];
}
