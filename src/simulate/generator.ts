/**
 * Synthetic dialog sessions (kpi-definitions §6), seeded and reproducible:
 * the same seed gives the same sessions. Pure: no clock, no IO.
 *
 * The original generator's three scripts (returning, signed in, new user)
 * and four more, so that every tile and funnel has data: a password reset,
 * a new user of an identity provider, a new user finishing in a second
 * dialog after confirming the email (`staging_continuation`), and a dialog
 * that sends a blob without ever showing a screen. After every step a
 * session stops early with probability 0.2, or with the probability given
 * for the next step in `breaks` (a deploy that breaks that step); and 2% of
 * sessions (`breaks` of `screen.error`) end on an error screen at a random
 * step.
 */
import { BUCKET_MS } from '../store/blob-ids.js';

/** A seeded PRNG (mulberry32): fast, 32-bit state, good enough for traffic. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Step {
  event: string;
  /** Range of the delay before this step, ms. */
  delay: [number, number];
}

const RETURNING_NOT_SIGNED_IN: Step[] = [
  { event: 'screen.rp_info', delay: [50, 400] },
  { event: 'screen.authenticate', delay: [300, 2000] },
  { event: 'generate_assertion', delay: [1000, 6000] },
  { event: 'assertion_generated', delay: [200, 1500] },
  { event: 'window.unload', delay: [100, 800] },
];

const RETURNING_SIGNED_IN: Step[] = [
  { event: 'screen.rp_info', delay: [50, 400] },
  { event: 'user.email_count:1', delay: [100, 600] },
  { event: 'screen.pick_email', delay: [200, 1200] },
  { event: 'generate_assertion', delay: [500, 3000] },
  { event: 'assertion_generated', delay: [200, 1500] },
  { event: 'window.unload', delay: [100, 800] },
];

const NEW_USER: Step[] = [
  { event: 'screen.rp_info', delay: [50, 400] },
  { event: 'screen.authenticate', delay: [300, 2000] },
  { event: 'screen.set_password', delay: [2000, 8000] },
  { event: 'user.user_staged', delay: [3000, 15000] },
  { event: 'screen.check_registration', delay: [300, 1500] },
  // waiting for the verification email
  { event: 'user.user_confirmed', delay: [20000, 120000] },
  { event: 'assertion_generated', delay: [500, 3000] },
  { event: 'window.unload', delay: [100, 800] },
];

const PASSWORD_RESET: Step[] = [
  { event: 'screen.rp_info', delay: [50, 400] },
  { event: 'screen.authenticate', delay: [300, 2000] },
  { event: 'authenticate.enter_password', delay: [1000, 5000] },
  { event: 'screen.reset_password', delay: [500, 3000] },
  { event: 'user.reset_password_staged', delay: [2000, 10000] },
  // waiting for the reset email
  { event: 'user.reset_password_confirmed', delay: [20000, 120000] },
  { event: 'assertion_generated', delay: [500, 3000] },
  { event: 'window.unload', delay: [100, 800] },
];

const IDP_NEW_USER: Step[] = [
  { event: 'screen.rp_info', delay: [50, 400] },
  { event: 'screen.authenticate', delay: [300, 2000] },
  { event: 'screen.verify_primary_user', delay: [1000, 6000] },
  { event: 'screen.provision_primary_user', delay: [1000, 8000] },
  { event: 'assertion_generated', delay: [500, 3000] },
  { event: 'window.unload', delay: [100, 800] },
];

const STAGING_CONTINUATION: Step[] = [
  { event: 'screen.rp_info', delay: [50, 400] },
  { event: 'staging_continuation', delay: [100, 800] },
  { event: 'assertion_generated', delay: [500, 3000] },
  { event: 'window.unload', delay: [100, 800] },
];

const NEVER_SHOWN: Step[] = [
  { event: 'generate_assertion', delay: [50, 500] },
  { event: 'assertion_generated', delay: [200, 1500] },
];

/** The event of an error screen (kpi-definitions §2: any name containing `screen.error`). */
export const ERROR_SCREEN = 'screen.error';
const ERROR_CHANCE = 0.02;

type Kind = 'returning' | 'signed-in' | 'new' | 'reset' | 'idp' | 'continuation' | 'unshown';

const SCRIPTS: { weight: number; kind: Kind; steps: Step[] }[] = [
  { weight: 0.3, kind: 'returning', steps: RETURNING_NOT_SIGNED_IN },
  { weight: 0.38, kind: 'signed-in', steps: RETURNING_SIGNED_IN },
  { weight: 0.17, kind: 'new', steps: NEW_USER },
  { weight: 0.06, kind: 'reset', steps: PASSWORD_RESET },
  { weight: 0.05, kind: 'idp', steps: IDP_NEW_USER },
  { weight: 0.02, kind: 'continuation', steps: STAGING_CONTINUATION },
  { weight: 0.02, kind: 'unshown', steps: NEVER_SHOWN },
];

/** Every event the scripts can emit, for validating `--break` names (`screen.error`: the chance of an error screen). */
export const SCRIPT_EVENTS = new Set([...SCRIPTS.flatMap((s) => s.steps.map((step) => step.event)), ERROR_SCREEN]);

