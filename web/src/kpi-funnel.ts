import { cardStyles } from './styles.js';
import { LitElement, css, html, svg } from 'lit';
import type { FunnelStep } from '../../src/aggregate/kpi-types.js';

/**
 * A funnel as step bars: count, conversion from the first step and from the
 * previous one, and drop-off.
 */
export class KpiFunnel extends LitElement {
  static override properties = { heading: { type: String }, steps: { type: Array } };

  declare heading: string;
  declare steps: FunnelStep[];

  constructor() {
    super();
    this.heading = '';
    this.steps = [];
  }

  static override styles = [
    cardStyles,
    css`
      .step {
        display: grid;
        grid-template-columns: 11rem 1fr 9rem;
        gap: 8px;
        align-items: center;
        margin: 4px 0;
        font-size: 0.85rem;
      }
      .bar {
        background: var(--line);
        border-radius: 4px;
        height: 18px;
        position: relative;
      }
      .bar svg {
        display: block;
        width: 100%;
        height: 100%;
      }
      .fill {
        fill: var(--s0);
      }
      .count {
        position: absolute;
        left: 6px;
        top: 1px;
        color: var(--bg);
        font-weight: 600;
        mix-blend-mode: difference;
      }
      .rates {
        color: var(--muted);
        font-variant-numeric: tabular-nums;
      }
    `,
  ];

  override render() {
    const pct = (v: number | null) => (v === null ? '–' : `${(v * 100).toFixed(1)}%`);
    return html`
      <h3>${this.heading}</h3>
      ${this.steps.map(
        (s) => html`
          <div class="step" data-step=${s.step}>
            <span>${s.step}. ${s.name}</span>
            <div class="bar" role="img" aria-label="${s.name}: ${s.count}, ${pct(s.conversionFromStart)} of the first step">
              <svg aria-hidden="true">${svg`<rect class="fill" width="${((s.conversionFromStart ?? 0) * 100).toFixed(2)}%" height="100%" rx="4"></rect>`}</svg>
              <span class="count">${s.count.toLocaleString('en-US')}</span>
            </div>
            <span class="rates" title="share of the first step · drop-off from the previous step"
              >${pct(s.conversionFromStart)}${s.step > 1 && s.dropOff !== null ? ` · −${pct(s.dropOff)}` : ''}</span
            >
          </div>
        `,
      )}
    `;
  }
}

customElements.define('kpi-funnel', KpiFunnel);

declare global {
  interface HTMLElementTagNameMap {
    'kpi-funnel': KpiFunnel;
  }
}
