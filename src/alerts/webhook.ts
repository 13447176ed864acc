/**
 * Delivers alert transitions to the webhook, one JSON POST each, in order,
 * off the aggregate's path: `send` only queues and returns.
 *
 * - Each attempt has a timeout; a network error, a timeout, 408, 429 or a
 *   5xx is retried with capped exponential backoff (with jitter), up to a
 *   bounded number of attempts. Any other answer outside 2xx is final.
 * - The queue is bounded: when the receiver is down for long, the oldest
 *   waiting transitions are dropped and counted, so memory stays flat.
 * - The URL is a secret (a chat webhook carries its key in the path): it is
 *   never logged nor put in an error; logs name its origin at most.
 */
import type { Log } from '../log.js';
import { retrying } from '../retry.js';
import type { WebhookEvent, WebhookStatus } from './types.js';

export interface WebhookOptions {
  /** The receiver's URL (a secret). */
  url: string;
  log: Log;
  /** Timeout of one attempt. */
  timeoutMs?: number;
  /** Attempts per transition, the first included. */
  maxAttempts?: number;
  /** Wait before the first retry; doubles each time up to `maxBackoffMs`. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Transitions waiting at most; beyond it the oldest is dropped. */
  maxQueue?: number;
  /** Replaces the global fetch (tests). */
  fetch?: typeof fetch;
}

/** True for a URL a webhook can be posted to (http: or https:). Says nothing else of it: it is a secret. */
export function isWebhookUrl(raw: string): boolean {
  try {
    const url = new URL(raw);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

/** The origin of a URL, the most of it that may be logged. */
export function urlOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '[unparseable url]';
  }
}

/** Why an attempt failed, without anything of the URL: an HTTP status or an error code. */
function failureOf(err: unknown): string {
  const e = err as { name?: string; cause?: { code?: unknown } };
  if (e.name === 'TimeoutError') return 'timeout';
  if (typeof e.cause?.code === 'string') return e.cause.code;
  return e.name ?? 'error';
}

const retryable = (status: number) => status === 408 || status === 429 || status >= 500;

/** An attempt that did not deliver: why, and whether another attempt may. */
class DeliveryFailed extends Error {
  constructor(
    readonly outcome: string,
    readonly final: boolean,
  ) {
    super(outcome);
  }
}

/**
 * @example
 * const webhook = new WebhookSender({ url: config.alertWebhookUrl, log });
 * webhook.send({ kind: 'breached', key: 'bounceRate', value: 0.74, bound: 'max', limit: 0.7, windowMs: 3_600_000, at: Date.now(), service: 'kpi-live' });
 * await webhook.close(2000);
 */
export class WebhookSender {
  readonly origin: string;
  readonly #url: string;
  readonly #log: Log;
  readonly #timeoutMs: number;
  readonly #maxAttempts: number;
  readonly #backoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #maxQueue: number;
  readonly #fetch: typeof fetch;
  readonly #queue: WebhookEvent[] = [];
  readonly #stop = new AbortController();
  #inFlight = 0;
  #pump: Promise<void> | undefined;
  #stats = { delivered: 0, failed: 0, dropped: 0 };

  constructor(options: WebhookOptions) {
    this.#url = options.url;
    this.origin = urlOrigin(options.url);
    this.#log = options.log;
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#maxAttempts = options.maxAttempts ?? 6;
    this.#backoffMs = options.backoffMs ?? 1000;
    this.#maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.#maxQueue = options.maxQueue ?? 100;
    this.#fetch = options.fetch ?? fetch;
  }

  get status(): WebhookStatus {
    return { queued: this.#queue.length + this.#inFlight, ...this.#stats };
  }

  /** Queues one transition (or a deploy's broken verdict); never waits. */
  send(event: WebhookEvent): void {
    if (this.#stop.signal.aborted) return;
    this.#queue.push(event);
    while (this.#queue.length > this.#maxQueue) {
      const dropped = this.#queue.shift()!;
      this.#stats.dropped++;
      this.#log.warn(
        { webhook: this.origin, key: dropped.key, kind: dropped.kind, dropped: this.#stats.dropped },
        'alert webhook queue full: dropped the oldest transition',
      );
    }
    this.#pump ??= this.#run().finally(() => (this.#pump = undefined));
  }

  /**
   * Stops: the transition being sent gets up to `graceMs` to finish; what is
   * still waiting after that is dropped (and logged).
   */
  async close(graceMs = 2000): Promise<void> {
    const pump = this.#pump;
    if (pump) await Promise.race([pump, new Promise((r) => setTimeout(r, graceMs).unref())]);
    this.#stop.abort();
    await this.#pump;
    if (this.#queue.length > 0) {
      this.#stats.dropped += this.#queue.length;
      this.#log.warn({ webhook: this.origin, dropped: this.#queue.length }, 'alert webhook transitions not sent before shutdown');
      this.#queue.length = 0;
    }
  }

  async #run(): Promise<void> {
    while (this.#queue.length > 0 && !this.#stop.signal.aborted) {
      const event = this.#queue.shift()!;
      this.#inFlight = 1;
      try {
        await this.#deliver(event);
      } finally {
        this.#inFlight = 0;
      }
    }
  }

  async #deliver(event: WebhookEvent): Promise<void> {
    const where = { webhook: this.origin, key: event.key, kind: event.kind };
    const body = JSON.stringify(event);
    const attempt = async (n: number) => {
      let res: Response;
      try {
        res = await this.#fetch(this.#url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'kpi-live' },
          body,
          redirect: 'error',
          signal: AbortSignal.any([this.#stop.signal, AbortSignal.timeout(this.#timeoutMs)]),
        });
      } catch (err) {
        throw new DeliveryFailed(failureOf(err), false);
      }
      await res.body?.cancel().catch(() => undefined);
      if (!res.ok) throw new DeliveryFailed(`HTTP ${res.status}`, !retryable(res.status));
      this.#stats.delivered++;
      this.#log.info({ ...where, attempt: n }, 'alert webhook delivered');
    };
    let attempts = 0;
    try {
      await retrying((n) => attempt((attempts = n)), {
        initialMs: this.#backoffMs,
        maxMs: this.#maxBackoffMs,
        jitter: true,
        retries: this.#maxAttempts - 1,
        shouldRetry: (err) => !(err as DeliveryFailed).final,
        signal: this.#stop.signal,
        onRetry: (err, n, delayMs) =>
          this.#log.warn({ ...where, attempt: n, failure: (err as DeliveryFailed).outcome, retryInMs: Math.round(delayMs) }, 'alert webhook failed; retrying'),
      });
    } catch (err) {
      const { outcome, final } = err as DeliveryFailed;
      this.#stats.failed++;
      this.#log.error({ ...where, attempt: attempts, failure: outcome }, final ? 'alert webhook refused the transition' : 'alert webhook unreachable: gave up');
    }
  }
}
