import { LitElement, css, html, nothing } from 'lit';
import { controlStyles } from './styles.js';
import type { Threshold, ThresholdKey, Thresholds, Watched } from './model.js';

/** Why a save did not go through: the server's message and the field it names, if any. */
export interface SaveProblem {
  message: string;
  field?: string | undefined;
}

type Bound = 'min' | 'max';

/** A number as the editor shows it: percentages ×100, without float noise. */
const shown = (value: number | undefined, format: Watched['format']) =>
  value === undefined ? '' : String(Number((format === 'percent' ? value * 100 : value).toPrecision(12)));

/** The element focused now, looking into shadow roots. */
function deepActive(): HTMLElement | undefined {
  let active = document.activeElement;
  while (active?.shadowRoot?.activeElement) active = active.shadowRoot.activeElement;
  return active instanceof HTMLElement ? active : undefined;
}

/**
 * The alert threshold editor: a modal dialog with a minimum and a maximum
 * for every tile and every funnel step conversion (rates in %). Saving hands
 * the thresholds to `save`; a problem it returns (the server's 400) is shown
 * in the dialog, and the field it names is marked and focused. Escape or
 * Cancel closes it without saving; focus goes back where it was.
 */
export class KpiThresholds extends LitElement {
  static override properties = {
    thresholds: { attribute: false },
    watched: { attribute: false },
    current: { attribute: false },
    save: { attribute: false },
    draft: { state: true },
    problem: { state: true },
    saving: { state: true },
  };

  /** The thresholds in force. */
  declare thresholds: Thresholds;
  /** What can be watched, in order. */
  declare watched: Watched[];
  /** The values now, as shown on the page (a hint next to each row). */
  declare current: Partial<Record<ThresholdKey, string>>;
  /** Stores thresholds; resolves to a problem, or undefined once saved. */
  declare save: (thresholds: Thresholds) => Promise<SaveProblem | undefined>;
  declare draft: Partial<Record<ThresholdKey, { min: string; max: string }>>;
  declare problem: (SaveProblem & { key?: ThresholdKey; bound?: Bound }) | undefined;
  declare saving: boolean;
  #returnFocus: HTMLElement | undefined;

  constructor() {
    super();
    this.thresholds = {};
    this.watched = [];
    this.current = {};
    this.save = async () => undefined;
    this.draft = {};
    this.problem = undefined;
    this.saving = false;
  }

  static override styles = [
    controlStyles,
    css`
      dialog {
        background: var(--bg);
        color: var(--fg);
        border: 1px solid var(--line);
        border-radius: 8px;
        padding: 16px 20px;
        max-width: min(760px, 96vw);
        max-height: 90vh;
      }
      dialog::backdrop {
        background: rgb(0 0 0 / 45%);
      }
      h2 {
        margin: 0 0 6px;
        font-size: 1.15rem;
      }
      .help {
        color: var(--muted);
        margin: 0 0 10px;
        font-size: 0.9rem;
      }
      table {
        border-collapse: collapse;
        width: 100%;
        font-size: 0.9rem;
      }
      th,
      td {
        text-align: left;
        padding: 3px 6px;
        border-bottom: 1px solid var(--line);
      }
      th[scope='row'] {
        font-weight: 400;
      }
      tbody tr.group th {
        font-weight: 600;
        padding-top: 10px;
      }
      input {
        width: 7rem;
        padding: 3px 6px;
      }
      input[aria-invalid='true'] {
        border-color: var(--bad);
        box-shadow: 0 0 0 1px var(--bad);
      }
      .now {
        color: var(--muted);
        font-variant-numeric: tabular-nums;
      }
      .problem {
        color: var(--bad);
        font-weight: 600;
      }
      .actions {
        display: flex;
        gap: 8px;
        justify-content: flex-end;
        margin-top: 12px;
      }
      .actions button[type='submit'] {
        background: var(--s0);
        border-color: var(--s0);
        color: #fff;
      }
    `,
  ];

