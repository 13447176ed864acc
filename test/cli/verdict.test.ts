/**
 * `kpi-live verdict` as a rollback gate: its exit codes for each verdict,
 * waiting through "not enough data yet" and a catching-up service until
 * the deadline, and what it prints; against a scripted service, with time
 * that passes only when it waits.
 */
import { describe, expect, it } from 'vitest';
import type { DeployVerdict } from '../../src/contract/verdict.js';
import { EXIT, parseDuration, verdictCommand, verdictLine } from '../../src/cli/verdict.js';

const verdict = (state: DeployVerdict['state'], faults: string[] = []): DeployVerdict =>
  ({
    deploy: { id: 'deploy/2026-12-04T10:00:00.000Z_ab12', version: 'v2.0', at: 0 },
    state,
    faults,
    ageMs: 240_000,
    dialogs: { after: 480, baseline: 3400 },
    baselineWindows: [],
    checks: [
      {
        key: 'new-user.step2',
        label: 'New-user funnel, step 2 from 1',
        worse: 'lower',
        baseline: { successes: 800, trials: 1000, rate: 0.8 },
        after: { successes: 24, trials: 100, rate: 0.24 },
        effect: -0.56,
        relativeEffect: -0.7,
        low: -0.65,
        high: -0.45,
        state: 'broken',
      },
    ],
    method: {} as DeployVerdict['method'],
    judgedAt: 0,
  }) as DeployVerdict;

/** A service answering each request with the next of `answers` (the last one again once they run out). */
function scripted(answers: ({ status: number; body: unknown; retryAfter?: string } | Error)[]) {
  let clock = 0;
  const out: string[] = [];
  const err: string[] = [];
  const asked: string[] = [];
  let i = 0;
  const io = {
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    now: () => clock,
    sleep: async (ms: number) => {
      clock += ms;
    },
    fetch: (async (url: URL, init?: RequestInit) => {
      asked.push(`${url.pathname} ${(init?.headers as Record<string, string>).authorization ?? ''}`);
      const answer = answers[Math.min(i++, answers.length - 1)]!;
      if (answer instanceof Error) throw answer;
      return new Response(JSON.stringify(answer.body), { status: answer.status, headers: answer.retryAfter ? { 'retry-after': answer.retryAfter } : {} });
    }) as unknown as typeof fetch,
  };
  return { io, out, err, asked, elapsed: () => clock };
}

const run = (args: string[], s: ReturnType<typeof scripted>) => verdictCommand(['--url', 'http://127.0.0.1:1', ...args], s.io);

describe('kpi-live verdict', () => {
  it('exits 0 for healthy and 1 for broken at the first answer, printing the verdict', async () => {
    const healthy = scripted([{ status: 200, body: verdict('healthy') }]);
    expect(await run(['--deploy', 'latest', '--token', 'klt_x'], healthy)).toBe(EXIT.healthy);
    expect(healthy.asked).toEqual(['/api/deploys/latest/verdict Bearer klt_x']);
    expect(healthy.out.join('')).toBe('v2.0 (deploy/2026-12-04T10:00:00.000Z_ab12), 4 min old, 480 dialogs since (baseline 3400): healthy\n');

    const broken = scripted([{ status: 200, body: verdict('broken', ['new-user.step2']) }]);
    expect(await run(['--deploy', 'deploy/2026-12-04T10:00:00.000Z_ab12'], broken)).toBe(EXIT.broken);
    expect(broken.asked[0]).toBe('/api/deploys/deploy%2F2026-12-04T10%3A00%3A00.000Z_ab12/verdict ');
    expect(broken.out.join('')).toContain(': broken: new-user.step2 −70% (80.0% → 24.0%, broken)');
  });

  it('waits through not enough data yet and a catching-up service, and decides when the verdict does', async () => {
    const s = scripted([
      { status: 503, body: { message: 'the aggregate is catching-up' }, retryAfter: '5' },
      { status: 200, body: verdict('not enough data yet') },
      { status: 200, body: verdict('not enough data yet') },
      { status: 200, body: verdict('broken', ['new-user.step2']) },
    ]);
    expect(await run(['--wait', '10m', '--every', '10s'], s)).toBe(EXIT.broken);
    expect(s.elapsed()).toBe(25_000); // 5 s as asked by Retry-After, then 10 s twice
    expect(s.out).toHaveLength(2); // a line per change
  });

  it('exits 2 when still undecided at the deadline, 3 when no verdict could be had', async () => {
    const undecided = scripted([{ status: 200, body: verdict('suspect', ['new-user.step2']) }]);
    expect(await run(['--wait', '1m'], undecided)).toBe(EXIT.undecided);
    expect(undecided.elapsed()).toBeLessThanOrEqual(60_000);
    expect(undecided.err.join('')).toContain('still suspect at the deadline');

    const unknown = scripted([{ status: 404, body: { message: 'no deploy "x"' } }]);
    expect(await run(['--deploy', 'x', '--wait', '10m'], unknown)).toBe(EXIT.error);
    expect(unknown.asked).toHaveLength(1); // waiting would not change it

    const down = scripted([new TypeError('fetch failed')]);
    expect(await run(['--wait', '30s'], down)).toBe(EXIT.error);
    expect(down.err.join('')).toMatch(/no verdict by the deadline: cannot reach http:\/\/127\.0\.0\.1:1/);
    expect(await run(['--wait', 'soon'], scripted([]))).toBe(EXIT.error);
  });

  it('reads durations', () => {
    expect(parseDuration('wait', '90', 0)).toBe(90_000);
    expect(parseDuration('wait', '10m', 0)).toBe(600_000);
    expect(parseDuration('wait', '2h', 0)).toBe(7_200_000);
    expect(parseDuration('wait', undefined, 5)).toBe(5);
    expect(() => parseDuration('wait', '-1m', 0)).toThrow('--wait must be a duration');
  });

  it('prints one line per verdict', () => {
    expect(verdictLine(verdict('not enough data yet'))).toMatch(/: not enough data yet$/);
  });
});