/** The full script of each kind, as event names (what a session that never stops sends). */
export const SCRIPT_OF: Readonly<Record<Kind, readonly string[]>> = Object.fromEntries(
  SCRIPTS.map((s) => [s.kind, s.steps.map((step) => step.event)]),
) as unknown as Record<Kind, readonly string[]>;

const LANGS = ['en-US', 'en-US', 'en-US', 'de', 'fr', 'es', 'pt-BR', 'ja', 'zh-CN', 'ru', 'it', 'pl', 'nl', 'en-GB'];
const SCREENS: [number, number][] = [
  [1920, 1080],
  [1366, 768],
  [1280, 800],
  [1024, 768],
  [768, 1024],
  [800, 1280],
  [375, 667],
  [414, 896],
  [360, 640],
];
const RP_APIS = ['get', 'get', 'getVerifiedEmail', 'watch_with_onready', 'watch_without_onready', 'internal'];

/** `User-Agent` headers the simulated browsers send (the server derives the coarse user agent). */
export const USER_AGENTS = [
  'Mozilla/5.0 (Windows NT 6.1; WOW64; rv:15.0) Gecko/20100101 Firefox/15.0',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Windows NT 6.2; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/30.0.1599.101 Safari/537.36',
  'Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0)',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:120.0) Gecko/20100101 Firefox/120.0',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36',
  'Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0',
  'Mozilla/5.0 (Mobile; rv:26.0) Gecko/26.0 Firefox/26.0',
];

export interface SessionOptions {
  /** Time of the session, ms; the blob carries it rounded to 10 minutes. */
  now: number;
  /** Stop chance before a given event, replacing the default 0.2. */
  breaks?: ReadonlyMap<string, number>;
  /** Default stop chance after each step. */
  stopChance?: number;
}

/** One simulated dialog session: the blob it sends and its browser's header. */
export interface SimulatedSession {
  kind: Kind;
  blob: Record<string, unknown>;
  userAgent: string;
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

function between(random: () => number, [low, high]: [number, number]): number {
  return Math.round(low + random() * (high - low));
}

/**
 * One session, as the dialog reports it (only the keys the real dialog sends;
 * no `user_agent`, which the server derives from the header).
 *
 * @example
 * const random = seededRandom(42);
 * const { blob, userAgent } = simulateSession(random, { now: Date.now() });
 */
export function simulateSession(random: () => number, options: SessionOptions): SimulatedSession {
  const stopChance = options.stopChance ?? 0.2;
  let roll = random();
  const script = SCRIPTS.find((s) => (roll -= s.weight) < 0) ?? SCRIPTS[0]!;
  const events: [string, number][] = [];
  let offset = 0;
  // a shown dialog may end on an error screen, before a step past the first
  const errorBefore =
    script.kind !== 'unshown' && random() < (options.breaks?.get(ERROR_SCREEN) ?? ERROR_CHANCE) ? 1 + Math.floor(random() * (script.steps.length - 1)) : -1;
  for (const [i, step] of script.steps.entries()) {
    if (i === errorBefore) {
      offset += between(random, [200, 3000]);
      events.push([ERROR_SCREEN, offset]);
      break;
    }
    if (i > 0 && random() < (options.breaks?.get(step.event) ?? stopChance)) break;
    offset += between(random, step.delay);
    events.push([step.event, offset]);
  }
  const isNew = script.kind === 'new' || script.kind === 'idp' || script.kind === 'continuation';
  const [width, height] = pick(random, SCREENS);
  const blob: Record<string, unknown> = {
    event_stream: events,
    lang: random() < 0.03 ? null : pick(random, LANGS),
    screen_size: { width, height },
    sample_rate: 1,
    timestamp: Math.floor(options.now / BUCKET_MS) * BUCKET_MS,
    number_emails: isNew ? 1 : 1 + Math.floor(random() * random() * 4),
    number_sites_signed_in: isNew ? 1 : Math.floor(random() * random() * 12),
    new_account: isNew,
    email_type: script.kind === 'idp' ? 'primary' : isNew || random() < 0.85 ? 'secondary' : 'primary',
    rp_api: pick(random, RP_APIS),
  };
  return { kind: script.kind, blob, userAgent: pick(random, USER_AGENTS) };
}

/** Parses `--break event=chance` values; throws naming the bad one. */
export function parseBreaks(values: readonly string[]): Map<string, number> {
  const breaks = new Map<string, number>();
  for (const value of values) {
    const match = /^([^=]+)=([0-9.]+)$/.exec(value);
    const chance = match ? Number(match[2]) : NaN;
    if (!match || !(chance >= 0 && chance <= 1)) throw new Error(`--break ${value}: expected <event>=<chance between 0 and 1>`);
    if (!SCRIPT_EVENTS.has(match[1]!)) throw new Error(`--break ${value}: unknown step; one of ${[...SCRIPT_EVENTS].join(', ')}`);
    breaks.set(match[1]!, chance);
  }
  return breaks;
}
