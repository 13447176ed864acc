/**
 * bench:cluster: several kpi-live instances on one store, and a failover of
 * the aggregate follower under load.
 *
 * One store shared over loopback by five `kpi-live serve` processes: the
 * CouchDB `COUCHDB_URL` names (databases of the run's own, dropped at the
 * end), else an embedded store (pouchdb-server) started here. Before any
 * service starts, the store's raw ceilings are measured (bench/store.ts):
 * `_bulk_docs` straight to it, 500 blob documents a batch, 2 in flight, and
 * its `_changes` read back (include_docs, 1,000 a batch): what the cluster's
 * ingest and the new follower's catch-up can at most reach. Three ingest
 * instances (`KPI_ROLE=standby`:
 * they take blobs and serve dashboards from the published aggregate, never
 * follow the feed) and two that take part in the election (`auto`): one
 * follows `_changes` and writes the checkpoint, the other stands by.
 *
 * 1. Baseline: one instance alone (the follower too), its own database,
 *    closed-loop load (every connection sends its next POST when answered):
 *    the throughput a single instance sustains on this machine.
 * 2. Probe: the same closed-loop load spread over the three ingest instances:
 *    the cluster's highest rate here, with the follower following live.
 * 3. Failover: 80% of that rate offered at a fixed pace to the three ingest
 *    instances, after a 2 s warm-up at that pace, in three segments: before,
 *    failover (the follower is killed with SIGKILL as it starts), after. The standby's `/health` is polled to
 *    time the takeover (lease held) and the catch-up (phase `live`).
 * 4. Correctness: once the load stops and the new follower has counted every
 *    stored blob, its `/api/kpis` and an ingest instance's (from the
 *    published checkpoint) are compared with a rebuild from the stored blobs.
 * 5. Stored size: the average blob document (JSON, from a sample) and the
 *    store's disk use per blob (the embedded store's folder; CouchDB's
 *    database file size), for the sizing in docs/architecture.md.
 *
 * Bodies are real simulator sessions (src/simulate), one blob per POST with
 * a browser User-Agent, pre-serialised; the load generator (autocannon) runs
 * in a worker thread of this same module. Everything is on loopback, stops by
 * itself, and is bounded (about 2.5 minutes; a watchdog ends it at 4).
 *
 * Prints a table; the last line is JSON: baselineBlobsPerSec, baselineP99Ms,
 * clusterBlobsPerSec, clusterP99Ms, ratio, offeredBlobsPerSec,
 * failoverBlobsPerSec, failoverP99Ms, takeoverMs, liveMs, standbyMaxLagSeconds,
 * stored, lost, equal, avgDocBytes, diskBytesPerDoc, loadAverage (the machine's
 * 1-minute load average at start: other work moves every number here),
 * store (`{kind, version}`), rawBulkDocsPerSec, rawChangesPerSec, ofCeiling
 * (clusterBlobsPerSec ÷ rawBulkDocsPerSec).
 *
 * Knobs (environment): COUCHDB_URL, BENCH_CONNECTIONS (default 64),
 * BENCH_LEASE_TTL_MS (default 15000, the service's default),
 * BENCH_CEILING_SECONDS (default 5).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import {
  intFromEnv,
  statsOf,
  verdict,
  type Autocannon,
  type AutocannonOptions,
  type AutocannonRequestData,
  type PooledRequest,
  type RunStats,
} from './common.js';

// ---------------------------------------------------------------------------
// Load generator (worker thread)
// ---------------------------------------------------------------------------

interface Segment {
  seconds: number;
  /** Requests per second over all targets; unset: closed loop. */
  rate?: number;
}

interface LoadJob {
  urls: string[];
  pool: PooledRequest[];
  /** Connections over all targets. */
  connections: number;
  segments: Segment[];
}

type WorkerMessage = { segment: number; stats: RunStats } | { done: true };