  get #dialog(): HTMLDialogElement | null {
    return this.renderRoot.querySelector('dialog');
  }

  /** Opens the editor with the thresholds in force, focused on one value's minimum (or the first). */
  async open(focusKey?: ThresholdKey): Promise<void> {
    this.#returnFocus = deepActive();
    this.draft = Object.fromEntries(
      this.watched.map((w) => {
        const t: Threshold = this.thresholds[w.key] ?? {};
        return [w.key, { min: shown(t.min, w.format), max: shown(t.max, w.format) }];
      }),
    );
    this.problem = undefined;
    await this.updateComplete;
    const dialog = this.#dialog!;
    if (!dialog.open) dialog.showModal();
    this.#input(focusKey ?? this.watched[0]?.key, 'min')?.focus();
  }

  get isOpen(): boolean {
    return this.#dialog?.open ?? false;
  }

  close(): void {
    this.#dialog?.close();
  }

  #input(key: ThresholdKey | undefined, bound: Bound): HTMLInputElement | null {
    const i = this.watched.findIndex((w) => w.key === key);
    return i < 0 ? null : this.renderRoot.querySelector<HTMLInputElement>(`#${bound}-${i}`);
  }

  #onClose(): void {
    this.problem = undefined;
    this.#returnFocus?.focus();
    this.#returnFocus = undefined;
  }

  /** The draft as thresholds, or the first problem with it. */
  #parse(): { thresholds: Thresholds } | { problem: SaveProblem & { key: ThresholdKey; bound: Bound } } {
    const thresholds: Thresholds = {};
    for (const w of this.watched) {
      const row = this.draft[w.key] ?? { min: '', max: '' };
      const t: Threshold = {};
      for (const bound of ['min', 'max'] as const) {
        const text = row[bound].trim();
        if (text === '') continue;
        const n = Number(text);
        if (!Number.isFinite(n))
          return { problem: { message: `${w.label}: the ${bound === 'min' ? 'minimum' : 'maximum'} is not a number.`, key: w.key, bound } };
        t[bound] = w.format === 'percent' ? n / 100 : n;
      }
      if (t.min !== undefined && t.max !== undefined && t.min > t.max)
        return { problem: { message: `${w.label}: the minimum is above the maximum.`, key: w.key, bound: 'min' } };
      if (t.min !== undefined || t.max !== undefined) thresholds[w.key] = t;
    }
    return { thresholds };
  }

  /** The input a server's field names (`thresholds.bounceRate.max`, …), if any. */
  #fieldOf(field: string | undefined): { key: ThresholdKey; bound: Bound } | undefined {
    if (!field) return undefined;
    for (const w of this.watched) {
      if (!field.includes(w.key)) continue;
      const rest = field.slice(field.indexOf(w.key) + w.key.length);
      // `new-user.step2` must not match a field about `new-user.step20`
      if (/^[0-9]/.test(rest)) continue;
      return { key: w.key, bound: rest.includes('max') ? 'max' : 'min' };
    }
    return undefined;
  }

  async #submit(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    if (this.saving) return;
    const parsed = this.#parse();
    if ('problem' in parsed) {
      this.problem = parsed.problem;
      await this.updateComplete;
      this.#input(parsed.problem.key, parsed.problem.bound)?.focus();
      return;
    }
    this.saving = true;
    const problem = await this.save(parsed.thresholds).finally(() => (this.saving = false));
    if (!problem) {
      this.close();
      return;
    }
    this.problem = { ...problem, ...this.#fieldOf(problem.field) };
    await this.updateComplete;
    if (this.problem.key) this.#input(this.problem.key, this.problem.bound ?? 'min')?.focus();
  }

  #row(w: Watched, i: number) {
    const row = this.draft[w.key] ?? { min: '', max: '' };
    const unit = w.format === 'percent' ? ' (%)' : '';
    const invalid = (bound: Bound) => (this.problem?.key === w.key && this.problem.bound === bound ? 'true' : 'false');
    const edit = (bound: Bound) => (e: Event) => (this.draft = { ...this.draft, [w.key]: { ...row, [bound]: (e.target as HTMLInputElement).value } });
    return html`<tr data-key=${w.key}>
      <th scope="row">${w.label}${unit}</th>
      ${(['min', 'max'] as const).map(
        (bound) =>
          html`<td>
            <label class="visually-hidden" for="${bound}-${i}">${w.label}: ${bound === 'min' ? 'minimum' : 'maximum'}${unit}</label>
            <input
              id="${bound}-${i}"
              type="number"
              step="any"
              inputmode="decimal"
              .value=${row[bound]}
              @input=${edit(bound)}
              aria-invalid=${invalid(bound)}
              aria-describedby=${invalid(bound) === 'true' ? 'problem' : nothing}
            />
          </td>`,
      )}
      <td class="now">${this.current[w.key] ?? '–'}</td>
    </tr>`;
  }

  override render() {
    return html`<dialog aria-labelledby="title" aria-describedby="help" @close=${() => this.#onClose()}>
      <form @submit=${(e: SubmitEvent) => this.#submit(e)} novalidate>
        <h2 id="title">Alert thresholds</h2>
        <p class="help" id="help">
          A tile or funnel step turns red, and says so, when its value is below the minimum or above the maximum. Leave a box empty for no bound. Funnel steps
          watch the conversion from the step before.
        </p>
        <table>
          <thead>
            <tr>
              <th scope="col">Value</th>
              <th scope="col">Minimum</th>
              <th scope="col">Maximum</th>
              <th scope="col">Now</th>
            </tr>
          </thead>
          <tbody>
            ${this.watched.map((w, i) => this.#row(w, i))}
          </tbody>
        </table>
        ${this.problem ? html`<p class="problem" id="problem" role="alert">${this.problem.message}</p>` : nothing}
        <div class="actions">
          <button type="button" @click=${() => this.close()}>Cancel</button>
          <button type="submit" ?disabled=${this.saving}>${this.saving ? 'Saving…' : 'Save'}</button>
        </div>
      </form>
    </dialog>`;
  }
}

customElements.define('kpi-thresholds', KpiThresholds);

declare global {
  interface HTMLElementTagNameMap {
    'kpi-thresholds': KpiThresholds;
  }
}
