import { retry, throwError, timer, type MonoTypeOperatorFunction, type SchedulerLike } from 'rxjs';

export interface BackoffOptions {
  /** First delay, ms. */
  initialMs: number;
  /** Largest delay, ms. */
  maxMs: number;
  /** Errors worth retrying; others go through at once. */
  shouldRetry?: (err: unknown) => boolean;
  /** Retries at most, then the error goes through (unset: no limit). */
  retries?: number;
  /** Told before each wait (for logs and health). */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  scheduler?: SchedulerLike;
}

/**
 * Resubscribes to the source after an error, waiting initialMs, 2×, 4×, …
 * up to maxMs between attempts; the count starts again after a success.
 * Errors `shouldRetry` refuses, and the one after the last of `retries`,
 * are passed on.
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
      const delayMs = Math.min(options.maxMs, options.initialMs * 2 ** (attempt - 1));
      options.onRetry?.(err, attempt, delayMs);
      return timer(delayMs, options.scheduler);
    },
  });
}
