/**
 * One interaction blob: the JSON schema of what clients may send, and the
 * normalised document kpi-live stores. Pure: no IO.
 *
 * Data minimisation is by construction: the stored document is built field by
 * field from the known list (kpi-definitions §1 and the privacy review), so an
 * unknown field, or a known one the privacy review did not approve
 * (`number_sites_remembered`, `orphaned`, `csrf`), never reaches the store.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { BUCKET_MS, floorToBucket } from '../store/blob-ids.js';
import type { CoarseUserAgent } from './user-agent.js';

/**
 * The lowest `sample_rate` a dialog may send. Real dialogs report at 1 (the
 * privacy review starts with 100% intake; the original dialog's blobs carry
 * 1.0), and a deployment that thins its traffic does it on the server
 * (`KPI_SAMPLE_RATE`, which a client cannot forge). A blob counts
 * 1/sample_rate dialogs in the estimates, so without a floor one forged blob
 * with `1e-9` added a billion new users, and `5e-324` made an estimate
 * infinite. At 0.01 one blob stands for at most 100 dialogs (100 /
 * KPI_SAMPLE_RATE after server sampling).
 */
export const MIN_CLIENT_SAMPLE_RATE = 0.01;

/**
 * Plausibility bounds (security review, "bogus data"): generous for any real
 * dialog session, tight enough that a forged blob cannot skew a KPI far.
 */
export const PLAUSIBLE = {
  /** Events in one dialog session. */
  events: 2000,
  /** A dialog session lasts at most a day: offsets and durations in ms. */
  offsetMs: 86_400_000,
  /** Addresses in one account. */
  emails: 1000,
  /** Sites signed in to over 24 h. */
  sites: 1000,
  /** Screen side in CSS pixels. */
  screenPx: 32_768,
} as const;

/**
 * Event names: the dialog's vocabulary is dotted identifiers (`screen.rp_info`,
 * `user.user_staged`, `picker::change`, `xhr_complete`); anything else (spaces,
 * markup, control characters, paths) is not an event the dialog sends.
 */
export const EVENT_NAME = /^[A-Za-z][A-Za-z0-9_-]*(?:(?:\.|::?)[A-Za-z0-9_-]+)*$/;

/** Free-text fields kept in the stored document (event names are ASCII by their pattern). */
const TEXT_FIELDS = [['lang'], ['language'], ['rp_api'], ['user_agent', 'os'], ['user_agent', 'browser'], ['user_agent', 'version']] as const;
/** A UTF-16 surrogate without its pair: JSON allows it (`"\\ud800"`), UTF-8 cannot encode it, CouchDB refuses it. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const count = (maximum: number) => ({ type: ['integer', 'null'], minimum: 0, maximum }) as const;
const shortText = (maxLength: number) => ({ type: ['string', 'null'], maxLength }) as const;

/** JSON schema of one blob as sent by clients (kpi-definitions §1). */
export const blobSchema = {
  $id: 'kpi-live/blob',
  type: 'object',
  required: ['timestamp'],
  properties: {
    timestamp: { type: 'integer', minimum: 0 },
    event_stream: {
      type: ['array', 'null'],
      maxItems: PLAUSIBLE.events,
      items: {
        type: 'array',
        minItems: 2,
        maxItems: 3,
        items: [
          { type: 'string', minLength: 1, maxLength: 128, pattern: EVENT_NAME.source },
          { type: 'number', minimum: 0, maximum: PLAUSIBLE.offsetMs },
          { type: 'number', minimum: 0, maximum: PLAUSIBLE.offsetMs },
        ],
      },
    },
    email_type: { enum: ['primary', 'secondary', null] },
    number_emails: count(PLAUSIBLE.emails),
    number_sites_logged_in: count(PLAUSIBLE.sites),
    number_sites_signed_in: count(PLAUSIBLE.sites),
    sites_signed_in: count(PLAUSIBLE.sites),
    new_account: { type: ['boolean', 'null'] },
    lang: shortText(35),
    language: shortText(35),
    screen_size: {
      type: ['object', 'null'],
      properties: {
        width: { type: 'integer', minimum: 0, maximum: PLAUSIBLE.screenPx },
        height: { type: 'integer', minimum: 0, maximum: PLAUSIBLE.screenPx },
      },
    },
    sample_rate: { type: ['number', 'null'], minimum: MIN_CLIENT_SAMPLE_RATE, maximum: 1 },
    user_agent: {
      type: ['object', 'null'],
      properties: {
        os: { type: 'string', maxLength: 64 },
        browser: { type: 'string', maxLength: 64 },
        version: { type: ['string', 'number'], maxLength: 32 },
      },
    },
    rp_api: shortText(64),
  },
} as const;

