import { LitElement, css, html, nothing } from 'lit';
import type { PublicAnswer } from '../../src/public/answer.js';
import type { PublicKpis, PublicStep } from '../../src/public/suppress.js';
import { tableStyles } from './styles.js';

const pct = (v: number | null) => (v === null ? '—' : `${(v * 100).toFixed(1)}%`);
const num = (v: number | null) => (v === null ? '—' : v.toLocaleString('en-US'));
const hour = (t: number) => new Date(t).toISOString().slice(0, 16).replace('T', ' ');
const day = (t: number) => new Date(t).toISOString().slice(0, 10);

/**
 * The public view: the sign-in dialog's KPIs for anyone, from
 * `/api/public/kpis` (no number resting on fewer than the minimum count of
 * dialogs; withheld ones show "—"), and what is collected and kept, said
 * plainly, with a link to the full privacy text. Times are UTC.
 */
export class KpiPublic extends LitElement {
  static override properties = {
    hourly: { state: true },
    daily: { state: true },
    failed: { state: true },
  };

  declare hourly: PublicAnswer | undefined;
  declare daily: PublicAnswer | undefined;
  declare failed: string | undefined;

  constructor() {
    super();
    this.hourly = undefined;
    this.daily = undefined;
    this.failed = undefined;
  }

  static override styles = [
    tableStyles,
    css`
      :host {
        display: block;
        max-width: 1100px;
        margin: 0 auto;
        padding: 16px;
        color: var(--fg);
      }
      h1 {
        font-size: 1.4rem;
        margin: 0 0 4px;
      }
      .muted {
        color: var(--muted);
      }
      .tiles {
        display: grid;
        grid-template-columns: repeat(auto-fill, minmax(150px, 1fr));
        gap: 12px;
        margin: 16px 0;
      }
      .tile {
        background: var(--card);
        border: 1px solid var(--line);
        border-radius: 8px;
        padding: 10px 12px;
      }
      .tile .value {
        font-size: 1.6rem;
        font-weight: 700;
      }
      .grid {
        display: grid;
        grid-template-columns: repeat(auto-fit, minmax(300px, 1fr));
        gap: 12px;
      }
      section.card {
        background: var(--card);
        border: 1px solid var(--line);
        border-radius: 8px;
        padding: 12px 14px;
        margin-bottom: 12px;
        overflow-x: auto;
      }
      table {
        font-size: 0.9rem;
      }
      h2 {
        font-size: 1.05rem;
        margin: 0 0 8px;
      }
      a {
        color: var(--focus);
      }
    `,
  ];

  override connectedCallback(): void {
    super.connectedCallback();
    void this.#load();
  }

