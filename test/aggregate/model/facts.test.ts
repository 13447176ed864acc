import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { blobFacts, blobWeight, isStoredBlob, MIN_COUNTED_SAMPLE_RATE, WEIGHT_UNIT, type FactsInput } from '../../../src/aggregate/model/facts.js';
import { normalizeBlob } from '../../../src/ingest/blob.js';
import { BASE_TIME, EVENTS } from './blob-arbitrary.js';
import { defaultSegmentConfig, segmentsOf } from '../../../src/aggregate/model/segments.js';

const T = Date.UTC(2026, 10, 23, 12, 0);
const facts = (events: string[], extra: Partial<FactsInput> = {}) =>
  blobFacts({ timestamp: T, event_stream: events.map((name, i) => [name, (i + 1) * 100] as [string, number]), ...extra }, defaultSegmentConfig)!;

describe('blobFacts: signal', () => {
  it('ignores a blob with an empty or missing stream', () => {
    expect(blobFacts({ timestamp: T, event_stream: [] }, defaultSegmentConfig)).toBeUndefined();
    expect(blobFacts({ timestamp: T }, defaultSegmentConfig)).toBeUndefined();
  });
});

describe('blobFacts: new-user steps', () => {
  it('counts every step whose event occurs, for a new user', () => {
    expect(facts(['screen.set_password', 'user.user_staged', 'user.user_confirmed', 'assertion_generated']).newUser).toEqual([true, true, true, true]);
    expect(facts(['screen.set_password', 'user.user_staged']).newUser).toEqual([true, true, false, false]);
  });
  it('counts steps by presence, not order or continuity', () => {
    expect(facts(['assertion_generated', 'screen.set_password', 'user.user_confirmed']).newUser).toEqual([true, false, true, true]);
  });
  it('is not a new user without screen.set_password', () => {
    expect(facts(['user.user_staged', 'user.user_confirmed', 'assertion_generated']).newUser).toEqual([false, false, false, false]);
  });
  it('is not a new user with authenticate.enter_password', () => {
    expect(facts(['screen.set_password', 'authenticate.enter_password', 'assertion_generated']).newUser).toEqual([false, false, false, false]);
  });
  it('staging continuation: steps 3 and 4 with assertion_generated, none without', () => {
    expect(facts(['staging_continuation', 'assertion_generated']).newUser).toEqual([false, false, true, true]);
    expect(facts(['staging_continuation', 'screen.set_password', 'user.user_staged']).newUser).toEqual([false, false, false, false]);
    // checked before enter_password
    expect(facts(['staging_continuation', 'authenticate.enter_password', 'assertion_generated']).newUser).toEqual([false, false, true, true]);
  });
  it('times each reached step by its first occurrence, whole ms', () => {
    const f = blobFacts(
      {
        timestamp: T,
        event_stream: [
          ['screen.set_password', 10.4],
          ['user.user_staged', 2000],
          ['screen.set_password', 9000],
          ['assertion_generated', 70000.6],
        ],
      },
      defaultSegmentConfig,
    )!;
    expect(f.newUserStepTimes).toEqual([10, 2000, undefined, 70001]);
    expect(f.timeToLogin).toBe(70001);
  });
});

describe('blobFacts: password reset steps', () => {
  it('only when user.reset_password_staged occurs', () => {
    expect(facts(['user.reset_password_confirmed', 'assertion_generated']).reset).toEqual([false, false, false]);
    expect(facts(['screen.reset_password']).reset).toEqual([false, false, false]);
    expect(facts(['user.reset_password_staged']).reset).toEqual([true, false, false]);
    expect(facts(['user.reset_password_staged', 'user.reset_password_confirmed', 'assertion_generated']).reset).toEqual([true, true, true]);
    expect(facts(['user.reset_password_staged', 'assertion_generated']).reset).toEqual([true, false, true]);
  });
});

