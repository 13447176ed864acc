/**
 * The service as a process: graceful shutdown under load loses no
 * acknowledged blob; a bad setting stops start-up naming it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { freeLoopbackPort } from '../../src/store/embedded.js';
import { dropDb, nowTimestamp, uniqueDbName } from '../harness/app.js';
import { startServiceProcess } from '../harness/process.js';

const dbs: string[] = [];
afterAll(async () => {
  for (const db of dbs) for (const suffix of ['', '_aggregates', '_deploys']) await dropDb(`${db}${suffix}`);
});

async function storedMarkers(db: string): Promise<Set<string>> {
  const url = new URL(inject('couchUrl'));
  const headers: Record<string, string> = {};
  if (url.username)
    headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
  url.username = '';
  url.password = '';
  const res = await fetch(`${url.origin}/${db}/_all_docs?include_docs=true`, { headers });
  const body = (await res.json()) as { rows: { doc: { rp_api?: string } }[] };
  return new Set(body.rows.map((r) => r.doc.rp_api).filter((m): m is string => typeof m === 'string'));
}

describe('kpi-live serve', () => {
  it('on SIGTERM, answers the requests in flight after writing their blobs, then exits 0', async () => {
    const db = uniqueDbName('shutdown');
    dbs.push(db);
    const port = await freeLoopbackPort();
    // A long group-commit wait keeps requests waiting in the queue when the signal comes.
    const service = startServiceProcess(['serve'], {
      COUCHDB_URL: inject('couchUrl'),
      KPI_DB: db,
      PORT: String(port),
      KPI_COMMIT_WAIT_MS: '200',
      KPI_RATE_LIMIT_MAX: '1000000',
      LOG_LEVEL: 'info',
    });
    await service.waitForLog((l) => l.msg === 'kpi-live listening');

    const acked: string[] = [];
    let ackedAfterSignal = 0;
    let signalled = false;
    let next = 0;
    const worker = async () => {
      for (;;) {
        const marker = `sd-${next++}`;
        try {
          const res = await fetch(`http://127.0.0.1:${port}/wsapi/interaction_data`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ data: [{ timestamp: nowTimestamp(), event_stream: [['screen.rp_info', 1]], rp_api: marker }] }),
          });
          await res.arrayBuffer();
          if (res.status === 200) {
            acked.push(marker);
            if (signalled) ackedAfterSignal += 1;
          } else if (signalled) return;
        } catch {
          return; // connection refused: the server is gone
        }
      }
    };
    const workers = Array.from({ length: 32 }, () => worker());
    while (acked.length < 300) await new Promise((r) => setTimeout(r, 10));
    signalled = true;
    service.child.kill('SIGTERM');
    expect(await service.exited).toBe(0);
    await Promise.all(workers);

    const stored = await storedMarkers(db);
    const missing = acked.filter((m) => !stored.has(m));
    expect(missing).toEqual([]);
    expect(ackedAfterSignal).toBeGreaterThan(0);
    // the store closes only after ingest has written everything (log lines of
    // the same millisecond may reach the pipe in any order: compare times)
    const timeOf = (msg: string) => service.logs.find((l) => l.msg === msg)?.time as number;
    expect(timeOf('ingest flushed')).toBeLessThanOrEqual(timeOf('store closed'));
    expect(timeOf('store closed')).toBeLessThanOrEqual(timeOf('kpi-live stopped'));
  });

  it.each([
    [{ PORT: 'eighty' }, /PORT must be integer/],
    [{ KPI_COMMIT_BATCH_DOCS: '-3' }, /KPI_COMMIT_BATCH_DOCS must be >= 1/],
  ])('refuses to start with a bad setting, naming it: %j', async (env, message) => {
    const service = startServiceProcess(['serve'], { COUCHDB_URL: inject('couchUrl'), ...env });
    expect(await service.exited).toBe(1);
    expect(service.stderr()).toMatch(message);
  });

  it('never logs the store credentials', async () => {
    const url = new URL(inject('couchUrl'));
    url.username = 'admin';
    url.password = 'sup3r-s3cret';
    const port = await freeLoopbackPort();
    // wrong credentials on a store that may not check them: start-up either
    // succeeds or fails, and in both cases the password is not in the output
    const service = startServiceProcess(['serve'], { COUCHDB_URL: url.toString(), KPI_DB: uniqueDbName('creds'), PORT: String(port), LOG_LEVEL: 'debug' });
    await Promise.race([service.waitForLog((l) => l.msg === 'kpi-live listening').catch(() => undefined), service.exited]);
    service.child.kill('SIGTERM');
    await service.exited;
    const output = JSON.stringify(service.logs) + service.stderr();
    expect(output).not.toContain('sup3r-s3cret');
    expect(output).toContain('using external CouchDB store');
    const db = service.logs.find((l) => l.msg === 'using external CouchDB store')?.db;
    if (typeof db === 'string') dbs.push(db);
  });
});
