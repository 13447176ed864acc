/**
 * A restart with nothing new on the feed still reaches `live`: on the
 * embedded store a caught-up longpoll is held until a change comes, and must
 * read as "nothing yet", not as the store being away; and the first read
 * after a start does not wait at all, so `live` comes at once, not after a
 * whole longpoll.
 */
import { describe, expect, it } from 'vitest';
import { ingest, nowTimestamp, startTestApp, type TestApp } from '../../harness/app.js';
import { waitUntil } from '../../harness/process.js';

const phase = async (t: TestApp) => ((await t.app.inject({ url: '/health' })).json() as { aggregate: { phase: string } }).aggregate.phase;

/**
 * Starts an instance, counts one blob, stops it, then starts another on the
 * same databases with nothing new on the feed, and runs `check` on it.
 */
async function afterQuietRestart(settings: { feedLongpollMs: number; checkpointEveryMs: number }, check: (second: TestApp) => Promise<void>) {
  const first = await startTestApp(settings);
  let second: TestApp | undefined;
  try {
    await ingest(first, [{ timestamp: nowTimestamp(), event_stream: [['screen.rp_info', 5]] }]);
    await waitUntil(async () => (await phase(first)) === 'live', 20_000, 'the first instance to be live');
    await first.app.close();
    second = await startTestApp({ ...settings, dbName: first.config.dbName });
    await check(second);
  } finally {
    await (second ?? first).close();
  }
}

describe('a quiet feed', () => {
  it('is live after a restart from the checkpoint with no new blob', async () => {
    await afterQuietRestart({ feedLongpollMs: 300, checkpointEveryMs: 50 }, async (second) => {
      await waitUntil(async () => (await phase(second)) === 'live', 20_000, 'the restarted instance to be live');
      // and it stays live across several held longpolls
      for (let i = 0; i < 3; i++) {
        await new Promise((resolve) => setTimeout(resolve, 400));
        expect(await phase(second)).toBe('live');
      }
    });
  });

  it('is live at once after a restart, long before a longpoll would end', async () => {
    await afterQuietRestart({ feedLongpollMs: 60_000, checkpointEveryMs: 50 }, async (second) => {
      // a first read that waited would keep it catching up for the whole minute
      await waitUntil(async () => (await phase(second)) === 'live', 10_000, 'the restarted instance to be live within 10 s');
      // and a blob sent now still arrives through the waiting read
      await ingest(second, [{ timestamp: nowTimestamp(), event_stream: [['screen.rp_info', 7]] }]);
      const counted = async () => ((await second.app.inject({ url: '/health' })).json() as { aggregate: { counted: number } }).aggregate.counted;
      await waitUntil(async () => (await counted()) >= 1, 10_000, 'the new blob to be counted');
    });
  });
});
