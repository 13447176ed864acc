/**
 * The fault tests' final check reads every stored blob in pages. A cursor
 * that does not advance reads the first page forever: the SIGKILL failover
 * test hung that way once a run stored more than one page (5,000 blobs),
 * because the cursor was JSON-encoded twice (by the caller and by nano) and
 * so sorted before every id. These tests read several pages on the harness's
 * CouchDB, and show that a page that does not begin at its cursor stops the
 * read with an error.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/store.js';
import { dropDb, uniqueDbName } from './app.js';
import { openHarnessStore, storedCount, storedMarkers } from './verify.js';

const db = uniqueDbName('verify');
afterAll(() => dropDb(db));

describe('storedMarkers', () => {
  it('reads every blob across many pages, each once, design documents left out', async () => {
    const store = await openHarnessStore(db);
    try {
      await store.request({ method: 'PUT', db, path: '' });
      const docs = Array.from({ length: 23 }, (_, i) => ({
        _id: `2026-11-23T12:10:00.000Z_run-${String(i).padStart(2, '0')}`,
        rp_api: `m-${i % 20}`,
      }));
      await store.request({ method: 'POST', db, path: '_bulk_docs', body: { docs: [...docs, { _id: '_design/kpi-live' }] } });
      for (const pageSize of [1, 5, 23, 24, 100]) {
        const stored = await storedMarkers(store, db, pageSize);
        expect(storedCount(stored), `pages of ${pageSize}`).toBe(23);
        expect(stored.size).toBe(20);
        expect(stored.get('m-0')).toBe(2);
        expect(stored.get('m-19')).toBe(1);
      }
    } finally {
      await store.close();
    }
  });

  it('stops with an error when a page does not begin at its cursor, instead of reading the same page again', async () => {
    const rows = [1, 2, 3].map((i) => ({ id: `id-${i}`, doc: { rp_api: `m-${i}` } }));
    // a store that ignores startkey: every page is the first one
    const store = { blobsDb: 'blobs', request: () => Promise.resolve({ rows }) } as unknown as Store;
    await expect(storedMarkers(store, 'blobs', 2)).rejects.toThrow('the page after id-3 began at id-1, not at its startkey');
  });
});