/** An event: `[name, offset_ms]` or `[name, offset_ms, duration_ms]`. */
export type BlobEvent = [string, number] | [string, number, number];

/** The document kpi-live stores for one blob. */
export interface BlobDoc {
  /** Given when the blob is written (src/store/blob-ids.ts). */
  _id: string;
  /** ms since epoch, rounded down to 10 minutes by the server. */
  timestamp: number;
  event_stream: BlobEvent[];
  email_type?: 'primary' | 'secondary';
  number_emails?: number;
  /** Also filled from the legacy `number_sites_signed_in` / `sites_signed_in`. */
  number_sites_logged_in?: number;
  new_account?: boolean;
  /** Also filled from the legacy `language`. */
  lang?: string;
  screen_size?: { width?: number; height?: number };
  sample_rate?: number;
  user_agent?: { os?: string; browser?: string; version?: string | number };
  rp_api?: string;
}

/** A blob ready to store, before it gets its id. */
export type NewBlobDoc = Omit<BlobDoc, '_id'> & { _id?: string };

/** A client's mistake in one field; `field` names it as the client sent it. */
export class BlobFieldError extends Error {
  override readonly name = 'BlobFieldError';
  readonly statusCode = 400;
  constructor(
    readonly field: string,
    problem: string,
  ) {
    super(`${field} ${problem}`);
  }
}

const ajv = new Ajv({ allErrors: false, strict: true, strictTuples: false, strictTypes: false });
const validateBlob = ajv.compile(blobSchema);

/** `/event_stream/2/1` under `data[3]` → `data[3].event_stream[2][1]`. */
export function fieldPath(prefix: string, instancePath: string): string {
  let out = prefix;
  for (const part of instancePath.split('/').slice(1)) {
    const name = part.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(name) ? `[${name}]` : out === '' ? name : `.${name}`;
  }
  return out;
}

function describeAjvError(prefix: string, error: ErrorObject): BlobFieldError {
  if (error.keyword === 'required') {
    const missing = (error.params as { missingProperty: string }).missingProperty;
    return new BlobFieldError(fieldPath(prefix, `${error.instancePath}/${missing}`), 'is required');
  }
  const where = fieldPath(prefix, error.instancePath) || 'data';
  return new BlobFieldError(where, error.message ?? 'is invalid');
}

export interface NormalizeContext {
  /** Current time, ms. */
  now: number;
  /** Oldest accepted timestamp, as an age in ms. */
  maxAgeMs: number;
  /** Latest accepted timestamp, as ms ahead of now. */
  maxFutureMs: number;
  /** Derived from the request's `User-Agent` header, for blobs that lack one. */
  userAgent: CoarseUserAgent | undefined;
}

const isSet = <T>(value: T | null | undefined): value is T => value !== null && value !== undefined;

/**
 * Validates one raw blob and builds the document to store.
 *
 * @param raw what the client sent for this blob
 * @param prefix how the client addresses this blob (`data[2]`, `data`, or `''` for a bare blob)
 * @throws {BlobFieldError} naming the first field at fault
 *
 * @example
 * normalizeBlob({ timestamp: 1700000123456, event_stream: [['screen.rp_info', 12]], language: 'en-US' }, 'data', ctx);
 * // { timestamp: 1700000000000, event_stream: [['screen.rp_info', 12]], lang: 'en-US' }
 */