describe('blobFacts: general progress', () => {
  it('blob sent, shown, engaged, error, logged in', () => {
    expect(facts(['window.unload']).progress).toEqual([true, false, false, false, false]);
    expect(facts(['screen.rp_info']).progress).toEqual([true, true, false, false, false]);
    for (const engaged of [
      'screen.set_password',
      'screen.pick_email',
      'screen.provision_primary_user',
      'screen.verify_primary_user',
      'authenticate.enter_password',
    ]) {
      expect(facts(['screen.rp_info', engaged]).progress[2]).toBe(true);
    }
    expect(facts(['screen.authenticate']).progress[2]).toBe(false);
    expect(facts(['screen.rp_info', 'screen.error']).progress[3]).toBe(true);
    expect(facts(['screen.rp_info', 'xhr_complete.screen.error.timeout']).progress[3]).toBe(true);
    expect(facts(['screen.errors_are_not_this']).progress[3]).toBe(true);
    expect(facts(['screen.err']).progress[3]).toBe(false);
    expect(facts(['assertion_generated']).progress[4]).toBe(true);
  });
});

describe('blobFacts: outcome', () => {
  it('only for blobs where the dialog was shown', () => {
    expect(facts(['screen.pick_email', 'assertion_generated']).outcome).toBeUndefined();
  });
  it('bounce when shown but not engaged, even if logged in', () => {
    expect(facts(['screen.rp_info']).outcome).toBe('bounce');
    expect(facts(['screen.rp_info', 'assertion_generated']).outcome).toBe('bounce');
  });
  it('fallback for a new user who logged in', () => {
    expect(facts(['screen.rp_info', 'screen.set_password', 'assertion_generated']).outcome).toBe('fallback');
  });
  it('idp for a new account through a primary', () => {
    expect(facts(['screen.rp_info', 'screen.provision_primary_user', 'assertion_generated'], { new_account: true }).outcome).toBe('idp');
    expect(facts(['screen.rp_info', 'screen.provision_primary_user', 'assertion_generated'], { new_account: false }).outcome).toBe('assertion');
  });
  it('fallback wins over idp when the blob has new-user steps', () => {
    expect(facts(['screen.rp_info', 'screen.set_password', 'screen.provision_primary_user', 'assertion_generated'], { new_account: true }).outcome).toBe(
      'fallback',
    );
  });
  it('assertion for a returning user, fail when engaged without logging in', () => {
    expect(facts(['screen.rp_info', 'screen.pick_email', 'assertion_generated']).outcome).toBe('assertion');
    expect(facts(['screen.rp_info', 'screen.pick_email']).outcome).toBe('fail');
  });
});

describe('blobFacts: counts and weights', () => {
  it('sites logged in counts 0 when absent', () => {
    expect(facts(['screen.rp_info']).sites).toBe(0);
    expect(facts(['screen.rp_info'], { number_sites_logged_in: 7 }).sites).toBe(7);
  });
  it('weights by 1/sample_rate, in millionths', () => {
    expect(facts(['x']).weight).toBe(WEIGHT_UNIT);
    expect(facts(['x'], { sample_rate: 0.25 }).weight).toBe(4 * WEIGHT_UNIT);
    expect(facts(['x'], { sample_rate: 0.3 }).weight).toBe(Math.round(WEIGHT_UNIT / 0.3));
  });
  it('bounds what one blob weighs, whatever sample_rate a stored blob carries: a finite integer, at most a million dialogs', () => {
    for (const rate of [1e-6, 1e-9, 5e-324, Number.MIN_VALUE]) expect(facts(['x'], { sample_rate: rate }).weight).toBe(WEIGHT_UNIT / MIN_COUNTED_SAMPLE_RATE);
    for (const rate of [0, -1, 2, Infinity, -Infinity, NaN, '0.5', null]) expect(facts(['x'], { sample_rate: rate as never }).weight).toBe(WEIGHT_UNIT);
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1, noNaN: true }), (rate) => {
        const weight = blobWeight(rate);
        expect(Number.isSafeInteger(weight)).toBe(true);
        expect(weight).toBeGreaterThanOrEqual(WEIGHT_UNIT);
        expect(weight).toBeLessThanOrEqual(WEIGHT_UNIT / MIN_COUNTED_SAMPLE_RATE);
      }),
    );
  });
  it('additional email: logged in with two or more emails', () => {
    expect(facts(['assertion_generated'], { number_emails: 2 }).loggedInMultiEmail).toBe(true);
    expect(facts(['assertion_generated'], { number_emails: 1 }).loggedInMultiEmail).toBe(false);
    expect(facts(['screen.rp_info'], { number_emails: 3 }).loggedInMultiEmail).toBe(false);
  });
});

