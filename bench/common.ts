/** Small pieces every benchmark uses. */

/** A positive integer knob from the environment (BENCH_*), or the fallback. */
export function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return value;
}

/** How a target is reported: printed, never asserted. */
export const verdict = (ok: boolean): 'PASS' | 'MISS' => (ok ? 'PASS' : 'MISS');

/**
 * Headless Chromium as the dashboard's render benchmark and its real-browser
 * test launch it: the Debian package's binary (or CHROMIUM_PATH), without
 * the sandbox (CI runs as root), the GPU or any background traffic.
 */
export const CHROMIUM_LAUNCH = {
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
};

/** A full garbage collection where node runs with --expose-gc (before reading memory). */
export const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

// autocannon ships no types and none are installed: only what is used here.
export interface AutocannonRequestData {
  body?: string;
  headers: Record<string, string>;
}
export interface AutocannonOptions {
  url: string;
  method: 'POST';
  headers: Record<string, string>;
  requests: { setupRequest: (request: AutocannonRequestData) => AutocannonRequestData }[];
  connections: number;
  duration: number;
  /** Seconds before a request counts as a timeout. */
  timeout: number;
  /** Requests per second over all connections (open loop), when set. */
  overallRate?: number;
}
export interface AutocannonResult {
  /** Seconds from start to the last sample. */
  duration: number;
  '2xx': number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodeStats: Record<string, { count: number }>;
  latency: { p50: number; p99: number };
}
export type Autocannon = ((options: AutocannonOptions) => Promise<AutocannonResult>) & {
  /** Turns raw results (what a run gives off the main thread) into a summary. */
  aggregateResult(results: unknown[], options: AutocannonOptions): AutocannonResult;
};

/** One pre-serialised request: a body and the browser it claims to be. */
export interface PooledRequest {
  body: string;
  userAgent: string;
}

/** One load run, summed up. */
export interface RunStats {
  seconds: number;
  ok: number;
  /** Non-2xx answers, connection errors and timeouts. */
  failed: number;
  failures: string;
  p50Ms: number;
  p99Ms: number;
  /** 2xx answers per second. */
  blobsPerSec: number;
}

/** A run's summary from autocannon's result: failures by status, errors and timeouts. */
export function statsOf(result: AutocannonResult): RunStats {
  const failures = Object.entries(result.statusCodeStats)
    .filter(([code]) => !code.startsWith('2'))
    .map(([code, { count }]) => `${code}×${count}`);
  if (result.errors > 0) failures.push(`errors×${result.errors}`);
  if (result.timeouts > 0) failures.push(`timeouts×${result.timeouts}`);
  return {
    seconds: result.duration,
    ok: result['2xx'],
    failed: result.non2xx + result.errors + result.timeouts,
    failures: failures.join(' '),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    blobsPerSec: result['2xx'] / result.duration,
  };
}
