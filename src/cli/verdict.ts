/**
 * `kpi-live verdict`: the deploy verdict as an exit code, for CI/CD
 * pipelines (a rollback gate). Asks the service's
 * `GET /api/deploys/:id/verdict` once, or every `--every` until it is
 * `healthy` or `broken` or `--wait` has passed:
 *
 * - exit 0: healthy; 1: broken; 2: still undecided at the deadline (not
 *   enough data yet, or suspect); 3: no verdict could be had (unknown
 *   deploy, no access, the service unreachable until the deadline).
 *
 * One line on stdout each time the verdict changes, the last one with the
 * checks at fault.
 */
import { parseArgs } from 'node:util';
import type { DeployVerdict, VerdictCheck } from '../contract/verdict.js';
import { loadConfig } from '../config/config.js';
import { sleep } from '../sleep.js';
import { tokenFrom } from './transfer.js';

export const EXIT = { healthy: 0, broken: 1, undecided: 2, error: 3 } as const;

/** `90`, `90s`, `10m`, `2h` → ms. */
export function parseDuration(name: string, value: string | undefined, fallbackMs: number): number {
  if (value === undefined) return fallbackMs;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!match) throw new Error(`--${name} must be a duration such as 90s, 10m or 2h, got "${value}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Number(match[1]) * unit;
}

const percent = (x: number | null) => (x === null ? '–' : `${(100 * x).toFixed(1)}%`);
const signed = (x: number | null) => (x === null ? '–' : `${x > 0 ? '+' : x < 0 ? '−' : '±'}${Math.abs(100 * x).toFixed(0)}%`);
const describeCheck = (c: VerdictCheck) => `${c.key} ${signed(c.relativeEffect)} (${percent(c.baseline.rate)} → ${percent(c.after.rate)}, ${c.state})`;

/** The line a verdict is printed as. */
export function verdictLine(v: DeployVerdict): string {
  const age = Math.round(v.ageMs / 60_000);
  const head = `${v.deploy.version} (${v.deploy.id}), ${age} min old, ${v.dialogs.after} dialogs since (baseline ${v.dialogs.baseline}): ${v.state}`;
  const faults = v.faults.map((key) => v.checks.find((c) => c.key === key)!).map(describeCheck);
  return faults.length > 0 ? `${head}: ${faults.join('; ')}` : head;
}

interface Io {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  fetch: typeof fetch;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
}

/** Runs the command; resolves with the exit code. */
export async function verdictCommand(
  args: string[],
  io: Io = { stdout: process.stdout, stderr: process.stderr, fetch, now: Date.now, sleep: (ms) => sleep(ms) },
): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
        deploy: { type: 'string', default: 'latest' },
        wait: { type: 'string' },
        every: { type: 'string' },
        url: { type: 'string' },
        token: { type: 'string' },
        'token-file': { type: 'string' },
        config: { type: 'string' },
      },
    }));
  } catch (err) {
    io.stderr.write(`kpi-live verdict: ${(err as Error).message}\n`);
    return EXIT.error;
  }
  let deadline: number;
  let everyMs: number;
  let token: string | undefined;
  let url: string;
  try {
    const waitMs = parseDuration('wait', values.wait, 0);
    everyMs = Math.max(1000, parseDuration('every', values.every, 10_000));
    deadline = io.now() + waitMs;
    token = tokenFrom(values);
    url = values.url ?? `http://127.0.0.1:${loadConfig(values.config ? { file: values.config } : {}).port}`;
  } catch (err) {
    io.stderr.write(`kpi-live verdict: ${(err as Error).message}\n`);
    return EXIT.error;
  }
  const target = new URL(`/api/deploys/${encodeURIComponent(values.deploy)}/verdict`, url);
  let last: string | undefined;
  let lastVerdict: DeployVerdict | undefined;
  let problem = '';
  for (;;) {
    let waitMs = everyMs;
    try {
      const res = await io.fetch(target, { headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } });
      const body = (await res.json().catch(() => ({}))) as DeployVerdict & { message?: string };
      if (res.status === 200) {
        lastVerdict = body;
        const line = verdictLine(body);
        if (line !== last) io.stdout.write(`${line}\n`);
        last = line;
        if (body.state === 'healthy') return EXIT.healthy;
        if (body.state === 'broken') return EXIT.broken;
        problem = '';
      } else if (res.status === 503) {
        problem = body.message ?? 'the service is not ready';
        waitMs = Math.min(everyMs, 1000 * (Number(res.headers.get('retry-after')) || everyMs / 1000));
      } else {
        // a deploy that does not exist or no access will not change by waiting
        io.stderr.write(`kpi-live verdict: ${res.status}: ${body.message ?? 'no verdict'}\n`);
        return EXIT.error;
      }
    } catch (err) {
      problem = `cannot reach ${target.origin}: ${(err as Error).message}`;
    }
    if (io.now() + waitMs > deadline) break;
    await io.sleep(waitMs);
  }
  if (lastVerdict) {
    io.stderr.write(`kpi-live verdict: still ${lastVerdict.state} at the deadline\n`);
    return EXIT.undecided;
  }
  io.stderr.write(`kpi-live verdict: no verdict by the deadline: ${problem}\n`);
  return EXIT.error;
}