/** Runs the segments one after the other, each spread over every target; posts each segment's stats as it ends. */
async function fire(job: LoadJob): Promise<void> {
  const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;
  let next = 0;
  const setupRequest = (request: AutocannonRequestData): AutocannonRequestData => {
    const pooled = job.pool[next++ % job.pool.length]!;
    request.body = pooled.body;
    request.headers['user-agent'] = pooled.userAgent;
    return request;
  };
  for (const [i, segment] of job.segments.entries()) {
    const options = job.urls.map((url, k): AutocannonOptions => ({
      url,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      requests: [{ setupRequest }],
      connections: Math.max(1, Math.round(job.connections / job.urls.length) + (k < job.connections % job.urls.length ? 1 : 0)),
      duration: segment.seconds,
      timeout: 30,
      ...(segment.rate ? { overallRate: Math.max(1, Math.round(segment.rate / job.urls.length)) } : {}),
    }));
    // off the main thread autocannon answers raw histograms: merged here into one result
    const raw = await Promise.all(options.map((o) => autocannon(o)));
    const merged = autocannon.aggregateResult(raw, options[0]!);
    parentPort!.postMessage({ segment: i, stats: statsOf(merged) } satisfies WorkerMessage);
  }
  parentPort!.postMessage({ done: true } satisfies WorkerMessage);
}

/** The load in a worker thread; `onSegment` is told as each segment starts and ends. */
function fireInWorker(job: LoadJob, onSegmentEnd?: (i: number, stats: RunStats) => void): Promise<RunStats[]> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: job });
    const stats: RunStats[] = [];
    worker.on('message', (message: WorkerMessage) => {
      if ('done' in message) {
        void worker.terminate();
        resolve(stats);
        return;
      }
      stats[message.segment] = message.stats;
      onSegmentEnd?.(message.segment, message.stats);
    });
    worker.once('error', reject);
    worker.once('exit', (code) => (stats.length === job.segments.length ? undefined : reject(new Error(`load generator exited with code ${code}`))));
  });
}

// ---------------------------------------------------------------------------
// Benchmark (main thread)
// ---------------------------------------------------------------------------

const WATCHDOG_MS = 240_000;
const POOL_SIZE = 4000;
const WARMUP_SECONDS = 2;
const BASELINE_SECONDS = 8;
const PROBE_SECONDS = 6;
const BEFORE_SECONDS = 8;
const AFTER_SECONDS = 8;
const OFFERED_SHARE = 0.8;

interface Instance {
  name: string;
  url: string;
  child: ChildProcess;
  exited: Promise<void>;
  stderr(): string;
}

interface Health {
  lease?: { role: string; following: boolean; holder: string | null; instanceId: string };
  aggregate?: { phase: string; lagSeconds: number; counted: number };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
  return rows.map((row) => row.map((cell, col) => (col === 0 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!))).join('  ')).join('\n');
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? await dirBytes(path) : (await stat(path)).size;
  }
  return total;
}

