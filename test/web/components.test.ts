// @vitest-environment happy-dom
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { FunnelStep, KpiAnswer, Kpis } from '../../src/contract/kpis.js';
import '../../web/src/kpi-chart.js';
import '../../web/src/kpi-compare.js';
import '../../web/src/kpi-deploy.js';
import { ageWords } from '../../web/src/kpi-deploy.js';
import type { DeployVerdict } from '../../src/contract/verdict.js';
import { VERDICT_METHOD } from '../../src/verdict/judge.js';
import '../../web/src/kpi-funnel.js';
import '../../web/src/kpi-range.js';
import '../../web/src/kpi-thresholds.js';
import '../../web/src/kpi-tile.js';
import type { KpiThresholds, SaveProblem } from '../../web/src/kpi-thresholds.js';
import type { KpiTile } from '../../web/src/kpi-tile.js';
import { FUNNELS, hhmm, shortTime, TILE_KPIS, watchedValues, type Range, type Thresholds } from '../../web/src/model.js';

async function mount<T extends HTMLElement & { updateComplete: Promise<boolean> }>(tag: string, props: Record<string, unknown>): Promise<T> {
  const el = document.createElement(tag) as T;
  Object.assign(el, props);
  document.body.append(el);
  await el.updateComplete;
  return el;
}

const text = (el: Element, selector: string) => el.shadowRoot!.querySelector(selector)?.textContent?.replace(/\s+/g, ' ').trim();
/** What a person sees: the text without the parts only assistive technology reads. */
const visibleText = (el: Element, selector: string) => {
  const node = el.shadowRoot!.querySelector(selector)!.cloneNode(true) as Element;
  for (const hidden of node.querySelectorAll('.visually-hidden')) hidden.remove();
  return node.textContent!.replace(/\s+/g, ' ').trim();
};

afterEach(() => {
  vi.useRealTimers();
  document.body.replaceChildren();
});

