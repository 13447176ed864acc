/**
 * Import and export on the harness's real CouchDB: a round trip from one
 * kpi-live to another through an NDJSON export (the same documents, the same
 * KPIs), re-runs and overlapping sources that store nothing twice, bad lines
 * reported and skipped, and an import from a stand-in for the original store
 * (a range API answering JSON arrays of view rows, end inclusive) that pages
 * by time windows and retries.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { exportCommand, importCommand, type Io } from '../../src/cli/transfer.js';
import { normalizeBlob } from '../../src/ingest/blob.js';
import { seededRandom, simulateSession } from '../../src/simulate/generator.js';
import { floorToBucket, parseBlobDocId } from '../../src/store/blob-ids.js';
import { exportFromStore } from '../../src/transfer/exporter.js';
import { blobDigest, importRun } from '../../src/transfer/import-ids.js';
import { importBlobs, type ImportOptions } from '../../src/transfer/importer.js';
import { fileSource, rangeApiSource } from '../../src/transfer/sources.js';
import type { Store, StoreRequest } from '../../src/store/store.js';
import { dropDb, startTestApp, storedBlobs, TEST_TOKEN, uniqueDbName, type TestApp, postSessions } from '../harness/app.js';
import { waitUntil } from '../harness/process.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = Date.now();
const dir = mkdtempSync(join(tmpdir(), 'kpi-live-transfer-'));
const auth = { authorization: `Bearer ${TEST_TOKEN}` };

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Captures what a command writes. */
function captureIo(): Io & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    stdout: { write: (text: string) => (out += text) },
    stderr: { write: (text: string) => (err += text) },
    out: () => out,
    err: () => err,
  };
}

/** A config file for the commands: the harness's CouchDB, one database. */
function configFile(dbName: string, extra: Record<string, unknown> = {}): string {
  const path = join(dir, `${dbName}.json`);
  writeFileSync(path, JSON.stringify({ couchdbUrl: inject('couchUrl'), dbName, logLevel: 'silent', ...extra }));
  return path;
}

/** Stored blobs without ids, in a canonical order: what two databases must agree on. */
async function contents(t: TestApp): Promise<string[]> {
  return (await storedBlobs(t.store)).map(({ _id, _rev, ...blob }) => JSON.stringify(blob, Object.keys(blob).sort())).sort();
}

const baseOptions = (t: TestApp): ImportOptions => ({ store: t.store, maxFutureMs: DAY, retentionDays: 90, retryDelayMs: 10 });
const counted = (t: TestApp) => t.app.aggregates.status().counted;

async function kpis(t: TestApp): Promise<unknown> {
  const res = await t.app.inject({ url: `/api/kpis?from=${NOW - 8 * HOUR}&to=${NOW + HOUR}&bucket=1h&segment=os`, headers: auth });
  expect(res.statusCode).toBe(200);
  return res.json();
}

