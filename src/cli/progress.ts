/**
 * A one-line progress display for long CLI runs (simulate, rebuild, import,
 * export): done, total, rate and ETA. Redrawn in place on a terminal; on a
 * pipe or in CI, one plain line every few seconds instead.
 */
export interface ProgressOptions {
  label: string;
  /** Known total, for a bar and an ETA. */
  total?: number;
  unit?: string;
  stream?: NodeJS.WriteStream;
  /** Time source, ms (tests). */
  now?: () => number;
}

export class Progress {
  readonly #options: Required<Omit<ProgressOptions, 'total'>> & { total: number | undefined };
  readonly #started: number;
  #lastDraw = 0;
  #extra = '';

  constructor(options: ProgressOptions) {
    this.#options = { unit: 'items', stream: process.stderr, now: Date.now, total: undefined, ...options };
    this.#started = this.#options.now();
  }

  /** The line for `done` items so far. */
  line(done: number): string {
    const { label, total, unit } = this.#options;
    const seconds = Math.max((this.#options.now() - this.#started) / 1000, 1e-3);
    const rate = done / seconds;
    let text = `${label} ${done}${total !== undefined ? `/${total}` : ''} ${unit}, ${rate.toFixed(0)}/s, ${seconds.toFixed(0)} s`;
    if (total !== undefined && total > 0) {
      const share = Math.min(done / total, 1);
      const width = 20;
      const filled = Math.round(share * width);
      const eta = rate > 0 ? Math.max(total - done, 0) / rate : Infinity;
      text = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(share * 100).toFixed(0)}% ${text}, ETA ${Number.isFinite(eta) ? `${eta.toFixed(0)} s` : '?'}`;
    }
    return this.#extra ? `${text} ${this.#extra}` : text;
  }

  /** Extra text after the counters (e.g. accepted/rejected). */
  note(extra: string): void {
    this.#extra = extra;
  }

  /** Writes a line of its own (a warning, a refused item) without garbling the display. */
  log(text: string): void {
    const tty = this.#options.stream.isTTY === true;
    this.#options.stream.write(tty ? `\r\x1b[2K${text}\n` : `${text}\n`);
    if (tty) this.#lastDraw = 0; // redraw the line the text replaced
  }

  update(done: number): void {
    const now = this.#options.now();
    const tty = this.#options.stream.isTTY === true;
    if (now - this.#lastDraw < (tty ? 100 : 5000)) return;
    this.#lastDraw = now;
    this.#options.stream.write(tty ? `\r\x1b[2K${this.line(done)}` : `${this.line(done)}\n`);
  }

  finish(done: number): void {
    const tty = this.#options.stream.isTTY === true;
    this.#options.stream.write(tty ? `\r\x1b[2K${this.line(done)}\n` : `${this.line(done)}\n`);
  }
}
