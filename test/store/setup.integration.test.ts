/**
 * What start-up applies to the store: database and design document, applied
 * idempotently; the guard an older kpi-live put on blob documents removed;
 * and what protects the data without it: a document written straight to the
 * store, of any shape, is not counted as a dialog and stops nothing.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { blobsDesignDoc } from '../../couchdb/design-docs.js';
import { blobDocId, newRunId } from '../../src/store/blob-ids.js';
import { Database } from '../../src/store/database.js';
import { applySetup } from '../../src/store/setup.js';
import { ingest, nowTimestamp, startTestApp, type TestApp } from '../harness/app.js';
import { waitUntil } from '../harness/process.js';

/** The design document kpi-live 0.1 wrote: the same view, and a `validate_doc_update` run by CouchDB's JavaScript engine on every write. */
const olderDesignDoc = {
  ...blobsDesignDoc,
  validate_doc_update: [
    'function (newDoc, oldDoc, userCtx) {',
    "  if (newDoc._deleted || newDoc._id.indexOf('_design/') === 0) { return; }",
    "  if (typeof newDoc.timestamp !== 'number' || newDoc.timestamp % 600000 !== 0) {",
    "    throw({ forbidden: 'timestamp must be a number of ms rounded to 10 minutes' });",
    '  }',
    '  if (!Array.isArray(newDoc.event_stream)) {',
    "    throw({ forbidden: 'event_stream must be an array' });",
    '  }',
    '}',
  ].join('\n'),
};

interface LogLine {
  msg: string;
  [key: string]: unknown;
}

function logInto(lines: LogLine[]) {
  return pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
}

