import { cardStyles, tableStyles } from './styles.js';
import { LitElement, css, html } from 'lit';
import type { CheckState } from '../../src/contract/verdict.js';
import { compareFunnels, type ComparedStep, type FunnelStep } from './model.js';

/**
 * A funnel in two windows side by side (since a deploy against its
 * baseline, or yesterday/today): conversion from the first step in each,
 * and a flag where the change is significant: since a deploy, the state of
 * each step in the deploy's verdict (always valid); otherwise a
 * two-proportion z-test at 5%, valid for one look.
 */
export class KpiCompare extends LitElement {
  static override properties = {
    heading: { type: String },
    beforeLabel: { type: String },
    afterLabel: { type: String },
    // reactive under the names they are set by (they were declared as before/after, so a new
    // funnel alone did not redraw the table: it showed whatever it had at the last label change)
    baseline: { attribute: false },
    current: { attribute: false },
    verdicts: { attribute: false },
  };

  declare heading: string;
  declare beforeLabel: string;
  declare afterLabel: string;
  /** The funnel before (or yesterday). */
  declare baseline: FunnelStep[];
  /** The funnel after (or today). */
  declare current: FunnelStep[];
  /**
   * Since a recent deploy: each step's state in the deploy's verdict (from
   * its always-valid test, valid however often the page updates), shown
   * instead of the z-test, which is valid for one look only.
   */
  declare verdicts: Record<number, CheckState> | undefined;

  constructor() {
    super();
    this.heading = '';
    this.beforeLabel = 'before';
    this.afterLabel = 'after';
    this.baseline = [];
    this.current = [];
    this.verdicts = undefined;
  }

  static override styles = [
    cardStyles,
    tableStyles,
    css`
      .significant {
        color: var(--bad);
        font-weight: 600;
      }
      .up.significant {
        color: var(--good);
      }
    `,
  ];

  #flagged(r: ComparedStep): boolean {
    if (!this.verdicts) return r.significant;
    const state = this.verdicts[r.step];
    return state === 'broken' || state === 'suspect';
  }

  #last(r: ComparedStep): string {
    if (!this.verdicts) return r.z === null ? '–' : `${r.z.toFixed(2)}${r.significant ? ' ⚑' : ''}`;
    const state = this.verdicts[r.step];
    return state === undefined ? '–' : `${state}${this.#flagged(r) ? ' ⚑' : ''}`;
  }

  override render() {
    const pct = (v: number | null) => (v === null ? '–' : `${(v * 100).toFixed(1)}%`);
    const rows: ComparedStep[] = compareFunnels(this.baseline, this.current);
    return html`
      <h3>${this.heading}</h3>
      <table>
        <thead>
          <tr>
            <th scope="col">Step</th>
            <th scope="col">${this.beforeLabel}</th>
            <th scope="col">${this.afterLabel}</th>
            <th scope="col">${this.verdicts ? 'verdict' : 'z'}</th>
          </tr>
        </thead>
        <tbody>
          ${rows.map(
            (r) =>
              html`<tr data-step=${r.step} class="${this.#flagged(r) ? 'significant' : ''} ${(r.after ?? 0) >= (r.before ?? 0) ? 'up' : 'down'}">
                <td>${r.step}. ${r.name}</td>
                <td>${pct(r.before)}</td>
                <td>${pct(r.after)}</td>
                <td>${this.#last(r)}</td>
              </tr>`,
          )}
        </tbody>
      </table>
    `;
  }
}

customElements.define('kpi-compare', KpiCompare);

declare global {
  interface HTMLElementTagNameMap {
    'kpi-compare': KpiCompare;
  }
}
