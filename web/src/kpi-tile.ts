import { cardStyles, controlStyles } from './styles.js';
import { LitElement, css, html, svg, nothing, type PropertyValues } from 'lit';
import { announceAfter, hhmm } from './model.js';

/**
 * One KPI: its value over the window, a sparkline of its points, and its
 * change against the previous period and against the hour before the latest
 * deploy. A breached threshold is said in words as well as in red, with the
 * server's alert state ("alert since 14:05") when it has one. Counts that are
 * estimates (sampled data) show "≈" and say "estimate".
 *
 * Changes are announced politely to assistive technology, at most once per
 * `announceEveryMs` (the latest value then), except that a breach beginning
 * or ending is announced at once.
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
    deployBasis: { type: String },
    good: { type: String },
    points: { type: Array },
    breached: { type: Boolean, reflect: true },
    breach: { type: String },
    alertSince: { type: Number },
    estimate: { type: Boolean },
    announceEveryMs: { type: Number },
    announcement: { state: true },
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
  /**
   * What `deployChange` compares: `hour-before` (the window against the hour
   * before the deploy) or `baseline` (the dialogs since the deploy against
   * its verdict's baseline, while the deploy is recent).
   */
  declare deployBasis: 'hour-before' | 'baseline';
  declare points: (number | null)[];
  declare breached: boolean;
  /** The breach in words, e.g. "above max 70.0%". */
  declare breach: string;
  /** The server's alert on this KPI is breached since then (ms). */
  declare alertSince: number | undefined;
  /** The value is an estimate from sampled data. */
  declare estimate: boolean;
  declare announceEveryMs: number;
  /** What the live region says now. */
  declare announcement: string;
  #announced: string | undefined;
  #announcedAt: number | undefined;
  #announcedBreach = false;
  #pending: ReturnType<typeof setTimeout> | undefined;

  constructor() {
    super();
    this.label = '';
    this.value = '–';
    this.change = null;
    this.against = '';
    this.deployChange = null;
    this.deployBasis = 'hour-before';
    this.good = 'up';
    this.points = [];
    this.breached = false;
    this.breach = '';
    this.alertSince = undefined;
    this.estimate = false;
    this.announceEveryMs = 60_000;
    this.announcement = '';
  }

  static override styles = [
    cardStyles,
    controlStyles,
    css`
      :host {
        box-sizing: border-box;
        min-width: 0;
        position: relative;
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
      .estimate-note {
        font-size: 0.75rem;
        color: var(--muted);
        margin-top: -4px;
      }
      .change {
        font-size: 0.85rem;
      }
      .breach {
        font-size: 0.85rem;
        font-weight: 600;
        color: var(--bad);
        margin: 2px 0;
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

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    clearTimeout(this.#pending);
    this.#pending = undefined;
  }

  /** What the tile says when it announces itself. */
  #spoken(): string {
    const value = this.estimate ? `about ${this.value} (estimate)` : this.value;
    return `${this.label}: ${value}${this.breached ? `, outside its threshold${this.breach ? ` (${this.breach})` : ''}` : ''}`;
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (!changed.has('value') && !changed.has('breached') && !changed.has('breach') && !changed.has('estimate')) return;
    this.#announce();
  }

  #announce(): void {
    const text = this.#spoken();
    if (this.value === '–' || text === this.#announced) return;
    if (this.#announced === undefined && !this.breached) {
      // the first value is what the page shows on arrival, not a change
      this.#announced = text;
      this.#announcedBreach = this.breached;
      return;
    }
    clearTimeout(this.#pending);
    this.#pending = undefined;
    const now = Date.now();
    const wait = announceAfter(this.#announcedAt, now, this.announceEveryMs, this.breached !== this.#announcedBreach);
    if (wait > 0) {
      this.#pending = setTimeout(() => {
        this.#pending = undefined;
        this.#announce();
      }, wait);
      return;
    }
    this.#announced = text;
    this.#announcedAt = now;
    this.#announcedBreach = this.breached;
    this.announcement = text;
  }

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
    // the colour says better or worse; so does the hidden text, for those who do not see it
    return html`<div class="${cls} ${tone}">
      ${direction} ${(Math.abs(c) * 100).toFixed(1)}% vs
      ${against}${tone ? html`<span class="visually-hidden"> (${tone === 'good' ? 'better' : 'worse'})</span>` : nothing}
    </div>`;
  }

  override render() {
    const shown = this.estimate && this.value !== '–' ? `≈ ${this.value}` : this.value;
    return html`
      <div class="label" id="label">${this.label}</div>
      <div class="value" part="value" title=${this.estimate ? 'estimate: sampled counts scaled up by their sample rate' : nothing}>${shown}</div>
      ${this.estimate && this.value !== '–' ? html`<div class="estimate-note">estimate</div>` : nothing}
      ${
        this.breached
          ? html`<div class="breach">
              ⚠ Outside threshold${this.breach ? `: ${this.breach}` : ''}
              ${this.alertSince !== undefined ? html`<span class="badge">alert since ${hhmm(this.alertSince)}</span>` : nothing}
            </div>`
          : this.alertSince !== undefined
            ? html`<div class="breach"><span class="badge">alert since ${hhmm(this.alertSince)}</span></div>`
            : nothing
      }
      ${this.#changeLine(this.change, 'previous period', 'change')}
      ${
        this.against
          ? this.#changeLine(
              this.deployChange,
              this.deployBasis === 'baseline' ? `baseline, since ${this.against}` : `the hour before ${this.against}`,
              'change deploy',
            )
          : nothing
      }
      ${this.#sparkline()}
      <div class="visually-hidden" aria-live="polite" aria-atomic="true">${this.announcement}</div>
    `;
  }
}

customElements.define('kpi-tile', KpiTile);

declare global {
  interface HTMLElementTagNameMap {
    'kpi-tile': KpiTile;
  }
}
