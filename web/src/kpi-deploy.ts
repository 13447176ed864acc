import { LitElement, css, html, nothing } from 'lit';
import type { DeployVerdict, VerdictCheck } from '../../src/contract/verdict.js';
import { cardStyles, controlStyles } from './styles.js';

const BADGE: Record<DeployVerdict['state'], string> = {
  healthy: 'Healthy',
  suspect: 'Suspect',
  broken: 'Broken',
  'not enough data yet': 'Not enough data yet',
};

const percent = (x: number | null) => (x === null ? '–' : `${(100 * x).toFixed(1)}%`);
const signed = (x: number | null) => (x === null ? '' : ` (${x > 0 ? '+' : x < 0 ? '−' : '±'}${Math.abs(100 * x).toFixed(0)}%)`);

/** "4 min", "2 h 5 min", "just now". */
export function ageWords(ms: number): string {
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 1) return 'just now';
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  return `${hours} h ${minutes % 60} min ago`;
}

/**
 * The latest deploy and its verdict, live: the on-call engineer's first
 * question after a deploy ("did it break sign-ups?"). A badge (healthy,
 * suspect, broken, not enough data yet) said in words as well as in colour,
 * the deploy's age and the dialogs since, and the rates at fault with their
 * baseline and after values. Age counts from `now`, which the dashboard
 * moves every second.
 */
export class KpiDeploy extends LitElement {
  static override properties = {
    verdict: { attribute: false },
    now: { type: Number },
  };

  declare verdict: DeployVerdict | null;
  declare now: number;

  constructor() {
    super();
    this.verdict = null;
    this.now = Date.now();
  }

  static override styles = [
    cardStyles,
    controlStyles,
    css`
      :host {
        border-left: 6px solid var(--line);
      }
      :host([state='healthy']) {
        border-left-color: var(--good);
      }
      :host([state='suspect']) {
        border-left-color: var(--warn);
      }
      :host([state='broken']) {
        border-left-color: var(--bad);
      }
      .head {
        display: flex;
        flex-wrap: wrap;
        align-items: baseline;
        gap: 4px 10px;
      }
      .badge {
        font-weight: 700;
        padding: 2px 8px;
        border-radius: 999px;
        background: var(--line);
        color: var(--fg);
      }
      .broken .badge {
        background: var(--bad);
        color: #fff;
      }
      .healthy .badge {
        background: var(--good);
        color: #fff;
      }
      .suspect .badge {
        background: var(--warn);
        color: #fff;
      }
      .muted {
        color: var(--muted);
      }
      ul {
        margin: 8px 0 0;
        padding-left: 1.2em;
      }
      li {
        overflow-wrap: anywhere;
      }
    `,
  ];

  #faultLine(c: VerdictCheck) {
    return html`<li data-key=${c.key}>
      <strong>${c.label}</strong>: ${percent(c.baseline.rate)} before → ${percent(c.after.rate)}
      since${signed(c.relativeEffect)}${c.state === 'suspect' ? ' · suspect' : ''}
    </li>`;
  }

  #detail(v: DeployVerdict) {
    if (v.state === 'broken' || v.state === 'suspect') {
      const faults = v.faults.map((key) => v.checks.find((c) => c.key === key)).filter((c): c is VerdictCheck => c !== undefined);
      return html`<ul class="faults">
        ${faults.map((c) => this.#faultLine(c))}
      </ul>`;
    }
    if (v.state === 'healthy')
      return html`<p class="muted">
        No rate moved the harmful way beyond ${Math.round(v.method.margin.relative * 100)}% of its baseline (the same hours of the week before).
      </p>`;
    const waiting = v.checks.filter((c) => c.state === 'not enough data' || c.state === 'unclear').length;
    return html`<p class="muted">
      ${waiting} of ${v.checks.filter((c) => c.state !== 'no baseline').length} rates still need more dialogs (each at least ${v.method.minAfterTrials} since
      the deploy).
    </p>`;
  }

  override updated(): void {
    if (this.verdict) this.setAttribute('state', this.verdict.state);
    else this.removeAttribute('state');
  }

  override render() {
    const v = this.verdict;
    if (!v) return nothing;
    return html`<section class=${v.state === 'not enough data yet' ? 'waiting' : v.state} aria-label="Latest deploy">
      <div class="head">
        <span class="badge" role="status">${BADGE[v.state]}</span>
        <strong>${v.deploy.version}</strong>
        <span>deployed ${ageWords(this.now - v.deploy.at)}</span>
        <span class="muted">${v.dialogs.after.toLocaleString('en-US')} dialogs since</span>
      </div>
      ${this.#detail(v)}
    </section>`;
  }
}

customElements.define('kpi-deploy', KpiDeploy);

declare global {
  interface HTMLElementTagNameMap {
    'kpi-deploy': KpiDeploy;
  }
}
