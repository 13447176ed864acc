/**
 * What start-up applies to the store: database and design document, applied
 * idempotently, and the design document's guard on blob documents.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { blobsDesignDoc } from '../../couchdb/design-docs.js';
import { blobDocId, newRunId } from '../../src/store/blob-ids.js';
import { applySetup } from '../../src/store/setup.js';
import { StoreRequestError } from '../../src/store/store.js';
import { startTestApp, type TestApp } from '../harness/app.js';

describe('store setup', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('is idempotent: a second run changes nothing', async () => {
    const before = await t.store.request<{ _rev: string }>({ db: t.store.blobsDb, path: '_design/kpi-live' });
    await applySetup(t.store, pino({ level: 'silent' }));
    const after = await t.store.request<{ _rev: string; views: unknown }>({ db: t.store.blobsDb, path: '_design/kpi-live' });
    expect(after._rev).toBe(before._rev);
    expect(after.views).toEqual(blobsDesignDoc.views);
  });

  const write = (doc: Record<string, unknown>) => t.store.request<{ ok?: boolean }>({ method: 'POST', db: t.store.blobsDb, body: doc });

  it('accepts a well-formed blob written directly', async () => {
    const timestamp = 1_795_400_400_000;
    expect((await write({ _id: blobDocId(timestamp, newRunId(), 5), timestamp, event_stream: [] })).ok).toBe(true);
  });

  const refused = [
    ['an unrounded timestamp', { _id: blobDocId(1_795_400_400_000, newRunId(), 1), timestamp: 1_795_400_400_001, event_stream: [] }],
    ['an id from another bucket', { _id: blobDocId(1_795_400_400_000, newRunId(), 1), timestamp: 1_795_401_000_000, event_stream: [] }],
    ['a free-form id', { _id: 'whatever', timestamp: 1_795_400_400_000, event_stream: [] }],
    ['no event stream', { _id: blobDocId(1_795_400_400_000, newRunId(), 2), timestamp: 1_795_400_400_000 }],
  ] as const;

  // The guard's logic, run as CouchDB runs it, on every backend.
  const guard = new Function(`return (${blobsDesignDoc.validate_doc_update});`)() as (doc: unknown) => void;

  it.each(refused)('the design document refuses %s', (_what, doc) => {
    expect(() => guard(doc)).toThrow(expect.objectContaining({ forbidden: expect.any(String) }));
  });

  it("the design document lets kpi-live's blobs and design documents through", () => {
    expect(() => guard({ _id: blobDocId(1_795_400_400_000, newRunId(), 9), timestamp: 1_795_400_400_000, event_stream: [] })).not.toThrow();
    expect(() => guard({ _id: '_design/other' })).not.toThrow();
    expect(() => guard({ _id: 'anything', _deleted: true })).not.toThrow();
  });

  // The embedded store leaves validation out (couchdb/embedded-server.cjs);
  // a real CouchDB enforces the guard on every writer.
  it.skipIf(inject('couchKind') === 'embedded').each(refused)('CouchDB refuses %s from any writer', async (_what, doc) => {
    const err = await write(doc).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreRequestError);
    expect((err as StoreRequestError).statusCode).toBe(403);
  });
});
