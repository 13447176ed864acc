/**
 * The service's one backoff: every retry loop of kpi-live waits
 * {@link backoffDelay} between attempts, through {@link retrying} (a promise),
 * {@link retryWithBackoff} (an RxJS source), or, where the loop itself must
 * stay (a generator that resumes a half-read page, a follower that runs for
 * the service's life), by calling {@link backoffDelay} and {@link sleep}.
 */
import { retry, throwError, timer, type MonoTypeOperatorFunction, type SchedulerLike } from 'rxjs';
import { sleep } from './sleep.js';

export interface Backoff {
  /** First delay, ms. */
  initialMs: number;
  /** Largest delay, ms. */
  maxMs: number;
  /** Spread each delay over [½, 1]× its value, so that many clients do not retry in step. */
  jitter?: boolean;
}

/**
 * The wait before retry `attempt` (1 for the first): initialMs, 2×, 4×, …
 * up to maxMs.
 *
 * @example
 * backoffDelay(3, { initialMs: 500, maxMs: 30_000 }); // 2000
 */
export function backoffDelay(attempt: number, backoff: Backoff, random: () => number = Math.random): number {
  const delayMs = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.max(0, attempt - 1));
  return backoff.jitter ? delayMs * (0.5 + random() / 2) : delayMs;
}

export interface RetryOptions extends Backoff {
  /** Retries at most, after the first attempt; then the error goes through (unset: no limit). */
  retries?: number;
  /** Errors worth retrying; others go through at once. */
  shouldRetry?: (err: unknown) => boolean;
  /** A wait the failure itself asks for (a `Retry-After`), instead of the backoff; capped at maxMs. */
  waitFor?: (err: unknown) => number | undefined;
  /** Told before each wait (for logs and health). */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Once aborted, nothing more is tried: the last error goes through (a wait ends at once). */
  signal?: AbortSignal;
}

/**
 * `attempt()`'s result, trying again after a failure as {@link RetryOptions} say.
 *
 * @example
 * const page = await retrying(() => fetchPage(url), { initialMs: 500, maxMs: 30_000, retries: 5, shouldRetry: isTransient });
 */
export async function retrying<T>(attempt: (n: number) => Promise<T>, options: RetryOptions): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      const last = (options.retries !== undefined && n > options.retries) || options.signal?.aborted;
      if (last || (options.shouldRetry && !options.shouldRetry(err))) throw err;
      const delayMs = Math.min(options.maxMs, options.waitFor?.(err) ?? backoffDelay(n, options));
      options.onRetry?.(err, n, delayMs);
      await sleep(delayMs, options.signal);
      if (options.signal?.aborted) throw err;
    }
  }
}

/** {@link RetryOptions} as an RxJS source takes them: unsubscribing stops it, and time comes from `scheduler`. */
export interface BackoffOptions extends Omit<RetryOptions, 'waitFor' | 'signal'> {
  scheduler?: SchedulerLike;
}

/**
 * Resubscribes to the source after an error, waiting {@link backoffDelay};
 * the count starts again after a success. Errors `shouldRetry` refuses, and
 * the one after the last of `retries`, are passed on.
 *
 * @example
 * defer(() => readChanges(since)).pipe(retryWithBackoff({ initialMs: 500, maxMs: 30_000, shouldRetry: isTransient }));
 */
export function retryWithBackoff<T>(options: BackoffOptions): MonoTypeOperatorFunction<T> {
  return retry({
    resetOnSuccess: true,
    ...(options.retries !== undefined ? { count: options.retries } : {}),
    delay: (err: unknown, attempt: number) => {
      if (options.shouldRetry && !options.shouldRetry(err)) return throwError(() => err);
      const delayMs = backoffDelay(attempt, options);
      options.onRetry?.(err, attempt, delayMs);
      return timer(delayMs, options.scheduler);
    },
  });
}
