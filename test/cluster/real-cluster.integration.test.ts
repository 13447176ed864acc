/**
 * kpi-live on a real three-node Apache CouchDB 3 cluster (n=3, q=2: every
 * shard has a copy on every node), started from the shared build by
 * test/harness/couch-cluster.ts. Each kpi-live instance talks to one node;
 * nodes are frozen (SIGSTOP), killed (SIGKILL) and started again under
 * dialog load:
 *
 * 1. two `kpi-live serve` processes on different nodes, started together:
 *    the lease elects one follower, and with the follower SIGKILLed the
 *    other takes over within the bound;
 * 2. under load, the follower's own node frozen for a few seconds (its lease
 *    cannot be renewed: it must stop following before the standby, on
 *    another node, takes over) and thawed (its stale writes land then), then
 *    the third node SIGKILLed and restarted;
 * 3. the follower SIGKILLed while a third node is down;
 * 4. the checkpoint fence: a running writer's commit reaches one node's
 *    copies and a rebuild's replace, at the same revision, the other two;
 *    once the copies meet, every node loads the rebuild's checkpoint, the old
 *    writer's next commit is refused, and one leaf is left;
 * 5. couchdb/cluster-setup.sh and couchdb/setup-kpi-user.sh run for real
 *    against the cluster; kpi-live signs in as the user they made, the
 *    databases' `_security` holds on every node, and retention deletes on
 *    the cluster (as that user, which CouchDB does not let purge) and purges
 *    (as an admin).
 *
 * Every scenario ends with the same three checks: every acknowledged blob is
 * stored (read through a node, once the copies agree), each once, and the
 * aggregate counts the stored blobs exactly once (it equals a rebuild). Load
 * goes to loopback only and is bounded in requests and time; every wait is
 * bounded and names its step.
 *
 * Runs where the CouchDB build is found (couch-cluster.ts); `KPI_CLUSTER_TESTS=1`
 * makes a missing build a failure, `KPI_CLUSTER_TESTS=0` skips the file
 * (`.ci/run` runs it in its real-CouchDB leg only).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { CheckpointConflictError, CheckpointStore, readRoots, ROOT_ID, snapshotOf, type Root } from '../../src/aggregate/runtime/checkpoint.js';
import { defaultSegmentConfig } from '../../src/aggregate/model/segments.js';
import { defaultRetention } from '../../src/aggregate/model/state.js';
import type { LeaseStatus } from '../../src/cluster/elector.js';
import { leaseTimings } from '../../src/cluster/lease.js';
import { loadConfig } from '../../src/config/config.js';
import { purgeTombstones } from '../../src/retention/purge.js';
import { seededRandom, simulateSession } from '../../src/simulate/generator.js';
import { newRunId } from '../../src/store/blob-ids.js';
import { Database } from '../../src/store/database.js';
import { openStore, type Store } from '../../src/store/store.js';
import { stateOfBlobs } from '../harness/kpi-fixtures.js';
import { adminHeaders, clusterTestPlan, startCouchCluster, type CouchCluster } from '../harness/couch-cluster.js';
import { runCouchdbScript, type ScriptRun } from '../harness/couchdb-script.js';
import { startTestApp, uniqueDbName, whileTrafficFlows, type TestApp } from '../harness/app.js';
import { startMarkedLoad, type MarkedLoad } from '../harness/marked-load.js';
import { failoverServiceEnv, startServiceProcess, waitUntil, within, type ServiceProcess } from '../harness/process.js';
import { expectServiceEqualsRebuild, missingMarkers, storedCount, storedMarkers } from '../harness/verify.js';
import { DAY, HOUR, MINUTE } from '../../src/contract/kpis.js';

const plan = clusterTestPlan();
if (!plan.run) console.log(`[kpi-live tests] real CouchDB cluster: not run, ${plan.why}`);

const TTL = 3000;
const timings = leaseTimings(TTL);
/** ttl + the renew interval + a margin (the skew margin, Date readings, a poll), as on one node. */
const TAKEOVER_BOUND_MS = TTL + timings.renewMs + 5000;
/** No scenario sends more requests than this, whatever happens. */
const MAX_REQUESTS = 20_000;
/** One request's bound: a store timeout, its retry, and slack. */
const REQUEST_TIMEOUT_MS = 20_000;
const silent = pino({ level: 'silent' });

interface Health {
  lease: LeaseStatus & { following: boolean };
  aggregate: { phase: string; counted: number };
}

interface Service {
  name: string;
  /** The CouchDB node it talks to. */
  node: number;
  url: string;
  process: ServiceProcess;
}

/** A service that does not answer within 10 s fails the step that asked, by name. */
function getJson<T>(url: string, step: string): Promise<T> {
  return within(
    step,
    10_000,
    fetch(url, { signal: AbortSignal.timeout(10_000) }).then((r) => r.json() as Promise<T>),
  );
}

/** The cluster's database `db` through one node, as kpi-live reads it, without set-up. */
function openNodeStore(url: string, dbName: string): Promise<Store> {
  const config = loadConfig({ env: {}, overrides: { couchdbUrl: url, dbName, logLevel: 'silent' } });
  return within(`opening ${dbName} on ${new URL(url).host}`, 10_000, openStore(config, silent, { setup: false }));
}