export function normalizeBlob(raw: unknown, prefix: string, ctx: NormalizeContext): NewBlobDoc {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new BlobFieldError(prefix || 'body', 'must be a JSON object');
  }
  if (!validateBlob(raw)) throw describeAjvError(prefix, validateBlob.errors![0]!);
  const blob = raw as Record<string, unknown> & {
    timestamp: number;
    event_stream?: unknown[][] | null;
    screen_size?: { width?: number; height?: number } | null;
    user_agent?: { os?: string; browser?: string; version?: string | number } | null;
  };

  for (const path of TEXT_FIELDS) {
    const value = path.reduce<unknown>((v, key) => (v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined), blob);
    if (typeof value === 'string' && LONE_SURROGATE.test(value)) {
      throw new BlobFieldError(fieldPath(prefix, `/${path.join('/')}`), 'is not well-formed Unicode (a lone UTF-16 surrogate)');
    }
  }

  const events = blob.event_stream ?? [];
  for (let i = 1; i < events.length; i++) {
    if ((events[i]![1] as number) < (events[i - 1]![1] as number)) {
      const field = fieldPath(prefix, `/event_stream/${i}/1`);
      throw new BlobFieldError(field, `goes back in time: offsets are ms since the dialog opened and never decrease (${String(events[i - 1]![1])} before it)`);
    }
  }

  const timestampField = prefix ? `${prefix}.timestamp` : 'timestamp';
  if (blob.timestamp < ctx.now - ctx.maxAgeMs) {
    throw new BlobFieldError(timestampField, `is older than the accepted ${Math.round(ctx.maxAgeMs / 3_600_000)} h`);
  }
  if (blob.timestamp > ctx.now + ctx.maxFutureMs) {
    throw new BlobFieldError(timestampField, `is more than ${Math.round(ctx.maxFutureMs / 60_000)} min in the future`);
  }

  // The client rounds to 10 minutes; the server rounds again, so that no
  // finer time is ever stored whatever a client sends (privacy review).
  const timestamp = floorToBucket(blob.timestamp);
  const doc: NewBlobDoc = {
    timestamp,
    event_stream: events.map((event) => event.slice(0, 3) as BlobEvent),
  };
  if (isSet(blob.email_type)) doc.email_type = blob.email_type as 'primary' | 'secondary';
  if (isSet(blob.number_emails)) doc.number_emails = blob.number_emails as number;
  const sites = [blob.number_sites_logged_in, blob.number_sites_signed_in, blob.sites_signed_in].find(isSet);
  if (isSet(sites)) doc.number_sites_logged_in = sites as number;
  if (isSet(blob.new_account)) doc.new_account = blob.new_account as boolean;
  const lang = [blob.lang, blob.language].find(isSet);
  if (isSet(lang)) doc.lang = lang as string;
  if (isSet(blob.screen_size)) {
    const { width, height } = blob.screen_size;
    doc.screen_size = {};
    if (isSet(width)) doc.screen_size.width = width;
    if (isSet(height)) doc.screen_size.height = height;
  }
  if (isSet(blob.sample_rate)) doc.sample_rate = blob.sample_rate as number;
  if (isSet(blob.user_agent)) {
    const { os, browser, version } = blob.user_agent;
    doc.user_agent = {};
    if (isSet(os)) doc.user_agent.os = os;
    if (isSet(browser)) doc.user_agent.browser = browser;
    if (isSet(version)) doc.user_agent.version = version;
  } else if (ctx.userAgent) {
    doc.user_agent = { ...ctx.userAgent };
  }
  if (isSet(blob.rp_api)) doc.rp_api = blob.rp_api as string;
  return doc;
}

export { BUCKET_MS };
