/**
 * What fault tests check at the end, whatever the fault was: every
 * acknowledged blob is in the store, and the live aggregate counts exactly
 * the stored blobs, each once (it equals a rebuild from them).
 */
import { pino } from 'pino';
import type { AggregateState } from '../../src/aggregate/state.js';
import { rebuild } from '../../src/aggregate/rebuild.js';
import { defaultSegmentConfig } from '../../src/aggregate/segments.js';
import { defaultRetention } from '../../src/aggregate/state.js';
import type { Store } from '../../src/store/store.js';

/** The `rp_api` marker of every blob document in `db`, with how often each is stored. */
export async function storedMarkers(store: Store, db = store.blobsDb): Promise<Map<string, number>> {
  const markers = new Map<string, number>();
  let startkey: string | undefined;
  for (;;) {
    const page = await store.request<{ rows: { id: string; doc?: { rp_api?: unknown } }[] }>({
      db,
      path: '_all_docs',
      qs: { include_docs: true, limit: 5001, ...(startkey ? { startkey: JSON.stringify(startkey) } : {}) },
      timeoutMs: 60_000,
    });
    const rows = page.rows.length > 5000 ? page.rows.slice(0, 5000) : page.rows;
    for (const row of rows) {
      if (row.id.startsWith('_design/')) continue;
      const marker = typeof row.doc?.rp_api === 'string' ? row.doc.rp_api : '';
      markers.set(marker, (markers.get(marker) ?? 0) + 1);
    }
    if (page.rows.length <= 5000) return markers;
    startkey = page.rows[5000]!.id;
  }
}

/** Markers acknowledged but not stored (should be none). */
export function missingMarkers(acked: readonly string[], stored: Map<string, number>): string[] {
  return acked.filter((marker) => !stored.has(marker));
}

/** Blob documents in `db` (design documents excluded). */
export const storedCount = (stored: Map<string, number>): number => [...stored.values()].reduce((a, b) => a + b, 0);

/** The aggregate recomputed from every stored blob, as `kpi-live rebuild --dry-run` does. */
export async function rebuiltState(store: Store, db = store.blobsDb): Promise<{ state: AggregateState; counted: number }> {
  const rebuilt = await rebuild({
    store,
    blobsDb: db,
    stateDb: `${db}_aggregates`,
    segments: defaultSegmentConfig,
    retention: defaultRetention,
    batchSize: 1000,
    log: pino({ level: 'silent' }),
    dryRun: true,
  });
  return { state: rebuilt.state, counted: rebuilt.counted };
}