describe('whether the real-cluster tests run', () => {
  it('runs them where the build is found, fails them under KPI_CLUSTER_TESTS=1 without it, and skips them under KPI_CLUSTER_TESTS=0', () => {
    const missing = { KPI_COUCHDB_DIST: '/nonexistent/couchdb' };
    expect(clusterTestPlan({ ...missing })).toMatchObject({ run: false, why: expect.stringContaining('/nonexistent/couchdb holds no CouchDB build') });
    expect(clusterTestPlan({ ...missing, KPI_CLUSTER_TESTS: '1' })).toMatchObject({ run: true, why: expect.stringMatching(/^KPI_CLUSTER_TESTS=1, but /) });
    expect(clusterTestPlan({ ...missing, KPI_CLUSTER_TESTS: '1' }).dist).toBeUndefined();
    expect(clusterTestPlan({ KPI_CLUSTER_TESTS: '0' })).toEqual({ run: false, why: 'KPI_CLUSTER_TESTS=0' });
    if (plan.dist) expect(clusterTestPlan({ KPI_COUCHDB_DIST: plan.dist, KPI_CLUSTER_TESTS: '1' })).toMatchObject({ run: true, dist: plan.dist });
  });
});

describe.skipIf(!plan.run)('kpi-live on a real three-node CouchDB cluster', () => {
  let cluster: CouchCluster;
  const services: Service[] = [];
  /** The services of the test running, kept past afterEach for its failure message. */
  let started: Service[] = [];
  const stores: Store[] = [];

  beforeAll(async () => {
    if (!plan.dist) throw new Error(`the real-cluster tests cannot run: ${plan.why}`);
    const startedAt = Date.now();
    cluster = await startCouchCluster({ dist: plan.dist });
    console.log(
      `[kpi-live tests] real CouchDB cluster: ${cluster.nodes.map((n) => `${n.url} (pid ${n.pid})`).join(', ')} from ${plan.dist}, up in ${Date.now() - startedAt} ms`,
    );
  }, 120_000);

  afterEach(async () => {
    for (const service of services.splice(0)) {
      service.process.child.kill('SIGKILL');
      await within(`${service.name} to exit`, 5000, service.process.exited);
    }
    for (const store of stores.splice(0)) await store.close().catch(() => undefined);
    // the next scenario begins with the whole cluster
    await within('healing the cluster (thaw, restart killed nodes)', 90_000, cluster.heal());
  }, 120_000);

  afterAll(async () => {
    await cluster?.stop();
  }, 30_000);

  /** A `kpi-live serve` process on node k's CouchDB, listening on a free loopback port. */
  async function startService(name: string, k: number, db: string, env: Record<string, string> = {}): Promise<Service> {
    // in the cluster's folder: removed with it, whatever ends the test
    const dataDir = mkdtempSync(join(cluster.dir, 'service-'));
    const child = startServiceProcess(['serve'], {
      ...failoverServiceEnv(cluster.node(k).adminUrl, db, TTL),
      KPI_DATA_DIR: dataDir,
      KPI_COUCHDB_TIMEOUT_MS: '5000',
      ...env,
    });
    cluster.adopt(child.child);
    // pushed before it listens, so that afterEach kills it whatever happens
    const service: Service = { name, node: k, url: '', process: child };
    services.push(service);
    started.push(service);
    service.url = await within(`${name} (on node ${k}) to listen`, 30_000, child.listening());
    return service;
  }

  const health = (s: Service) => getJson<Health>(`${s.url}/health`, `GET /health of ${s.name}`);
  const dialogs = async (s: Service) => {
    const from = Date.now() - 2 * HOUR;
    const answer = await getJson<{ series: { total: { dialogs: number } }[] }>(
      `${s.url}/api/kpis?from=${from}&to=${Date.now() + HOUR}&bucket=10m`,
      `GET /api/kpis of ${s.name}`,
    );
    return answer.series[0]?.total.dialogs ?? 0;
  };
  const ackedGrowsBy = async (load: MarkedLoad, n: number, timeoutMs: number, what: string) => {
    const target = load.acked.length + n;
    await waitUntil(() => load.acked.length >= target, timeoutMs, `${n} more acknowledged blobs ${what}`);
  };

  /** On failure: what each service last warned of, and the end of each node's log. */
  function explainFailure(label: string): void {
    started = [];
    onTestFailed(() => {
      for (const s of started) {
        const lines = s.process.logs.filter((l) => Number(l.level) >= 40).slice(-15);
        console.log(`${label}: ${s.name}'s last warnings and errors:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`);
      }
      for (const n of cluster.nodes) {
        const tail = cluster
          .logTail(n.k, 10)
          .split('\n')
          .map((line) => line.slice(0, 400));
        console.log(`${label}: node ${n.k} (${n.state}) log:\n${tail.join('\n')}`);
      }
    });
  }

  /**
   * The three checks: every acknowledged blob is stored (read through node
   * `k`; a copy that was frozen or down may take a moment to catch up, so the
   * read is repeated, bounded, until none is missing), no blob is stored
   * twice, and `service` counts exactly the stored blobs (equal to a rebuild).
   */
  async function expectNothingLostCountedOnce(label: string, load: MarkedLoad, k: number, db: string, service: Service): Promise<void> {
    const store = await openNodeStore(cluster.node(k).adminUrl, db);
    stores.push(store);
    let stored = new Map<string, number>();
    let missing: string[] = [];
    await waitUntil(
      async () => {
        stored = await storedMarkers(store);
        missing = missingMarkers(load.acked, stored);
        return missing.length === 0;
      },
      30_000,
      `${label}: every acknowledged blob to be readable through node ${k}`,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${missing.length} of ${load.acked.length} missing, e.g. ${missing.slice(0, 5).join(', ')}`);
    });
    const total = storedCount(stored);
    console.log(
      `${label}: ${load.sent} requests, answers ${JSON.stringify(load.statuses)}, slowest ${load.slowestMs} ms; ` +
        `${load.acked.length} acknowledged, ${total} stored (read through node ${k})`,
    );
    expect([...stored].filter(([marker, n]) => marker !== '' && n > 1)).toEqual([]);
    // The service follows its own node's copies: internal replication may
    // bring them the last writes (those of a node that was frozen or down)
    // later than node k has them. Counting waits, bounded, until they agree.
    if (service.node !== k) {
      const own = await openNodeStore(cluster.node(service.node).adminUrl, db);
      stores.push(own);
      const startedAt = Date.now();
      let ownTotal = 0;
      await waitUntil(
        async () => (ownTotal = storedCount(await storedMarkers(own))) >= total,
        60_000,
        `${label}: node ${service.node} (${service.name}'s) to hold the ${total} blobs node ${k} holds`,
      ).catch((err: Error) => {
        throw new Error(`${err.message}: it holds ${ownTotal}`);
      });
      if (Date.now() - startedAt > 1000) console.log(`${label}: node ${service.node}'s copies caught up with node ${k}'s after ${Date.now() - startedAt} ms`);
    }
    await expectServiceEqualsRebuild(service.url, store, total, { segments: ['os'], timeoutMs: 30_000, what: `${label}: ${service.name}` }).catch(
      async (err: Error) => {
        const h = await health(service).catch(() => undefined);
        throw new Error(`${err.message}; ${service.name}'s health: ${JSON.stringify(h ? { lease: h.lease, aggregate: h.aggregate } : 'no answer')}`);
      },
    );
  }

  /** Both instances' roles, sampled every 100 ms for `ms`: how often neither, one or both were following. */
  async function sampleRoles(a: Service, b: Service, ms: number): Promise<{ samples: number; both: number; none: number }> {
    const counts = { samples: 0, both: 0, none: 0 };
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const [ha, hb] = await Promise.all([health(a), health(b)]);
      const following = [ha, hb].filter((h) => h.lease.role === 'follower' && h.lease.following).length;
      counts.samples++;
      if (following === 2) counts.both++;
      if (following === 0) counts.none++;
      await new Promise((r) => setTimeout(r, 100));
    }
    return counts;
  }

  /** Waits until exactly one of `pair` follows the feed and the other stands by under it; the follower first. */
  async function electedPair(pair: [Service, Service], step: string): Promise<[Service, Service]> {
    let elected: [Service, Service] | undefined;
    await waitUntil(
      async () => {
        const [h0, h1] = await Promise.all(pair.map(health));
        const follows = (h: Health) => h.lease.role === 'follower' && h.lease.following && h.aggregate.phase === 'live';
        const standsBy = (h: Health, holder: Health) => h.lease.role === 'standby' && h.lease.holder === holder.lease.instanceId;
        if (follows(h0!) && standsBy(h1!, h0!)) elected = [pair[0], pair[1]];
        else if (follows(h1!) && standsBy(h0!, h1!)) elected = [pair[1], pair[0]];
        return elected !== undefined;
      },
      15_000,
      step,
    );
    return elected!;
  }

  /** SIGKILLs `follower`; `standby` must take the lease within the bound and follow live. How long it took (ms). */
  async function killFollowerExpectTakeover(label: string, follower: Service, standby: Service): Promise<number> {
    const killedAt = Date.now();
    follower.process.child.kill('SIGKILL');
    await within(`${label}: the killed follower to exit`, 5000, follower.process.exited);
    let leaseAt = 0;
    await waitUntil(
      async () => {
        const h = await health(standby);
        if (h.lease.role === 'follower' && leaseAt === 0) leaseAt = Date.now();
        return leaseAt > 0 && h.lease.following && h.aggregate.phase === 'live';
      },
      TAKEOVER_BOUND_MS + 15_000,
      `${label}: ${standby.name} to take the lease and follow live`,
    );
    const takeoverMs = leaseAt - killedAt;
    const acquired = await within(
      `${label}: ${standby.name}'s lease log line`,
      5000,
      standby.process.waitForLog((l) => l.msg === 'aggregate follower lease acquired', 5000),
    );
    console.log(
      `${label}: ${standby.name} took the lease ${takeoverMs} ms after the SIGKILL (${String(acquired.reason)}), ` +
        `following live after ${Date.now() - killedAt} ms (bound ${TAKEOVER_BOUND_MS} ms)`,
    );
    expect(takeoverMs).toBeLessThanOrEqual(TAKEOVER_BOUND_MS);
    return takeoverMs;
  }

  /**
   * Dialogs post to both of `pair` (to the standby alone once the follower is
   * dead); `beforeKill` runs meanwhile; once the standby serves 50 dialogs the
   * follower is SIGKILLed, the standby must take over and the load go on.
   * Ends with the checks: nothing acknowledged lost (read through node
   * `readNode`), each blob stored once, the aggregate equal to a rebuild.
   */
  async function takeoverUnderLoad(
    label: string,
    pair: readonly Service[],
    [follower, standby]: readonly [Service, Service],
    db: string,
    readNode: number,
    marks: { prefix: string; seed: number },
    beforeKill?: () => Promise<void>,
  ): Promise<void> {
    let followerDead = false;
    let turn = 0;
    const load = startMarkedLoad({
      url: () => (followerDead ? standby.url : pair[turn++ % 2]!.url),
      concurrency: 4,
      ...marks,
      timeoutMs: REQUEST_TIMEOUT_MS,
      maxRequests: MAX_REQUESTS,
    });
    try {
      await beforeKill?.();
      await waitUntil(async () => (await dialogs(standby)) >= 50, 15_000, `${label}: the standby to serve 50 dialogs from the published aggregate`);
      followerDead = true;
      await killFollowerExpectTakeover(label, follower, standby);
      await ackedGrowsBy(load, 50, 15_000, `${label}: after the takeover`);
    } finally {
      await within(`${label}: the load to stop`, REQUEST_TIMEOUT_MS + 5000, load.stop());
    }
    expect(Object.keys(load.statuses).filter((s) => s !== '200' && s !== 'network')).toEqual([]);
    await expectNothingLostCountedOnce(label, load, readNode, db, standby);
  }

  it('two instances on different nodes elect one follower; the follower SIGKILLed, the other takes over within the bound', async () => {
    const label = 'cluster election';
    explainFailure(label);
    const db = uniqueDbName('rc_lease');
    // started together: both race for the lease, through different coordinators
    const pair = await Promise.all([startService('A', 1, db), startService('B', 2, db)]);
    const [follower, standby] = await electedPair(pair, `${label}: one follower and one standby`);
    await takeoverUnderLoad(label, pair, [follower, standby], db, 3, { prefix: 'rc-election', seed: 41 }, async () => {
      const roles = await sampleRoles(follower, standby, 3000);
      const becameFollower = (s: Service) => s.process.logs.filter((l) => l.msg === 'this instance is now the aggregate follower').length;
      console.log(
        `${label}: ${follower.name} (node ${follower.node}) follows, ${standby.name} (node ${standby.node}) stands by; ` +
          `${roles.samples} samples in 3 s: both following ${roles.both}, neither ${roles.none}; ` +
          `became follower: A ${becameFollower(pair[0])}, B ${becameFollower(pair[1])} times`,
      );
      for (const s of pair) {
        const lines = s.process.logs.filter((l) => /lease|aggregate follower/.test(String(l.msg)));
        console.log(`${label}: ${s.name}'s lease log: ${lines.map((l) => `${String(l.msg)}${l.reason ? ` (${String(l.reason)})` : ''}`).join('; ')}`);
      }
      // never two: a holder whose renewal is late stops following at its fence (a moment with none), and takes its own lease again
      expect(roles.both).toBe(0);
      expect(becameFollower(standby)).toBe(0);
    });
  }, 90_000);

  it("under load, the follower's node frozen with SIGSTOP and thawed, then another node SIGKILLed and restarted: the follower fences itself first, nothing lost, each blob counted once", async () => {
    const label = 'cluster node faults';
    explainFailure(label);
    const db = uniqueDbName('rc_faults');
    const first = await startService('A', 1, db);
    const second = await startService('B', 2, db);
    const [follower, standby] = await electedPair([first, second], `${label}: one follower and one standby`);
    const frozenNode = follower.node;
    const otherNode = [1, 2, 3].find((k) => k !== follower.node && k !== standby.node)!;
    let turn = 0;
    // dialogs keep posting to both: the one whose node is frozen answers 503 meanwhile
    const load = startMarkedLoad({
      url: () => [first, second][turn++ % 2]!.url,
      concurrency: 4,
      prefix: 'rc-faults',
      seed: 43,
      timeoutMs: REQUEST_TIMEOUT_MS,
      maxRequests: MAX_REQUESTS,
    });
    try {
      await ackedGrowsBy(load, 50, 15_000, `${label}: before the freeze`);

      // the follower's own node stops answering: its lease cannot be renewed, so it
      // must stop following at its fence, before the standby (on another node) takes over
      const beforeFreeze = load.acked.length;
      const frozenAt = Date.now();
      cluster.freeze(frozenNode);
      let takenAt = 0;
      await waitUntil(
        async () => {
          const h = await health(standby);
          if (h.lease.role === 'follower' && h.lease.following) takenAt = Date.now();
          return takenAt > 0;
        },
        TAKEOVER_BOUND_MS + 10_000,
        `${label}: ${standby.name} to take the lease while node ${frozenNode} is frozen`,
      );
      await new Promise((r) => setTimeout(r, 1000));
      cluster.thaw(frozenNode);
      const frozenMs = Date.now() - frozenAt;
      const stoppedAt = follower.process.logs.find((l) => String(l.msg).startsWith('this instance stopped following') && Number(l.time) >= frozenAt);
      const startedAt = standby.process.logs.find((l) => l.msg === 'this instance is now the aggregate follower' && Number(l.time) >= frozenAt);
      console.log(
        `${label}: node ${frozenNode} (${follower.name}'s) frozen for ${frozenMs} ms; ${follower.name} stopped following ` +
          `${stoppedAt ? `${Number(stoppedAt.time) - frozenAt} ms` : 'never'} after the freeze, ${standby.name} followed after ` +
          `${startedAt ? `${Number(startedAt.time) - frozenAt} ms` : '?'} (seen ${takenAt - frozenAt} ms); ${load.acked.length - beforeFreeze} blobs acknowledged meanwhile`,
      );
      expect(stoppedAt, `${follower.name} to stop following at its fence`).toBeDefined();
      expect(startedAt).toBeDefined();
      expect(Number(stoppedAt!.time)).toBeLessThan(Number(startedAt!.time)); // fenced first
      // back, the old follower stands by under the new one, and stale writes it had sent change nothing
      await waitUntil(
        async () => {
          const h = await health(follower);
          return h.lease.role === 'standby' && h.lease.holder === (await health(standby)).lease.instanceId;
        },
        20_000,
        `${label}: ${follower.name} to stand by after node ${frozenNode} is thawed`,
      );
      await ackedGrowsBy(load, 50, 20_000, `${label}: after thawing node ${frozenNode}`);

      const beforeKill = load.acked.length;
      await cluster.kill(otherNode);
      await new Promise((r) => setTimeout(r, 3000));
      console.log(`${label}: node ${otherNode} SIGKILLed; ${load.acked.length - beforeKill} blobs acknowledged in the 3 s after`);
      await ackedGrowsBy(load, 50, 20_000, `${label}: with node ${otherNode} down`);

      const restartedAt = Date.now();
      await within(`${label}: restarting node ${otherNode}`, 90_000, cluster.restart(otherNode));
      console.log(`${label}: node ${otherNode} restarted and connected in ${Date.now() - restartedAt} ms`);
      await ackedGrowsBy(load, 30, 20_000, `${label}: after node ${otherNode}'s restart`);
    } finally {
      if (cluster.node(frozenNode).state === 'frozen') cluster.thaw(frozenNode);
      await within(`${label}: the load to stop`, REQUEST_TIMEOUT_MS + 5000, load.stop());
    }
    // a refusal (503) is no loss: the dialog keeps the blob and sends it again
    expect(Object.keys(load.statuses).filter((s) => s !== '200' && s !== '503')).toEqual([]);
    expect((await health(standby)).lease).toMatchObject({ role: 'follower', following: true });
    // read through the restarted node: its copies caught up with what was written while it was down
    await expectNothingLostCountedOnce(label, load, otherNode, db, standby);
    // and the old follower serves the same, from what the new one publishes
    await expectServiceEqualsRebuild(follower.url, stores[stores.length - 1]!, await dialogs(standby), {
      segments: ['os'],
      timeoutMs: 30_000,
      what: `${label}: ${follower.name}, standing by`,
    });
  }, 150_000);

  it('the follower SIGKILLed while a CouchDB node is down: the standby takes over within the bound', async () => {
    const label = 'cluster failover, node down';
    explainFailure(label);
    const db = uniqueDbName('rc_down');
    await cluster.kill(3);
    const first = await startService('A', 1, db);
    const second = await startService('B', 2, db);
    const [follower, standby] = await electedPair([first, second], `${label}: one follower and one standby with node 3 down`);
    await takeoverUnderLoad(label, [first, second], [follower, standby], db, standby.node, { prefix: 'rc-down', seed: 47 });
  }, 90_000);

  it("a running writer's checkpoint and a rebuild's replace, accepted at one revision by different copies: every node loads the rebuild's, the writer is fenced, one leaf is left", async () => {
    const label = 'cluster checkpoint fence';
    explainFailure(label);
    const db = uniqueDbName('rc_ckpt');
    const through = async (k: number) => {
      const store = await openNodeStore(cluster.node(k).adminUrl, db);
      stores.push(store);
      return new CheckpointStore(store, db, defaultSegmentConfig, defaultRetention, silent);
    };
    const run = newRunId();
    const start = Math.floor(Date.now() / HOUR) * HOUR - HOUR;
    /** The state of the blobs numbered [0, n) of one run, over the six buckets of the last hour. */
    const stateOf = (n: number) => stateOfBlobs(n, { start, run });

    const writer = await through(1);
    await writer.ensureDb();
    await writer.save(snapshotOf(stateOf(30), 'writer-1', 0));
    const rebuilder = await through(2);
    expect((await rebuilder.load())?.seq).toBe('writer-1');

    // the writer's next commit reaches node 1's copies only
    await cluster.kill(2);
    await cluster.kill(3);
    await writer.save(snapshotOf(stateOf(50), 'writer-2', 0));
    // the rebuild's replace, at the revision node 1 has moved on from, reaches nodes 2 and 3 only
    await cluster.kill(1);
    await cluster.restart(2);
    await cluster.restart(3);
    const rebuilt = stateOf(35);
    await rebuilder.save(snapshotOf(rebuilt, 'rebuild-1', 0), { replace: true });
    await cluster.restart(1);

    // the copies exchange their writes: two leaves of the root at one revision
    const roots = new Database(await openNodeStore(cluster.node(3).adminUrl, db), db);
    let leaves: Root[] = [];
    await waitUntil(
      async () => (leaves = await readRoots(roots)).length === 2,
      30_000,
      `${label}: both commits to be kept as leaves of the root, read through node 3`,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: leaves ${JSON.stringify(leaves.map((l) => [l._rev, l.era, l.generation, l.seq]))}`);
    });
    expect(leaves.map((l) => l.seq)).toEqual(['rebuild-1', 'writer-2']);
    expect(leaves[0]!._rev!.split('-')[0]).toBe(leaves[1]!._rev!.split('-')[0]);
    const couchdbsPick = (await roots.get<Root>(ROOT_ID))?.seq;
    console.log(
      `${label}: leaves ${leaves.map((l) => `${l.seq} (era ${l.era ?? 0}, generation ${l.generation}, ${l._rev})`).join(' and ')}; CouchDB's own winner: ${couchdbsPick}`,
    );

    // every node loads the rebuild's checkpoint, whichever leaf CouchDB itself picks
    for (const k of [1, 2, 3]) {
      const loaded = await (await through(k)).load();
      expect(loaded?.seq, `${label}: the checkpoint node ${k} loads`).toBe('rebuild-1');
      expect(loaded?.state.bucketCounts()).toEqual(rebuilt.bucketCounts());
    }
    // the old writer's next commit is refused, and it stops following
    await expect(writer.save(snapshotOf(stateOf(51), 'writer-3', 0))).rejects.toBeInstanceOf(CheckpointConflictError);
    // the rebuild's line goes on and removes the other leaf; the losing writer's documents are orphans, swept
    await rebuilder.save(snapshotOf(stateOf(36), 'rebuild-2', 0));
    await waitUntil(async () => (leaves = await readRoots(roots)).length === 1, 30_000, `${label}: one leaf left`);
    expect(leaves[0]!.seq).toBe('rebuild-2');
    const swept = await rebuilder.removeOrphans();
    expect(swept).toBeGreaterThan(0);
    console.log(`${label}: the old writer refused, one leaf left (${leaves[0]!._rev}), ${swept} orphaned bucket documents swept`);
  }, 120_000);

  it('cluster-setup.sh and setup-kpi-user.sh run on the cluster; kpi-live works as the user they made; _security holds; retention deletes and purges', async () => {
    const label = 'cluster set-up scripts';
    explainFailure(label);
    const db = uniqueDbName('rc_setup');
    const user = 'kpi_live';
    const password = `kpi-${randomBytes(12).toString('hex')}`;
    const vars = {
      COUCHDB_NODES: cluster.nodes.map((n) => n.host).join(' '),
      COUCHDB_USER: 'admin',
      COUCHDB_PASSWORD: 'adminpass',
      KPI_COUCHDB_PASSWORD: password,
      KPI_DB: db,
      KPI_SETUP_WAIT_SECONDS: '20',
    };
    const databases = [db, `${db}_aggregates`, `${db}_deploys`, `${db}_alerts`, `${db}_sessions`];

    // cluster-setup.sh talks to port 5984 of each node
    const closeForwarders = await cluster.alsoListenOn(5984);
    let first: ScriptRun;
    let again: ScriptRun;
    try {
      first = await runScript('cluster-setup.sh', vars);
      again = await runScript('cluster-setup.sh', vars);
    } finally {
      await closeForwarders();
    }
    console.log(`${label}: cluster-setup.sh took ${first.ms} ms, again ${again.ms} ms`);
    expect(first.code, first.stderr).toBe(0);
    const nodes = cluster.nodes.map((n) => n.host);
    for (const host of nodes) expect(first.stdout).toContain(`cluster-setup: ${host} was enabled already`);
    for (const host of nodes.slice(1)) expect(first.stdout).toContain(`cluster-setup: ${host} is a member already`);
    expect(first.stdout).toContain('cluster-setup: cluster was finished already');
    expect(first.stdout).toContain('cluster-setup: 3 nodes connected');
    expect(first.stdout).toContain(`setup-kpi-user: user ${user} created`);
    for (const name of databases) expect(first.stdout).toContain(`setup-kpi-user: database ${name} created;`);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`setup-kpi-user: user ${user} exists and its password is the one given`);
    for (const name of databases) expect(again.stdout).toContain(`setup-kpi-user: database ${name} exists;`);

    // the user and _security, as every node sees them
    const userDoc = (await (await fetch(`${cluster.node(3).url}/_users/org.couchdb.user:${user}`, { headers: adminHeaders })).json()) as Record<
      string,
      unknown
    >;
    expect(userDoc).toMatchObject({ name: user, type: 'user', roles: [], password_scheme: 'pbkdf2' });
    expect(userDoc).not.toHaveProperty('password');
    const outsider = { name: 'not_kpi_live', password: 'outsider-password-1' };
    const made = await fetch(`${cluster.node(1).url}/_users/org.couchdb.user:${outsider.name}`, {
      method: 'PUT',
      headers: { ...adminHeaders, 'content-type': 'application/json' },
      body: JSON.stringify({ name: outsider.name, password: outsider.password, type: 'user', roles: [] }),
    });
    expect(made.status).toBeLessThan(300);
    const basic = (name: string, pw: string) => ({ authorization: `Basic ${Buffer.from(`${name}:${pw}`).toString('base64')}` });
    const statusOf = async (url: string, headers: Record<string, string>) => {
      const res = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
      await res.arrayBuffer();
      return res.status;
    };
    for (const n of cluster.nodes) {
      for (const name of databases) {
        const security = await (await fetch(`${n.url}/${name}/_security`, { headers: adminHeaders })).json();
        expect(security, `${name} on node ${n.k}`).toEqual({ admins: { names: [user], roles: ['_admin'] }, members: { names: [user], roles: ['_admin'] } });
      }
      expect(await statusOf(`${n.url}/${db}/_all_docs`, {}), `anonymous on node ${n.k}`).toBe(401);
      // the outsider's user document may reach this node's copy of _users a moment later
      await waitUntil(
        async () => (await statusOf(`${n.url}/${db}/_all_docs`, basic(outsider.name, outsider.password))) === 403,
        10_000,
        `${label}: another user to be refused the blob database on node ${n.k}`,
      );
      expect(await statusOf(`${n.url}/${db}/_all_docs`, basic(user, password)), `${user} on node ${n.k}`).toBe(200);
    }

    // kpi-live as that user, on node 2: it ingests, follows the feed, and counts each blob once
    const kpiUrl = (k: number) => `http://${user}:${encodeURIComponent(password)}@${cluster.node(k).host}:15984`;
    const NOW = Date.now();
    const retentionDays = 4;
    let app: TestApp | undefined;
    let admin: TestApp | undefined;
    try {
      app = await within(
        `${label}: kpi-live to start as ${user}`,
        30_000,
        startTestApp(
          {
            couchdbUrl: kpiUrl(2),
            dbName: db,
            leaseTtlMs: TTL,
            feedLongpollMs: 1000,
            checkpointEveryMs: 200,
            checkpointEveryChanges: 100,
            retentionDays,
            maxBlobAgeHours: 720,
          },
          { listen: true },
        ),
      );
      const service = { name: `kpi-live as ${user}`, node: 2, url: `http://127.0.0.1:${(app.app.server.address() as AddressInfo).port}` };
      const load = startMarkedLoad({ url: () => service.url, concurrency: 4, prefix: 'rc-setup', seed: 53, timeoutMs: REQUEST_TIMEOUT_MS, maxRequests: 200 });
      await waitUntil(() => load.sent >= 200, 60_000, `${label}: 200 requests as ${user}`).finally(() =>
        within(`${label}: the load to stop`, REQUEST_TIMEOUT_MS + 5000, load.stop()),
      );
      expect(load.statuses).toEqual({ 200: 200 });
      const asUser = await openNodeStore(kpiUrl(3), db);
      stores.push(asUser);
      await expectNothingLostCountedOnceWith(label, load, asUser, service.url);
      // kpi-live, as a database admin, left _security as the script made it
      expect(await (await fetch(`${cluster.node(1).url}/${db}/_security`, { headers: adminHeaders })).json()).toMatchObject({
        members: { names: [user] },
      });

      // retention as that user: the expired blobs are deleted on the cluster; CouchDB lets only server admins purge
      await waitUntil(() => app!.app.retention.status().lastRunAt !== null, 15_000, `${label}: the retention pass at start`);
      const expired = await postExpired(app, 7, NOW);
      const pass = await within(
        `${label}: a retention pass as ${user}`,
        30_000,
        whileTrafficFlows(app, () => app!.app.retention.runNow()),
      );
      console.log(`${label}: retention as ${user}: ${JSON.stringify(pass)}; status ${JSON.stringify(app.app.retention.status().purge)}`);
      expect(pass).toMatchObject({ removed: expired.length, purged: null });
      expect(pass.error).toBeUndefined();
      expect(app.app.retention.status().purge).toBe('unsupported');
      for (const n of cluster.nodes) await expectGone(n.url, db, expired, 'tombstones kept');

      // retention as an admin, in a database of its own: deleted and purged, on every node
      const adminDb = uniqueDbName('rc_purge');
      admin = await within(
        `${label}: kpi-live to start as the admin`,
        30_000,
        startTestApp(
          {
            couchdbUrl: cluster.node(3).adminUrl,
            dbName: adminDb,
            feedLongpollMs: 1000,
            checkpointEveryMs: 200,
            checkpointEveryChanges: 100,
            retentionDays,
            maxBlobAgeHours: 720,
          },
          { listen: false },
        ),
      );
      // the pass at start first, so that the one asked for below is the one that finds them
      await waitUntil(() => admin!.app.retention.status().lastRunAt !== null, 15_000, `${label}: the admin's retention pass at start`);
      const purgedIds = await postExpired(admin, 9, NOW);
      const adminPass = await within(
        `${label}: a retention pass as the admin`,
        30_000,
        whileTrafficFlows(admin, () => admin!.app.retention.runNow()),
      );
      console.log(`${label}: retention as the admin: ${JSON.stringify(adminPass)}`);
      expect(adminPass).toMatchObject({ removed: purgedIds.length, purged: purgedIds.length });
      expect(admin.app.retention.status().purge).toBe('supported');
      for (const n of cluster.nodes) await expectGone(n.url, adminDb, purgedIds, 'purged');
      // the same purge path as the user's pass had, now as the admin: the user's tombstones go too
      const adminOnUserDb = await openNodeStore(cluster.node(1).adminUrl, db);
      stores.push(adminOnUserDb);
      const tombstones = await tombstonesOf(cluster.node(1).url, db, expired);
      expect(await purgeTombstones(adminOnUserDb, db, tombstones)).toBe(expired.length);
      for (const n of cluster.nodes) await expectGone(n.url, db, expired, 'purged');
      // the acknowledged blobs are all there, and the KPIs kpi-live serves (the last two hours, which retention did not touch) still equal a rebuild
      await expectNothingLostCountedOnceWith(`${label}, after retention`, load, asUser, service.url);
    } finally {
      await admin?.app.close();
      await app?.app.close();
    }
  }, 120_000);

  /** {@link expectNothingLostCountedOnce} for a service in this process, with a store of the caller's. */
  async function expectNothingLostCountedOnceWith(label: string, load: MarkedLoad, store: Store, url: string): Promise<void> {
    let stored = new Map<string, number>();
    await waitUntil(
      async () => {
        stored = await storedMarkers(store);
        return missingMarkers(load.acked, stored).length === 0;
      },
      30_000,
      `${label}: every acknowledged blob to be readable`,
    );
    const total = storedCount(stored);
    console.log(`${label}: ${load.sent} requests, answers ${JSON.stringify(load.statuses)}; ${load.acked.length} acknowledged, ${total} stored`);
    expect([...stored].filter(([marker, n]) => marker !== '' && n > 1)).toEqual([]);
    await expectServiceEqualsRebuild(url, store, total, { segments: ['os'], timeoutMs: 30_000, what: label });
  }
});

