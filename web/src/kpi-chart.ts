import { LitElement, css, html, nothing, unsafeCSS, type PropertyValues } from 'lit';
import uPlot from 'uplot';
import uplotCss from 'uplot/dist/uPlot.min.css?inline';
import { controlStyles } from './styles.js';
import { dimensionLabel, formatValue, OTHER, percentTicks, shortTime, TOP_SEGMENTS, type Deploy, type KpiAnswer, type TileKpi } from './model.js';

const PALETTE = ['--s0', '--s1', '--s2', '--s3', '--s4', '--s5', '--s6', '--s7'];

/** Detail of the `zoom` event: the window selected, ms. */
export interface ZoomDetail {
  from: number;
  to: number;
}

/**
 * A KPI over the window as a uPlot time series, one line per segment value
 * (the top values and `Other`, in grey), deploy markers as labelled vertical
 * lines; the legend follows the cursor. Dragging over the chart asks for a
 * closer look (`zoom`), which the dashboard answers with a finer answer;
 * double-click asks to go back (`zoom-reset`). Updates go through `setData`
 * at most once per animation frame; the chart is rebuilt only when its
 * series change. A visually hidden table gives the latest values in words.
 *
 * @fires zoom - a window was selected (detail: {@link ZoomDetail})
 * @fires zoom-reset - double-click: back to the whole window
 */
export class KpiChart extends LitElement {
  static override properties = { answer: { attribute: false }, kpi: { attribute: false }, deploys: { attribute: false } };

  declare answer: KpiAnswer | undefined;
  declare kpi: TileKpi | undefined;
  declare deploys: Deploy[];
  #plot: uPlot | undefined;
  #seriesKey = '';
  #frame = 0;
  #resize: ResizeObserver | undefined;

  constructor() {
    super();
    this.answer = undefined;
    this.kpi = undefined;
    this.deploys = [];
  }

  // uPlot's stylesheet goes into this shadow root: page styles do not reach it
  static override styles = [
    unsafeCSS(uplotCss),
    controlStyles,
    css`
      :host {
        display: block;
        position: relative;
      }
      .no-data {
        position: absolute;
        top: 110px;
        left: 0;
        right: 0;
        text-align: center;
        color: var(--muted);
        margin: 0;
        pointer-events: none;
      }
      .deploy-labels {
        list-style: none;
        margin: 4px 0 0;
        padding: 0;
        color: var(--muted);
        font-size: 0.8rem;
        display: flex;
        gap: 12px;
        flex-wrap: wrap;
      }
    `,
  ];

  override connectedCallback(): void {
    super.connectedCallback();
    this.#resize = new ResizeObserver(() => this.#plot?.setSize(this.#size()));
    this.#resize.observe(this);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.#resize?.disconnect();
    cancelAnimationFrame(this.#frame);
    this.#plot?.destroy();
    this.#plot = undefined;
    this.#seriesKey = '';
  }

  /** The time range drawn now, ms (undefined before the first draw). */
  get drawnRange(): { from: number; to: number } | undefined {
    const x = this.#plot?.scales.x;
    return x?.min == null || x.max == null ? undefined : { from: x.min * 1000, to: x.max * 1000 };
  }

  #size() {
    return { width: Math.max(300, this.clientWidth), height: 280 };
  }