async function main(): Promise<void> {
  const { pino } = await import('pino');
  const { EmbeddedCouch, freeLoopbackPort } = await import('../src/store/embedded.js');
  const { loadConfig } = await import('../src/config/config.js');
  const { openStore } = await import('../src/store/store.js');
  const { rebuild } = await import('../src/aggregate/runtime/rebuild.js');
  const { queryKpis } = await import('../src/aggregate/model/query.js');
  const { defaultSegmentConfig } = await import('../src/aggregate/model/segments.js');
  const { defaultRetention } = await import('../src/aggregate/model/state.js');
  const { HOUR } = await import('../src/contract/kpis.js');
  const { seededRandom, simulateSession } = await import('../src/simulate/generator.js');
  const { projectRoot } = await import('../src/project-root.js');
  const { isDeepStrictEqual } = await import('node:util');
  const { benchDbName, benchStore, couchdbUrlFromEnv, dropDatabases, kpiDatabases, ofCeiling, storeCeilings, storedBlobJson } = await import('./store.js');

  const connections = intFromEnv('BENCH_CONNECTIONS', 64);
  const ttlMs = intFromEnv('BENCH_LEASE_TTL_MS', 15_000);
  const ceilingSeconds = intFromEnv('BENCH_CEILING_SECONDS', 5);
  const couchdbUrl = couchdbUrlFromEnv();
  // a fresh embedded store has nothing else in it; a shared CouchDB gets names of this run's own
  const soloDb = couchdbUrl ? benchDbName('solo') : 'bench_solo';
  const clusterDb = couchdbUrl ? benchDbName('cluster') : 'bench_cluster';
  const failoverSeconds = Math.ceil(ttlMs / 1000) + 12;
  const started = Date.now();
  // other work on the machine moves every number here: say how busy it was
  const loadAtStart = loadavg()[0]!;
  const log = pino({ level: 'warn' }, pino.destination(2));
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)} s`;
  const say = (line: string) => process.stderr.write(`[${elapsed()}] ${line}\n`);

  const dataDir = await mkdtemp(join(tmpdir(), 'kpi-bench-cluster-'));
  const couch = couchdbUrl ? undefined : new EmbeddedCouch({ dataDir, log });
  await couch?.start();
  const storeUrl = couchdbUrl ?? couch!.authorizedUrl;
  const where = await benchStore({ embeddedUrl: couch?.authorizedUrl });
  const instances: Instance[] = [];
  const killAll = () => {
    for (const i of instances) i.child.kill('SIGKILL');
  };
  process.once('exit', killAll);
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench:cluster: still running after ${WATCHDOG_MS / 1000} s: stopping\n`);
    killAll();
    void Promise.resolve(couch?.stop()).finally(() => process.exit(1));
  }, WATCHDOG_MS);
  watchdog.unref();

  const startInstance = async (name: string, db: string, role: 'auto' | 'standby'): Promise<Instance> => {
    const port = await freeLoopbackPort();
    const child = spawn(process.execPath, [join(projectRoot(), 'bin', 'kpi-live.js'), 'serve'], {
      env: {
        PATH: process.env.PATH ?? '',
        // the embedded store answers its admin only; these services are this run's own
        COUCHDB_URL: storeUrl,
        KPI_DB: db,
        PORT: String(port),
        LOG_LEVEL: 'warn',
        KPI_RATE_LIMIT_MAX: '100000000',
        KPI_TRUST_LOOPBACK: 'true',
        KPI_ROLE: role,
        KPI_INSTANCE_ID: name,
        KPI_LEASE_TTL_MS: String(ttlMs),
        KPI_DATA_DIR: join(dataDir, `instance-${name}`),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const instance: Instance = { name, url: `http://127.0.0.1:${port}`, child, exited, stderr: () => stderr };
    instances.push(instance);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${name} exited: ${stderr}`);
      const ok = await fetch(`${instance.url}/health`, { signal: AbortSignal.timeout(1000) }).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) return instance;
      if (Date.now() > deadline) throw new Error(`${name} did not answer within 30 s: ${stderr}`);
      await sleep(100);
    }
  };
  const stopInstance = async (instance: Instance) => {
    instance.child.kill('SIGTERM');
    await instance.exited;
  };
  const health = async (instance: Instance): Promise<Health> =>
    fetch(`${instance.url}/health`, { signal: AbortSignal.timeout(2000) }).then(
      (r) => r.json() as Promise<Health>,
      () => ({}),
    );

  // every blob is timestamped now, as a live dialog's would be
  const random = seededRandom(20260601);
  const now = Date.now();
  const pool: PooledRequest[] = Array.from({ length: POOL_SIZE }, () => {
    const { blob, userAgent } = simulateSession(random, { now });
    return { body: JSON.stringify({ data: [blob], csrf: 'x' }), userAgent };
  });
  const window = () => ({ from: now - HOUR, to: Date.now() + HOUR, bucket: '10m' as const });
  const ingestUrl = (i: Instance) => `${i.url}/wsapi/interaction_data`;

  try {
    // 0. the store's own ceilings, before any service runs
    say(`store: ${where.label}; raw _bulk_docs (500 a batch, 2 in flight, ${ceilingSeconds} s), then its _changes read back`);
    const ceilingDocs = await storedBlobJson(2000, 13, now);
    const ceilings = await storeCeilings(where, (i) => ceilingDocs[i % ceilingDocs.length]!, { seconds: ceilingSeconds });
    say(`store ceilings: ${ceilings.write.docsPerSec} docs/s written, ${ceilings.feed.changesPerSec} changes/s read`);

    // 1. baseline: one instance alone
    const solo = await startInstance('solo', soloDb, 'auto');
    say(`baseline: one instance, ${connections} connections, closed loop, ${WARMUP_SECONDS} s warm-up + ${BASELINE_SECONDS} s`);
    const [, baseline] = await fireInWorker({
      urls: [ingestUrl(solo)],
      pool,
      connections,
      segments: [{ seconds: WARMUP_SECONDS }, { seconds: BASELINE_SECONDS }],
    });
    await stopInstance(solo);

    // 2. the cluster: two in the election (the first started follows), three ingest instances
    const followerA = await startInstance('follower-a', clusterDb, 'auto');
    const [followerB, ...ingest] = await Promise.all([
      startInstance('follower-b', clusterDb, 'auto'),
      startInstance('ingest-1', clusterDb, 'standby'),
      startInstance('ingest-2', clusterDb, 'standby'),
      startInstance('ingest-3', clusterDb, 'standby'),
    ]);
    const roles = await Promise.all([followerA, followerB!, ...ingest].map(async (i) => `${i.name}: ${(await health(i)).lease?.role}`));
    say(`cluster: ${roles.join(', ')}`);
    if ((await health(followerA)).lease?.role !== 'follower') throw new Error('follower-a was not elected');
    say(`probe: three ingest instances, ${connections} connections in all, closed loop, ${WARMUP_SECONDS} s warm-up + ${PROBE_SECONDS} s`);
    const [probeWarmup, probe] = await fireInWorker({
      urls: ingest.map(ingestUrl),
      pool,
      connections,
      segments: [{ seconds: WARMUP_SECONDS }, { seconds: PROBE_SECONDS }],
    });
    const offered = Math.floor(probe!.blobsPerSec * OFFERED_SHARE);

    // 3. failover under a fixed offered rate
    say(
      `failover: ${offered} blobs/s offered (${OFFERED_SHARE * 100}% of the probe) for ${WARMUP_SECONDS} s warm-up + ${BEFORE_SECONDS} + ${failoverSeconds} + ${AFTER_SECONDS} s; follower-a killed as the third segment starts`,
    );
    let killedAt = 0;
    let leaseAt = 0;
    let liveAt = 0;
    let standbyMaxLag = 0;
    let monitoring = true;
    const monitor = (async () => {
      while (monitoring) {
        const [b, i1] = await Promise.all([health(followerB!), health(ingest[0]!)]);
        standbyMaxLag = Math.max(standbyMaxLag, i1.aggregate?.lagSeconds ?? 0);
        if (killedAt > 0) {
          if (!leaseAt && b.lease?.role === 'follower') {
            leaseAt = Date.now();
            say(`follower-b holds the lease, ${leaseAt - killedAt} ms after the kill`);
          }
          if (leaseAt && !liveAt && b.lease?.following && b.aggregate?.phase === 'live') {
            liveAt = Date.now();
            say(`follower-b follows live, ${liveAt - killedAt} ms after the kill`);
          }
        }
        await sleep(100);
      }
    })();
    const segments = await fireInWorker(
      {
        urls: ingest.map(ingestUrl),
        pool,
        connections,
        segments: [
          { seconds: WARMUP_SECONDS, rate: offered },
          { seconds: BEFORE_SECONDS, rate: offered },
          { seconds: failoverSeconds, rate: offered },
          { seconds: AFTER_SECONDS, rate: offered },
        ],
      },
      (i) => {
        if (i !== 1) return;
        killedAt = Date.now();
        followerA.child.kill('SIGKILL');
        say('follower-a killed (SIGKILL)');
      },
    );
    const [, before, during, after] = segments as [RunStats, RunStats, RunStats, RunStats];

    // 4. correctness: the new follower counts every stored blob once
    const config = loadConfig({ env: {}, overrides: { couchdbUrl: storeUrl, dbName: clusterDb, logLevel: 'silent' } });
    const store = await openStore(config, log, { setup: false });
    let equal = false;
    let stored = 0;
    let acknowledged = 0;
    let avgDocBytes = 0;
    let diskBytesPerDoc = 0;
    try {
      const info = await store.request<{ doc_count: number; sizes?: { file?: number } }>({ db: clusterDb });
      stored = info.doc_count - 1; // the design document
      acknowledged = [probeWarmup!, probe!, ...segments].reduce((n, s) => n + s.ok, 0); // every 200, warm-ups included
      const dialogs = async (instance: Instance) => {
        const w = window();
        const answer = (await fetch(`${instance.url}/api/kpis?from=${w.from}&to=${w.to}&bucket=10m`).then((r) => r.json())) as {
          series: { total: { dialogs: number } }[];
        };
        return answer.series[0]?.total.dialogs ?? 0;
      };
      const deadline = Date.now() + 60_000;
      while ((await dialogs(followerB!)) !== stored || (await dialogs(ingest[0]!)) !== stored) {
        if (Date.now() > deadline) break;
        await sleep(250);
      }
      monitoring = false;
      await monitor;
      say(`${stored} blobs stored; rebuilding from them to compare`);
      const rebuilt = await rebuild({
        store,
        blobsDb: clusterDb,
        stateDb: `${clusterDb}_aggregates`,
        segments: defaultSegmentConfig,
        retention: defaultRetention,
        batchSize: 1000,
        log,
        dryRun: true,
      });
      const w = window();
      const expected = JSON.parse(JSON.stringify(queryKpis(rebuilt.state, w))) as unknown;
      const answers = await Promise.all(
        [followerB!, ingest[0]!].map((i) => fetch(`${i.url}/api/kpis?from=${w.from}&to=${w.to}&bucket=10m`).then((r) => r.json() as Promise<unknown>)),
      );
      equal = rebuilt.counted === stored && answers.every((a) => isDeepStrictEqual(a, expected));
      if (!equal) {
        // what differs, so that a MISS can be looked into
        const total = (a: unknown) => (a as { series?: { total?: { dialogs?: number } }[] }).series?.[0]?.total?.dialogs;
        const others = (a: unknown) =>
          Object.keys(a as object).filter((k) => !isDeepStrictEqual((a as Record<string, unknown>)[k], (expected as Record<string, unknown>)[k]));
        say(
          `not equal: rebuild counted ${rebuilt.counted} of ${stored} stored; dialogs: rebuild ${total(expected)}, ` +
            `follower-b ${total(answers[0])} (fields differing: ${others(answers[0]).join(', ') || 'none'}), ` +
            `ingest-1 ${total(answers[1])} (fields differing: ${others(answers[1]).join(', ') || 'none'})`,
        );
      }

      // 5. stored size
      const sample = await store.request<{ rows: { doc: Record<string, unknown> }[] }>({
        db: clusterDb,
        path: '_all_docs',
        qs: { include_docs: true, limit: 2001, startkey: '0' }, // nano JSON-encodes keys itself
      });
      const docs = sample.rows.map((r) => r.doc).filter((d) => !String(d._id).startsWith('_design/'));
      avgDocBytes = Math.round(docs.reduce((n, d) => n + Buffer.byteLength(JSON.stringify(d)), 0) / Math.max(1, docs.length));
      const diskBytes = couch ? await dirBytes(join(dataDir, clusterDb)) : (info.sizes?.file ?? 0);
      diskBytesPerDoc = Math.round(diskBytes / Math.max(1, stored));
    } finally {
      monitoring = false;
      await store.close();
    }

    const failover = {
      seconds: before.seconds + during.seconds + after.seconds,
      ok: before.ok + during.ok + after.ok,
      p99Ms: Math.max(before.p99Ms, during.p99Ms, after.p99Ms),
    };
    const failoverBlobsPerSec = failover.ok / failover.seconds;
    const ratio = probe!.blobsPerSec / baseline!.blobsPerSec;
    const takeoverMs = leaseAt ? leaseAt - killedAt : null;
    const liveMs = liveAt ? liveAt - killedAt : null;
    const lost = Math.max(0, acknowledged - stored);
    const row = (label: string, s: RunStats, offeredRate?: number) => [
      label,
      offeredRate ? String(offeredRate) : 'closed loop',
      s.blobsPerSec.toFixed(0),
      s.p50Ms.toFixed(1),
      s.p99Ms.toFixed(1),
      String(s.failed),
    ];
    const lines = [
      '',
      `kpi-live cluster on one store, ${where.label} (${cpus().length} cores shared by the store, 5 services and the load generator; ` +
        `load average ${loadAtStart.toFixed(1)} at start, ${loadavg()[0]!.toFixed(1)} at the end): ` +
        `3 ingest instances (KPI_ROLE=standby) + 2 in the election; lease ttl ${ttlMs} ms; ${connections} connections; 1 blob per POST`,
      table([
        ['run', 'offered/s', 'blobs/s', 'p50 ms', 'p99 ms', 'non-2xx'],
        row('baseline: 1 instance', baseline!),
        row('cluster: 3 ingest instances', probe!),
        row('failover: before', before, offered),
        row('failover: follower killed', during, offered),
        row('failover: after', after, offered),
      ]),
      '',
      `store ceilings (same run)       raw _bulk_docs ${ceilings.write.docsPerSec} docs/s (${ceilings.write.batch} a batch, ${ceilings.write.inFlight} in flight), ` +
        `raw _changes ${ceilings.feed.changesPerSec} changes/s (include_docs, ${ceilings.feed.batch} a batch)`,
      `cluster / store write ceiling   ${((100 * probe!.blobsPerSec) / ceilings.write.docsPerSec).toFixed(0)}% (baseline: ${((100 * baseline!.blobsPerSec) / ceilings.write.docsPerSec).toFixed(0)}%)`,
      `cluster / baseline throughput   ${ratio.toFixed(2)}×`,
      `failover run accepted           ${failoverBlobsPerSec.toFixed(0)} blobs/s of ${offered} offered (${((100 * failoverBlobsPerSec) / offered).toFixed(1)}%), p99 ${failover.p99Ms} ms`,
      `takeover (lease held)           ${takeoverMs ?? 'none'} ms after SIGKILL   bound ttl + ttl/3 + 5 s = ${ttlMs + Math.floor(ttlMs / 3) + 5000} ms   ${verdict(takeoverMs !== null && takeoverMs <= ttlMs + Math.floor(ttlMs / 3) + 5000)}`,
      `new follower live               ${liveMs ?? 'not yet'} ms after SIGKILL (checkpoint loaded, backlog read)`,
      `ingest instances' lag behind the published aggregate: at most ${standbyMaxLag} s`,
      `stored ${stored}, acknowledged ${acknowledged}, lost ${lost}   ${verdict(lost === 0)}`,
      `aggregate == rebuild (new follower and an ingest instance)   ${equal}   ${verdict(equal)}`,
      `stored blob: ${avgDocBytes} B of JSON on average; ${diskBytesPerDoc} B of store disk per blob (${couch ? 'embedded store folder' : "CouchDB's database file"}, uncompacted)`,
      ...[baseline!, probe!, before, during, after].filter((s) => s.failures).map((s) => `  failures: ${s.failures}`),
      '',
    ];
    process.stdout.write(lines.join('\n'));
    process.stdout.write(
      JSON.stringify({
        baselineBlobsPerSec: Math.round(baseline!.blobsPerSec),
        baselineP99Ms: baseline!.p99Ms,
        clusterBlobsPerSec: Math.round(probe!.blobsPerSec),
        clusterP99Ms: probe!.p99Ms,
        ratio: Number(ratio.toFixed(2)),
        offeredBlobsPerSec: offered,
        failoverBlobsPerSec: Math.round(failoverBlobsPerSec),
        failoverP99Ms: failover.p99Ms,
        takeoverMs,
        liveMs,
        standbyMaxLagSeconds: standbyMaxLag,
        stored,
        lost,
        equal,
        avgDocBytes,
        diskBytesPerDoc,
        loadAverage: Number(loadAtStart.toFixed(2)),
        store: { kind: where.kind, version: where.version },
        rawBulkDocsPerSec: ceilings.write.docsPerSec,
        rawChangesPerSec: ceilings.feed.changesPerSec,
        ofCeiling: ofCeiling(probe!.blobsPerSec, ceilings.write.docsPerSec),
      }) + '\n',
    );
    if (!equal || lost > 0 || takeoverMs === null) process.exitCode = 1;
  } finally {
    await Promise.all(instances.filter((i) => i.child.exitCode === null && i.child.signalCode === null).map(stopInstance));
    if (couchdbUrl) await dropDatabases(where, [...kpiDatabases(soloDb), ...kpiDatabases(clusterDb)]);
    await couch?.stop();
    await rm(dataDir, { recursive: true, force: true });
    clearTimeout(watchdog);
  }
}

if (isMainThread) {
  main().then(
    () => process.exit(process.exitCode ?? 0),
    (err: unknown) => {
      process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
} else {
  void fire(workerData as LoadJob);
}
