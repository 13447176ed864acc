/**
 * The retention cutoff: a blob goes once its whole 10-minute bucket is older
 * than the retention. The outcome of a pass, as its status counts it, on a
 * scripted store.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { HORIZON_ID } from '../../src/retention/horizon.js';
import { Retention, retentionCutoff } from '../../src/retention/retention.js';
import { timeKey } from '../../src/store/blob-ids.js';
import { StoreRequestError, type Store, type StoreRequest } from '../../src/store/store.js';

const DAY = 86_400_000;

describe('retentionCutoff', () => {
  it('is the start of the 10-minute bucket holding now - retention', () => {
    expect(retentionCutoff(Date.UTC(2026, 10, 23, 14, 37, 12), 90)).toBe(Date.UTC(2026, 7, 25, 14, 30));
    expect(retentionCutoff(Date.UTC(2026, 10, 23, 14, 30), 1)).toBe(Date.UTC(2026, 10, 22, 14, 30));
    expect(retentionCutoff(Date.UTC(2026, 10, 23, 0, 0), 0.5)).toBe(Date.UTC(2026, 10, 22, 12, 0));
  });

  it('expires exactly the buckets that end at or before now - retention', () => {
    const now = Date.UTC(2026, 10, 23, 14, 37);
    const cutoff = retentionCutoff(now, 90);
    const limit = now - 90 * DAY;
    for (let bucket = cutoff - 60 * 60_000; bucket <= cutoff + 60 * 60_000; bucket += 10 * 60_000) {
      const expired = bucket < cutoff;
      expect(expired).toBe(bucket + 10 * 60_000 <= limit);
      // the `_all_docs` range below the cutoff's time key holds exactly the expired ids
      expect(`${timeKey(bucket)}_aaaaaaaaaa-0` < timeKey(cutoff)).toBe(expired);
    }
  });
});

/**
 * A store that answers what one pass asks: the database, a page of
 * `_all_docs` (`expired` blobs on the first read, none after), the horizon
 * (already past the cutoff), `_changes` (nothing new), no `_purge`, and
 * `_bulk_docs` as `deleteAnswer` says.
 */
function scriptedStore(
  options: { expired?: number; deleteAnswer?: (ids: string[]) => BulkAnswer; fail?: (req: StoreRequest) => boolean; hang?: boolean } = {},
): Store {
  let listed = false;
  const request = async (req: StoreRequest): Promise<unknown> => {
    if (options.fail?.(req)) throw new StoreRequestError('the store failed (test)', 503, 'unavailable');
    if (options.hang) return new Promise((_, reject) => req.signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));
    if (req.path === undefined) return { update_seq: 1 };
    if (req.path === '_all_docs') {
      const first = !listed;
      listed = true;
      const rows = first ? Array.from({ length: options.expired ?? 0 }, (_, i) => ({ id: `${timeKey(0)}_aaaaaaaaaa-${i}`, value: { rev: '1-a' } })) : [];
      return { rows };
    }
    if (req.path === HORIZON_ID) return { _id: HORIZON_ID, _rev: '1-h', horizon: Number.MAX_SAFE_INTEGER, updatedAt: 0 };
    if (req.path === '_changes') return { results: [], last_seq: 1 };
    if (req.path === '_purge') throw new StoreRequestError('no _purge here (test)', 400, 'bad_request');
    if (req.path === '_bulk_docs') {
      const ids = (req.body as { docs: { _id: string }[] }).docs.map((d) => d._id);
      return options.deleteAnswer?.(ids) ?? ids.map((id) => ({ id, ok: true, rev: '2-d' }));
    }
    throw new Error(`unexpected request ${req.method ?? 'GET'} ${req.path}`);
  };
  return { request } as unknown as Store;
}
type BulkAnswer = { id: string; ok?: boolean; rev?: string; error?: string; reason?: string }[];

const runner = (store: Store, aggregate?: () => { countedThrough: number; phase: string }) =>
  new Retention({ store, db: 'blobs', retentionDays: 90, intervalMs: 60_000, log: pino({ level: 'silent' }), waitMs: 0, ...(aggregate ? { aggregate } : {}) });

describe('Retention pass counts', () => {
  it('counts a pass that did its work as ok, whether or not it found expired blobs', async () => {
    const empty = runner(scriptedStore());
    await empty.runNow();
    expect(empty.status).toMatchObject({ lastError: null, passes: { ok: 1, failed: 0 } });
    const some = runner(scriptedStore({ expired: 3 }));
    expect(await some.runNow()).toMatchObject({ removed: 3 });
    await some.runNow();
    expect(some.status).toMatchObject({ lastError: null, passes: { ok: 2, failed: 0 } });
  });

  it('counts as failed a pass whose store fails, one the store refuses deletes to, and one that waits on the aggregate in vain, as lastError says', async () => {
    const failing = runner(scriptedStore({ fail: (req) => req.path === '_all_docs' }));
    expect((await failing.runNow()).error).toMatch(/store failed/);
    expect(failing.status).toMatchObject({ lastError: expect.stringMatching(/store failed/), passes: { ok: 0, failed: 1 } });

    const refused = runner(scriptedStore({ expired: 2, deleteAnswer: (ids) => ids.map((id) => ({ id, error: 'forbidden', reason: 'test' })) }));
    expect(await refused.runNow()).toMatchObject({ removed: 0, refused: 2 });
    expect(refused.status).toMatchObject({ lastError: expect.stringMatching(/refused/), passes: { ok: 0, failed: 1 } });

    const behind = runner(scriptedStore({ expired: 2 }), () => ({ countedThrough: 0, phase: 'catching-up' }));
    expect((await behind.runNow()).skipped).toMatch(/catching-up/);
    expect(behind.status).toMatchObject({ lastError: expect.stringMatching(/kept until the next pass/), passes: { ok: 0, failed: 1 } });
  });

  it('counts a pass cut short by stop() as neither', async () => {
    const hanging = runner(scriptedStore({ hang: true }));
    const pass = hanging.runNow();
    await new Promise((r) => setTimeout(r, 20));
    await hanging.stop();
    expect(await pass).toMatchObject({ skipped: 'stopped' });
    expect(hanging.status.passes).toEqual({ ok: 0, failed: 0 });
  });

  it('gives a copy of its counts', async () => {
    const r = runner(scriptedStore());
    const before = r.status;
    await r.runNow();
    expect(before.passes).toEqual({ ok: 0, failed: 0 });
  });
});
