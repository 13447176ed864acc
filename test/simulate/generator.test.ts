import { describe, expect, it } from 'vitest';
import { normalizeBlob } from '../../src/ingest/blob.js';
import { queryKpis } from '../../src/aggregate/model/query.js';
import type { FactsInput } from '../../src/aggregate/model/facts.js';
import { defaultSegmentConfig } from '../../src/aggregate/model/segments.js';
import { AggregateState, defaultRetention } from '../../src/aggregate/model/state.js';
import { HOUR } from '../../src/contract/kpis.js';
import { ERROR_SCREEN, parseBreaks, SCRIPT_OF, seededRandom, simulateSession } from '../../src/simulate/generator.js';

const NOW = Date.UTC(2026, 10, 23, 12, 0);
const names = (blob: Record<string, unknown>) => (blob.event_stream as [string, number][]).map(([name]) => name);

describe('simulateSession', () => {
  it('is reproducible from its seed', () => {
    const run = (seed: number) =>
      Array.from(
        { length: 50 },
        (
          (r) => () =>
            simulateSession(r, { now: NOW })
        )(seededRandom(seed)),
      );
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
  });

  it('follows the seven scripts, each a prefix of its full script (or of it and an error screen), offsets growing', () => {
    const random = seededRandom(1);
    expect(SCRIPT_OF.returning).toEqual(['screen.rp_info', 'screen.authenticate', 'generate_assertion', 'assertion_generated', 'window.unload']);
    expect(SCRIPT_OF['signed-in']).toEqual([
      'screen.rp_info',
      'user.email_count:1',
      'screen.pick_email',
      'generate_assertion',
      'assertion_generated',
      'window.unload',
    ]);
    expect(SCRIPT_OF.new).toEqual([
      'screen.rp_info',
      'screen.authenticate',
      'screen.set_password',
      'user.user_staged',
      'screen.check_registration',
      'user.user_confirmed',
      'assertion_generated',
      'window.unload',
    ]);
    const kinds = new Map<string, number>();
    let errors = 0;
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      const { kind, blob } = simulateSession(random, { now: NOW });
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      const events = names(blob);
      expect(events.length).toBeGreaterThan(0);
      const ended = events.at(-1) === ERROR_SCREEN;
      if (ended) errors += 1;
      const steps = ended ? events.slice(0, -1) : events;
      expect(SCRIPT_OF[kind].slice(0, steps.length)).toEqual(steps);
      const offsets = (blob.event_stream as [string, number][]).map(([, t]) => t);
      expect([...offsets].sort((a, b) => a - b)).toEqual(offsets);
      expect(blob.new_account).toBe(kind === 'new' || kind === 'idp' || kind === 'continuation');
      if (kind === 'idp') expect(blob.email_type).toBe('primary');
      if (kind === 'unshown') expect(events).not.toContain('screen.rp_info');
    }
    expect(new Set(kinds.keys())).toEqual(new Set(['returning', 'signed-in', 'new', 'reset', 'idp', 'continuation', 'unshown']));
    expect(kinds.get('reset')! / n).toBeCloseTo(0.06, 1);
    expect(errors / n).toBeGreaterThan(0.01);
    expect(errors / n).toBeLessThan(0.03);
  });

  it('gives every tile and both funnels data', () => {
    const random = seededRandom(2);
    const state = new AggregateState(defaultSegmentConfig, defaultRetention);
    const ctx = { now: NOW, maxAgeMs: HOUR, maxFutureMs: HOUR, userAgent: undefined };
    for (let i = 0; i < 3000; i++) state.apply({ ...(normalizeBlob(simulateSession(random, { now: NOW }).blob, 'data', ctx) as FactsInput), _id: `s${i}` });
    const kpis = queryKpis(state, { from: NOW - HOUR, to: NOW + HOUR, bucket: '1h' }).series[0]!.total;
    for (const value of [kpis.newUsers, kpis.sitesLoggedIn.median, kpis.passwordResetSuccess, kpis.additionalEmailShare, kpis.bounceRate, kpis.errorScreenRate])
      expect(value).not.toBeNull();
    expect(kpis.errorScreenRate).toBeGreaterThan(0);
    expect(kpis.passwordResetFunnel.every((step) => step.count > 0)).toBe(true);
    expect(kpis.newUserFunnel.every((step) => step.count > 0)).toBe(true);
    expect(kpis.outcomes.idp).toBeGreaterThan(0);
    expect(kpis.progress[1]!.count).toBeLessThan(kpis.dialogs); // some dialogs are never shown
  });

  it('stops early about 20% of the time after each step', () => {
    const random = seededRandom(3);
    let complete = 0;
    const n = 20_000;
    for (let i = 0; i < n; i++) if (names(simulateSession(random, { now: NOW }).blob).length > 1) complete += 1;
    expect(complete / n).toBeGreaterThan(0.77);
    expect(complete / n).toBeLessThan(0.83);
  });

  it('a broken step stops sessions before it with the given chance', () => {
    const random = seededRandom(5);
    const breaks = parseBreaks(['user.user_staged=1']);
    for (let i = 0; i < 3000; i++) expect(names(simulateSession(random, { now: NOW, breaks }).blob)).not.toContain('user.user_staged');
  });

  it('produces blobs the ingest accepts, without a user_agent (the server derives it)', () => {
    const random = seededRandom(9);
    for (let i = 0; i < 500; i++) {
      const { blob, userAgent } = simulateSession(random, { now: NOW });
      expect(blob).not.toHaveProperty('user_agent');
      expect(userAgent).toMatch(/^Mozilla\/5\.0/);
      expect(() => normalizeBlob(blob, 'data', { now: NOW, maxAgeMs: 3_600_000, maxFutureMs: 3_600_000, userAgent: undefined })).not.toThrow();
    }
  });
});

describe('parseBreaks', () => {
  it('reads event=chance pairs', () => {
    expect(parseBreaks(['user.user_staged=0.8', 'screen.pick_email=0'])).toEqual(
      new Map([
        ['user.user_staged', 0.8],
        ['screen.pick_email', 0],
      ]),
    );
  });
  it.each(['user.user_staged', 'user.user_staged=2', 'nope=0.5', '=0.1'])('refuses %s', (value) => {
    expect(() => parseBreaks([value])).toThrow(/--break/);
  });
});
