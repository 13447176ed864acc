/**
 * The retention horizon on the harness's CouchDB: a `_local` document, which
 * CouchDB does not fence by revision, kept as a max-register. It never moves
 * back, two advances at once end at the greater one, and a lower horizon
 * written over a greater one before its writer read it back is written again.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { advanceHorizon, HORIZON_ID, readHorizon } from '../../src/retention/horizon.js';
import { Database } from '../../src/store/database.js';
import { openStore, type Store, type StoreRequest } from '../../src/store/store.js';
import { dropDb, testConfig, uniqueDbName } from '../harness/app.js';

const T0 = Date.UTC(2026, 7, 25, 14, 30);
const BUCKET = 10 * 60_000;

describe('advanceHorizon', () => {
  const db = uniqueDbName('horizon');
  let store: Store;

  beforeAll(async () => {
    store = await openStore(testConfig({ dbName: db }), pino({ level: 'silent' }), { setup: false });
    await new Database(store, db).create();
  });
  afterAll(async () => {
    await store?.close();
    await dropDb(db);
  });

  it('moves the horizon forward, never back', async () => {
    expect(await readHorizon(store, db)).toBeUndefined();
    expect(await advanceHorizon(store, db, T0)).toBe(T0);
    expect(await advanceHorizon(store, db, T0 + BUCKET)).toBe(T0 + BUCKET);
    expect(await advanceHorizon(store, db, T0)).toBe(T0 + BUCKET);
    expect(await readHorizon(store, db)).toBe(T0 + BUCKET);
  });

  it('ends two advances at once at the greater horizon, whichever starts first', async () => {
    let horizon = T0 + BUCKET;
    for (let round = 0; round < 6; round++) {
      const lower = horizon + BUCKET;
      const greater = horizon + 2 * BUCKET;
      const advances = round % 2 === 0 ? [lower, greater] : [greater, lower];
      await Promise.all(advances.map((time) => advanceHorizon(store, db, time)));
      expect(await readHorizon(store, db)).toBe(greater);
      horizon = greater;
    }
  });

  it('writes a greater horizon again when a lower one was written over it before it was read back', async () => {
    const current = (await readHorizon(store, db))!;
    const lower = current + BUCKET;
    const greater = current + 2 * BUCKET;
    // another instance's write of `lower`, landing right after ours of `greater` (last writer wins on CouchDB)
    let overwritten = false;
    let writes = 0;
    const racing: Store = {
      ...store,
      request: async <T>(req: StoreRequest): Promise<T> => {
        const answer = await store.request<T>(req);
        if (req.method === 'PUT' && req.path === HORIZON_ID) {
          writes += 1;
          if (!overwritten) {
            overwritten = true;
            await new Database(store, db).putLocal(HORIZON_ID, { horizon: lower, updatedAt: Date.now() });
          }
        }
        return answer;
      },
    };
    expect(await advanceHorizon(racing, db, greater)).toBe(greater);
    expect(overwritten).toBe(true);
    expect(writes).toBe(2);
    expect(await readHorizon(store, db)).toBe(greater);
  });
});
