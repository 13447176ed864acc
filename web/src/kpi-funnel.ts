import { cardStyles, controlStyles } from './styles.js';
import { LitElement, css, html, nothing, svg } from 'lit';
import type { FunnelStep } from '../../src/contract/kpis.js';
import { hhmm } from './model.js';

/** How a step's conversion (from the step before) stands against its threshold. */
export interface StepStatus {
  /** The breach in words, e.g. "below min 50.0%"; '' when inside the threshold. */
  breach: string;
  /** The server's alert on this step is breached since then (ms). */
  alertSince?: number | undefined;
}

/**
 * A funnel as step bars: count, conversion from the first step and from the
 * previous one, and drop-off. A step whose conversion from the step before
 * is outside its threshold is marked in words and in red.
 */
export class KpiFunnel extends LitElement {
  static override properties = { heading: { type: String }, steps: { type: Array }, status: { attribute: false } };

  declare heading: string;
  declare steps: FunnelStep[];
  /** By step number (2 and up). */
  declare status: Record<number, StepStatus>;

  constructor() {
    super();
    this.heading = '';
    this.steps = [];
    this.status = {};
  }

  static override styles = [
    cardStyles,
    controlStyles,
    css`
      ol {
        list-style: none;
        margin: 0;
        padding: 0;
      }
      .step {
        display: grid;
        grid-template-columns: 11rem 1fr 9rem;
        gap: 4px 8px;
        align-items: center;
        margin: 4px 0;
        font-size: 0.85rem;
      }
      .step.breached .name {
        color: var(--bad);
        font-weight: 600;
      }
      .bar {
        background: var(--line);
        border-radius: 4px;
        height: 18px;
        position: relative;
      }
      .breached .bar {
        outline: 2px solid var(--bad);
      }
      .bar svg {
        display: block;
        width: 100%;
        height: 100%;
      }
      .fill {
        fill: var(--s0);
      }
      /* on a pill of the page's background: as readable on the fill as past it (a blended colour was not) */
      .count {
        position: absolute;
        left: 3px;
        top: 2px;
        padding: 0 4px;
        border-radius: 3px;
        line-height: 14px;
        font-size: 0.85em;
        color: var(--fg);
        background: color-mix(in srgb, var(--bg) 85%, transparent);
        font-weight: 600;
      }
      .rates {
        color: var(--muted);
        font-variant-numeric: tabular-nums;
      }
      .breach {
        grid-column: 1 / -1;
        color: var(--bad);
        font-weight: 600;
      }
    `,
  ];

  override render() {
    const pct = (v: number | null) => (v === null ? '–' : `${(v * 100).toFixed(1)}%`);
    // a step reached by more than the one before it (staging continuations join at step 3) gains, not drops
    const change = (dropOff: number) => (dropOff < 0 ? `+${pct(-dropOff)}` : `−${pct(dropOff)}`);
    return html`
      <h3>${this.heading}</h3>
      <ol>
        ${this.steps.map((s) => {
          const status = this.status[s.step];
          const breached = !!status?.breach;
          return html`
            <li class="step ${breached ? 'breached' : ''}" data-step=${s.step}>
              <span class="name">${s.step}. ${s.name}</span>
              <div class="bar" role="img" aria-label="${s.name}: ${s.count}, ${pct(s.conversionFromStart)} of the first step">
                <svg aria-hidden="true">
                  ${svg`<rect class="fill" width="${((s.conversionFromStart ?? 0) * 100).toFixed(2)}%" height="100%" rx="4"></rect>`}
                </svg>
                <span class="count" aria-hidden="true">${s.count.toLocaleString('en-US')}</span>
              </div>
              <span class="rates" title="share of the first step · drop-off from the previous step"
                >${pct(s.conversionFromStart)}${s.step > 1 && s.dropOff !== null ? ` · ${change(s.dropOff)}` : ''}</span
              >
              ${
                breached || status?.alertSince !== undefined
                  ? html`<div class="breach">
                      ${breached ? `⚠ ${pct(s.conversionFromPrevious)} from step ${s.step - 1}: ${status!.breach}` : ''}
                      ${status?.alertSince !== undefined ? html`<span class="badge">alert since ${hhmm(status.alertSince)}</span>` : nothing}
                    </div>`
                  : nothing
              }
            </li>
          `;
        })}
      </ol>
    `;
  }
}

customElements.define('kpi-funnel', KpiFunnel);

declare global {
  interface HTMLElementTagNameMap {
    'kpi-funnel': KpiFunnel;
  }
}
