import { cardStyles } from './styles.js';
import { LitElement, css, html } from 'lit';
import { compareFunnels, type ComparedStep, type FunnelStep } from './model.js';

/**
 * The new-user funnel in two windows side by side (before/after a deploy, or
 * yesterday/today): conversion from the first step in each, and a flag where
 * the change is significant (two-proportion z-test, 5%).
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
  };

  declare heading: string;
  declare beforeLabel: string;
  declare afterLabel: string;
  /** The funnel before (or yesterday). */
  declare baseline: FunnelStep[];
  /** The funnel after (or today). */
  declare current: FunnelStep[];

  constructor() {
    super();
    this.heading = '';
    this.beforeLabel = 'before';
    this.afterLabel = 'after';
    this.baseline = [];
    this.current = [];
  }

  static override styles = [
    cardStyles,
    css`
      table {
        width: 100%;
        border-collapse: collapse;
        font-size: 0.85rem;
        font-variant-numeric: tabular-nums;
      }
      th,
      td {
        text-align: right;
        padding: 3px 6px;
        border-bottom: 1px solid var(--line);
      }
      th:first-child,
      td:first-child {
        text-align: left;
      }
      .significant {
        color: var(--bad);
        font-weight: 600;
      }
      .up.significant {
        color: var(--good);
      }
    `,
  ];

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
            <th scope="col">z</th>
          </tr>
        </thead>
        <tbody>
          ${rows.map(
            (r) =>
              html`<tr data-step=${r.step} class="${r.significant ? 'significant' : ''} ${(r.after ?? 0) >= (r.before ?? 0) ? 'up' : 'down'}">
                <td>${r.step}. ${r.name}</td>
                <td>${pct(r.before)}</td>
                <td>${pct(r.after)}</td>
                <td>${r.z === null ? '–' : `${r.z.toFixed(2)}${r.significant ? ' ⚑' : ''}`}</td>
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
