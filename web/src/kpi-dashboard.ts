import { LitElement, css, html, nothing } from 'lit';
import type { Dimension } from '../../src/aggregate/kpi-types.js';
import './kpi-chart.js';
import './kpi-funnel.js';
import './kpi-tile.js';
import { LiveController } from './live-controller.js';
import { change, formatValue, RANGES, subscriptionFromUrl, subscriptionToUrl, TILE_KPIS, type KpiAnswer, type Subscription } from './model.js';

const SEGMENTS: { value: Dimension | ''; label: string }[] = [
  { value: '', label: 'All' },
  { value: 'os', label: 'OS' },
  { value: 'browser', label: 'Browser' },
  { value: 'screen', label: 'Screen' },
  { value: 'emails', label: 'Emails' },
  { value: 'locale', label: 'Locale' },
  { value: 'api', label: 'API' },
  { value: 'emailType', label: 'Email type' },
];

/**
 * The dashboard: KPI tiles, funnels and a time series, live from
 * `/api/live`, for the range and segmentation in the URL.
 */
export class KpiDashboard extends LitElement {
  static override properties = { chartKpi: { state: true }, previous: { state: true } };

  declare chartKpi: string;
  /** Totals of the period before the window (for the change on each tile). */
  declare previous: KpiAnswer | undefined;
  subscription: Subscription = subscriptionFromUrl(location.search);
  readonly live = new LiveController(this, () => this.subscription);
  #clock: ReturnType<typeof setInterval> | undefined;
  #previousFor = '';

  constructor() {
    super();
    this.chartKpi = 'bounceRate';
    this.previous = undefined;
  }

  static override styles = css`
    :host {
      display: block;
      padding: 16px 20px;
      max-width: 1400px;
      margin: 0 auto;
    }
    header {
      display: flex;
      flex-wrap: wrap;
      gap: 12px;
      align-items: center;
      margin-bottom: 12px;
    }
    h1 {
      font-size: 1.3rem;
      margin: 0 12px 0 0;
    }
    .ranges button {
      font: inherit;
      background: var(--card);
      color: var(--fg);
      border: 1px solid var(--line);
      padding: 4px 10px;
      cursor: pointer;
    }
    .ranges button[aria-pressed='true'] {
      background: var(--s0);
      color: #fff;
    }
    select {
      font: inherit;
      background: var(--card);
      color: var(--fg);
      border: 1px solid var(--line);
      padding: 3px 6px;
    }
    .status {
      margin-left: auto;
      color: var(--muted);
      font-size: 0.85rem;
    }
    .dot {
      display: inline-block;
      width: 9px;
      height: 9px;
      border-radius: 50%;
      background: var(--good);
      margin-right: 6px;
    }
    .dot.off {
      background: var(--bad);
    }
    .banner {
      background: var(--bad);
      color: #fff;
      padding: 8px 12px;
      border-radius: 6px;
      margin-bottom: 12px;
    }
    .tiles {
      display: grid;
      grid-template-columns: repeat(auto-fill, minmax(170px, 1fr));
      gap: 12px;
    }
    .funnels {
      display: grid;
      grid-template-columns: repeat(auto-fit, minmax(420px, 1fr));
      gap: 12px;
      margin: 12px 0;
    }
    .empty {
      background: var(--card);
      border: 1px dashed var(--line);
      border-radius: 8px;
      padding: 16px;
      margin: 12px 0;
    }
    code {
      background: var(--bg);
      padding: 1px 4px;
    }
    .chart {
      background: var(--card);
      border: 1px solid var(--line);
      border-radius: 8px;
      padding: 12px 14px;
    }
  `;

  override connectedCallback(): void {
    super.connectedCallback();
    // the "updated … ago" line and the reconnect countdown move every second
    this.#clock = setInterval(() => this.requestUpdate(), 1000);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    clearInterval(this.#clock);
  }