/** couchdb/<script> as an operator runs it, killed after 60 s; its curl config files hold passwords: none may stay behind. */
async function runScript(script: string, vars: Record<string, string>): Promise<ScriptRun> {
  const run = await runCouchdbScript(script, vars, { timeoutMs: 60_000 });
  expect(run.leftovers, `${script} left files in its TMPDIR`).toEqual([]);
  return run;
}

/** Posts `count` blobs of 5 to 10 days ago (expired under a 4-day retention) through `t`; their ids as stored. */
async function postExpired(t: TestApp, count: number, now: number): Promise<string[]> {
  const random = seededRandom(count);
  const blobs = Array.from({ length: count }, (_, i) => simulateSession(random, { now: now - 10 * DAY + (i * 5 * DAY) / count }).blob);
  const res = await t.app.inject({ method: 'POST', url: '/wsapi/interaction_data', payload: { data: blobs } });
  expect(res.statusCode, res.body).toBe(200);
  // _all_docs on a cluster answers from one copy of each shard range, which may
  // not have every write yet: read again (bounded) until the copies agree
  let ids: string[] = [];
  await waitUntil(
    async () => {
      const rows = await new Database(t.store, t.store.blobsDb).allDocs<{ timestamp: number }>({ include_docs: true });
      ids = rows.filter((r) => !r.id!.startsWith('_design/') && r.doc!.timestamp < now - 4 * DAY - 10 * MINUTE).map((r) => r.id!);
      return ids.length >= count;
    },
    15_000,
    `the ${count} expired blobs readable`,
  );
  expect(ids).toHaveLength(count);
  return ids;
}