describe('segmentsOf', () => {
  const seg = (blob: Parameters<typeof segmentsOf>[0], flow = false) => segmentsOf(blob, flow, defaultSegmentConfig);

  it('OS: aliases, listed values, Other and Unknown', () => {
    expect(seg({ user_agent: { os: 'Windows NT 6.2' } }).os).toBe('Windows 8');
    expect(seg({ user_agent: { os: 'Windows NT 6.1' } }).os).toBe('Windows 7');
    expect(seg({ user_agent: { os: 'Windows NT 6.0' } }).os).toBe('Windows Vista');
    expect(seg({ user_agent: { os: 'Windows NT 5.1' } }).os).toBe('Windows XP');
    for (const apple of ['iPod', 'iPhone', 'iPad']) expect(seg({ user_agent: { os: apple } }).os).toBe('iOS');
    for (const kept of ['Macintosh', 'Linux', 'Android', 'FirefoxOS']) expect(seg({ user_agent: { os: kept } }).os).toBe(kept);
    expect(seg({ user_agent: { os: 'BeOS' } }).os).toBe('Other');
    expect(seg({ user_agent: { os: 'Windows NT 10.0' } }).os).toBe('Other');
    expect(seg({ user_agent: {} }).os).toBe('Unknown');
    expect(seg({}).os).toBe('Unknown');
  });
  it('browser', () => {
    for (const kept of ['Firefox', 'Chrome', 'MSIE', 'Safari']) expect(seg({ user_agent: { browser: kept } }).browser).toBe(kept);
    expect(seg({ user_agent: { browser: 'Opera' } }).browser).toBe('Other');
    expect(seg({}).browser).toBe('Unknown');
  });
  it('screen: ≥1024 Desktop, ≤640 Mobile, else Tablet', () => {
    expect(seg({ screen_size: { width: 1024 } }).screen).toBe('Desktop');
    expect(seg({ screen_size: { width: 1023 } }).screen).toBe('Tablet');
    expect(seg({ screen_size: { width: 641 } }).screen).toBe('Tablet');
    expect(seg({ screen_size: { width: 640 } }).screen).toBe('Mobile');
    expect(seg({ screen_size: {} }).screen).toBe('Unknown');
  });
  it('emails: 0, 1, 2, 3+', () => {
    expect([0, 1, 2, 3, 17].map((n) => seg({ number_emails: n }).emails)).toEqual(['0', '1', '2', '3+', '3+']);
    expect(seg({}).emails).toBe('Unknown');
  });
  it('locale: language names, primary subtag, Other', () => {
    expect(seg({ lang: 'de' }).locale).toBe('German');
    expect(seg({ lang: 'pt-BR' }).locale).toBe('Portuguese - Brazil');
    expect(seg({ lang: 'en-US' }).locale).toBe('English');
    expect(seg({ lang: 'pt-PT' }).locale).toBe('Other');
    expect(seg({ lang: 'xx' }).locale).toBe('Other');
    expect(seg({}).locale).toBe('Unknown');
  });
  it('API', () => {
    expect(seg({ rp_api: 'watch_with_onready' }).api).toBe('watch with onready');
    expect(seg({ rp_api: 'watch_without_onready' }).api).toBe('watch');
    expect(seg({ rp_api: 'getVerifiedEmail' }).api).toBe('getVerifiedEmail');
    expect(seg({ rp_api: 'mystery' }).api).toBe('Other');
    expect(seg({}).api).toBe('Unknown');
  });
  it('email type: aliases, and Fallback for any blob with new-user or reset steps', () => {
    expect(seg({ email_type: 'primary' }).emailType).toBe('IdP');
    expect(seg({ email_type: 'secondary' }).emailType).toBe('Fallback');
    expect(seg({}).emailType).toBe('Unknown');
    expect(seg({ email_type: 'primary' }, true).emailType).toBe('Fallback');
    expect(facts(['screen.set_password'], { email_type: 'primary' }).segments.emailType).toBe('Fallback');
    expect(facts(['user.reset_password_staged'], { email_type: 'primary' }).segments.emailType).toBe('Fallback');
  });
});

