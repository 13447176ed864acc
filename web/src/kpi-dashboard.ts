import { LitElement, css, html, nothing } from 'lit';
import type { Dimension } from '../../src/aggregate/kpi-types.js';
import { getJson } from './api.js';
import './kpi-chart.js';
import './kpi-compare.js';
import './kpi-funnel.js';
import './kpi-tile.js';
import { LiveController } from './live-controller.js';
import {
  breached,
  change,
  formatValue,
  RANGES,
  subscriptionFromUrl,
  subscriptionToUrl,
  TILE_KPIS,
  type Deploy,
  type FunnelStep,
  type KpiAnswer,
  type Subscription,
  type Thresholds,
} from './model.js';

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

/** A count over the window as a count per hour (to compare with the hour before a deploy). */
const perHour = (value: number | null, answer: KpiAnswer) => (value === null ? null : value / ((answer.to - answer.from) / 3_600_000));

/**
 * The dashboard: KPI tiles, funnels and a time series, live from
 * `/api/live`, for the range and segmentation in the URL.
 */
export class KpiDashboard extends LitElement {
  static override properties = {
    chartKpi: { state: true },
    previous: { state: true },
    beforeDeploy: { state: true },
    thresholds: { state: true },
    compareMode: { state: true },
    comparison: { state: true },
  };

  declare chartKpi: string;
  /** Totals of the period before the window (for the change on each tile). */
  declare previous: KpiAnswer | undefined;
  /** Totals of the hour before the latest deploy in the window. */
  declare beforeDeploy: { deploy: Deploy; answer: KpiAnswer } | undefined;
  declare thresholds: Thresholds;
  declare compareMode: 'deploy' | 'day';
  declare comparison: { baseline: FunnelStep[]; current: FunnelStep[]; labels: [string, string] } | undefined;
  subscription: Subscription = subscriptionFromUrl(location.search);
  readonly live = new LiveController(this, () => this.subscription);
  #clock: ReturnType<typeof setInterval> | undefined;
  #previousFor = '';

  constructor() {
    super();
    this.chartKpi = 'bounceRate';
    this.previous = undefined;
    this.beforeDeploy = undefined;
    this.thresholds = {};
    this.compareMode = 'deploy';
    this.comparison = undefined;
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
    :host([tv]) {
      max-width: none;
      font-size: 1.4rem;
    }
    :host([tv]) .ranges,
    :host([tv]) label {
      display: none;
    }
    :host([tv]) .tiles {
      grid-template-columns: repeat(auto-fill, minmax(260px, 1fr));
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
    this.toggleAttribute('tv', new URLSearchParams(location.search).get('tv') === '1');
    void getJson<{ thresholds: Thresholds }>('/api/settings').then((s) => (this.thresholds = s?.thresholds ?? {}));
    // the "updated … ago" line and the reconnect countdown move every second;
    // the comparison is refreshed every 10 s
    let tick = 0;
    this.#clock = setInterval(() => {
      if (++tick % 10 === 0) void this.#compare();
      this.requestUpdate();
    }, 1000);
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

  /** The latest deploy marker inside the window, if any. */
  #latestDeploy(answer: KpiAnswer | undefined): Deploy | undefined {
    if (!answer) return undefined;
    return this.live.deploys.filter((d) => d.at >= answer.from && d.at < answer.to).at(-1);
  }

  #fetchBeforeDeploy(deploy: Deploy | undefined): void {
    if (!deploy || this.beforeDeploy?.deploy.id === deploy.id) return;
    void getJson<KpiAnswer>(`/api/kpis?from=${deploy.at - 3_600_000}&to=${deploy.at}&bucket=10m`).then((answer) => {
      if (answer) this.beforeDeploy = { deploy, answer };
    });
  }

  /** The comparison made: before/after the latest deploy needs a deploy marker. */
  #effectiveCompareMode(): 'deploy' | 'day' {
    return this.compareMode === 'deploy' && this.live.deploys.length > 0 ? 'deploy' : 'day';
  }

  /** The new-user funnel of two windows: before/after the latest deploy, or yesterday/today. */
  async #compare(): Promise<void> {
    const now = Date.now();
    const deploy = this.live.deploys.at(-1);
    let windows: [number, number, number, number];
    let labels: [string, string];
    if (this.#effectiveCompareMode() === 'deploy' && deploy) {
      const span = Math.max(600_000, Math.min(now - deploy.at, 86_400_000));
      windows = [deploy.at - span, deploy.at, deploy.at, now];
      labels = [`before ${deploy.version}`, `after ${deploy.version}`];
    } else {
      windows = [now - 2 * 86_400_000, now - 86_400_000, now - 86_400_000, now];
      labels = ['yesterday', 'last 24 h'];
    }
    const funnel = (from: number, to: number) =>
      getJson<{ series: { steps: FunnelStep[] }[] }>(`/api/funnels/new-user?from=${Math.floor(from)}&to=${Math.ceil(to) + 1}`).then(
        (a) => a?.series[0]?.steps ?? [],
      );
    const [baseline, current] = await Promise.all([funnel(windows[0], windows[1]), funnel(windows[2], windows[3])]);
    this.comparison = { baseline, current, labels };
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
    const deploy = this.#latestDeploy(answer);
    this.#fetchBeforeDeploy(deploy);
    if (!this.comparison && answer) void this.#compare();
    const beforeDeployTotal = deploy && this.beforeDeploy?.deploy.id === deploy.id ? this.beforeDeploy.answer.series[0]?.total : undefined;
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
            .against=${beforeDeployTotal ? deploy!.version : ''}
            .deployChange=${beforeDeployTotal && tileSource && answer ? change(k.format === 'count' ? perHour(value, answer) : value, k.value(beforeDeployTotal)) : null}
            ?breached=${breached(value, this.thresholds[k.id])}
            .points=${tileSource ? tileSource.points.map((p) => k.value(p.kpis)) : []}
          ></kpi-tile>`;
        })}
      </section>
      <section class="funnels">
        <kpi-funnel data-funnel="new-user" .heading=${'New-user funnel'} .steps=${all?.total.newUserFunnel ?? []}></kpi-funnel>
        <kpi-funnel data-funnel="password-reset" .heading=${'Password-reset funnel'} .steps=${all?.total.passwordResetFunnel ?? []}></kpi-funnel>
        <div>
          <label
            >Compare
            <select
              aria-label="comparison"
              @change=${(e: Event) => {
                this.compareMode = (e.target as HTMLSelectElement).value as 'deploy' | 'day';
                void this.#compare();
              }}
            >
              <option value="deploy" ?selected=${this.#effectiveCompareMode() === 'deploy'} ?disabled=${this.live.deploys.length === 0}>
                before / after the latest deploy${this.live.deploys.length === 0 ? ' (no deploy yet)' : ''}
              </option>
              <option value="day" ?selected=${this.#effectiveCompareMode() === 'day'}>yesterday / last 24 h</option>
            </select>
          </label>
          <kpi-compare
            .heading=${'New-user funnel compared'}
            .beforeLabel=${this.comparison?.labels[0] ?? ''}
            .afterLabel=${this.comparison?.labels[1] ?? ''}
            .baseline=${this.comparison?.baseline ?? []}
            .current=${this.comparison?.current ?? []}
          ></kpi-compare>
        </div>
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
