/**
 * The verdict from two sets of KPIs: simulated traffic before and after a
 * deploy that changes nothing, one that breaks a step, and too little data;
 * and each check's state at its edges, on counts made for the purpose.
 */
import { describe, expect, it } from 'vitest';
import type { FactsInput } from '../../src/aggregate/model/facts.js';
import { queryKpis } from '../../src/aggregate/model/query.js';
import { defaultSegmentConfig } from '../../src/aggregate/model/segments.js';
import { AggregateState, defaultRetention } from '../../src/aggregate/model/state.js';
import { HOUR, type Kpis } from '../../src/contract/kpis.js';
import { normalizeBlob } from '../../src/ingest/blob.js';
import { parseBreaks, seededRandom, simulateSession } from '../../src/simulate/generator.js';
import { judgeDeploy, judgeRate, VERDICT_METHOD, VERDICT_RATES } from '../../src/verdict/judge.js';

const NOW = Date.UTC(2026, 10, 23, 12, 0);
const deploy = { id: 'deploy/x', version: 'v2.0', at: NOW };

/** The KPIs of `n` simulated sessions (seeded), with the given broken steps. */
function kpisOf(n: number, seed: number, breaks: string[] = []): Kpis {
  const random = seededRandom(seed);
  const state = new AggregateState(defaultSegmentConfig, defaultRetention);
  const ctx = { now: NOW, maxAgeMs: HOUR, maxFutureMs: HOUR, userAgent: undefined };
  const broken = parseBreaks(breaks);
  for (let i = 0; i < n; i++) {
    const { blob } = simulateSession(random, { now: NOW, breaks: broken });
    state.apply({ ...(normalizeBlob(blob, 'data', ctx) as FactsInput), _id: `b${i}` });
  }
  return queryKpis(state, { from: NOW - HOUR, to: NOW + HOUR, bucket: '1h' }).series[0]!.total;
}

const judge = (baseline: Kpis, after: Kpis) => judgeDeploy({ deploy, baseline, after, baselineWindows: [{ from: NOW - HOUR, to: NOW }], now: NOW + 600_000 });

describe('judgeDeploy', () => {
  const baseline = kpisOf(60_000, 1); // the same hours of several earlier days: larger than what came after

  it('calls a deploy that changes nothing healthy once every rate is known well enough', () => {
    const verdict = judge(baseline, kpisOf(20_000, 2));
    expect(verdict.checks.filter((c) => c.state !== 'ok')).toEqual([]);
    expect(verdict).toMatchObject({ state: 'healthy', faults: [], ageMs: 600_000, dialogs: { after: 20_000, baseline: 60_000 } });
  });

  it('calls a deploy that breaks the new-user step "choose password" broken, naming that step first', () => {
    const verdict = judge(baseline, kpisOf(1500, 3, ['user.user_staged=0.8']));
    expect(verdict.state).toBe('broken');
    expect(verdict.faults[0]).toBe('new-user.step2');
    const step = verdict.checks.find((c) => c.key === 'new-user.step2')!;
    expect(step.effect!).toBeLessThan(-0.4);
    expect(step.high!).toBeLessThan(0);
    expect(step.relativeEffect!).toBeLessThan(-0.5);
    // the rates the break does not touch stay unaccused
    expect(verdict.faults).not.toContain('bounceRate');
    expect(verdict.faults).not.toContain('resetSuccess');
  });

  it('says not enough data yet with a handful of dialogs after the deploy', () => {
    const verdict = judge(baseline, kpisOf(20, 4));
    expect(verdict.state).toBe('not enough data yet');
    expect(verdict.checks.every((c) => c.state === 'not enough data' || c.state === 'no baseline')).toBe(true);
  });

  it('needs a baseline: with none, nothing is judged', () => {
    const verdict = judge(kpisOf(30, 5), kpisOf(5000, 6));
    expect(verdict.state).toBe('not enough data yet');
    expect(verdict.checks.every((c) => c.state === 'no baseline')).toBe(true);
  });

  it('states its method and its constants', () => {
    expect(judge(baseline, baseline).method).toEqual(VERDICT_METHOD);
    expect(VERDICT_RATES.map((r) => r.key)).toEqual([
      'bounceRate',
      'errorRate',
      'newUsers',
      'newUserDropOff',
      'new-user.step2',
      'new-user.step3',
      'new-user.step4',
      'resetSuccess',
      'password-reset.step2',
      'password-reset.step3',
      'additionalEmail',
    ]);
  });
});

describe('judgeRate, one check at its edges', () => {
  const bounce = VERDICT_RATES.find((r) => r.key === 'bounceRate')!;
  /** KPIs holding only what the bounce rate reads: shown and engaged. */
  const shownEngaged = (shown: number, engaged: number) =>
    ({ dialogs: shown, progress: [{ count: shown }, { count: shown }, { count: engaged }] }) as unknown as Kpis;
  const base = shownEngaged(10_000, 7000); // bounce 0.3

  it('waits for its minimum samples', () => {
    expect(judgeRate(bounce, shownEngaged(99, 70), base).state).toBe('no baseline');
    expect(judgeRate(bounce, base, shownEngaged(29, 0)).state).toBe('not enough data');
    expect(judgeRate(bounce, base, shownEngaged(30, 0)).state).toBe('broken');
  });

  it('is ok when the interval rules out a harmful change beyond the margin, unclear before', () => {
    expect(judgeRate(bounce, base, shownEngaged(100, 70)).state).toBe('unclear');
    expect(judgeRate(bounce, base, shownEngaged(20_000, 14_000)).state).toBe('ok');
  });

  it('is suspect on weaker evidence, broken on strong evidence of a change that matters, never on an improvement', () => {
    const states = [200, 400, 800, 1600, 3200].map((n) => judgeRate(bounce, base, shownEngaged(n, Math.round(n * 0.62))).state); // bounce 0.38
    expect(states).toContain('suspect');
    expect(states.at(-1)).toBe('broken');
    expect(judgeRate(bounce, base, shownEngaged(5000, 4000)).state).toBe('ok'); // bounce fell to 0.2: better
    // a certain but tiny rise (0.3 → 0.31 over a million) is not broken: below the smallest harm that matters
    expect(judgeRate(bounce, shownEngaged(1_000_000, 700_000), shownEngaged(1_000_000, 690_000)).state).not.toBe('broken');
  });
});
