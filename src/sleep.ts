/**
 * The service's one abortable wait: `ms`, or less when `signal` aborts. It
 * leaves no listener on `signal` behind either way, so a loop that waits on
 * a long-lived signal (the service's stop) for as long as the service runs
 * adds nothing to it.
 *
 * @example
 * await sleep(250, stopping.signal); // resolves after 250 ms, or at once on stop
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}
