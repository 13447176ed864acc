import { LitElement, css, html, nothing } from 'lit';
import type { ThresholdsBody } from '../../src/alerts/types.js';
import type { CheckState } from '../../src/contract/verdict.js';
import { isIngestStats, type IngestStats } from '../../src/contract/ingest.js';
import { getIfPresent, loadSession, request, type SessionInfo } from './api.js';
import './kpi-chart.js';
import type { ZoomDetail } from './kpi-chart.js';
import './kpi-compare.js';
import './kpi-deploy.js';
import './kpi-funnel.js';
import type { StepStatus } from './kpi-funnel.js';
import './kpi-range.js';
import './kpi-thresholds.js';
import type { KpiThresholds, SaveProblem } from './kpi-thresholds.js';
import './kpi-tile.js';
import { KeyedFetchController } from './keyed-fetch.js';
import { LiveController } from './live-controller.js';
import { controlStyles } from './styles.js';
import {
  breached,
  breachedAlerts,
  breachText,
  bucketForRange,
  bucketWords,
  change,
  formatValue,
  FUNNELS,
  hhmm,
  kpisUrl,
  rangeEnded,
  SEGMENTS,
  shortTime,
  stepKey,
  subscriptionOf,
  sumFunnels,
  TILE_KPIS,
  TOP_SEGMENTS,
  viewFromUrl,
  viewToUrl,
  watchedValues,
  zoomRange,
  zoomStep,
  type AlertsBody,
  type Deploy,
  type Dimension,
  type KpiAnswer,
  type KpiSeries,
  type Kpis,
  type Range,
  type ThresholdKey,
  type Thresholds,
  type View,
} from './model.js';

/** A count over the window as a count per hour (to compare with the hour before a deploy). */
const perHour = (value: number | null, answer: KpiAnswer) => (value === null ? null : value / ((answer.to - answer.from) / 3_600_000));

/** Two windows' totals for the funnel comparisons. */
interface Comparison {
  labels: [string, string];
  baseline: Kpis | undefined;
  current: Kpis | undefined;
  /** The deploy whose arrivals `current` holds, when it is since a deploy. */
  sinceDeploy?: string;
}

/** The thresholds in force, and whether this service lets them be edited (it has `PUT /api/thresholds`). */
interface ThresholdsInForce {
  thresholds: Thresholds;
  editable: boolean;
}

/** What one render of the dashboard shows, derived once (see `#frame`). */
interface Frame {
  answer: KpiAnswer | undefined;
  /** What the tiles show: the whole population (the answer's exact overall when split). */
  tileSource: KpiSeries | undefined;
  /** The previous period of the same length, once fetched. */
  previousTotal: Kpis | undefined;
  deploy: Deploy | undefined;
  /** The hour before the latest deploy, once fetched for it. */
  beforeDeployTotal: Kpis | undefined;
  thresholds: Thresholds;
  alerts: ReturnType<typeof breachedAlerts>;
  funnels: (Omit<(typeof FUNNELS)[number], 'steps'> & { steps: ReturnType<typeof sumFunnels> })[];
  /** Each watched value as shown, for the thresholds editor. */
  current: Partial<Record<ThresholdKey, string>>;
  /** The zoomed answer while zoomed and fetched, else the live one. */
  chartAnswer: KpiAnswer | undefined;
  canEdit: boolean;
}

/** The thresholds from `/api/thresholds`, or, on a service without it, the configured ones of `/api/settings` (read-only). */
async function loadThresholds(signal: AbortSignal, settings: (signal: AbortSignal) => Promise<Settings | undefined>): Promise<ThresholdsInForce | undefined> {
  const stored = await getIfPresent<ThresholdsBody>('/api/thresholds', signal);
  if (stored) return { thresholds: stored.thresholds ?? {}, editable: true };
  const configured = await settings(signal);
  return configured ? { thresholds: configured.thresholds ?? {}, editable: false } : undefined;
}

/** `GET /api/settings`: the service's configuration as the dashboard needs it (fixed while the service runs). */
interface Settings {
  thresholds?: Thresholds;
  /** The service has a public view (its page says what is collected). */
  publicView?: boolean;
}

/** Everything a threshold can watch, as the editor lists it. */
const WATCHED = watchedValues(FUNNELS);

