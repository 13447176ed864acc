// @vitest-environment happy-dom
import { describe, expect, it } from 'vitest';
import type { FunnelStep } from '../../src/aggregate/kpi-types.js';
import '../../web/src/kpi-compare.js';
import '../../web/src/kpi-funnel.js';
import '../../web/src/kpi-tile.js';

async function mount<T extends HTMLElement & { updateComplete: Promise<boolean> }>(tag: string, props: Record<string, unknown>): Promise<T> {
  const el = document.createElement(tag) as T;
  Object.assign(el, props);
  document.body.append(el);
  await el.updateComplete;
  return el;
}

const text = (el: Element, selector: string) => el.shadowRoot!.querySelector(selector)?.textContent?.replace(/\s+/g, ' ').trim();

describe('<kpi-tile>', () => {
  it('shows the value, a sparkline and a good or bad change', async () => {
    const tile = await mount('kpi-tile', { label: 'Bounce rate', value: '41.0%', change: -0.12, good: 'down', points: [0.5, 0.45, null, 0.41] });
    expect(text(tile, '.label')).toBe('Bounce rate');
    expect(text(tile, '.value')).toBe('41.0%');
    expect(text(tile, '.change')).toBe('▼ 12.0% vs previous period');
    expect(tile.shadowRoot!.querySelector('.change')!.classList.contains('good')).toBe(true);
    expect(tile.shadowRoot!.querySelector('polyline')!.getAttribute('points')!.split(' ')).toHaveLength(3);
  });

  it('compares with the hour before a deploy when given one', async () => {
    const tile = await mount('kpi-tile', { label: 'New users', value: '86', change: null, against: 'v2.5.0', deployChange: -0.4, good: 'up' });
    expect(text(tile, '.change.deploy')).toBe('▼ 40.0% vs the hour before v2.5.0');
    expect(tile.shadowRoot!.querySelector('.change.deploy')!.classList.contains('bad')).toBe(true);
  });

  it('marks a rise of a KPI where lower is better as bad, and shows a breach', async () => {
    const tile = await mount('kpi-tile', { label: 'Error-screen rate', value: '3.0%', change: 0.5, good: 'down', breached: true });
    expect(tile.shadowRoot!.querySelector('.change')!.classList.contains('bad')).toBe(true);
    expect(tile.hasAttribute('breached')).toBe(true);
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

  it('shows no rates where there is no data', async () => {
    const empty = steps.map((s) => ({ ...s, count: 0, conversionFromStart: null, conversionFromPrevious: null, dropOff: null }));
    const funnel = await mount('kpi-funnel', { heading: 'Password-reset funnel', steps: empty });
    expect([...funnel.shadowRoot!.querySelectorAll('.rates')].map((r) => r.textContent!.trim())).toEqual(['–', '–', '–']);
  });
});

describe('<kpi-compare>', () => {
  it('shows two funnels side by side and flags significant changes', async () => {
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
  });
});
