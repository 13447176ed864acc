/**
 * fast-check generators of stored blobs: event streams drawn from the
 * vocabulary that matters (kpi-definitions §2) plus noise, segment fields
 * present or missing, ids in kpi-live's format from a few ingest runs.
 */
import fc from 'fast-check';
import { blobDocId } from '../../../src/store/blob-ids.js';

export const EVENTS = [
  'screen.rp_info',
  'screen.set_password',
  'user.user_staged',
  'user.user_confirmed',
  'staging_continuation',
  'assertion_generated',
  'authenticate.enter_password',
  'screen.pick_email',
  'screen.provision_primary_user',
  'screen.verify_primary_user',
  'screen.reset_password',
  'user.reset_password_staged',
  'user.reset_password_confirmed',
  'screen.error',
  'xhr.screen.error.net',
  'window.unload',
];

const RUNS = ['aaaaaaaaaa', 'bbbbbbbbbb', 'cccccccccc'];
export const BASE_TIME = Date.UTC(2026, 9, 1);

export interface TestBlob {
  _id: string;
  timestamp: number;
  event_stream: [string, number][];
  [key: string]: unknown;
}

const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined, freq: 3 });

/** Blob content without id (time within `spanDays` days of BASE_TIME). */
export const blobBody = (spanDays = 3) =>
  fc.record({
    slot: fc.integer({ min: 0, max: spanDays * 144 - 1 }),
    event_stream: fc.array(fc.tuple(fc.constantFrom(...EVENTS), fc.integer({ min: 0, max: 200_000 })), { maxLength: 8 }),
    number_sites_logged_in: optional(fc.integer({ min: 0, max: 12 })),
    number_emails: optional(fc.integer({ min: 0, max: 5 })),
    new_account: optional(fc.boolean()),
    sample_rate: optional(fc.constantFrom(1, 0.5, 0.25, 0.1, 0.3)),
    lang: optional(fc.constantFrom('en-US', 'de', 'fr', 'pt-BR', 'xx', 'es')),
    screen_size: optional(fc.record({ width: fc.constantFrom(320, 640, 800, 1024, 1920) })),
    user_agent: optional(
      fc.record({ os: fc.constantFrom('Windows NT 6.1', 'Macintosh', 'iPhone', 'BeOS'), browser: fc.constantFrom('Firefox', 'Chrome', 'Opera') }),
    ),
    rp_api: optional(fc.constantFrom('get', 'watch_with_onready', 'internal', 'odd')),
    email_type: optional(fc.constantFrom('primary', 'secondary')),
  });

/** A list of distinct stored blobs (unique ids). */
export const blobList = (spanDays = 3, maxLength = 60) =>
  fc.array(blobBody(spanDays), { maxLength }).map((bodies) =>
    bodies.map(({ slot, ...rest }, i) => {
      const timestamp = BASE_TIME + slot * 600_000;
      const clean = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
      return { ...clean, _id: blobDocId(timestamp, RUNS[i % RUNS.length]!, i), timestamp } as TestBlob;
    }),
  );

/** A deterministic shuffle (seeded LCG), for feeds in any order. */
export const shuffled = <T>(items: T[], seed: number): T[] => {
  const out = [...items];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
};