describe('round trip: export from one kpi-live, import into another', () => {
  const N = 300;
  let source: TestApp;
  let target: TestApp;
  let sourceUrl: string;
  let exportFile: string;

  beforeAll(async () => {
    const fast = { feedLongpollMs: 1000, checkpointEveryMs: 200, checkpointEveryChanges: 100 };
    source = await startTestApp({ ...fast, trustLoopback: false }, { listen: true });
    target = await startTestApp(fast);
    const address = source.app.server.address() as { port: number };
    sourceUrl = `http://127.0.0.1:${address.port}`;
    const random = seededRandom(7);
    const sessions = Array.from({ length: N - 2 }, (_, i) => simulateSession(random, { now: NOW - 6 * HOUR + (i * 6 * HOUR) / N }));
    // two dialogs that sent the very same blob: both are stored, both must arrive
    sessions.push(sessions[10]!, sessions[10]!);
    await postSessions(source, sessions, { perRequest: 50 });
    await waitUntil(() => counted(source) >= N, 30_000, 'the source to count its blobs');
  });
  afterAll(async () => {
    await source?.close();
    await target?.close();
  });

  it('exports through the read API with a token, to a file that appears only when complete', async () => {
    exportFile = join(dir, 'export.ndjson');
    const io = captureIo();
    const code = await exportCommand(['--url', sourceUrl, '--token', TEST_TOKEN, '--out', exportFile, '--from', String(NOW - DAY)], io);
    expect(code).toBe(0);
    expect(io.err()).toMatch(/exported 300 blobs .* to .*export\.ndjson/);
    expect(io.err()).not.toContain(TEST_TOKEN);
    const lines = readFileSync(exportFile, 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(N);
    expect(JSON.parse(lines[0]!)).not.toHaveProperty('_id');
  });

  it('refuses an export without the token, naming what is missing and never a token', async () => {
    const io = captureIo();
    const out = join(dir, 'refused.ndjson');
    await expect(exportCommand(['--url', sourceUrl, '--out', out], io)).rejects.toThrow(/401.*needs a token/);
    await expect(exportCommand(['--url', sourceUrl, '--token', 'klt_wrong-token', '--out', out], io)).rejects.toThrow(/401.*refuses the token/);
    await expect(exportCommand(['--url', sourceUrl, '--token', 'klt_wrong-token', '--out', out], io)).rejects.not.toThrow(/klt_wrong/);
    expect(() => readFileSync(out)).toThrow();
    expect(() => readFileSync(`${out}.partial`)).toThrow();
  });

  it('writes the same lines straight from the store (--direct)', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (chunk: Buffer) => (text += chunk.toString()));
    const summary = await exportFromStore({ store: source.store, start: NOW - DAY, out, pageSize: 64 });
    expect(summary.exported).toBe(N);
    expect(text).toBe(readFileSync(exportFile, 'utf8'));
  });

  it('imports the file: every document equal field by field, the same KPIs', async () => {
    const summary = await importBlobs(fileSource(exportFile), baseOptions(target));
    expect(summary).toMatchObject({ read: N, stored: N, alreadyThere: 0, refused: 0, failed: 0 });
    expect(await contents(target)).toEqual(await contents(source));
    const ids = (await storedBlobs(target.store)).map((doc) => doc._id as string);
    for (const id of ids) {
      const parsed = parseBlobDocId(id)!;
      expect(parsed.run).toBe(importRun(parsed.time));
    }
    await waitUntil(() => counted(target) >= N, 30_000, 'the target to count the imported blobs');
    expect(await kpis(target)).toEqual(await kpis(source));
    // one counter range per bucket in the aggregate's applied set, no id kept on its own
    const applied = target.app.aggregates.status().applied;
    expect(applied.foreign).toBe(0);
    expect(applied.ranges).toBe(new Set(ids.map((id) => parseBlobDocId(id)!.time)).size);
  });

  it('stores nothing twice when run again, or when the same blobs come from the source’s range API', async () => {
    const again = await importBlobs(fileSource(exportFile), baseOptions(target));
    expect(again).toMatchObject({ read: N, stored: 0, alreadyThere: N, refused: 0, failed: 0 });
    const viaApi = await importBlobs(
      rangeApiSource({ baseUrl: sourceUrl, start: NOW - DAY, end: NOW + HOUR, token: TEST_TOKEN, pageSize: 70 }),
      baseOptions(target),
    );
    expect(viaApi).toMatchObject({ read: N, stored: 0, alreadyThere: N, refused: 0, failed: 0 });
    expect(await contents(target)).toEqual(await contents(source));
    // the aggregate saw nothing new: once every change made until now is in it, it still counts N
    const importedAt = Date.now();
    await waitUntil(() => target.app.aggregates.status().countedThrough > importedAt, 30_000, 'the aggregate to hold every change made by the imports');
    expect(counted(target)).toBe(N);
    expect(await kpis(target)).toEqual(await kpis(source));
  });

  it('imports from another kpi-live’s range API (NDJSON, cursor pages) into an empty database', async () => {
    const dbName = uniqueDbName('import');
    const io = captureIo();
    try {
      const code = await importCommand(['--config', configFile(dbName), '--from-url', sourceUrl, '--token', TEST_TOKEN], io);
      expect(io.err()).not.toContain(TEST_TOKEN);
      expect(code).toBe(0);
      expect(io.out()).toMatch(/^import from http:\/\/127\.0\.0\.1:\d+\/: read 300 blobs in .*: stored 300, already there 0, refused 0\n$/);
      expect(io.err()).toMatch(/import 300 blobs, \d+\/s/);
    } finally {
      await dropDb(dbName);
    }
  });
});

