/**
 * The service's one backoff: the delays, and `retrying`'s rules (how many
 * tries, which errors, a wait the failure asks for, a stop that ends a wait).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelay, retrying } from '../src/retry.js';

/** A function that fails `failures` times with `error`, then answers 'ok'; counts its calls. */
function failing(failures: number, error: () => unknown = () => new Error('down')) {
  const calls: number[] = [];
  const fn = async (n: number) => {
    calls.push(n);
    if (calls.length <= failures) throw error();
    return 'ok';
  };
  return { fn, calls };
}

describe('backoffDelay', () => {
  it('doubles from the first delay up to the largest', () => {
    const backoff = { initialMs: 250, maxMs: 5000 };
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(n, backoff))).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000]);
  });

  it('with jitter, stays within [½, 1]× the plain delay (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.double({ min: 0, max: 0.999_999, noNaN: true }), (attempt, r) => {
        const backoff = { initialMs: 1000, maxMs: 30_000 };
        const plain = backoffDelay(attempt, backoff);
        const jittered = backoffDelay(attempt, { ...backoff, jitter: true }, () => r);
        expect(jittered).toBeGreaterThanOrEqual(plain / 2);
        expect(jittered).toBeLessThanOrEqual(plain);
      }),
    );
  });
});

describe('retrying', () => {
  const quick = { initialMs: 1, maxMs: 4 };

  it('answers once an attempt succeeds, telling each retry its number and wait', async () => {
    const { fn, calls } = failing(3);
    const told: [number, number][] = [];
    await expect(retrying(fn, { ...quick, onRetry: (_e, n, ms) => told.push([n, ms]) })).resolves.toBe('ok');
    expect(calls).toEqual([1, 2, 3, 4]);
    expect(told).toEqual([
      [1, 1],
      [2, 2],
      [3, 4],
    ]);
  });

  it('gives up after `retries` retries with the last error', async () => {
    const { fn, calls } = failing(10, () => new Error(`failure ${calls.length}`));
    await expect(retrying(fn, { ...quick, retries: 2 })).rejects.toThrow('failure 3');
    expect(calls).toHaveLength(3);
  });

  it('passes an error shouldRetry refuses at once', async () => {
    const { fn, calls } = failing(10, () => new TypeError('final'));
    await expect(retrying(fn, { ...quick, shouldRetry: (e) => !(e instanceof TypeError) })).rejects.toThrow('final');
    expect(calls).toHaveLength(1);
  });

  it('waits what the failure asks for (a Retry-After), capped at the largest delay', async () => {
    const { fn } = failing(2, () => Object.assign(new Error('busy'), { retryAfterMs: 60_000 }));
    const waits: number[] = [];
    await retrying(fn, { initialMs: 1, maxMs: 3, waitFor: (e) => (e as { retryAfterMs?: number }).retryAfterMs, onRetry: (_e, _n, ms) => waits.push(ms) });
    expect(waits).toEqual([3, 3]);
  });

  it('stops at once when its signal aborts, even in a long wait, with the last error', async () => {
    const stop = new AbortController();
    const { fn, calls } = failing(10);
    const running = retrying(fn, { initialMs: 600_000, maxMs: 600_000, signal: stop.signal, onRetry: () => setImmediate(() => stop.abort()) });
    await expect(running).rejects.toThrow('down');
    expect(calls).toHaveLength(1);
  });
});
