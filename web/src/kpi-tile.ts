import { cardStyles } from './styles.js';
import { LitElement, css, html, svg, nothing } from 'lit';

/**
 * One KPI: its value over the window, a sparkline of its points, and its
 * change against the previous period and against the hour before the latest
 * deploy.
 *
 * @csspart value - the big number
 */
export class KpiTile extends LitElement {
  static override properties = {
    label: { type: String },
    value: { type: String },
    change: { type: Number },
    against: { type: String },
    deployChange: { type: Number },
    good: { type: String },
    points: { type: Array },
    breached: { type: Boolean, reflect: true },
  };

  declare label: string;
  declare value: string;
  /** Relative change vs the previous period, or null. */
  declare change: number | null;
  /** Which direction of change is good: 'up' or 'down'. */
  declare good: 'up' | 'down';
  /** Second comparison: against the hour before this deploy (its version). */
  declare against: string;
  declare deployChange: number | null;
  declare points: (number | null)[];
  declare breached: boolean;

  constructor() {
    super();
    this.label = '';
    this.value = '–';
    this.change = null;
    this.against = '';
    this.deployChange = null;
    this.good = 'up';
    this.points = [];
    this.breached = false;
  }

  static override styles = [
    cardStyles,
    css`
      :host {
        min-width: 150px;
      }
      :host([breached]) {
        border-color: var(--bad);
        box-shadow: inset 0 0 0 2px var(--bad);
      }
      .label {
        color: var(--muted);
        font-size: 0.85rem;
      }
      .value {
        font-size: 1.9rem;
        font-weight: 600;
        margin: 4px 0;
        font-variant-numeric: tabular-nums;
      }
      .change {
        font-size: 0.85rem;
      }
      :host-context([tv]) .value {
        font-size: 3rem;
      }
      .good {
        color: var(--good);
      }
      .bad {
        color: var(--bad);
      }
      svg {
        display: block;
        width: 100%;
        height: 28px;
        margin-top: 6px;
      }
      polyline {
        fill: none;
        stroke: var(--s0);
        stroke-width: 1.5;
      }
    `,
  ];

  #sparkline() {
    const values = this.points.filter((v): v is number => v !== null);
    if (values.length < 2) return nothing;
    const [min, max] = [Math.min(...values), Math.max(...values)];
    const span = max - min || 1;
    const step = 100 / (this.points.length - 1);
    const coords = this.points
      .map((v, i) => (v === null ? null : `${(i * step).toFixed(2)},${(28 - ((v - min) / span) * 26 - 1).toFixed(2)}`))
      .filter((c) => c !== null)
      .join(' ');
    return html`<svg viewBox="0 0 100 28" preserveAspectRatio="none" aria-hidden="true">${svg`<polyline points=${coords}></polyline>`}</svg>`;
  }

  #changeLine(c: number | null, against: string, cls: string) {
    if (c === null) return html`<div class=${cls}>&nbsp;</div>`;
    const direction = c === 0 ? '' : c > 0 ? '▲' : '▼';
    const tone = c === 0 ? '' : c > 0 === (this.good === 'up') ? 'good' : 'bad';
    return html`<div class="${cls} ${tone}">${direction} ${(Math.abs(c) * 100).toFixed(1)}% vs ${against}</div>`;
  }

  override render() {
    return html`
      <div class="label">${this.label}</div>
      <div class="value" part="value" aria-label="${this.label}: ${this.value}">${this.value}</div>
      ${this.#changeLine(this.change, 'previous period', 'change')}
      ${this.against ? this.#changeLine(this.deployChange, `the hour before ${this.against}`, 'change deploy') : nothing} ${this.#sparkline()}
    `;
  }
}

customElements.define('kpi-tile', KpiTile);

declare global {
  interface HTMLElementTagNameMap {
    'kpi-tile': KpiTile;
  }
}
