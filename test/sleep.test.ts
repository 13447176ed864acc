/**
 * The service's one abortable wait. The signed-out sessions' follower runs it
 * once a second while nobody has signed out yet (no database to follow), for
 * as long as the service runs, so it must leave nothing on the stop signal.
 */
import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { sleep } from '../src/sleep.js';

describe('sleep', () => {
  it('leaves no listener on the stop signal when it ends by itself, however often it runs', async () => {
    const stop = new AbortController();
    for (let i = 0; i < 20; i++) await sleep(1, stop.signal);
    expect(getEventListeners(stop.signal, 'abort')).toHaveLength(0);
  });

  it('ends when the signal aborts (a wait of ten minutes would outlast the test)', async () => {
    const stop = new AbortController();
    const waiting = sleep(600_000, stop.signal);
    stop.abort();
    await expect(waiting).resolves.toBeUndefined();
    expect(getEventListeners(stop.signal, 'abort')).toHaveLength(0);
  });
});