  #data(): { names: string[]; data: uPlot.AlignedData } {
    const answer = this.answer;
    const kpi = this.kpi;
    if (!answer || !kpi) return { names: [], data: [[]] };
    // the dashboard asks for the top values and Other; any other answer is cut to as many lines
    const series = answer.series.slice(0, TOP_SEGMENTS + 1);
    // the window's ends as empty points: the time axis always spans the window shown (zoomed or not),
    // however few points hold data (one point alone would auto-range over years)
    const xs = [...new Set([answer.from, ...series.flatMap((s) => s.points.map((p) => p.start)), answer.to])].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const ys = series.map((s) => {
      const column: (number | null)[] = new Array(xs.length).fill(null);
      for (const p of s.points) column[index.get(p.start)!] = kpi.value(p.kpis);
      return column;
    });
    return { names: series.map((s) => s.segment), data: [xs.map((x) => x / 1000), ...ys] as uPlot.AlignedData };
  }

  protected override updated(changed: PropertyValues<this>): void {
    if (!changed.has('answer') && !changed.has('kpi') && !changed.has('deploys')) return;
    cancelAnimationFrame(this.#frame);
    this.#frame = requestAnimationFrame(() => this.#draw());
  }

  #draw(): void {
    const { names, data } = this.#data();
    // Many points: 1-px lines. Chromium paints wide canvas lines slowly without
    // a GPU (30 days of 10-minute buckets: ~75 ms a frame at 2 px, ~35 at 1 px).
    const thin = (data[0]?.length ?? 0) > 500;
    const key = `${this.kpi?.id}|${names.join('|')}|${thin}`;
    if (this.#plot && key === this.#seriesKey) {
      this.#plot.setData(data);
      return;
    }
    this.#plot?.destroy();
    this.#seriesKey = key;
    const style = getComputedStyle(this);
    const percent = this.kpi?.format === 'percent';
    const deploys = () => this.deploys;
    const colour = (name: string, i: number) =>
      style.getPropertyValue(name === OTHER ? '--s-other' : PALETTE[i % PALETTE.length]!).trim() || (name === OTHER ? '#8c959f' : '#0072b2');
    const options: uPlot.Options = {
      ...this.#size(),
      // a drag selects; the dashboard fetches that window at a finer bucket
      cursor: { drag: { x: true, y: false, setScale: false } },
      scales: { x: { time: true } },
      axes: [
        { stroke: style.getPropertyValue('--muted'), grid: { stroke: style.getPropertyValue('--line') } },
        {
          stroke: style.getPropertyValue('--muted'),
          grid: { stroke: style.getPropertyValue('--line') },
          values: (_u, ticks) => (percent ? percentTicks(ticks) : ticks.map(String)),
          // as wide as its longest label (63.25% needs more room than 60%)
          size: (u, values, axisIdx, cycle) => {
            const axis = u.axes[axisIdx]!;
            if (cycle > 1) return (axis as { _size?: number })._size ?? 50;
            const longest = (values ?? []).reduce((a, v) => (v.length > a.length ? v : a), '');
            // uPlot keeps an axis font as [css font scaled by the pixel ratio, size px, css size px] once drawn
            u.ctx.font = (axis.font as unknown as [string] | undefined)?.[0] ?? u.ctx.font;
            const text = longest ? u.ctx.measureText(longest).width / devicePixelRatio : 0;
            return Math.max(50, Math.ceil((axis.ticks?.size ?? 10) + (axis.gap ?? 5) + text));
          },
        },
      ],
      series: [
        {},
        ...names.map((name, i) => ({
          label: name,
          stroke: colour(name, i),
          // Other is dashed as well as grey: not told apart by colour alone
          ...(name === OTHER ? { dash: [6, 4] } : {}),
          width: thin ? 1 : 2,
          spanGaps: false,
          value: (_u: uPlot, v: number | null) => (v === null ? '–' : percent ? `${(v * 100).toFixed(1)}%` : v.toFixed(1)),
        })),
      ],
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width < 2) return;
            const from = u.posToVal(u.select.left, 'x') * 1000;
            const to = u.posToVal(u.select.left + u.select.width, 'x') * 1000;
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            this.dispatchEvent(new CustomEvent<ZoomDetail>('zoom', { detail: { from, to }, bubbles: true, composed: true }));
          },
        ],
        draw: [
          (u) => {
            const ctx = u.ctx;
            const [min, max] = [u.scales.x!.min!, u.scales.x!.max!];
            ctx.save();
            ctx.strokeStyle = style.getPropertyValue('--bad').trim() || '#cf222e';
            ctx.fillStyle = ctx.strokeStyle;
            ctx.setLineDash([5, 4]);
            ctx.font = `${12 * devicePixelRatio}px system-ui, sans-serif`;
            for (const d of deploys()) {
              const t = d.at / 1000;
              if (t < min || t > max) continue;
              const x = Math.round(u.valToPos(t, 'x', true));
              ctx.beginPath();
              ctx.moveTo(x, u.bbox.top);
              ctx.lineTo(x, u.bbox.top + u.bbox.height);
              ctx.stroke();
              ctx.fillText(d.version, x + 4, u.bbox.top + 14 * devicePixelRatio);
            }
            ctx.restore();
          },
        ],
      },
    };
    this.#plot = new uPlot(options, data, this.renderRoot.querySelector('.plot') as HTMLElement);
  }

  /** The chart in words: per line, its latest point and its value over the whole window. */
  #summary() {
    const answer = this.answer;
    const kpi = this.kpi;
    if (!answer || !kpi) return nothing;
    const { names } = this.#data();
    const series = names.map((name) => answer.series.find((s) => s.segment === name)!);
    const split = answer.segment ? ` by ${dimensionLabel(answer.segment)}` : '';
    return html`<table class="visually-hidden summary">
      <caption>
        ${kpi.label}${split}, ${shortTime(answer.from)} to ${shortTime(answer.to)}: latest point and whole window
      </caption>
      <thead>
        <tr>
          <th scope="col">${answer.segment ? dimensionLabel(answer.segment) : 'Series'}</th>
          <th scope="col">Latest point</th>
          <th scope="col">Value</th>
          <th scope="col">Whole window</th>
        </tr>
      </thead>
      <tbody>
        ${series.map((s) => {
          const last = s.points.at(-1);
          return html`<tr>
            <th scope="row">${s.segment}</th>
            <td>${last ? shortTime(last.start) : '–'}</td>
            <td>${last ? formatValue(kpi.value(last.kpis), kpi.format) : '–'}</td>
            <td>${formatValue(kpi.value(s.total), kpi.format)}</td>
          </tr>`;
        })}
      </tbody>
    </table>`;
  }

  override render() {
    // the labels of the markers drawn, for assistive technology (and tests)
    const visible = this.answer ? this.deploys.filter((d) => d.at >= this.answer!.from && d.at < this.answer!.to) : [];
    const kpi = this.kpi;
    const empty = !!this.answer && !!kpi && this.answer.series.every((s) => s.points.every((p) => kpi.value(p.kpis) === null));
    return html`<div
        class="plot"
        aria-hidden="true"
        @dblclick=${() => this.dispatchEvent(new CustomEvent('zoom-reset', { bubbles: true, composed: true }))}
      ></div>
      ${empty ? html`<p class="no-data">No ${kpi.label.toLowerCase()} to draw in this window.</p>` : nothing} ${this.#summary()}
      <ul class="deploy-labels" aria-label="deploy markers">
        ${visible.map((d) => html`<li data-deploy=${d.id}>${d.version} at ${new Date(d.at).toLocaleTimeString()}</li>`)}
      </ul>`;
  }
}

customElements.define('kpi-chart', KpiChart);

declare global {
  interface HTMLElementTagNameMap {
    'kpi-chart': KpiChart;
  }
}