describe('isStoredBlob', () => {
  const ctx = { now: BASE_TIME + 86_400_000, maxAgeMs: 30 * 86_400_000, maxFutureMs: 600_000, userAgent: undefined };
  const wire = fc.record(
    {
      timestamp: fc.integer({ min: BASE_TIME, max: BASE_TIME + 86_400_000 }),
      event_stream: fc.option(
        fc.array(fc.tuple(fc.constantFrom(...EVENTS), fc.integer({ min: 0, max: 1000 })), { maxLength: 6 }).map((events) => {
          let at = 0;
          return events.map(([name, step]) => [name, (at += step)] as [string, number]);
        }),
        { nil: null },
      ),
      lang: fc.option(fc.constantFrom('en-US', 'de'), { nil: null }),
      language: fc.constantFrom('fr', 'es'),
      number_emails: fc.option(fc.integer({ min: 0, max: 5 }), { nil: null }),
      number_sites_signed_in: fc.integer({ min: 0, max: 9 }),
      new_account: fc.option(fc.boolean(), { nil: null }),
      email_type: fc.constantFrom('primary', 'secondary', null),
      sample_rate: fc.option(fc.constantFrom(1, 0.5, 0.01), { nil: null }),
      screen_size: fc.option(fc.record({ width: fc.integer({ min: 0, max: 4000 }), height: fc.integer({ min: 0, max: 4000 }) }, { requiredKeys: [] }), {
        nil: null,
      }),
      user_agent: fc.option(
        fc.record(
          { os: fc.constantFrom('Linux', 'Windows NT 10.0'), browser: fc.constantFrom('Firefox'), version: fc.constantFrom('120', 7) },
          { requiredKeys: [] },
        ),
        { nil: null },
      ),
      rp_api: fc.option(fc.constantFrom('get', 'internal'), { nil: null }),
    },
    { requiredKeys: ['timestamp'] },
  );

  it('holds for every document ingest stores, whatever the wire form held (property)', () => {
    fc.assert(
      fc.property(wire, (raw) => {
        expect(isStoredBlob(normalizeBlob(raw, '', ctx) as unknown as Record<string, unknown>)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('leaves out a document with any field the aggregate reads of another type', () => {
    const blob = { _id: 'x', timestamp: BASE_TIME, event_stream: [['screen.rp_info', 5]] };
    expect(isStoredBlob(blob)).toBe(true);
    // the dialog's own form: null for a field it has no value for
    expect(isStoredBlob({ ...blob, lang: null, screen_size: null, user_agent: null, email_type: null, sample_rate: null, number_emails: null })).toBe(true);
    for (const wrong of [
      { timestamp: 'yesterday' },
      { timestamp: BASE_TIME + 1 },
      { timestamp: -600_000 },
      { event_stream: {} },
      { event_stream: [5] },
      { event_stream: [['screen.rp_info']] },
      { event_stream: [[5, 'screen.rp_info']] },
      { event_stream: [['screen.rp_info', 5, 'x']] },
      { lang: {} },
      { screen_size: 800 },
      { screen_size: { width: '800' } },
      { user_agent: 'Firefox' },
      { user_agent: { os: 7 } },
      { new_account: 'yes' },
      { number_emails: '2' },
      { number_sites_logged_in: [] },
      { sample_rate: '0.5' },
      { rp_api: 1 },
      { email_type: {} },
    ])
      expect(isStoredBlob({ ...blob, ...wrong }), JSON.stringify(wrong)).toBe(false);
  });
});
