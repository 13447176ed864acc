/**
 * What fault tests check at the end, whatever the fault was: every
 * acknowledged blob is in the store, and the live aggregate counts exactly
 * the stored blobs, each once (it equals a rebuild from them).
 */
import { pino } from 'pino';
import { expect, inject } from 'vitest';
import type { Dimension, KpiAnswer } from '../../src/contract/kpis.js';
import { queryKpis } from '../../src/aggregate/model/query.js';
import type { AggregateState } from '../../src/aggregate/model/state.js';
import { rebuild } from '../../src/aggregate/runtime/rebuild.js';
import { defaultSegmentConfig } from '../../src/aggregate/model/segments.js';
import { defaultRetention } from '../../src/aggregate/model/state.js';
import { loadConfig } from '../../src/config/config.js';
import { openStore, type Store } from '../../src/store/store.js';
import { waitUntil, within } from './process.js';
import { HOUR } from '../../src/contract/kpis.js';

/**
 * The `rp_api` marker of every blob document in `db`, with how often each is
 * stored, read in pages of `pageSize` ids. nano JSON-encodes `startkey`
 * itself, so the cursor is the raw id; each page must begin at the cursor, or
 * the read stops with an error instead of going round the same page again.
 */
export async function storedMarkers(store: Store, db = store.blobsDb, pageSize = 5000): Promise<Map<string, number>> {
  const markers = new Map<string, number>();
  let startkey: string | undefined;
  for (;;) {
    const page = await store.request<{ rows: { id: string; doc?: { rp_api?: unknown } }[] }>({
      db,
      path: '_all_docs',
      qs: { include_docs: true, limit: pageSize + 1, ...(startkey !== undefined ? { startkey } : {}) },
      timeoutMs: 60_000,
    });
    if (startkey !== undefined && page.rows[0]?.id !== startkey) {
      throw new Error(`storedMarkers: the page after ${startkey} began at ${page.rows[0]?.id ?? 'nothing'}, not at its startkey`);
    }
    for (const row of page.rows.slice(0, pageSize)) {
      if (row.id.startsWith('_design/')) continue;
      const marker = typeof row.doc?.rp_api === 'string' ? row.doc.rp_api : '';
      markers.set(marker, (markers.get(marker) ?? 0) + 1);
    }
    if (page.rows.length <= pageSize) return markers;
    startkey = page.rows[pageSize]!.id;
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
 * within 10 s or fails, and the rebuild within `timeoutMs`.
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
  const rebuilt = await within(`rebuilding from the stored blobs to compare with ${options.what}`, options.timeoutMs, rebuiltState(store));
  expect(rebuilt.counted).toBe(total);
  for (const segment of [undefined, ...options.segments]) {
    expect(await kpis(segment)).toEqual(JSON.parse(JSON.stringify(queryKpis(rebuilt.state, { ...window, segment }))));
  }
}