describe('<kpi-tile>', () => {
  it('shows the value, a sparkline and a good or bad change', async () => {
    const tile = await mount('kpi-tile', { label: 'Bounce rate', value: '41.0%', change: -0.12, good: 'down', points: [0.5, 0.45, null, 0.41] });
    expect(text(tile, '.label')).toBe('Bounce rate');
    expect(text(tile, '.value')).toBe('41.0%');
    expect(visibleText(tile, '.change')).toBe('▼ 12.0% vs previous period');
    // better or worse is said, not only coloured
    expect(text(tile, '.change')).toBe('▼ 12.0% vs previous period (better)');
    expect(tile.shadowRoot!.querySelector('.change')!.classList.contains('good')).toBe(true);
    expect(tile.shadowRoot!.querySelector('polyline')!.getAttribute('points')!.split(' ')).toHaveLength(3);
  });

  it('compares with the hour before a deploy when given one', async () => {
    const tile = await mount('kpi-tile', { label: 'New users', value: '86', change: null, against: 'v2.5.0', deployChange: -0.4, good: 'up' });
    expect(text(tile, '.change.deploy')).toBe('▼ 40.0% vs the hour before v2.5.0 (worse)');
    expect(tile.shadowRoot!.querySelector('.change.deploy')!.classList.contains('bad')).toBe(true);
  });

  it('compares the dialogs since a recent deploy with its baseline', async () => {
    const tile = await mount('kpi-tile', {
      label: 'Bounce rate',
      value: '41.0%',
      against: 'v2.0-bad',
      deployBasis: 'baseline',
      deployChange: 0.3,
      good: 'down',
    });
    expect(text(tile, '.change.deploy')).toBe('▲ 30.0% vs baseline, since v2.0-bad (worse)');
  });

  it('marks a rise of a KPI where lower is better as bad, and says a breach in words with its alert state', async () => {
    const since = new Date(2026, 10, 23, 14, 5).getTime();
    const tile = await mount('kpi-tile', {
      label: 'Error-screen rate',
      value: '3.0%',
      change: 0.5,
      good: 'down',
      breached: true,
      breach: 'above max 2.0%',
      alertSince: since,
    });
    expect(tile.shadowRoot!.querySelector('.change')!.classList.contains('bad')).toBe(true);
    expect(tile.hasAttribute('breached')).toBe(true);
    expect(text(tile, '.breach')).toBe('⚠ Outside threshold: above max 2.0% alert since 14:05');
    expect(text(tile, '.badge')).toBe(`alert since ${hhmm(since)}`);
    const fine = await mount('kpi-tile', { label: 'Bounce rate', value: '30.0%' });
    expect(fine.shadowRoot!.querySelector('.breach')).toBeNull();
  });

  it('shows an estimated count with ≈ and says it is an estimate', async () => {
    const tile = await mount<KpiTile>('kpi-tile', { label: 'New users', value: '1,234', estimate: true });
    expect(text(tile, '.value')).toBe('≈ 1,234');
    expect(text(tile, '.estimate-note')).toBe('estimate');
    expect(tile.shadowRoot!.querySelector('.value')!.getAttribute('title')).toMatch(/^estimate/);
    tile.estimate = false;
    await tile.updateComplete;
    expect(text(tile, '.value')).toBe('1,234');
    expect(tile.shadowRoot!.querySelector('.estimate-note')).toBeNull();
    expect(tile.shadowRoot!.querySelector('.value')!.hasAttribute('title')).toBe(false);
  });

  it('announces changes politely, at most once a minute with the latest value, and a breach at once', async () => {
    vi.useFakeTimers();
    const tile = await mount<KpiTile>('kpi-tile', { label: 'Bounce rate', value: '–' });
    const region = () => tile.shadowRoot!.querySelector('[aria-live="polite"]')!;
    expect(region().textContent!.trim()).toBe('');
    // the first value is what the page shows on arrival: not announced
    tile.value = '30.0%';
    await tile.updateComplete;
    expect(region().textContent!.trim()).toBe('');
    tile.value = '31.0%';
    await tile.updateComplete;
    expect(region().textContent!.trim()).toBe('Bounce rate: 31.0%');
    // deltas in quick succession: nothing until a minute has passed, then the latest only
    for (const v of ['32.0%', '33.0%', '34.0%']) {
      tile.value = v;
      await tile.updateComplete;
      await vi.advanceTimersByTimeAsync(5_000);
    }
    expect(region().textContent!.trim()).toBe('Bounce rate: 31.0%');
    await vi.advanceTimersByTimeAsync(45_000);
    await tile.updateComplete;
    expect(region().textContent!.trim()).toBe('Bounce rate: 34.0%');
    // a breach beginning is not held back
    tile.value = '80.0%';
    tile.breached = true;
    tile.breach = 'above max 70.0%';
    await tile.updateComplete;
    expect(region().textContent!.trim()).toBe('Bounce rate: 80.0%, outside its threshold (above max 70.0%)');
    const estimate = await mount<KpiTile>('kpi-tile', { label: 'New users', value: '10', estimate: true });
    estimate.value = '12';
    await estimate.updateComplete;
    expect(estimate.shadowRoot!.querySelector('[aria-live="polite"]')!.textContent!.trim()).toBe('New users: about 12 (estimate)');
    // leaving the page cancels what was pending
    tile.value = '81.0%';
    await tile.updateComplete;
    tile.remove();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('<kpi-funnel>', () => {
  const steps: FunnelStep[] = [
    { step: 1, name: 'Enter email', count: 80, estimate: 80, conversionFromStart: 1, conversionFromPrevious: 1, dropOff: 0 },
    { step: 2, name: 'Choose password', count: 60, estimate: 60, conversionFromStart: 0.75, conversionFromPrevious: 0.75, dropOff: 0.25 },
    { step: 3, name: 'Email verified', count: 0, estimate: 0, conversionFromStart: 0, conversionFromPrevious: 0, dropOff: 1 },
  ];

  it('draws a bar per step with counts, share of the first step and drop-off', async () => {
    const funnel = await mount('kpi-funnel', { heading: 'New-user funnel', steps });
    const rows = [...funnel.shadowRoot!.querySelectorAll('.step')];
    expect(rows.map((r) => r.querySelector('.count')!.textContent)).toEqual(['80', '60', '0']);
    expect(rows.map((r) => r.querySelector('rect')!.getAttribute('width'))).toEqual(['100.00%', '75.00%', '0.00%']);
    expect(rows.map((r) => r.querySelector('.rates')!.textContent!.trim())).toEqual(['100.0%', '75.0% · −25.0%', '0.0% · −100.0%']);
    expect(rows[1]!.querySelector('.bar')!.getAttribute('aria-label')).toBe('Choose password: 60, 75.0% of the first step');
  });

  it('shows a step reached by more than the one before it as a gain, not a negative drop', async () => {
    const gaining: FunnelStep[] = [
      steps[0]!,
      { step: 2, name: 'Choose password', count: 24, estimate: 24, conversionFromStart: 0.3, conversionFromPrevious: 0.3, dropOff: 0.7 },
      { step: 3, name: 'Email verified', count: 27, estimate: 27, conversionFromStart: 0.3375, conversionFromPrevious: 1.125, dropOff: -0.125 },
    ];
    const funnel = await mount('kpi-funnel', { heading: 'New-user funnel', steps: gaining });
    expect([...funnel.shadowRoot!.querySelectorAll('.rates')].map((r) => r.textContent!.trim())[2]).toBe('33.8% · +12.5%');
  });

  it('says in words when a step conversion is outside its threshold, with the alert state', async () => {
    const since = new Date(2026, 10, 23, 9, 40).getTime();
    const funnel = await mount('kpi-funnel', {
      heading: 'New-user funnel',
      steps,
      status: { 2: { breach: 'below min 80.0%', alertSince: since }, 3: { breach: '' } },
    });
    const rows = [...funnel.shadowRoot!.querySelectorAll('.step')];
    expect(rows.map((r) => r.classList.contains('breached'))).toEqual([false, true, false]);
    expect(rows[1]!.querySelector('.breach')!.textContent!.replace(/\s+/g, ' ').trim()).toBe('⚠ 75.0% from step 1: below min 80.0% alert since 09:40');
    expect(rows[2]!.querySelector('.breach')).toBeNull();
  });

  it('shows no rates where there is no data', async () => {
    const empty = steps.map((s) => ({ ...s, count: 0, conversionFromStart: null, conversionFromPrevious: null, dropOff: null }));
    const funnel = await mount('kpi-funnel', { heading: 'Password-reset funnel', steps: empty });
    expect([...funnel.shadowRoot!.querySelectorAll('.rates')].map((r) => r.textContent!.trim())).toEqual(['–', '–', '–']);
  });
});

describe('<kpi-compare>', () => {
  const steps = (counts: number[]): FunnelStep[] =>
    counts.map((count, i) => ({
      step: i + 1,
      name: `Step ${i + 1}`,
      count,
      estimate: count,
      conversionFromStart: count / counts[0]!,
      conversionFromPrevious: null,
      dropOff: null,
    }));

  it('shows two funnels side by side and flags significant changes', async () => {
    const compare = await mount('kpi-compare', {
      heading: 'New-user funnel compared',
      beforeLabel: 'before v2',
      afterLabel: 'after v2',
      baseline: steps([200, 160]),
      current: steps([200, 40]),
    });
    expect([...compare.shadowRoot!.querySelectorAll('th')].map((th) => th.textContent)).toEqual(['Step', 'before v2', 'after v2', 'z']);
    const row = compare.shadowRoot!.querySelector('tr[data-step="2"]')!;
    expect([...row.querySelectorAll('td')].map((td) => td.textContent)).toEqual(['2. Step 2', '80.0%', '20.0%', '-12.00 ⚑']);
    expect(row.classList.contains('significant')).toBe(true);
    // new funnels alone redraw it (the labels unchanged)
    (compare as unknown as { current: FunnelStep[] }).current = steps([200, 150]);
    await (compare as unknown as { updateComplete: Promise<boolean> }).updateComplete;
    expect([...compare.shadowRoot!.querySelector('tr[data-step="2"]')!.querySelectorAll('td')].map((td) => td.textContent)[2]).toBe('75.0%');
  });

  it("since a deploy, flags each step by the deploy's verdict instead of a z-test", async () => {
    const compare = await mount('kpi-compare', {
      beforeLabel: 'baseline',
      afterLabel: 'since v2',
      baseline: steps([200, 160, 120]),
      current: steps([20, 4, 3]),
      verdicts: { 2: 'broken', 3: 'unclear' },
    });
    expect([...compare.shadowRoot!.querySelectorAll('th')].map((th) => th.textContent)).toEqual(['Step', 'baseline', 'since v2', 'verdict']);
    const cells = (step: number) => [...compare.shadowRoot!.querySelector(`tr[data-step="${step}"]`)!.querySelectorAll('td')].map((td) => td.textContent);
    expect(cells(1)[3]).toBe('–');
    expect(cells(2)[3]).toBe('broken ⚑');
    expect(compare.shadowRoot!.querySelector('tr[data-step="2"]')!.classList.contains('significant')).toBe(true);
    expect(cells(3)[3]).toBe('unclear');
    expect(compare.shadowRoot!.querySelector('tr[data-step="3"]')!.classList.contains('significant')).toBe(false);
  });
});

describe('<kpi-range>', () => {
  it('offers the presets and a custom range as toggle buttons', async () => {
    const picker = await mount('kpi-range', { range: { kind: 'last', ms: 6 * 3_600_000 } satisfies Range });
    const buttons = [...picker.shadowRoot!.querySelectorAll('.presets button')];
    expect(buttons.map((b) => [b.textContent!.trim(), b.getAttribute('aria-pressed')])).toEqual([
      ['1 h', 'false'],
      ['6 h', 'true'],
      ['24 h', 'false'],
      ['7 d', 'false'],
      ['30 d', 'false'],
      ['Custom', 'false'],
    ]);
    const picked: Range[] = [];
    picker.addEventListener('range-change', (e) => picked.push((e as CustomEvent<Range>).detail));
    (buttons[2] as HTMLButtonElement).click();
    expect(picked).toEqual([{ kind: 'last', ms: 24 * 3_600_000 }]);
  });

  it('takes a custom window from two labelled local-time inputs, widened to whole 10 minutes, and says what is wrong with a bad one', async () => {
    const picker = await mount('kpi-range', { range: { kind: 'last', ms: 3_600_000 } satisfies Range });
    const form = picker.shadowRoot!.querySelector('form')!;
    expect(form.hidden).toBe(true);
    const custom = picker.shadowRoot!.querySelector<HTMLButtonElement>('button.custom')!;
    custom.click();
    await picker.updateComplete;
    expect(form.hidden).toBe(false);
    expect(custom.getAttribute('aria-expanded')).toBe('true');
    const [from, to] = [...form.querySelectorAll('input')];
    expect([from, to].map((i) => [i!.type, i!.closest('label')!.textContent!.trim()])).toEqual([
      ['datetime-local', 'From'],
      ['datetime-local', 'To'],
    ]);
    const picked: Range[] = [];
    picker.addEventListener('range-change', (e) => picked.push((e as CustomEvent<Range>).detail));
    const type = (input: HTMLInputElement, value: string) => {
      input.value = value;
      input.dispatchEvent(new Event('input'));
    };
    type(from!, '2026-11-23T10:00');
    type(to!, '2026-11-23T09:00');
    form.requestSubmit();
    await picker.updateComplete;
    expect(text(picker, '[role="alert"]')).toBe('The end must be after the start.');
    expect(from!.getAttribute('aria-invalid')).toBe('true');
    expect(picked).toEqual([]);
    type(from!, '2026-11-23T09:03');
    type(to!, '2026-11-23T11:52');
    form.requestSubmit();
    await picker.updateComplete;
    expect(picked).toEqual([{ kind: 'custom', from: new Date(2026, 10, 23, 9, 0).getTime(), to: new Date(2026, 10, 23, 12, 0).getTime() }]);
    expect(picker.shadowRoot!.querySelector('[role="alert"]')).toBeNull();
  });
});

describe('<kpi-thresholds>', () => {
  const watched = watchedValues(FUNNELS);

  async function editor(
    save: (t: Thresholds) => Promise<SaveProblem | undefined>,
    thresholds: Thresholds = { bounceRate: { max: 0.7 }, newUsers: { min: 10 } },
  ) {
    const el = await mount<KpiThresholds>('kpi-thresholds', { thresholds, watched, current: { bounceRate: '41.0%' }, save });
    await el.open('bounceRate');
    return el;
  }
  const input = (el: KpiThresholds, key: string, bound: 'min' | 'max') =>
    el.shadowRoot!.querySelector<HTMLInputElement>(`tr[data-key="${key}"] input[id^="${bound}-"]`)!;
  const type = (i: HTMLInputElement, value: string) => {
    i.value = value;
    i.dispatchEvent(new Event('input'));
  };

  it('is a modal dialog with a labelled minimum and maximum for every tile and funnel step, rates in %', async () => {
    const el = await editor(async () => undefined);
    const dialog = el.shadowRoot!.querySelector('dialog')!;
    expect(dialog.open).toBe(true);
    expect(el.shadowRoot!.getElementById(dialog.getAttribute('aria-labelledby')!)!.textContent).toBe('Alert thresholds');
    const rows = [...el.shadowRoot!.querySelectorAll('tbody tr')];
    expect(rows.map((r) => r.getAttribute('data-key'))).toEqual(watched.map((w) => w.key));
    for (const i of el.shadowRoot!.querySelectorAll('input')) {
      const label = el.shadowRoot!.querySelector(`label[for="${i.id}"]`);
      expect(label?.textContent?.trim()).toMatch(/: (minimum|maximum)/);
    }
    expect(el.shadowRoot!.querySelector('label[for="max-5"]')!.textContent!.trim()).toBe('Bounce rate: maximum (%)');
    expect(input(el, 'bounceRate', 'max').value).toBe('70');
    expect(input(el, 'newUsers', 'min').value).toBe('10');
    expect(text(el, 'tr[data-key="bounceRate"] .now')).toBe('41.0%');
    expect(el.shadowRoot!.activeElement).toBe(input(el, 'bounceRate', 'min'));
  });

  it('saves thresholds as fractions for rates and closes', async () => {
    const saved: Thresholds[] = [];
    const el = await editor(async (t) => void saved.push(t));
    type(input(el, 'bounceRate', 'max'), '65.5');
    type(input(el, 'new-user.step2', 'min'), '50');
    type(input(el, 'newUsers', 'min'), '');
    el.shadowRoot!.querySelector('form')!.requestSubmit();
    await vi.waitFor(() => expect(el.isOpen).toBe(false));
    expect(saved).toEqual([{ bounceRate: { max: 0.655 }, 'new-user.step2': { min: 0.5 } }]);
  });

  it("shows the server's 400 message in the dialog and marks and focuses the field it names", async () => {
    const el = await editor(async () => ({ message: 'body.thresholds.errorRate.max must be at most 1', field: 'body.thresholds.errorRate.max' }));
    el.shadowRoot!.querySelector('form')!.requestSubmit();
    await vi.waitFor(() => expect(el.shadowRoot!.querySelector('[role="alert"]')).not.toBeNull());
    expect(text(el, '[role="alert"]')).toBe('body.thresholds.errorRate.max must be at most 1');
    expect(el.isOpen).toBe(true);
    const field = input(el, 'errorRate', 'max');
    expect(field.getAttribute('aria-invalid')).toBe('true');
    expect(field.getAttribute('aria-describedby')).toBe('problem');
    expect(el.shadowRoot!.activeElement).toBe(field);
  });

  it('refuses a minimum above the maximum before asking the server', async () => {
    const save = vi.fn(async () => undefined);
    const el = await editor(save);
    type(input(el, 'bounceRate', 'min'), '80');
    el.shadowRoot!.querySelector('form')!.requestSubmit();
    await el.updateComplete;
    expect(text(el, '[role="alert"]')).toBe('Bounce rate: the minimum is above the maximum.');
    expect(save).not.toHaveBeenCalled();
    // Cancel closes without saving
    [...el.shadowRoot!.querySelectorAll('button')].find((b) => b.textContent === 'Cancel')!.click();
    expect(el.isOpen).toBe(false);
  });
});

describe('<kpi-chart>', () => {
  const kpis = (bounceRate: number) => ({ bounceRate }) as unknown as Kpis;
  const series = (segment: string, values: number[]) => ({
    segment,
    total: kpis(values.reduce((a, b) => a + b, 0) / values.length),
    points: values.map((v, i) => ({ start: 600_000 * i, end: 600_000 * (i + 1), kpis: kpis(v) })),
  });

  it('gives the chart in words: each line (the top values and Other) with its latest point and its whole-window value', async () => {
    // no canvas here: the chart itself is not drawn, its text alternative is
    vi.stubGlobal('requestAnimationFrame', () => 0);
    const answer: KpiAnswer = {
      from: 0,
      to: 1_800_000,
      bucket: '10m',
      bucketMs: 600_000,
      segment: 'os',
      watermark: 0,
      series: [series('Windows 7', [0.2, 0.4]), series('Other', [0.5, 0.7])],
    };
    const chart = await mount('kpi-chart', { answer, kpi: TILE_KPIS.find((k) => k.id === 'bounceRate'), deploys: [] });
    vi.unstubAllGlobals();
    const table = chart.shadowRoot!.querySelector('table.summary')!;
    expect(table.classList.contains('visually-hidden')).toBe(true);
    expect(table.querySelector('caption')!.textContent!.replace(/\s+/g, ' ').trim()).toMatch(/^Bounce rate by OS, .* latest point and whole window$/);
    expect([...table.querySelectorAll('tbody tr')].map((r) => [...r.children].map((c) => c.textContent!.trim()))).toEqual([
      ['Windows 7', shortTime(600_000), '40.0%', '30.0%'],
      ['Other', shortTime(600_000), '70.0%', '60.0%'],
    ]);
    expect(chart.shadowRoot!.querySelector('.plot')!.getAttribute('aria-hidden')).toBe('true');
    expect(chart.shadowRoot!.querySelector('.no-data')).toBeNull();
  });

  it('says so when the window holds nothing to draw', async () => {
    vi.stubGlobal('requestAnimationFrame', () => 0);
    const empty: KpiAnswer = {
      from: 0,
      to: 3_600_000,
      bucket: '10m',
      bucketMs: 600_000,
      segment: null,
      watermark: 0,
      series: [{ segment: 'all', total: kpis(0), points: [] }],
    };
    const chart = await mount('kpi-chart', { answer: empty, kpi: TILE_KPIS.find((k) => k.id === 'bounceRate'), deploys: [] });
    vi.unstubAllGlobals();
    expect(text(chart, '.no-data')).toBe('No bounce rate to draw in this window.');
  });
});

describe('<kpi-deploy>', () => {
  const at = Date.UTC(2026, 11, 4, 17, 15);
  const check = (key: string, state: string, baseline: number, after: number) => ({
    key,
    label: key === 'new-user.step2' ? 'New-user funnel, step 2 from 1' : 'Bounce rate',
    worse: 'lower',
    baseline: { successes: baseline * 1000, trials: 1000, rate: baseline },
    after: { successes: after * 100, trials: 100, rate: after },
    effect: after - baseline,
    relativeEffect: (after - baseline) / baseline,
    low: null,
    high: null,
    state,
  });
  const verdict = (state: DeployVerdict['state'], faults: string[] = []): DeployVerdict =>
    ({
      deploy: { id: 'deploy/x', version: 'v2.0-bad', at },
      state,
      faults,
      ageMs: 0,
      dialogs: { after: 1234, baseline: 9000 },
      baselineWindows: [],
      checks: [check('new-user.step2', faults.length ? 'broken' : 'ok', 0.8, 0.24), check('bounceRate', 'ok', 0.4, 0.41)],
      method: VERDICT_METHOD,
      judgedAt: at,
    }) as DeployVerdict;

  it('says a broken deploy in words and colour, with its age, its dialogs and the rates at fault', async () => {
    const panel = await mount('kpi-deploy', { verdict: verdict('broken', ['new-user.step2']), now: at + 4 * 60_000 });
    expect(panel.getAttribute('state')).toBe('broken');
    expect(text(panel, '.head')).toBe('Broken v2.0-bad deployed 4 min ago 1,234 dialogs since');
    expect(text(panel, 'li[data-key="new-user.step2"]')).toBe('New-user funnel, step 2 from 1: 80.0% before → 24.0% since (−70%)');
    expect(panel.shadowRoot!.querySelectorAll('li')).toHaveLength(1);
  });

  it('says what healthy and not enough data mean, and shows nothing without a recent deploy', async () => {
    const healthy = await mount('kpi-deploy', { verdict: verdict('healthy'), now: at + 90 * 60_000 });
    expect(text(healthy, '.head')).toContain('deployed 1 h 30 min ago');
    expect(text(healthy, 'p')).toContain('beyond 25% of its baseline');
    const waiting = await mount('kpi-deploy', {
      verdict: { ...verdict('not enough data yet'), checks: [check('bounceRate', 'not enough data', 0.4, 0.5)] },
      now: at,
    });
    expect(text(waiting, '.head')).toContain('Not enough data yet');
    expect(text(waiting, 'p')).toContain('1 of 1 rates still need more dialogs');
    const none = await mount('kpi-deploy', { verdict: null });
    expect(none.shadowRoot!.querySelector('section')).toBeNull();
    expect(ageWords(20_000)).toBe('just now');
  });
});
