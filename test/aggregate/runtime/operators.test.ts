/**
 * Marble tests of the pipeline's timing: checkpoint trigger, backoff, and the
 * feed's pull-based backpressure and cancellation; what a `_changes` read
 * that runs out of time means.
 */
import { defer, of, throwError } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { checkpointTrigger } from '../../../src/aggregate/runtime/checkpoint-trigger.js';
import { couchChangesReader, followChanges, type ChangeBatch } from '../../../src/aggregate/runtime/feed.js';
import { retryWithBackoff } from '../../../src/retry.js';
import { StoreRequestError, StoreUnavailableError, type Store } from '../../../src/store/store.js';

const scheduler = () => new TestScheduler((actual, expected) => expect(actual).toEqual(expected));

describe('checkpointTrigger', () => {
  it('signals when enough changes accumulate', () => {
    scheduler().run(({ cold, expectObservable }) => {
      const applied = cold('a-b-c-d-|', { a: 3, b: 4, c: 5, d: 1 });
      // 3+4 = 7 ≥ 5 at b; 5 ≥ 5 at c; 1 left at completion
      expectObservable(applied.pipe(checkpointTrigger(5, 100))).toBe('--x-y---(z|)', { x: 7, y: 5, z: 1 });
    });
  });

  it('signals after everyMs from the first unsaved change, and not while nothing changes', () => {
    scheduler().run(({ cold, expectObservable }) => {
      const applied = cold('a 9ms 0 30ms b 99ms -', { a: 1, b: 2, 0: 0 });
      expectObservable(applied.pipe(checkpointTrigger(100, 20)), '^ 200ms !').toBe('20ms x 40ms y', { x: 1, y: 2 });
    });
  });

  it('passes errors on and stops its timer when unsubscribed', () => {
    scheduler().run(({ cold, expectObservable }) => {
      expectObservable(cold('a-#', { a: 1 }).pipe(checkpointTrigger(10, 50))).toBe('--#');
      expectObservable(cold('a---', { a: 1 }).pipe(checkpointTrigger(10, 50)), '^--!').toBe('---');
    });
  });
});

describe('retryWithBackoff', () => {
  it('waits 1×, 2×, 4× … capped, then gives the value', () => {
    scheduler().run(({ expectObservable }) => {
      let attempts = 0;
      const flaky = defer(() => (++attempts < 5 ? throwError(() => new StoreUnavailableError('down')) : of('ok')));
      // delays 10, 20, 40, then capped at 50
      expectObservable(flaky.pipe(retryWithBackoff({ initialMs: 10, maxMs: 50 }))).toBe('120ms (x|)', { x: 'ok' });
    });
  });

  it('passes the error on after the last of its retries', () => {
    scheduler().run(({ expectObservable, cold }) => {
      // three retries, after 5, 10 and 20 ms, then the error
      const failing = cold('#', undefined, new Error('down'));
      expectObservable(failing.pipe(retryWithBackoff({ initialMs: 5, maxMs: 20, retries: 3 }))).toBe('35ms #', undefined, new Error('down'));
    });
  });

  it('passes errors it should not retry at once', () => {
    scheduler().run(({ expectObservable }) => {
      const error = new StoreRequestError('forbidden', 403, 'forbidden');
      const refusing = throwError(() => error);
      expectObservable(refusing.pipe(retryWithBackoff({ initialMs: 10, maxMs: 50, shouldRetry: (e) => !(e instanceof StoreRequestError) }))).toBe(
        '#',
        undefined,
        error,
      );
    });
  });
});

