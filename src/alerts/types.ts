/**
 * Wire types of alerts, shared with the dashboard (web/ imports this file, so
 * it depends on nothing but other type files).
 */
import type { ThresholdKey, Thresholds } from '../contract/kpis.js';

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
  /** Webhook deliveries; null when no webhook is configured. */
  webhook?: WebhookStatus | null;
}

/**
 * What the alert webhook (`KPI_ALERT_WEBHOOK_URL`) receives as a JSON POST,
 * once per transition.
 */
export interface AlertEvent {
  kind: 'breached' | 'cleared';
  key: ThresholdKey;
  /** The value over the window that made the transition (null: a threshold removed while breached). */
  value: number | null;
  /** The bound crossed (for `cleared`: the one that had been breached). */
  bound: 'min' | 'max';
  /** That bound's value. */
  limit: number;
  /** The window the value is taken over. */
  windowMs: number;
  /** When it was judged (ms). */
  at: number;
  service: 'kpi-live';
}

/**
 * What the alert webhook receives when a deploy's verdict turns `broken`
 * (once per deploy, from the instance that holds the follower lease).
 */
export interface DeployBrokenEvent {
  kind: 'deploy-broken';
  /** The check that decided it (the first of `faults`). */
  key: ThresholdKey;
  deploy: { id: string; version: string; at: number };
  /** Every check at fault, worst first, with its baseline and after rates. */
  faults: { key: ThresholdKey; baseline: number | null; after: number | null; relativeEffect: number | null }[];
  /** Dialogs that arrived after the deploy when it was judged. */
  dialogs: number;
  at: number;
  service: 'kpi-live';
}

/** Anything the alert webhook is sent. */
export type WebhookEvent = AlertEvent | DeployBrokenEvent;

/** How webhook deliveries fare since start (`AlertsBody.webhook`). */
export interface WebhookStatus {
  /** Transitions waiting to be sent (including one being retried). */
  queued: number;
  delivered: number;
  /** Given up after the retries, or refused by the receiver. */
  failed: number;
  /** Dropped unsent, oldest first, because the queue was full. */
  dropped: number;
}