/**
 * The dashboard: KPI tiles, funnels, comparisons and a time series, live
 * from `/api/live`, for the range and segmentation in the URL. Everything it
 * fetches over HTTP is a {@link KeyedFetchController}: fetched when what it
 * depends on changes, polled while the page is visible, stopped when the
 * dashboard leaves the page.
 */
export class KpiDashboard extends LitElement {
  static override properties = {
    chartKpi: { state: true },
    compareMode: { state: true },
    zoom: { state: true },
  };

  declare chartKpi: string;
  declare compareMode: 'deploy' | 'day';
  /** The chart's closer look, ms; undefined for the whole window. */
  declare zoom: ZoomDetail | undefined;
  view: View = viewFromUrl(location.search);
  readonly live = new LiveController(this, () => subscriptionOf(this.view));

  readonly session = new KeyedFetchController<SessionInfo>(this, { key: () => 'session', fetch: (_key, signal) => loadSession(signal) });

  /** Totals of the period before the window (for the change on each tile; tiles show the whole population, split or not). */
  readonly previous = new KeyedFetchController<KpiAnswer>(this, {
    label: 'the period before',
    key: () => {
      const a = this.live.answer;
      return a ? kpisUrl({ from: a.from - (a.to - a.from), to: a.from, bucket: a.bucket }) : undefined;
    },
    fetch: (url, signal) => getIfPresent<KpiAnswer>(url, signal),
  });

  /** Totals of the hour before the latest deploy in the window. */
  readonly beforeDeploy = new KeyedFetchController<KpiAnswer>(this, {
    label: 'the hour before the deploy',
    key: () => this.#beforeDeployUrl(),
    fetch: (url, signal) => getIfPresent<KpiAnswer>(url, signal),
  });

  /** Both funnels in two windows: before/after the latest deploy, or yesterday/the last 24 h; refreshed every 10 s. */
  readonly comparison = new KeyedFetchController<Comparison>(this, {
    label: 'the funnel comparison',
    // a recent deploy's comparison is fetched again as its arrivals grow (the stream's verdict says when)
    key: () =>
      this.live.answer ? `${this.#effectiveCompareMode()}|${this.live.deploys.at(-1)?.id ?? ''}|${this.live.verdict?.dialogs.after ?? ''}` : undefined,
    fetch: (_key, signal) => this.#compare(signal),
    refreshMs: 10_000,
  });

