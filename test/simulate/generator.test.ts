import { describe, expect, it } from 'vitest';
import { normalizeBlob } from '../../src/ingest/blob.js';
import { parseBreaks, seededRandom, simulateSession } from '../../src/simulate/generator.js';

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

  it('follows the three scripts, each a prefix of its full script, offsets growing', () => {
    const random = seededRandom(1);
    const full = {
      returning: ['screen.rp_info', 'screen.authenticate', 'generate_assertion', 'assertion_generated', 'window.unload'],
      'signed-in': ['screen.rp_info', 'user.email_count:1', 'screen.pick_email', 'generate_assertion', 'assertion_generated', 'window.unload'],
      new: [
        'screen.rp_info',
        'screen.authenticate',
        'screen.set_password',
        'user.user_staged',
        'screen.check_registration',
        'user.user_confirmed',
        'assertion_generated',
        'window.unload',
      ],
    };
    const kinds = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const { kind, blob } = simulateSession(random, { now: NOW });
      kinds.add(kind);
      const events = names(blob);
      expect(events.length).toBeGreaterThan(0);
      expect(full[kind].slice(0, events.length)).toEqual(events);
      const offsets = (blob.event_stream as [string, number][]).map(([, t]) => t);
      expect([...offsets].sort((a, b) => a - b)).toEqual(offsets);
      expect(blob.new_account).toBe(kind === 'new');
    }
    expect(kinds).toEqual(new Set(['returning', 'signed-in', 'new']));
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
