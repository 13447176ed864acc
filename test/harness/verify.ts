/**
 * What fault tests check at the end, whatever the fault was: every
 * acknowledged blob is in the store, and the live aggregate counts exactly
 * the stored blobs, each once (it equals a rebuild from them).
 */
import { pino } from 'pino';
import { expect, inject } from 'vitest';
import type { Dimension, KpiAnswer } from '../../src/aggregate/kpi-types.js';
import { queryKpis } from '../../src/aggregate/query.js';
import type { AggregateState } from '../../src/aggregate/state.js';
import { rebuild } from '../../src/aggregate/rebuild.js';
import { defaultSegmentConfig } from '../../src/aggregate/segments.js';
import { defaultRetention, HOUR } from '../../src/aggregate/state.js';
import { loadConfig } from '../../src/config/config.js';
import { openStore, type Store } from '../../src/store/store.js';
import { waitUntil } from './process.js';

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

/** The harness's CouchDB, for the databases a service process was given (`KPI_DB`), with no set-up of its own. */
export function openHarnessStore(dbName: string): Promise<Store> {
  const config = loadConfig({ env: {}, overrides: { couchdbUrl: inject('couchUrl'), dbName, logLevel: 'silent' } });
  return openStore(config, pino({ level: 'silent' }), { setup: false });
}

/**
 * Waits (up to `timeoutMs`) until the service at `url` counts `total`
 * dialogs in the last two hours, then checks that the stored blobs rebuild
 * to exactly `total`, and that its `/api/kpis` equals that rebuild, whole
 * and split by each of `segments`. Each request to the service is answered
 * within 10 s or fails.
 */
export async function expectServiceEqualsRebuild(
  url: string,
  store: Store,
  total: number,
  options: { segments: readonly Dimension[]; timeoutMs: number; what: string },
): Promise<void> {
  const window = { from: Date.now() - 2 * HOUR, to: Date.now() + HOUR, bucket: '10m' as const };
  const kpis = async (segment?: Dimension) =>
    (await fetch(`${url}/api/kpis?from=${window.from}&to=${window.to}&bucket=10m${segment ? `&segment=${segment}` : ''}`, {
      signal: AbortSignal.timeout(10_000),
    }).then((r) => r.json())) as KpiAnswer;
  await waitUntil(async () => (await kpis()).series[0]?.total.dialogs === total, options.timeoutMs, `${options.what} to count ${total} blobs`);
  const rebuilt = await rebuiltState(store);
  expect(rebuilt.counted).toBe(total);
  for (const segment of [undefined, ...options.segments]) {
    expect(await kpis(segment)).toEqual(JSON.parse(JSON.stringify(queryKpis(rebuilt.state, { ...window, segment }))));
  }
}
