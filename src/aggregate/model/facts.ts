/**
 * blob → facts (kpi-definitions §3): everything the KPIs need to know about
 * one blob, as a pure function of that blob. Event names are matched exactly
 * (an error screen is any name containing `screen.error`), by presence: a step
 * counts when its event occurs anywhere in the stream, as in the original
 * dashboard. Times use the first occurrence of an event, in whole ms.
 */
import { type Outcome, type Dimension } from '../../contract/kpis.js';
import { segmentsOf, type SegmentConfig, type SegmentInput } from './segments.js';
import { timeBin } from './time-bins.js';

/** The stored blob fields facts are computed from. */
export interface FactsInput extends SegmentInput {
  timestamp: number;
  event_stream?: ([string, number] | [string, number, number])[];
  new_account?: boolean;
  number_sites_logged_in?: number;
  sample_rate?: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** Absent, null (what the dialog sends for a field it has no value for), or of its type. */
const optional = (v: unknown, type: 'string' | 'number' | 'boolean') =>
  v === undefined || v === null || (type === 'number' ? Number.isFinite(v) : typeof v === type);
const absent = (v: unknown) => v === undefined || v === null;
const isEvent = (e: unknown) =>
  Array.isArray(e) && (e.length === 2 || e.length === 3) && typeof e[0] === 'string' && Number.isFinite(e[1]) && (e.length === 2 || Number.isFinite(e[2]));

/**
 * Whether a stored document has the shape of a blob as far as the aggregate
 * reads it: a 10-minute timestamp, events as `[name, offset(, n)]`, and every
 * other field it reads absent, null, or of its type (blobs stored in the
 * dialog's own form hold nulls). Ingest writes nothing else, but the store
 * also takes documents from anyone holding kpi-live's credentials (the blob
 * database has no `validate_doc_update`: it would cost 7 writes in 8 on
 * CouchDB), so the aggregate leaves anything else out instead of stopping on
 * it or counting it somewhere.
 */
export function isStoredBlob(doc: Record<string, unknown>): boolean {
  const { timestamp, event_stream: events, screen_size: screen, user_agent: agent } = doc;
  if (typeof timestamp !== 'number' || !Number.isFinite(timestamp) || timestamp < 0 || timestamp % 600_000 !== 0) return false;
  if (!absent(events) && !(Array.isArray(events) && events.every(isEvent))) return false;
  if (!absent(screen) && !(isObject(screen) && optional(screen.width, 'number'))) return false;
  if (!absent(agent) && !(isObject(agent) && optional(agent.os, 'string') && optional(agent.browser, 'string'))) return false;
  return (
    optional(doc.new_account, 'boolean') &&
    optional(doc.number_sites_logged_in, 'number') &&
    optional(doc.sample_rate, 'number') &&
    optional(doc.number_emails, 'number') &&
    optional(doc.lang, 'string') &&
    optional(doc.rp_api, 'string') &&
    optional(doc.email_type, 'string')
  );
}

export const OUTCOMES: readonly Outcome[] = ['bounce', 'fallback', 'idp', 'assertion', 'fail'];

const NEW_USER_EVENTS = ['screen.set_password', 'user.user_staged', 'user.user_confirmed', 'assertion_generated'] as const;
const RESET_EVENTS = ['user.reset_password_staged', 'user.reset_password_confirmed', 'assertion_generated'] as const;
const ENGAGED_EVENTS = [
  'screen.set_password',
  'screen.pick_email',
  'screen.provision_primary_user',
  'screen.verify_primary_user',
  'authenticate.enter_password',
];

/** Weights are kept in millionths of a blob, so that sums stay exact integers. */
export const WEIGHT_UNIT = 1_000_000;

/**
 * The lowest sample rate a blob counts at: ingest's floor for a dialog's own
 * rate (0.01) times the lowest server rate (`KPI_SAMPLE_RATE` ≥ 0.0001). A
 * stored blob below it (stored before the floor, or written around kpi-live)
 * counts at this rate, so no blob weighs more than a million dialogs and
 * every weight is a finite integer: sums stay exact (below 2^53 millionths)
 * and survive a checkpoint's JSON unchanged.
 */
export const MIN_COUNTED_SAMPLE_RATE = 1e-6;

/** What one blob adds to the estimates, in millionths of a dialog: 1/sample_rate, bounded. */
export function blobWeight(sampleRate: unknown): number {
  if (typeof sampleRate !== 'number' || !(sampleRate > 0 && sampleRate <= 1)) return WEIGHT_UNIT;
  return Math.round(WEIGHT_UNIT / Math.max(sampleRate, MIN_COUNTED_SAMPLE_RATE));
}

export interface BlobFacts {
  /** The blob's 10-minute bucket, ms. */
  time: number;
  /** 1/sample_rate in millionths (an estimate of the dialogs this blob stands for). */
  weight: number;
  /** New-user funnel steps reached (index 0 = step 1). */
  newUser: boolean[];
  /** Password-reset funnel steps reached (index 0 = step 1). */
  reset: boolean[];
  /** General progress steps 0–4. */
  progress: boolean[];
  /** Only for blobs where the dialog was shown. */
  outcome: Outcome | undefined;
  /** Offset of `assertion_generated`, ms. */
  timeToLogin: number | undefined;
  /** Its time-histogram bin (cell.ts). */
  timeToLoginBin: number | undefined;
  /** For new users: offset of each funnel step reached, ms (index 0 = step 1). */
  newUserStepTimes: (number | undefined)[];
  /** Their time-histogram bins. */
  newUserStepBins: (number | undefined)[];
  /** `number_sites_logged_in`, 0 when absent. */
  sites: number;
  /** The blob logged in and has two or more emails. */
  loggedInMultiEmail: boolean;
  segments: Record<Dimension, string>;
}

/**
 * The facts of one blob, or undefined when its event stream is empty (such a
 * blob is stored but carries no KPI signal).
 *
 * @example
 * blobFacts({ timestamp: t, event_stream: [['screen.rp_info', 5], ['screen.pick_email', 900], ['assertion_generated', 2100]] }, config);
 * // { progress: [true, true, true, false, true], outcome: 'assertion', timeToLogin: 2100, … }
 */
export function blobFacts(blob: FactsInput, config: SegmentConfig): BlobFacts | undefined {
  const events = blob.event_stream ?? [];
  if (events.length === 0) return undefined;

  const first = new Map<string, number>();
  let hasError = false;
  for (const [name, offset] of events) {
    if (!first.has(name)) first.set(name, Math.round(offset));
    if (name.includes('screen.error')) hasError = true;
  }
  const has = (name: string) => first.has(name);

  let newUser: boolean[];
  if (has('staging_continuation')) {
    const done = has('assertion_generated');
    newUser = [false, false, done, done];
  } else if (!has('screen.set_password') || has('authenticate.enter_password')) {
    newUser = [false, false, false, false];
  } else {
    newUser = NEW_USER_EVENTS.map(has);
  }
  const isNewUser = newUser.some(Boolean);
  const reset = has('user.reset_password_staged') ? RESET_EVENTS.map(has) : [false, false, false];

  const shown = has('screen.rp_info');
  const engaged = ENGAGED_EVENTS.some(has);
  const loggedIn = has('assertion_generated');
  let outcome: Outcome | undefined;
  if (shown) {
    if (!engaged) outcome = 'bounce';
    else if (loggedIn) outcome = isNewUser ? 'fallback' : blob.new_account && has('screen.provision_primary_user') ? 'idp' : 'assertion';
    else outcome = 'fail';
  }

  const timeToLogin = first.get('assertion_generated');
  const newUserStepTimes = newUser.map((reached, i) => (reached ? first.get(NEW_USER_EVENTS[i]!) : undefined));
  return {
    time: blob.timestamp,
    weight: blobWeight(blob.sample_rate),
    newUser,
    reset,
    progress: [true, shown, engaged, hasError, loggedIn],
    outcome,
    timeToLogin,
    timeToLoginBin: timeToLogin === undefined ? undefined : timeBin(timeToLogin),
    newUserStepTimes,
    newUserStepBins: newUserStepTimes.map((ms) => (ms === undefined ? undefined : timeBin(ms))),
    sites: blob.number_sites_logged_in ?? 0,
    loggedInMultiEmail: loggedIn && (blob.number_emails ?? 0) >= 2,
    segments: segmentsOf(blob, isNewUser || reset[0] === true, config),
  };
}