  /** Whether the service has a public view, whose page says what is collected (the footer links it). */
  readonly settings = new KeyedFetchController<Settings>(this, {
    label: 'the settings',
    key: () => 'settings',
    fetch: (_key, signal) => this.#loadSettings(signal),
  });
  /** The settings, asked for once a page (they are configuration) by the footer and, without /api/thresholds, the thresholds. */
  #settings: Promise<Settings | undefined> | undefined;
  #loadSettings(signal: AbortSignal): Promise<Settings | undefined> {
    this.#settings ??= getIfPresent<Settings>('/api/settings', signal).catch((err: unknown) => {
      this.#settings = undefined; // asked again next time
      throw err;
    });
    return this.#settings;
  }

  readonly thresholds = new KeyedFetchController<ThresholdsInForce>(this, {
    label: 'the thresholds',
    key: () => 'thresholds',
    fetch: (_key, signal) => loadThresholds(signal, (signal) => this.#loadSettings(signal)),
    refreshMs: 60_000,
  });

  /** The server's alert states, every 15 s; none on a service without `/api/alerts`. */
  readonly alerts = new KeyedFetchController<AlertsBody>(this, {
    label: 'the alerts',
    key: () => 'alerts',
    fetch: (_key, signal) => getIfPresent<AlertsBody>('/api/alerts', signal),
    refreshMs: 15_000,
  });

  readonly ingestStats = new KeyedFetchController<IngestStats>(this, {
    label: 'the ingest counts',
    key: () => 'ingest-stats',
    fetch: async (_key, signal) => {
      const stats = await getIfPresent<unknown>('/api/ingest-stats', signal);
      return isIngestStats(stats) ? stats : undefined;
    },
    refreshMs: 60_000,
  });

  /** The chart's zoomed window at the bucket the service would pick for it. */
  readonly zoomed = new KeyedFetchController<KpiAnswer>(this, {
    label: 'the zoomed chart',
    key: () => this.#zoomUrl(),
    fetch: (url, signal) => getIfPresent<KpiAnswer>(url, signal),
  });

  #clock: ReturnType<typeof setInterval> | undefined;
  readonly #save = (thresholds: Thresholds) => this.#saveThresholds(thresholds);

  constructor() {
    super();
    this.chartKpi = 'bounceRate';
    this.compareMode = 'deploy';
    this.zoom = undefined;
  }

  static override styles = [
    controlStyles,
    css`
      :host {
        display: block;
        padding: 16px 20px;
        max-width: 1400px;
        margin: 0 auto;
      }
      header {
        display: flex;
        flex-wrap: wrap;
        gap: 10px 16px;
        align-items: center;
        margin-bottom: 12px;
      }
      h1 {
        font-size: 1.3rem;
        margin: 0 4px 0 0;
      }
      h2 {
        font-size: 1.05rem;
        margin: 0 0 8px;
      }
      .status {
        margin-left: auto;
        color: var(--muted);
        font-size: 0.85rem;
      }
      .account {
        display: flex;
        gap: 8px;
        align-items: center;
        color: var(--muted);
        font-size: 0.85rem;
      }
      .account form {
        margin: 0;
      }
      .account strong {
        color: var(--fg);
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
      .deploy {
        margin-bottom: 12px;
      }
      .tiles {
        display: grid;
        grid-template-columns: repeat(auto-fill, minmax(160px, 1fr));
        gap: 12px;
      }
      .funnels {
        display: grid;
        grid-template-columns: repeat(auto-fit, minmax(420px, 1fr));
        gap: 12px;
        margin: 12px 0;
      }
      .comparisons {
        margin: 12px 0;
      }
      .compare-controls {
        display: flex;
        flex-wrap: wrap;
        gap: 8px 16px;
        align-items: baseline;
        margin-bottom: 8px;
      }
      .compare-controls h2 {
        margin: 0;
      }
      .compare-grid {
        display: grid;
        grid-template-columns: repeat(auto-fit, minmax(420px, 1fr));
        gap: 12px;
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
      .chart-controls {
        display: flex;
        flex-wrap: wrap;
        gap: 8px 12px;
        align-items: center;
        margin-bottom: 8px;
      }
      .zoom {
        display: flex;
        gap: 4px;
      }
      .zoom-note {
        color: var(--muted);
        font-size: 0.85rem;
      }
      footer {
        margin-top: 16px;
        color: var(--muted);
        font-size: 0.85rem;
      }
      footer p {
        margin: 4px 0;
      }
      :host([tv]) {
        max-width: none;
        font-size: 1.4rem;
      }
      :host([tv]) .controls,
      :host([tv]) .account,
      :host([tv]) .chart-controls {
        display: none;
      }
      :host([tv]) .tiles {
        grid-template-columns: repeat(auto-fill, minmax(260px, 1fr));
      }
    `,
  ];

  override connectedCallback(): void {
    super.connectedCallback();
    this.toggleAttribute('tv', new URLSearchParams(location.search).get('tv') === '1');
    // the "updated … ago" line and the reconnect countdown move every second
    this.#clock = setInterval(() => this.requestUpdate(), 1000);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    clearInterval(this.#clock);
  }

  #change(next: View): void {
    this.view = next;
    history.replaceState(null, '', viewToUrl(next, location.search));
    this.zoom = undefined;
    this.live.resubscribe();
    this.requestUpdate();
  }

  /** The latest deploy marker inside the window, if any. */
  #latestDeploy(): Deploy | undefined {
    const answer = this.live.answer;
    if (!answer) return undefined;
    return this.live.deploys.filter((d) => d.at >= answer.from && d.at < answer.to).at(-1);
  }

  #beforeDeployUrl(): string | undefined {
    const deploy = this.#latestDeploy();
    return deploy ? kpisUrl({ from: deploy.at - 3_600_000, to: deploy.at, bucket: '10m' }) : undefined;
  }

  /** The comparison made: before/after the latest deploy needs a deploy marker. */
  #effectiveCompareMode(): 'deploy' | 'day' {
    return this.compareMode === 'deploy' && this.live.deploys.length > 0 ? 'deploy' : 'day';
  }

  async #compare(signal: AbortSignal): Promise<Comparison> {
    const now = Date.now();
    const deploy = this.live.deploys.at(-1);
    let windows: [number, number, number, number];
    let labels: [string, string];
    if (this.#effectiveCompareMode() === 'deploy' && deploy) {
      // the dialogs that arrived since the deploy, exactly, against its verdict's baseline (kept for 7 days)
      const arrivals = await getIfPresent<{ after: Kpis; baseline: Kpis }>(`/api/deploys/${encodeURIComponent(deploy.id)}/arrivals`, signal).catch(
        () => undefined,
      );
      if (arrivals) return { labels: ['baseline', `since ${deploy.version}`], baseline: arrivals.baseline, current: arrivals.after, sinceDeploy: deploy.id };
    }
    // windows are [from, to); the current one ends just after now, so that it holds the bucket now is in
    if (this.#effectiveCompareMode() === 'deploy' && deploy) {
      const span = Math.max(600_000, Math.min(now - deploy.at, 86_400_000));
      windows = [deploy.at - span, deploy.at, deploy.at, now + 1];
      labels = [`before ${deploy.version}`, `after ${deploy.version}`];
    } else {
      windows = [now - 2 * 86_400_000, now - 86_400_000, now - 86_400_000, now + 1];
      labels = ['yesterday', 'last 24 h'];
    }
    // one answer per window holds both funnels
    const totals = (from: number, to: number) =>
      getIfPresent<KpiAnswer>(kpisUrl({ from: Math.floor(from), to: Math.ceil(to), bucket: '1d' }), signal).then((a) => a?.series[0]?.total);
    const [baseline, current] = await Promise.all([totals(windows[0], windows[1]), totals(windows[2], windows[3])]);
    return { labels, baseline, current };
  }

  #zoomUrl(): string | undefined {
    if (!this.zoom) return undefined;
    const { from, to } = this.zoom;
    return kpisUrl({ from, to, bucket: bucketForRange(to - from), segment: this.view.segment ?? null, ...(this.view.segment ? { top: TOP_SEGMENTS } : {}) });
  }

  /** The window the chart may zoom within: the one shown. */
  #window(): { from: number; to: number } | undefined {
    const a = this.live.answer;
    return a ? { from: a.from, to: a.to } : undefined;
  }

  #zoomTo(selection: ZoomDetail): void {
    const within = this.#window();
    if (within) this.zoom = zoomRange(selection.from, selection.to, within);
  }

  #zoomStep(step: 'in' | 'earlier' | 'later'): void {
    const within = this.#window();
    if (within) this.zoom = zoomStep(this.zoom ?? within, step, within);
  }

  async #saveThresholds(thresholds: Thresholds): Promise<SaveProblem | undefined> {
    const { status, body } = await request<ThresholdsBody & { message?: string; field?: string }>('PUT', '/api/thresholds', { body: { thresholds } });
    if (status === 200 && body?.thresholds) {
      this.thresholds.set({ thresholds: body.thresholds, editable: true });
      this.alerts.refresh();
      return undefined;
    }
    if (status === 0) return { message: 'Could not save: kpi-live did not answer. Try again.' };
    if (status === 401) return { message: 'Your session has ended: sign in again.' };
    return { message: body?.message ?? `kpi-live refused the thresholds (${status}).`, field: body?.field };
  }

  #openThresholds(): void {
    void this.renderRoot.querySelector<KpiThresholds>('kpi-thresholds')?.open();
  }

  #status() {
    const live = this.live;
    if (live.connection === 'live') {
      const age = Math.max(0, Math.round((Date.now() - live.lastUpdate) / 1000));
      const what = rangeEnded(this.view.range) ? 'past window' : 'live';
      return html`<span class="dot"></span><span role="status">${what}</span> · updated ${age} s ago`;
    }
    if (live.connection === 'reconnecting') {
      const wait = Math.max(0, Math.ceil((live.retryAt - Date.now()) / 1000));
      return html`<span class="dot off"></span><span role="status">reconnecting</span> in ${wait} s (attempt ${live.attempt})`;
    }
    if (live.connection === 'signed-out') return html`<span class="dot off"></span><span role="status">signed out</span>`;
    return html`<span class="dot off"></span><span role="status">connecting…</span>`;
  }

  #account() {
    const session = this.session.value;
    if (!session) return nothing;
    const who = session.kind === 'session' && session.user ? html`Signed in as <strong>${session.user}</strong>` : html`Local access (loopback)`;
    return html`<div class="account">
      <span>${who}</span>
      ${
        session.kind === 'session'
          ? html`<form method="post" action="/logout">
              <button type="submit">Sign out</button>
            </form>`
          : nothing
      }
    </div>`;
  }

  /** What could not be fetched (the panels keep their last numbers and retry). */
  #failing() {
    const failed = [this.previous, this.beforeDeploy, this.comparison, this.thresholds, this.alerts, this.ingestStats, this.zoomed].filter(
      (c) => c.error !== undefined,
    );
    if (failed.length === 0) return nothing;
    return html`<div class="banner fetch-errors" role="status">
      Could not load ${failed.map((c) => c.label).join(', ')} (${failed[0]!.error}); showing the last numbers, retrying.
    </div>`;
  }

  #footer() {
    const stats = this.ingestStats.value;
    const publicView = this.settings.value?.publicView === true;
    if (!stats && !publicView) return nothing;
    const n = stats?.optedOut ?? 0;
    return html`<footer>
      ${
        stats
          ? html`<p class="opt-outs">
              ${n.toLocaleString('en-US')} ${n === 1 ? 'request' : 'requests'} not stored (Do Not Track / GPC opt-out) since ${shortTime(stats.since)}
            </p>`
          : nothing
      }
      ${publicView ? html`<p class="public-link"><a href="/public">What is collected and kept, and the public view of these KPIs</a></p>` : nothing}
    </footer>`;
  }

  /** What one render shows, derived once from the live answer and the fetched panels. */
  #frame(): Frame {
    const answer = this.live.answer;
    const previous = this.previous.value;
    // with a segmentation, tiles show the whole population from the answer's
    // exact overall (no sparkline there: points are per segment value)
    const all = answer?.series.find((s) => s.segment === 'all');
    const tileSource: KpiSeries | undefined = this.view.segment ? (answer?.overall ? { segment: 'all', total: answer.overall, points: [] } : undefined) : all;
    const deploy = this.#latestDeploy();
    const zoomUrl = this.#zoomUrl();
    const session = this.session.value;
    const thresholds = this.thresholds.value?.thresholds ?? {};
    // funnels over every series: the whole population, split or not
    const funnels = FUNNELS.map((f) => ({ ...f, steps: answer ? sumFunnels(answer.series.map((s) => s.total[f.field])) : [] }));
    const current: Partial<Record<ThresholdKey, string>> = {};
    for (const k of TILE_KPIS) if (tileSource) current[k.id] = formatValue(k.value(tileSource.total), k.format);
    for (const f of funnels) for (const s of f.steps.slice(1)) current[stepKey(f.id, s.step)] = formatValue(s.conversionFromPrevious, 'percent');
    return {
      answer,
      tileSource,
      // the previous period of the same length (it trails the window by up to 10 minutes while refetched)
      previousTotal: previous && answer && previous.to - previous.from === answer.to - answer.from ? previous.series[0]?.total : undefined,
      deploy,
      beforeDeployTotal: deploy && this.beforeDeploy.valueKey === this.#beforeDeployUrl() ? this.beforeDeploy.value?.series[0]?.total : undefined,
      thresholds,
      alerts: breachedAlerts(this.alerts.value),
      funnels,
      current,
      chartAnswer: zoomUrl && this.zoomed.valueKey === zoomUrl && this.zoomed.value ? this.zoomed.value : answer,
      canEdit: !!this.thresholds.value?.editable && (session?.kind === 'session' || session?.kind === 'loopback'),
    };
  }

  #header(frame: Frame) {
    return html`<header>
      <h1>kpi-live</h1>
      <kpi-range
        class="controls"
        .range=${this.view.range}
        @range-change=${(e: CustomEvent<Range>) => this.#change({ ...this.view, range: e.detail })}
      ></kpi-range>
      <label class="controls"
        >Split by
        <select
          @change=${(e: Event) => {
            const value = (e.target as HTMLSelectElement).value as Dimension | '';
            const { segment: _old, ...rest } = this.view;
            this.#change(value ? { ...rest, segment: value } : rest);
          }}
        >
          ${SEGMENTS.map((s) => html`<option value=${s.value} ?selected=${(this.view.segment ?? '') === s.value}>${s.label}</option>`)}
        </select>
      </label>
      ${frame.canEdit ? html`<button type="button" class="controls edit-thresholds" @click=${() => this.#openThresholds()}>Thresholds…</button>` : nothing}
      <span class="status">${this.#status()}</span>
      ${this.#account()}
    </header>`;
  }

  /** Says why a window shows nothing, and how to make it move. */
  #empty(answer: KpiAnswer | undefined) {
    if (!answer || answer.series.reduce((n, s) => n + s.total.dialogs, 0) > 0) return nothing;
    if (rangeEnded(this.view.range)) return html`<div class="empty">No sign-in dialogs in this window.</div>`;
    return html`<div class="empty">
      No sign-in dialogs in this window yet. Dialogs post to <code>POST /wsapi/interaction_data</code>; to see the dashboard move, run
      <code>npx kpi-live simulate --rate 50 --duration 300</code>.
    </div>`;
  }

  /** The latest deploy's verdict while it is recent: what the paged engineer looks at first. */
  #deployPanel() {
    const verdict = this.live.verdict;
    return verdict ? html`<kpi-deploy class="deploy" .verdict=${verdict} .now=${Date.now()}></kpi-deploy>` : nothing;
  }

  #tiles({ answer, tileSource, previousTotal, deploy, beforeDeployTotal, thresholds, alerts }: Frame) {
    // while a deploy is recent, tiles compare the dialogs since it with its verdict's baseline
    const verdict = this.live.verdict;
    return html`<section class="tiles" aria-label="KPIs">
      ${TILE_KPIS.map((k) => {
        const value = tileSource ? k.value(tileSource.total) : null;
        const threshold = thresholds[k.id];
        const check = verdict?.checks.find((c) => c.key === k.id);
        return html`<kpi-tile
          data-kpi=${k.id}
          .label=${k.label}
          .value=${tileSource ? formatValue(value, k.format) : '–'}
          .estimate=${k.format === 'count' && !!tileSource?.total.sampled}
          .change=${previousTotal && tileSource ? change(value, k.value(previousTotal)) : null}
          .good=${k.better}
          .against=${check ? verdict!.deploy.version : beforeDeployTotal ? deploy!.version : ''}
          .deployBasis=${check ? 'baseline' : 'hour-before'}
          .deployChange=${
            check
              ? check.relativeEffect
              : beforeDeployTotal && tileSource && answer
                ? change(k.format === 'count' ? perHour(value, answer) : value, k.value(beforeDeployTotal))
                : null
          }
          ?breached=${breached(value, threshold)}
          .breach=${breachText(value, threshold, k.format)}
          .alertSince=${alerts.get(k.id)?.since}
          .points=${tileSource ? tileSource.points.map((p) => k.value(p.kpis)) : []}
        ></kpi-tile>`;
      })}
    </section>`;
  }

  #funnels({ funnels, thresholds, alerts }: Frame) {
    return html`<section class="funnels" aria-label="Funnels">
      ${funnels.map((f) => {
        const status: Record<number, StepStatus> = {};
        for (const s of f.steps.slice(1)) {
          const key = stepKey(f.id, s.step);
          status[s.step] = { breach: breachText(s.conversionFromPrevious, thresholds[key], 'percent'), alertSince: alerts.get(key)?.since };
        }
        return html`<kpi-funnel data-funnel=${f.id} .heading=${f.label} .steps=${f.steps} .status=${status}></kpi-funnel>`;
      })}
    </section>`;
  }

  /** Each step's state in the latest deploy's verdict, when the comparison is since that deploy. */
  #stepVerdicts(funnel: string, comparison: Comparison | undefined): Record<number, CheckState> | undefined {
    const verdict = this.live.verdict;
    if (!verdict || !comparison?.sinceDeploy || comparison.sinceDeploy !== verdict.deploy.id) return undefined;
    const states: Record<number, CheckState> = {};
    for (const c of verdict.checks) {
      const match = /^(.+)\.step(\d+)$/.exec(c.key);
      if (match && match[1] === funnel) states[Number(match[2])] = c.state;
    }
    return states;
  }

  #comparisons() {
    const comparison = this.comparison.value;
    const noDeploy = this.live.deploys.length === 0;
    const mode = this.#effectiveCompareMode();
    return html`<section class="comparisons" aria-labelledby="compare-heading">
      <div class="compare-controls">
        <h2 id="compare-heading">Funnels compared</h2>
        <label class="controls"
          >Compare
          <select
            aria-label="comparison"
            @change=${(e: Event) => {
              this.compareMode = (e.target as HTMLSelectElement).value as 'deploy' | 'day';
            }}
          >
            <option value="deploy" ?selected=${mode === 'deploy'} ?disabled=${noDeploy}>
              before / after the latest deploy${noDeploy ? ' (no deploy yet)' : ''}
            </option>
            <option value="day" ?selected=${mode === 'day'}>yesterday / last 24 h</option>
          </select>
        </label>
      </div>
      <div class="compare-grid">
        ${FUNNELS.map(
          (f) =>
            html`<kpi-compare
              data-funnel=${f.id}
              .heading=${`${f.label} compared`}
              .beforeLabel=${comparison?.labels[0] ?? ''}
              .afterLabel=${comparison?.labels[1] ?? ''}
              .baseline=${comparison?.baseline?.[f.field] ?? []}
              .current=${comparison?.current?.[f.field] ?? []}
              .verdicts=${this.#stepVerdicts(f.id, comparison)}
            ></kpi-compare>`,
        )}
      </div>
    </section>`;
  }

  #chart({ answer, chartAnswer }: Frame) {
    const chartKpi = TILE_KPIS.find((k) => k.id === this.chartKpi) ?? TILE_KPIS[0]!;
    return html`<section class="chart" aria-labelledby="chart-heading">
      <div class="chart-controls">
        <h2 id="chart-heading" class="visually-hidden">Time series</h2>
        <label
          >Chart
          <select @change=${(e: Event) => (this.chartKpi = (e.target as HTMLSelectElement).value)}>
            ${TILE_KPIS.map((k) => html`<option value=${k.id} ?selected=${k.id === chartKpi.id}>${k.label}</option>`)}
          </select>
        </label>
        <div class="zoom" role="group" aria-label="Chart zoom">
          <button type="button" @click=${() => this.#zoomStep('in')} ?disabled=${!answer}>Zoom in</button>
          <button type="button" @click=${() => this.#zoomStep('earlier')} ?disabled=${!this.zoom}>Earlier</button>
          <button type="button" @click=${() => this.#zoomStep('later')} ?disabled=${!this.zoom}>Later</button>
          <button type="button" class="reset-zoom" @click=${() => (this.zoom = undefined)} ?disabled=${!this.zoom}>Reset zoom</button>
        </div>
        <span class="zoom-note" aria-live="polite"
          >${
            this.zoom
              ? `Zoomed to ${shortTime(this.zoom.from)}–${hhmm(this.zoom.to)}, ${bucketWords(bucketForRange(this.zoom.to - this.zoom.from))} points (not live)`
              : 'Drag across the chart to zoom'
          }</span
        >
      </div>
      <kpi-chart
        .answer=${chartAnswer}
        .kpi=${chartKpi}
        .deploys=${this.live.deploys}
        @zoom=${(e: CustomEvent<ZoomDetail>) => this.#zoomTo(e.detail)}
        @zoom-reset=${() => (this.zoom = undefined)}
      ></kpi-chart>
    </section>`;
  }

  override render() {
    const frame = this.#frame();
    return html`
      ${this.#header(frame)}
      ${
        this.live.connection === 'reconnecting'
          ? html`<div class="banner" role="alert">Connection to kpi-live lost: numbers are frozen until it is back.</div>`
          : nothing
      }
      ${this.#failing()}
      <main>
        ${this.#empty(frame.answer)} ${this.#deployPanel()} ${this.#tiles(frame)} ${this.#funnels(frame)} ${this.#comparisons()} ${this.#chart(frame)}
      </main>
      ${this.#footer()}
      <kpi-thresholds .thresholds=${frame.thresholds} .watched=${WATCHED} .current=${frame.current} .save=${this.#save}></kpi-thresholds>
    `;
  }
}

customElements.define('kpi-dashboard', KpiDashboard);

declare global {
  interface HTMLElementTagNameMap {
    'kpi-dashboard': KpiDashboard;
  }
}