  async #load(): Promise<void> {
    try {
      const get = async (bucket: string) => {
        const res = await fetch(`/api/public/kpis?bucket=${bucket}`, { headers: { accept: 'application/json' } });
        if (!res.ok) throw new Error(`the public view answered ${res.status}`);
        return (await res.json()) as PublicAnswer;
      };
      [this.hourly, this.daily] = await Promise.all([get('1h'), get('1d')]);
    } catch (err) {
      this.failed = (err as Error).message;
    }
  }

  #tiles(k: PublicKpis | undefined) {
    const tiles: [string, string][] = [
      ['Dialogs', num(k?.dialogs ?? null)],
      ['New users', num(k?.newUsers ?? null)],
      ['Bounce rate', pct(k?.bounceRate ?? null)],
      ['Password-reset success', pct(k?.passwordResetSuccess ?? null)],
      ['Additional-email share', pct(k?.additionalEmailShare ?? null)],
      ['Error-screen rate', pct(k?.errorScreenRate ?? null)],
      ['Median sites logged in', num(k?.sitesLoggedInMedian ?? null)],
    ];
    return html`<div class="tiles" role="list">
      ${tiles.map(
        ([label, value]) =>
          html`<div class="tile" role="listitem">
            <div class="muted">${label}</div>
            <div class="value">${value}</div>
          </div>`,
      )}
    </div>`;
  }

  #funnel(title: string, steps: PublicStep[]) {
    return html`<section class="card" aria-label=${title}>
      <h2>${title}</h2>
      <table>
        <thead>
          <tr>
            <th scope="col">Step</th>
            <th scope="col">Dialogs</th>
            <th scope="col">From the step before</th>
          </tr>
        </thead>
        <tbody>
          ${steps.map(
            (s) =>
              html`<tr>
                <td>${s.step}. ${s.name}</td>
                <td>${num(s.count)}</td>
                <td>${s.step === 1 ? '' : pct(s.conversionFromPrevious)}</td>
              </tr>`,
          )}
        </tbody>
      </table>
    </section>`;
  }

  #series(title: string, answer: PublicAnswer | undefined, time: (t: number) => string) {
    const points = [...(answer?.points ?? [])].reverse();
    return html`<section class="card" aria-label=${title}>
      <h2>${title}</h2>
      ${
        points.length === 0
          ? html`<p class="muted">Nothing to show yet.</p>`
          : html`<table>
              <thead>
                <tr>
                  <th scope="col">From (UTC)</th>
                  <th scope="col">Dialogs</th>
                  <th scope="col">New users</th>
                  <th scope="col">Bounce rate</th>
                  <th scope="col">Password-reset success</th>
                </tr>
              </thead>
              <tbody>
                ${points.map(
                  (p) =>
                    html`<tr>
                      <td>${time(p.start)}</td>
                      <td>${num(p.kpis.dialogs)}</td>
                      <td>${num(p.kpis.newUsers)}</td>
                      <td>${pct(p.kpis.bounceRate)}</td>
                      <td>${pct(p.kpis.passwordResetSuccess)}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
    </section>`;
  }

  #disclosure(min: number | undefined) {
    return html`<section class="card" aria-labelledby="what-is-collected">
      <h2 id="what-is-collected">What the sign-in dialog sends, and what is kept</h2>
      <p>
        When the dialog closes it sends one record of that session: which screens it showed and how many milliseconds after opening, the browser's language,
        screen size and family and major version of browser and operating system, how many email addresses and recently used sites the account has, whether it
        is new, and which site API opened it. The time is kept rounded down to 10 minutes; no IP address, cookie, referrer, email address or full browser string
        is kept.
      </p>
      <p>
        Records are kept for 90 days (by default) and then deleted; what is shown here are totals computed from them, which hold no single session. Nothing on
        this page rests on fewer than ${min ?? 20} dialogs: smaller groups show "—". A browser that sends <code>DNT: 1</code> (Do Not Track) or
        <code>Sec-GPC: 1</code> (Global Privacy Control) is answered and nothing of it is stored.
      </p>
      <p><a href="/public/privacy">The full privacy text</a> says what each field is for, who may read the records, and for how long.</p>
    </section>`;
  }

  override render() {
    const latest = this.hourly?.points.at(-1);
    return html`
      <header>
        <h1>Sign-in dialog KPIs: public view</h1>
        <p class="muted">
          ${latest ? html`The latest settled hour, from ${hour(latest.start)} UTC.` : nothing} Times are UTC; hours are shown an hour after they end, no finer
          than an hour.
        </p>
      </header>
      ${this.failed ? html`<p role="alert">Could not load the public view: ${this.failed}.</p>` : nothing}
      <main>
        ${this.#tiles(latest?.kpis)}
        <div class="grid">
          ${latest ? this.#funnel('New-user funnel, latest hour', latest.kpis.newUserFunnel) : nothing}
          ${latest ? this.#funnel('Password-reset funnel, latest hour', latest.kpis.passwordResetFunnel) : nothing}
        </div>
        ${
          this.hourly?.deploys.length
            ? html`<section class="card" aria-label="Deploys">
                <h2>Deploys</h2>
                <ul>
                  ${this.hourly.deploys.map((d) => html`<li>${hour(d.at)} UTC: <strong>${d.version}</strong>${d.note ? ` (${d.note})` : ''}</li>`)}
                </ul>
              </section>`
            : nothing
        }
        ${this.#series('Hour by hour, the last 48 hours', this.hourly, hour)} ${this.#series('Day by day, the 30 days before', this.daily, day)}
        ${this.#disclosure(this.hourly?.minCount)}
      </main>
    `;
  }
}

customElements.define('kpi-public', KpiPublic);

declare global {
  interface HTMLElementTagNameMap {
    'kpi-public': KpiPublic;
  }
}
