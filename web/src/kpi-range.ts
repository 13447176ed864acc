import { LitElement, css, html, nothing } from 'lit';
import { controlStyles } from './styles.js';
import { customRangeProblem, fromLocalInput, RANGES, roundRange, toLocalInput, type Range } from './model.js';

/**
 * The range picker: the last 1 h … 30 d (live), or a custom window between
 * two local times (datetime-local inputs), widened to whole 10-minute buckets.
 *
 * @fires range-change - a range was picked (detail: {@link Range})
 */
export class KpiRange extends LitElement {
  static override properties = { range: { attribute: false }, editing: { state: true }, problem: { state: true }, draft: { state: true } };

  declare range: Range;
  /** The custom form is open. */
  declare editing: boolean;
  /** Why the custom window given cannot be shown. */
  declare problem: string;
  /** What the custom inputs hold. */
  declare draft: { from: string; to: string };

  constructor() {
    super();
    this.range = { kind: 'last', ms: 6 * 3_600_000 };
    this.editing = false;
    this.problem = '';
    this.draft = { from: '', to: '' };
  }

  protected override willUpdate(changed: Map<PropertyKey, unknown>): void {
    // the inputs show the custom window in force, or start from the window shown
    if (changed.has('range') && this.range.kind === 'custom') this.draft = { from: toLocalInput(this.range.from), to: toLocalInput(this.range.to) };
  }

  static override styles = [
    controlStyles,
    css`
      :host {
        display: flex;
        flex-wrap: wrap;
        gap: 8px;
        align-items: center;
      }
      .presets {
        display: flex;
      }
      .presets button {
        border-radius: 0;
        margin-left: -1px;
      }
      .presets button:first-child {
        border-radius: 4px 0 0 4px;
      }
      .presets button:last-child {
        border-radius: 0 4px 4px 0;
      }
      .presets button:focus-visible {
        position: relative;
        z-index: 1;
      }
      form {
        display: flex;
        flex-wrap: wrap;
        gap: 8px;
        align-items: center;
      }
      form[hidden] {
        display: none;
      }
      label {
        display: inline-flex;
        gap: 4px;
        align-items: center;
      }
      .problem {
        color: var(--bad);
        font-weight: 600;
        margin: 0;
      }
    `,
  ];

  #pick(range: Range): void {
    this.problem = '';
    this.dispatchEvent(new CustomEvent<Range>('range-change', { detail: range, bubbles: true, composed: true }));
  }

  async #toggleCustom(): Promise<void> {
    if (this.editing && this.range.kind === 'last') {
      this.editing = false;
      this.problem = '';
      return;
    }
    if (!this.editing && this.range.kind === 'last') {
      const now = Date.now();
      this.draft = { from: toLocalInput(now - this.range.ms), to: toLocalInput(now) };
    }
    this.editing = true;
    await this.updateComplete;
    this.renderRoot.querySelector<HTMLInputElement>('input[name="from"]')?.focus();
  }

  #apply(event: SubmitEvent): void {
    event.preventDefault();
    const [from, to] = [fromLocalInput(this.draft.from), fromLocalInput(this.draft.to)];
    const rounded = roundRange(from, to);
    const problem = Number.isNaN(from) || Number.isNaN(to) ? 'Give a start and an end.' : customRangeProblem(rounded.from, rounded.to);
    if (problem) {
      this.problem = problem;
      return;
    }
    this.#pick({ kind: 'custom', ...rounded });
  }

  override render() {
    const range = this.range;
    const custom = range.kind === 'custom';
    const open = this.editing || custom;
    const invalid = this.problem ? 'true' : 'false';
    const edit = (name: 'from' | 'to') => (e: Event) => (this.draft = { ...this.draft, [name]: (e.target as HTMLInputElement).value });
    return html`
      <div class="presets" role="group" aria-label="Time range">
        ${RANGES.map(
          (r) =>
            html`<button
              type="button"
              aria-pressed=${String(range.kind === 'last' && range.ms === r.ms)}
              @click=${() => {
                this.editing = false;
                this.#pick({ kind: 'last', ms: r.ms });
              }}
            >
              ${r.label}
            </button>`,
        )}
        <button
          type="button"
          class="custom"
          aria-pressed=${String(custom)}
          aria-expanded=${String(open)}
          aria-controls="custom"
          @click=${() => this.#toggleCustom()}
        >
          Custom
        </button>
      </div>
      <form id="custom" ?hidden=${!open} @submit=${(e: SubmitEvent) => this.#apply(e)} aria-label="Custom time range" novalidate>
        <label>From <input type="datetime-local" name="from" .value=${this.draft.from} @input=${edit('from')} required aria-invalid=${invalid} /></label>
        <label>To <input type="datetime-local" name="to" .value=${this.draft.to} @input=${edit('to')} required aria-invalid=${invalid} /></label>
        <button type="submit">Show</button>
        ${this.problem ? html`<p class="problem" role="alert">${this.problem}</p>` : nothing}
      </form>
    `;
  }
}

customElements.define('kpi-range', KpiRange);

declare global {
  interface HTMLElementTagNameMap {
    'kpi-range': KpiRange;
  }
}