  #change(next: Subscription): void {
    this.subscription = next;
    history.replaceState(null, '', subscriptionToUrl(next));
    this.previous = undefined;
    this.live.resubscribe();
    this.requestUpdate();
  }

  /** The period just before the window, fetched once per window position (10 minutes). */
  #fetchPrevious(answer: KpiAnswer): void {
    const key = `${answer.from}|${answer.to}|${answer.bucket}`;
    if (key === this.#previousFor) return;
    this.#previousFor = key;
    const span = answer.to - answer.from;
    fetch(`/api/kpis?from=${answer.from - span}&to=${answer.from}&bucket=${answer.bucket}`)
      .then((r) => (r.ok ? (r.json() as Promise<KpiAnswer>) : undefined))
      .then((previous) => (this.previous = previous))
      .catch(() => undefined);
  }

  #status() {
    const live = this.live;
    if (live.connection === 'live') {
      const age = Math.max(0, Math.round((Date.now() - live.lastUpdate) / 1000));
      return html`<span class="dot"></span>live · updated ${age} s ago`;
    }
    if (live.connection === 'reconnecting') {
      const wait = Math.max(0, Math.ceil((live.retryAt - Date.now()) / 1000));
      return html`<span class="dot off"></span>reconnecting in ${wait} s (attempt ${live.attempt})`;
    }
    return html`<span class="dot off"></span>connecting…`;
  }

  override render() {
    const answer = this.live.answer;
    if (answer) this.#fetchPrevious(answer);
    const all = answer?.series.find((s) => s.segment === 'all') ?? answer?.series[0];
    const previousTotal = this.previous?.series[0]?.total;
    const totalOf = (a: KpiAnswer | undefined) => a?.series.reduce((n, s) => n + s.total.dialogs, 0) ?? 0;
    const chartKpi = TILE_KPIS.find((k) => k.id === this.chartKpi) ?? TILE_KPIS[0]!;
    // with a segmentation, tiles show the whole population: the biggest series is not "all"
    const tileSource = this.subscription.segment ? undefined : all;
    return html`
      <header>
        <h1>kpi-live</h1>
        <div class="ranges" role="group" aria-label="time range">
          ${RANGES.map(
            (r) =>
              html`<button aria-pressed=${String(r.ms === this.subscription.rangeMs)} @click=${() => this.#change({ ...this.subscription, rangeMs: r.ms })}>
                ${r.label}
              </button>`,
          )}
        </div>
        <label
          >Split by
          <select
            aria-label="segmentation"
            @change=${(e: Event) => {
              const value = (e.target as HTMLSelectElement).value as Dimension | '';
              const { segment: _old, ...rest } = this.subscription;
              this.#change(value ? { ...rest, segment: value } : rest);
            }}
          >
            ${SEGMENTS.map((s) => html`<option value=${s.value} ?selected=${(this.subscription.segment ?? '') === s.value}>${s.label}</option>`)}
          </select>
        </label>
        <span class="status" role="status">${this.#status()}</span>
      </header>
      ${
        this.live.connection === 'reconnecting'
          ? html`<div class="banner" role="alert">Connection to kpi-live lost: numbers are frozen until it is back.</div>`
          : nothing
      }
      ${
        answer && totalOf(answer) === 0
          ? html`<div class="empty">
              No sign-in dialogs in this window yet. Dialogs post to <code>POST /wsapi/interaction_data</code>; to see the dashboard move, run
              <code>npx kpi-live simulate --rate 50 --duration 300</code>.
            </div>`
          : nothing
      }
      <section class="tiles" aria-label="KPIs">
        ${TILE_KPIS.map((k) => {
          const value = tileSource ? k.value(tileSource.total) : null;
          return html`<kpi-tile
            data-kpi=${k.id}
            .label=${k.label}
            .value=${tileSource ? formatValue(value, k.format) : '–'}
            .change=${previousTotal && tileSource ? change(value, k.value(previousTotal)) : null}
            .good=${k.better}
            .points=${tileSource ? tileSource.points.map((p) => k.value(p.kpis)) : []}
          ></kpi-tile>`;
        })}
      </section>
      <section class="funnels">
        <kpi-funnel data-funnel="new-user" .heading=${'New-user funnel'} .steps=${all?.total.newUserFunnel ?? []}></kpi-funnel>
        <kpi-funnel data-funnel="password-reset" .heading=${'Password-reset funnel'} .steps=${all?.total.passwordResetFunnel ?? []}></kpi-funnel>
      </section>
      <section class="chart">
        <label
          >Chart
          <select aria-label="KPI to chart" @change=${(e: Event) => (this.chartKpi = (e.target as HTMLSelectElement).value)}>
            ${TILE_KPIS.map((k) => html`<option value=${k.id} ?selected=${k.id === chartKpi.id}>${k.label}</option>`)}
          </select>
        </label>
        <kpi-chart .answer=${answer} .kpi=${chartKpi} .deploys=${this.live.deploys}></kpi-chart>
      </section>
    `;
  }
}

customElements.define('kpi-dashboard', KpiDashboard);

declare global {
  interface HTMLElementTagNameMap {
    'kpi-dashboard': KpiDashboard;
  }
}