describe('followChanges', () => {
  const batch = (n: number, caughtUp = false): ChangeBatch => ({ changes: [{ id: `d${n}`, seq: n }], lastSeq: n, pending: undefined, caughtUp });

  it('reads at most one batch ahead of the consumer, each from the previous lastSeq', async () => {
    const asked: unknown[] = [];
    const reads = followChanges(async (since) => {
      asked.push(since);
      return batch(Number(since) + 1);
    }, 0);
    const seen: number[] = [];
    await new Promise<void>((done) => {
      const sub = reads.subscribe((b) => {
        seen.push(b.lastSeq as number);
        // while batch n is processed, the read of batch n+1 has started, not n+2
        expect(asked).toEqual(Array.from({ length: seen.length + 1 }, (_, i) => i));
        if (seen.length === 5) {
          sub.unsubscribe();
          done();
        }
      });
    });
    expect(seen).toEqual([1, 2, 3, 4, 5]);
  });

  it('lets a read wait for changes only once the previous batch was caught up, never the first read', async () => {
    const waits: (boolean | undefined)[] = [];
    const caughtUp = [false, true, true, false, true];
    const reads = followChanges(async (since, _signal, wait) => {
      waits.push(wait);
      return batch(Number(since) + 1, caughtUp[Number(since)] ?? true);
    }, 0);
    await new Promise<void>((done) => {
      const sub = reads.subscribe((b) => {
        if (b.lastSeq === 5) {
          sub.unsubscribe();
          done();
        }
      });
    });
    // read k waits exactly when batch k-1 (read from since k-1) was caught up
    expect(waits.slice(0, 5)).toEqual([false, false, true, true, false]);
  });

  it('never buffers more than one batch when the consumer is slow', async () => {
    let reads = 0;
    const feed = followChanges(async (since) => {
      reads += 1;
      return batch(Number(since) + 1);
    }, 0);
    let handled = 0;
    await new Promise<void>((done) => {
      const sub = feed.subscribe(() => {
        handled += 1;
        const until = Date.now() + 5; // a slow, synchronous consumer
        while (Date.now() < until);
        expect(reads).toBeLessThanOrEqual(handled + 1);
        if (handled === 10) {
          sub.unsubscribe();
          done();
        }
      });
    });
  });

  it('aborts the read in flight when unsubscribed', async () => {
    let aborted = false;
    const reads = followChanges(
      (_since, signal) =>
        new Promise<ChangeBatch>((_resolve, reject) => {
          signal.addEventListener('abort', () => {
            aborted = true;
            reject(new Error('aborted'));
          });
        }),
      0,
    );
    const sub = reads.subscribe();
    await new Promise((r) => setTimeout(r, 10));
    sub.unsubscribe();
    expect(aborted).toBe(true);
  });

  it('retries a store outage and errors on a refusal', async () => {
    let calls = 0;
    const retried: number[] = [];
    const reads = followChanges(
      async (since) => {
        calls += 1;
        if (calls <= 2) throw new StoreUnavailableError('down');
        if (calls === 4) throw new StoreRequestError('unauthorized', 401, 'unauthorized');
        return batch(Number(since) + 1);
      },
      0,
      { initialBackoffMs: 1, maxBackoffMs: 2, onRetry: (_e, attempt) => retried.push(attempt) },
    );
    const result = await new Promise<{ values: number[]; error: unknown }>((done) => {
      const values: number[] = [];
      reads.subscribe({ next: (b) => values.push(b.lastSeq as number), error: (error: unknown) => done({ values, error }) });
    });
    expect(retried).toEqual([1, 2]);
    expect(result.values).toEqual([1]);
    expect(result.error).toBeInstanceOf(StoreRequestError);
  });
});

describe('couchChangesReader on a store that runs out of time', () => {
  const timingOut = { request: () => Promise.reject(new StoreUnavailableError('store timed out', true)) } as unknown as Store;

  it('reads a timed-out wait as nothing new yet, at the same position', async () => {
    const read = couchChangesReader(timingOut, 'blobs', { limit: 10, longpollMs: 1000 });
    expect(await read('12-opaque', new AbortController().signal, true)).toEqual({ changes: [], lastSeq: '12-opaque', pending: 0, caughtUp: true, held: true });
  });

  it('fails a read that may not wait (a start, a catch-up, a rebuild), so it is retried rather than taken as caught up', async () => {
    const catchingUp = couchChangesReader(timingOut, 'blobs', { limit: 10, longpollMs: 1000 });
    await expect(catchingUp('12-opaque', new AbortController().signal, false)).rejects.toBeInstanceOf(StoreUnavailableError);
    const rebuilding = couchChangesReader(timingOut, 'blobs', { limit: 10, longpollMs: 0 });
    await expect(rebuilding(0, new AbortController().signal)).rejects.toBeInstanceOf(StoreUnavailableError);
  });
});