describe('store setup', () => {
  let t: TestApp;
  let blobs: Database;
  beforeAll(async () => {
    t = await startTestApp({ feedLongpollMs: 1000 });
    blobs = new Database(t.store, t.store.blobsDb);
  });
  afterAll(async () => {
    await t.close();
  });

  it('is idempotent: a second run changes nothing', async () => {
    const before = await blobs.get(blobsDesignDoc._id);
    const lines: LogLine[] = [];
    await applySetup(t.store, logInto(lines));
    const after = await blobs.get<{ views: unknown }>(blobsDesignDoc._id);
    expect(after?._rev).toBe(before?._rev);
    expect(after?.views).toEqual(blobsDesignDoc.views);
    expect(lines.find((line) => line.msg === 'store ready')).toMatchObject({ created: false, design: 'unchanged' });
  });

  it('writes a design document without validate_doc_update', async () => {
    expect(await blobs.get(blobsDesignDoc._id)).not.toHaveProperty('validate_doc_update');
  });

  it("removes an older kpi-live's validate_doc_update and keeps the view's index", async () => {
    // a count builds the view's index before the older design document goes in
    const timestamp = nowTimestamp();
    await blobs.bulk([{ _id: blobDocId(timestamp, newRunId(), 0), timestamp, event_stream: [] }]);
    const count = () => blobs.view<null, number>('kpi-live', 'by_time', { reduce: true });
    await count();
    const current = await blobs.get(blobsDesignDoc._id);
    await blobs.put({ ...olderDesignDoc, _rev: current!._rev });
    const signature = async () =>
      (await t.store.request<{ view_index?: { signature?: string } }>({ db: t.store.blobsDb, path: '_design/kpi-live/_info' })).view_index?.signature;
    const before = await signature();

    const lines: LogLine[] = [];
    await applySetup(t.store, logInto(lines));
    const after = await blobs.get<Record<string, unknown>>(blobsDesignDoc._id);
    expect(after).not.toHaveProperty('validate_doc_update');
    expect(after?.views).toEqual(blobsDesignDoc.views);
    expect(lines.find((line) => line.msg === 'design document updated')).toMatchObject({ removed: ['validate_doc_update'], changed: [] });
    expect(lines.find((line) => line.msg === 'store ready')).toMatchObject({ design: 'updated' });
    // the view is the same, so CouchDB keeps its index: no rebuild over every blob
    expect(await signature()).toBe(before);
    expect((await count())[0]?.value).toBeGreaterThanOrEqual(1);
  });

  /**
   * Documents the older guard refused. kpi-live never writes one (its ingest
   * checks every field of a blob and answers 400); a CouchDB user allowed in
   * by `_security` (kpi-live's own, or a server admin) may still write one by
   * hand.
   */
  const foreign = (timestamp: number): [string, Record<string, unknown>][] => [
    ['a document that is no blob', { _id: 'operator-note', note: 'moved the store on Monday' }],
    ['a free-form id', { _id: 'whatever', timestamp, event_stream: [] }],
    ['an unrounded timestamp and no event stream', { _id: blobDocId(timestamp, newRunId(), 1), timestamp: timestamp + 1 }],
    ['a timestamp that is text', { _id: blobDocId(timestamp, newRunId(), 2), timestamp: 'yesterday', event_stream: [] }],
  ];

  it.each(foreign(1_795_400_400_000))('the store now takes %s written straight to it', async (_what, doc) => {
    const [answer] = await blobs.bulk([{ ...doc, _id: `${String(doc._id)}-${newRunId()}` }]);
    expect(answer).toMatchObject({ ok: true });
  });

  it('counts no document written straight to the store as a dialog, and the aggregate goes on', async () => {
    const timestamp = nowTimestamp();
    const answers = await blobs.bulk(foreign(timestamp).map(([, doc]) => doc));
    expect(answers.every((a) => a.ok)).toBe(true);
    // then one real blob through ingest: once it is counted, so is everything written before it
    await ingest(t, [{ timestamp, event_stream: [['screen.rp_info', 5]] }]);
    const from = timestamp - 3_600_000;
    const dialogs = async () => {
      const res = await t.app.inject({ url: `/api/kpis?from=${from}&to=${timestamp + 3_600_000}&bucket=10m` });
      expect(res.statusCode).toBe(200);
      return (res.json() as { series: { total: { dialogs: number } }[] }).series[0]?.total.dialogs ?? 0;
    };
    await waitUntil(async () => (await dialogs()) > 0, 30_000, 'the aggregate to read past the foreign documents');
    const status = t.app.aggregates.status();
    expect(status.phase).toBe('live');
    expect(status.lastError).toBeNull();
    expect(await dialogs()).toBe(1);
    // the read API and the count go on answering
    expect((await t.app.inject({ url: `/wsapi/interaction_data?from=${from}` })).statusCode).toBe(200);
    expect((await t.app.inject({ url: `/wsapi/interaction_data/count?from=${from}` })).statusCode).toBe(200);
  });

  /**
   * Documents of a blob's fields with other types. The older guard refused
   * the first two and let the others through; the aggregate leaves every
   * one out (src/aggregate/model/facts.ts, isStoredBlob), so none stops it and
   * none counts a dialog anywhere.
   */
  const harmful = (timestamp: number): [string, Record<string, unknown>][] => [
    ['an event stream that is an object', { _id: blobDocId(timestamp, newRunId(), 0), timestamp, event_stream: {} }],
    ['a timestamp that is text, with events', { _id: blobDocId(timestamp, newRunId(), 0), timestamp: 'yesterday', event_stream: [['screen.rp_info', 5]] }],
    ['an event that is a number', { _id: blobDocId(timestamp, newRunId(), 0), timestamp, event_stream: [5] }],
    ['a language that is an object', { _id: blobDocId(timestamp, newRunId(), 0), timestamp, event_stream: [['screen.rp_info', 5]], lang: {} }],
  ];

  it.each(harmful(nowTimestamp()))('counts no dialog for %s written straight to the store, and the aggregate goes on', async (_what, doc) => {
    const own = await startTestApp({ feedLongpollMs: 1000 });
    try {
      const timestamp = nowTimestamp();
      expect((await new Database(own.store, own.store.blobsDb).bulk([doc]))[0]).toMatchObject({ ok: true });
      await ingest(own, [{ timestamp, event_stream: [['screen.rp_info', 5]] }]);
      const dialogs = async () => {
        const res = await own.app.inject({ url: `/api/kpis?from=${timestamp - 3_600_000}&to=${timestamp + 3_600_000}&bucket=10m` });
        return (res.json() as { series: { total: { dialogs: number } }[] }).series[0]?.total.dialogs ?? 0;
      };
      // both documents read, or the aggregate stopped
      await waitUntil(
        () => own.app.aggregates.status().phase === 'failed' || own.app.aggregates.status().counted >= 2,
        30_000,
        'the aggregate to read the feed',
      );
      expect(own.app.aggregates.status()).toMatchObject({ phase: 'live', lastError: null });
      expect(await dialogs()).toBe(1);
    } finally {
      await own.close();
    }
  });

  // pouchdb-server keeps _security without enforcing it; the embedded store answers its own admin only
  it.skipIf(inject('couchKind') === 'embedded')("refuses a write to the blob database from any CouchDB user but kpi-live's and server admins", async () => {
    const url = new URL(inject('couchUrl'));
    const admin = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
    url.username = '';
    url.password = '';
    const base = url.toString().replace(/\/$/, '');
    const other = { name: `kpi_live_other_${newRunId()}`, password: 'a-password-for-another-couchdb-user' };
    const request = (path: string, method: string, body: unknown, authorization?: string) =>
      fetch(`${base}/${path}`, {
        method,
        headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
        body: JSON.stringify(body),
      });
    expect([201, 202, 412]).toContain((await request('_users', 'PUT', {}, admin)).status);
    const made = await request(`_users/org.couchdb.user:${other.name}`, 'PUT', { name: other.name, password: other.password, roles: [], type: 'user' }, admin);
    expect(made.status).toBeLessThan(300);
    const { rev } = (await made.json()) as { rev: string };
    try {
      const blob = { timestamp: nowTimestamp(), event_stream: [['screen.rp_info', 5]] };
      const asOther = await request(t.store.blobsDb, 'POST', blob, `Basic ${Buffer.from(`${other.name}:${other.password}`).toString('base64')}`);
      expect(asOther.status).toBe(403);
      expect((await request(t.store.blobsDb, 'POST', blob)).status).toBe(401);
    } finally {
      await fetch(`${base}/_users/org.couchdb.user:${other.name}?rev=${rev}`, { method: 'DELETE', headers: { authorization: admin } });
    }
  });
});
