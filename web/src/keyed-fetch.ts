import type { ReactiveController, ReactiveControllerHost } from 'lit';

export interface KeyedFetchOptions<T> {
  /**
   * What the host needs now, as a string; read before each host update. A
   * new key starts a fetch (and aborts the one in flight); undefined needs
   * nothing and clears the value.
   */
  key: () => string | undefined;
  /**
   * Fetches what a key names: undefined when there is nothing (such as a
   * route this service lacks); a rejection keeps the value there is (a
   * failed poll does not blank the page).
   */
  fetch: (key: string, signal: AbortSignal) => Promise<T | undefined>;
  /** Fetch the same key again this often (ms), only while the page is visible. */
  refreshMs?: number;
  /** What it fetches, in words, for the page to say what failed (`the comparison`). */
  label?: string;
}

/**
 * A fetch that belongs to a host element's lifecycle: started when what it
 * depends on changes (its key), again every `refreshMs` while the page is
 * visible, aborted and stopped when the host leaves the page. The host is
 * updated when a value arrives.
 *
 * @example
 * readonly previous = new KeyedFetchController(this, {
 *   key: () => this.answer && `${this.answer.from}|${this.answer.to}`,
 *   fetch: (_key, signal) => getJson<KpiAnswer>(url, signal),
 * });
 * // in render(): this.previous.value, and this.previous.error when the last fetch failed
 *
 * Kept rather than `@lit/task`: a Task runs when its arguments change, but
 * does not poll, pause polling while the page is hidden, or keep the last
 * value while a failed poll is retried, which is what a live dashboard needs.
 */
/** A fetch that failed and is not polled is tried again after this long. */
export const RETRY_MS = 5000;

export class KeyedFetchController<T> implements ReactiveController {
  /** The latest value fetched, kept while a new key is being fetched. */
  value: T | undefined;
  /** The key `value` belongs to. */
  valueKey: string | undefined;
  /** Why the last fetch failed, until one succeeds; `value` is kept meanwhile. */
  error: string | undefined;
  #key: string | undefined;
  #abort: AbortController | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #connected = false;
  readonly #onVisibility = () => this.#schedule();

  constructor(
    private readonly host: ReactiveControllerHost,
    private readonly options: KeyedFetchOptions<T>,
  ) {
    host.addController(this);
  }

  hostConnected(): void {
    this.#connected = true;
    this.#key = undefined;
    document.addEventListener('visibilitychange', this.#onVisibility);
    this.#schedule();
    this.host.requestUpdate();
  }

  hostUpdate(): void {
    if (!this.#connected) return;
    const key = this.options.key();
    if (key === this.#key) return;
    this.#key = key;
    if (key === undefined) {
      this.#abort?.abort();
      this.value = undefined;
      this.valueKey = undefined;
      this.error = undefined;
      return;
    }
    this.#load(key);
  }

  hostDisconnected(): void {
    this.#connected = false;
    clearTimeout(this.#retry);
    this.#abort?.abort();
    this.#abort = undefined;
    clearInterval(this.#timer);
    this.#timer = undefined;
    document.removeEventListener('visibilitychange', this.#onVisibility);
  }

  /** Fetches the current key again now. */
  refresh(): void {
    if (this.#connected && this.#key !== undefined) this.#load(this.#key);
  }

  /** What it fetches, in words. */
  get label(): string | undefined {
    return this.options.label;
  }

  /** Takes a value known otherwise (the answer of a save), for the current key. */
  set(value: T | undefined): void {
    this.value = value;
    this.valueKey = this.#key;
    this.error = undefined;
    this.host.requestUpdate();
  }

  /** Polls only while connected and visible; coming back into view refreshes at once. */
  #schedule(): void {
    const every = this.options.refreshMs;
    if (every === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    if (!this.#connected || document.visibilityState === 'hidden') return;
    this.refresh();
    this.#timer = setInterval(() => this.refresh(), every);
  }

  #load(key: string): void {
    this.#abort?.abort();
    const abort = new AbortController();
    this.#abort = abort;
    this.options.fetch(key, abort.signal).then(
      (value) => {
        if (abort.signal.aborted) return;
        this.value = value;
        this.valueKey = key;
        this.error = undefined;
        clearTimeout(this.#retry); // a retry scheduled by an earlier failure is not needed any more
        this.host.requestUpdate();
      },
      (err: unknown) => {
        if (abort.signal.aborted) return;
        this.error = err instanceof Error ? err.message : String(err);
        this.host.requestUpdate();
        // what is not polled is tried again once after a while (a poll retries by itself)
        if (this.options.refreshMs === undefined) {
          clearTimeout(this.#retry);
          this.#retry = setTimeout(() => {
            if (this.#key === key) this.refresh();
          }, RETRY_MS);
        }
      },
    );
  }
}
