/**
 * monitoring/kpi-live.rules.yml, the Prometheus alerting rules shipped for
 * kpi-live: every series and label value they ask for is one a running
 * kpi-live serves on `/metrics` (so a renamed metric cannot leave an alert
 * that never fires), every rule has a severity, a summary and a
 * description; and where promtool is installed, `promtool check rules` and
 * the rules' own unit tests (monitoring/kpi-live.rules.test.yml) pass.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { projectRoot } from '../../src/project-root.js';
import { nowTimestamp, ingest, startTestApp, TEST_TOKEN, type TestApp } from '../harness/app.js';

const dir = join(projectRoot(), 'monitoring');
const rulesFile = join(dir, 'kpi-live.rules.yml');

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules: Rule[] = (parse(readFileSync(rulesFile, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);

/** `name{label="value",…}` selectors of kpi-live's own series in an expression. */
function selectors(expr: string): { name: string; matchers: [string, string, string][] }[] {
  return [...expr.matchAll(/\b(kpi_[a-z0-9_]+)(?:\{([^}]*)\})?/g)].map((m) => ({
    name: m[1]!,
    matchers: [...(m[2] ?? '').matchAll(/([a-z_]+)\s*(=~|!=|!~|=)\s*"([^"]*)"/g)].map((x) => [x[1]!, x[2]!, x[3]!] as [string, string, string]),
  }));
}

/** Labels whose values depend on what happened (an HTTP status, a KPI key), not on a fixed list. */
const OPEN_LABELS = new Set(['status', 'key']);

describe('monitoring/kpi-live.rules.yml', () => {
  let t: TestApp;
  /** series name → the label sets it is served with */
  const served = new Map<string, Record<string, string>[]>();
  /** families listed with `# TYPE`, samples or not (some have none until there is something to say) */
  const families = new Set<string>();
  beforeAll(async () => {
    // a threshold, so that kpi_alerts_breached has a series
    t = await startTestApp({ thresholds: JSON.stringify({ bounceRate: { max: 0.5 } }) });
    await ingest(t, [{ timestamp: nowTimestamp(), event_stream: [['screen.rp_info', 5]] }]);
    const res = await t.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    expect(res.statusCode).toBe(200);
    for (const line of res.body.split('\n')) {
      const type = /^# TYPE (\S+) /.exec(line);
      if (type) families.add(type[1]!);
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$/.exec(line);
      if (!m) continue;
      const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]));
      served.set(m[1]!, [...(served.get(m[1]!) ?? []), labels]);
    }
  });
  afterAll(async () => {
    await t?.close();
  });

  it('has rules, each with a severity, a summary and a description', () => {
    expect(rules.length).toBeGreaterThanOrEqual(10);
    for (const rule of rules) {
      expect(['page', 'ticket'], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description, rule.alert).toBeTruthy();
    }
  });

  it.each(rules.map((r) => [r.alert, r] as const))('%s asks only for series kpi-live serves, with label values it uses', (_name, rule) => {
    const found = selectors(rule.expr);
    // a rule on Prometheus' own `up` is the one without a series of kpi-live
    expect(found.length > 0 || /\bup\{/.test(rule.expr), rule.expr).toBe(true);
    for (const { name, matchers } of found) {
      expect(families.has(name) || served.has(name), `${name} is not on /metrics`).toBe(true);
      const sets = served.get(name) ?? [];
      for (const [label, op, value] of matchers) {
        if (label === 'job' || label === 'instance') continue; // Prometheus' own target labels
        expect(
          sets.some((s) => label in s),
          `${name} has no label ${label}`,
        ).toBe(true);
        // a label with a fixed list of values (phase, outcome, size, kind) must have the one asked for
        if (op === '=' && !OPEN_LABELS.has(label))
          expect(
            sets.map((s) => s[label]),
            `${name}{${label}="${value}"}`,
          ).toContain(value);
      }
    }
  });
});

const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0;
if (!promtool) console.log('[kpi-live tests] monitoring/: promtool is not installed, so the rules are not checked by it');

describe.skipIf(!promtool)('monitoring/ with promtool', () => {
  const run = (...args: string[]) => spawnSync('promtool', args, { cwd: dir, encoding: 'utf8', timeout: 60_000 });

  it('check rules: the rules parse and their templates compile', () => {
    const result = run('check', 'rules', 'kpi-live.rules.yml');
    expect(result.status, result.stdout + result.stderr).toBe(0);
  });

  it('test rules: each alert fires when and only when its unit tests say', () => {
    const result = run('test', 'rules', 'kpi-live.rules.test.yml');
    expect(result.status, result.stdout + result.stderr).toBe(0);
  });
});