/** The deletion revision of each of `ids`, from the feed of `db` through the node at `url`. */
async function tombstonesOf(url: string, db: string, ids: string[]): Promise<{ id: string; rev: string }[]> {
  const feed = (await (await fetch(`${url}/${db}/_changes`, { headers: adminHeaders })).json()) as {
    results: { id: string; deleted?: boolean; changes: { rev: string }[] }[];
  };
  return feed.results.filter((c) => ids.includes(c.id) && c.deleted).map((c) => ({ id: c.id, rev: c.changes[0]!.rev }));
}

/**
 * Each of `ids` is gone from `db` through the node at `url` (404), and its
 * feed lists it as a tombstone (`tombstones kept`) or not at all (`purged`),
 * once that node's copies agree (bounded).
 */
async function expectGone(url: string, db: string, ids: string[], expected: 'tombstones kept' | 'purged'): Promise<void> {
  const node = new URL(url).host;
  for (const id of ids) {
    const res = await fetch(`${url}/${db}/${encodeURIComponent(id)}`, { headers: adminHeaders });
    await res.arrayBuffer();
    expect(res.status, `${id} through ${node}`).toBe(404);
  }
  await waitUntil(
    async () => (await tombstonesOf(url, db, ids)).length === (expected === 'purged' ? 0 : ids.length),
    10_000,
    `the feed of ${db} through ${node} to show the ${ids.length} expired blobs as ${expected}`,
  );
}
