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

/** A full garbage collection where node runs with --expose-gc (before reading memory). */
export const gc = (): void => (globalThis as { gc?: () => void }).gc?.();