describe('bad lines', () => {
  let target: TestApp;
  beforeAll(async () => {
    target = await startTestApp();
  });
  afterAll(async () => {
    await target?.close();
  });

  it('are reported with their line and field, skipped and counted; the rest is stored minimised', async () => {
    const t = floorToBucket(NOW - 40 * DAY) + 123_456; // older than ingest's 30 days: still imported
    const good = { timestamp: t, event_stream: [['screen.rp_info', 0]], lang: 'de' };
    const file = join(dir, 'bad-lines.ndjson');
    writeFileSync(
      file,
      [
        JSON.stringify(good),
        '{"timestamp": 1795400400000, "event_stream": [',
        JSON.stringify({
          timestamp: t,
          event_stream: [
            ['screen.rp_info', 10],
            ['screen.pick_email', 5],
          ],
        }),
        JSON.stringify({ timestamp: NOW + 3 * DAY, event_stream: [] }),
        '',
        '[1, 2]',
        JSON.stringify({ timestamp: NOW - 100 * DAY, event_stream: [] }),
        JSON.stringify(good),
        JSON.stringify({ timestamp: t, event_stream: [], language: 'fr', number_sites_signed_in: 3, csrf: 'secret', orphaned: true }),
        JSON.stringify({ timestamp: t, event_stream: [], number_emails: 5000 }),
      ].join('\n'),
    );
    const io = captureIo();
    const code = await importCommand(['--config', configFile(target.config.dbName, { retentionDays: 90 }), '--file', file], io);
    expect(code).toBe(1);
    expect(io.out()).toMatch(/read 9 blobs .*stored 3, already there 0, refused 6 \(timestamp: 2, blob: 1, event_stream: 1, json: 1, number_emails: 1\)\n$/);
    const reports = io.err();
    expect(reports).toContain('line 2: json is not JSON');
    expect(reports).toContain('line 3: event_stream[1][1] goes back in time');
    expect(reports).toMatch(/line 4: timestamp is more than 1440 min in the future/);
    expect(reports).toContain('line 6: blob is not a JSON object');
    expect(reports).toMatch(/line 7: timestamp is before the retention cutoff .*\(KPI_RETENTION_DAYS=90\): a retention pass would remove it at once/);
    expect(reports).toMatch(/line 10: number_emails must be <= 1000/);
    expect(reports).not.toMatch(/line (1|5|8|9):/);

    const stored = (await storedBlobs(target.store)).map(({ _id, _rev, ...blob }) => blob);
    const bucket = floorToBucket(t);
    expect(stored).toHaveLength(3);
    // both copies of line 1, and line 9 minimised, all rounded to 10 minutes
    expect(stored.filter((b) => blobDigest(b) === blobDigest({ ...good, timestamp: bucket }))).toHaveLength(2);
    expect(stored).toContainEqual({ timestamp: bucket, event_stream: [], lang: 'fr', number_sites_logged_in: 3 });

    // the age window is the import's own: with --max-age-hours 720 the 40-day-old blobs are refused too
    const strict = captureIo();
    expect(await importCommand(['--config', configFile(target.config.dbName), '--file', file, '--max-age-hours', '720'], strict)).toBe(1);
    expect(strict.out()).toMatch(/stored 0, already there 0, refused 9 \(timestamp: 5,/);
  });

  it('lets two imports run at once: the same blobs are stored once, different ones of the same bucket all get ids of their own', async () => {
    const bucket = floorToBucket(NOW - 2 * HOUR);
    const blobs = (mark: number) => Array.from({ length: 120 }, (_, i) => ({ timestamp: bucket + i, event_stream: [['screen.rp_info', mark * 1000 + i]] }));
    const fileA = join(dir, 'concurrent-a.ndjson');
    const fileB = join(dir, 'concurrent-b.ndjson');
    writeFileSync(
      fileA,
      blobs(1)
        .map((b) => JSON.stringify(b))
        .join('\n'),
    );
    writeFileSync(
      fileB,
      blobs(2)
        .map((b) => JSON.stringify(b))
        .join('\n'),
    );
    let conflicts = 0;
    const store: Store = {
      ...target.store,
      request: async <T>(req: StoreRequest): Promise<T> => {
        const answer = await target.store.request<T>(req);
        if (req.path === '_bulk_docs') conflicts += (answer as { error?: string }[]).filter((r) => r.error === 'conflict').length;
        return answer;
      },
    };
    const options = { ...baseOptions(target), store, batchSize: 25 };
    const before = (await storedBlobs(target.store)).length;
    const same = await Promise.all([importBlobs(fileSource(fileA), options), importBlobs(fileSource(fileA), options)]);
    expect(same.map((s) => s.stored + s.alreadyThere)).toEqual([120, 120]);
    expect(same[0]!.stored + same[1]!.stored).toBe(120);
    const different = await Promise.all([importBlobs(fileSource(fileA), options), importBlobs(fileSource(fileB), options)]);
    expect(different.map((s) => [s.stored, s.alreadyThere, s.failed])).toEqual([
      [0, 120, 0],
      [120, 0, 0],
    ]);
    expect((await storedBlobs(target.store)).length).toBe(before + 240);
    expect(conflicts).toBeGreaterThan(0); // they did meet
  });

  it('reads stdin with --file -, and says what is wrong with the options', async () => {
    await expect(importCommand(['--file', 'a', '--from-url', 'http://x'], captureIo())).rejects.toThrow(/either --from-url .* or --file/);
    await expect(importCommand(['--file', 'a', '--token', 't'], captureIo())).rejects.toThrow(/--token is for --from-url/);
    await expect(importCommand(['--from-url', 'not a url', '--config', configFile(target.config.dbName)], captureIo())).rejects.toThrow(/must be a URL/);
    await expect(importCommand(['--file', 'a', '--start', 'yesterday'], captureIo())).rejects.toThrow(/--start must be ms since the epoch or an ISO date/);
  });
});

describe('import from the original store’s range API', () => {
  let piggy: FastifyInstance;
  let piggyUrl: string;
  let target: TestApp;
  const requests: { start: number; end: number }[] = [];
  let failNext = 0;
  let requireToken = false;
  const START = floorToBucket(NOW - 3 * DAY);
  const END = floorToBucket(NOW);
  const random = seededRandom(11);
  /** As the original store kept them: client timestamps (not all rounded), its own _id and _rev. */
  const kept = Array.from({ length: 400 }, (_, i) => {
    const { blob } = simulateSession(random, { now: START + Math.floor(random() * (END - START)) });
    const timestamp = i % 5 === 0 ? floorToBucket(blob.timestamp as number) - (i % 3) * 3_600_000 : (blob.timestamp as number) + (i % 7) * 1000;
    return { _id: `doc${i}`, _rev: `1-${i}`, ...blob, timestamp };
  });
  kept.push({ ...kept[3]!, _id: 'copy' }); // the same blob twice
  kept.push({ ...kept[4]!, _id: 'old', timestamp: NOW - 40 * DAY }); // older than ingest's window: imported
  kept.sort((a, b) => a.timestamp - b.timestamp);

  beforeAll(async () => {
    target = await startTestApp();
    piggy = Fastify();
    piggy.get<{ Querystring: { start?: string; end?: string } }>('/wsapi/interaction_data', async (request, reply) => {
      const start = Number.parseInt(request.query.start ?? '0', 10);
      const end = Number.parseInt(request.query.end ?? String(Number.MAX_SAFE_INTEGER), 10);
      requests.push({ start, end });
      if (requireToken) return reply.code(401).send({ message: 'who are you?' });
      if (failNext > 0) {
        failNext--;
        return reply.code(503).send({ error: 'Computer says no.' });
      }
      // a CouchDB view with startkey/endkey: both ends inclusive; rows, not blobs
      const rows = kept.filter((b) => b.timestamp >= start && b.timestamp <= end).map((b) => ({ id: b._id, key: b.timestamp, value: b }));
      return reply.type('application/json').send(JSON.stringify(rows));
    });
    await piggy.listen({ host: '127.0.0.1', port: 0 });
    piggyUrl = `http://127.0.0.1:${(piggy.server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await piggy?.close();
    await target?.close();
  });

  it('pages by time windows, retries a failed request, takes each blob once (edges included), and both copies of a doubled one', async () => {
    failNext = 1;
    const source = rangeApiSource({ baseUrl: piggyUrl, start: NOW - 50 * DAY, end: END + 1, windowMs: 2 * HOUR, windowTarget: 40, retryDelayMs: 10 });
    const summary = await importBlobs(source, baseOptions(target));
    expect(summary).toMatchObject({ read: kept.length, stored: kept.length, alreadyThere: 0, refused: 0, failed: 0 });
    expect(requests.length).toBeGreaterThan(10);
    // some blobs lie exactly on a window's edge, which the store's inclusive end gives twice
    expect(kept.filter((b) => requests.some((r) => r.end === b.timestamp)).length).toBeGreaterThan(0);
    const ctx = { now: NOW, maxAgeMs: Infinity, maxFutureMs: DAY, userAgent: undefined };
    const expected = kept.map((b) => JSON.stringify(normalizeBlob(b, '', ctx), Object.keys(normalizeBlob(b, '', ctx)).sort())).sort();
    expect(await contents(target)).toEqual(expected);

    requests.length = 0;
    const again = await importBlobs(rangeApiSource({ baseUrl: piggyUrl, start: NOW - 50 * DAY, end: END + 1 }), baseOptions(target));
    expect(again).toMatchObject({ read: kept.length, stored: 0, alreadyThere: kept.length });
    expect(await contents(target)).toEqual(expected);
  });

  it('gives up after the retries, saying where it stopped', async () => {
    failNext = 100;
    const source = rangeApiSource({ baseUrl: piggyUrl, start: START, end: END, retries: 3, retryDelayMs: 5 });
    const summary = await importBlobs(source, baseOptions(target));
    failNext = 0;
    expect(summary.read).toBe(0);
    expect(summary.error).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/: the source answered 503: Computer says no\. \(gave up after 4 attempts\)$/);
  });

  it('says when the source refuses the token, and never shows it', async () => {
    requireToken = true;
    const io = captureIo();
    const code = await importCommand(['--config', configFile(target.config.dbName), '--from-url', piggyUrl, '--token', 'klt_secret-of-the-test'], io);
    requireToken = false;
    expect(code).toBe(1);
    expect(io.err()).toMatch(/stopped: the source answered 401 \(who are you\?\): it refuses the token\. Running the same import again is safe/);
    expect(io.out() + io.err()).not.toContain('klt_secret');
  });
});
