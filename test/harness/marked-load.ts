/**
 * Dialog traffic whose every blob can be found again: realistic simulated
 * sessions, each carrying a unique marker in `rp_api`, posted one per request
 * by a few concurrent workers until stopped. Fault tests use it to check that
 * every acknowledged blob was stored, whatever happened to the service or the
 * store meanwhile, and how each request was answered.
 */
import { seededRandom, simulateSession } from '../../src/simulate/generator.js';

export interface MarkedLoadOptions {
  /** Base URL of kpi-live (read before each request: a restarted service may move). */
  url: () => string;
  concurrency: number;
  /** Marker prefix (at most ~40 characters: markers live in `rp_api`). */
  prefix: string;
  seed: number;
  /** A request not answered within this is counted as `timeout` (a hang). */
  timeoutMs: number;
  /** The workers stop by themselves once this many requests were sent (unbounded unless told). */
  maxRequests?: number;
}

export interface MarkedLoad {
  /** Markers of the blobs answered 200. */
  readonly acked: string[];
  /** Answers by HTTP status, plus `network` (no connection) and `timeout`. */
  readonly statuses: Record<string, number>;
  /** Retry-After values of the 503 answers, and how often each came. */
  readonly retryAfter: Record<string, number>;
  /** Longest time an answered request took, ms. */
  readonly slowestMs: number;
  /** Requests sent so far. */
  readonly sent: number;
  /** Ends the workers after the requests in flight are answered. */
  stop(): Promise<void>;
}

export function startMarkedLoad(options: MarkedLoadOptions): MarkedLoad {
  const random = seededRandom(options.seed);
  const acked: string[] = [];
  const statuses: Record<string, number> = {};
  const retryAfter: Record<string, number> = {};
  let slowestMs = 0;
  let sent = 0;
  let stopped = false;
  const count = (key: string) => (statuses[key] = (statuses[key] ?? 0) + 1);

  const worker = async () => {
    while (!stopped && sent < (options.maxRequests ?? Infinity)) {
      const marker = `${options.prefix}-${sent++}`;
      const { blob, userAgent } = simulateSession(random, { now: Date.now() });
      const started = Date.now();
      try {
        const res = await fetch(`${options.url()}/wsapi/interaction_data`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': userAgent },
          body: JSON.stringify({ data: [{ ...blob, rp_api: marker }] }),
          signal: AbortSignal.timeout(options.timeoutMs),
        });
        await res.arrayBuffer();
        slowestMs = Math.max(slowestMs, Date.now() - started);
        count(String(res.status));
        if (res.status === 200) acked.push(marker);
        if (res.status === 503) {
          const value = res.headers.get('retry-after') ?? 'none';
          retryAfter[value] = (retryAfter[value] ?? 0) + 1;
        }
      } catch (err) {
        if ((err as Error).name === 'TimeoutError') count('timeout');
        else {
          // no connection: the service is down or restarting
          count('network');
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
  };
  const workers = Array.from({ length: options.concurrency }, () => worker());

  return {
    acked,
    statuses,
    retryAfter,
    get slowestMs() {
      return slowestMs;
    },
    get sent() {
      return sent;
    },
    async stop() {
      stopped = true;
      await Promise.all(workers);
    },
  };
}
