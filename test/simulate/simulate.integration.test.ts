/**
 * The simulator drives a listening kpi-live over HTTP; what it reports as
 * accepted is what the store holds, and a seed reproduces the traffic.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { simulate } from '../../src/simulate/run.js';
import { startTestApp, storedBlobs, type TestApp } from '../harness/app.js';

const apps: TestApp[] = [];
afterAll(async () => {
  for (const t of apps) await t.close();
});

async function simulatedInto(seed: number, breaks?: Map<string, number>) {
  const t = await startTestApp({}, { listen: true });
  apps.push(t);
  const address = t.app.server.address() as { port: number };
  const summary = await simulate({
    url: `http://127.0.0.1:${address.port}`,
    rate: 400,
    durationSeconds: 1,
    seed,
    progress: false,
    ...(breaks ? { breaks } : {}),
  });
  return { summary, stored: await storedBlobs(t.store) };
}

describe('kpi-live simulate', () => {
  it('sends the asked number of sessions, all accepted and stored, with a user agent derived by the server', async () => {
    const { summary, stored } = await simulatedInto(42);
    expect(summary).toMatchObject({ sent: 400, accepted: 400, rejected: 0, failed: 0, byStatus: { 200: 400 } });
    expect(stored).toHaveLength(400);
    for (const doc of stored) {
      expect(doc.user_agent).toMatchObject({ os: expect.any(String), browser: expect.any(String) });
      expect((doc.timestamp as number) % 600_000).toBe(0);
    }
  });

  it('reproduces the same sessions from the same seed', async () => {
    const streams = async (seed: number) =>
      (await simulatedInto(seed)).stored.map((d) => JSON.stringify([d.event_stream, d.lang, d.screen_size, d.number_emails, d.rp_api])).sort();
    expect(await streams(7)).toEqual(await streams(7));
  });

  it('a broken step shows in the stored data', async () => {
    const { stored } = await simulatedInto(11, new Map([['user.user_staged', 1]]));
    const names = stored.flatMap((d) => (d.event_stream as [string, number][]).map(([name]) => name));
    expect(names).toContain('screen.set_password');
    expect(names).not.toContain('user.user_staged');
  });
});
