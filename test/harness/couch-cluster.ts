/**
 * A real three-node Apache CouchDB 3 cluster for tests, started with the
 * shared build's `cluster.sh` in a folder of its own: node k listens on
 * http://127.0.0.(10+k):15984, each node on an address of its own, joined
 * with `_cluster_setup` (`[cluster] n=3 q=2`, so every shard has a copy on
 * every node). A test cuts a node off by signalling its `beam.smp`:
 * {@link CouchCluster.freeze} (SIGSTOP: it keeps its connections and answers
 * nothing), {@link CouchCluster.thaw} (SIGCONT), {@link CouchCluster.kill}
 * (SIGKILL), and {@link CouchCluster.restart} starts a killed node again on
 * its own data, as `cluster.sh` started it. {@link CouchCluster.stop} kills
 * every process of the cluster and removes its folder; a watchdog process
 * does the same if the test process itself dies first (killed at a timeout:
 * no afterAll runs then), so no `beam.smp` is left behind whatever happens
 * to the test.
 *
 * Where the build is: `KPI_COUCHDB_DIST`, else `<repo>/../shared/couchdb`,
 * else `/work/shared/couchdb` ({@link findCouchDist}); `.ci/run` looks in the
 * same places.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { projectRoot } from '../../src/project-root.js';
import { waitUntil, within } from './process.js';

export const CLUSTER_ADMIN = { name: 'admin', password: 'adminpass' } as const;
/** HTTP port of every node (cluster.sh's default); Erlang distribution is on PORT + 3116. */
export const CLUSTER_PORT = 15984;
const DIST_PORT = CLUSTER_PORT + 3116;

/**
 * The folder of the shared CouchDB build, or why there is none. A build is a
 * folder holding `cluster.sh`, `start.sh` and a `couchdb-*.tar.gz`.
 * `KPI_COUCHDB_DIST`, when set, is the only place looked at.
 *
 * @example
 * const found = findCouchDist();
 * if ('dir' in found) await startCouchCluster({ dist: found.dir });
 */
export function findCouchDist(env: Record<string, string | undefined> = process.env): { dir: string } | { missing: string } {
  const holdsBuild = (dir: string) =>
    existsSync(join(dir, 'cluster.sh')) && existsSync(join(dir, 'start.sh')) && readdirSync(dir).some((f) => /^couchdb-.*\.tar\.gz$/.test(f));
  if (env.KPI_COUCHDB_DIST) {
    return existsSync(env.KPI_COUCHDB_DIST) && holdsBuild(env.KPI_COUCHDB_DIST)
      ? { dir: env.KPI_COUCHDB_DIST }
      : { missing: `KPI_COUCHDB_DIST=${env.KPI_COUCHDB_DIST} holds no CouchDB build (cluster.sh, start.sh, couchdb-*.tar.gz)` };
  }
  const candidates = [join(dirname(projectRoot()), 'shared', 'couchdb'), '/work/shared/couchdb'];
  for (const dir of candidates) if (existsSync(dir) && holdsBuild(dir)) return { dir };
  return { missing: `no CouchDB build in ${candidates.join(' or ')} (set KPI_COUCHDB_DIST)` };
}

/**
 * Whether the real-cluster tests run here: `KPI_CLUSTER_TESTS=1` insists
 * (a missing build is then the test's failure, `error`), `0` turns them off,
 * unset runs them where the build is found.
 */
export function clusterTestPlan(env: Record<string, string | undefined> = process.env): { run: boolean; dist?: string; why: string } {
  const wanted = env.KPI_CLUSTER_TESTS;
  if (wanted === '0') return { run: false, why: 'KPI_CLUSTER_TESTS=0' };
  const found = findCouchDist(env);
  if ('dir' in found) return { run: true, dist: found.dir, why: `CouchDB build in ${found.dir}` };
  if (wanted === '1') return { run: true, why: `KPI_CLUSTER_TESTS=1, but ${found.missing}` };
  return { run: false, why: found.missing };
}

export interface ClusterNode {
  /** 1-based, as in cluster.sh. */
  readonly k: number;
  readonly host: string;
  /** Base URL without credentials. */
  readonly url: string;
  /** Base URL as the admin (for kpi-live's COUCHDB_URL and the harness's store). */
  readonly adminUrl: string;
  /** The node's `beam.smp`. */
  pid: number;
  state: 'up' | 'frozen' | 'down';
}

export interface CouchCluster {
  readonly dir: string;
  readonly nodes: readonly ClusterNode[];
  node(k: number): ClusterNode;
  /** SIGSTOP: the node holds its connections and answers nothing. */
  freeze(k: number): void;
  /** SIGCONT. */
  thaw(k: number): void;
  /** SIGKILL, then waits (bounded) until the process is gone. */
  kill(k: number): Promise<void>;
  /** Starts a killed node again on its own data and waits until the others see it connected. */
  restart(k: number): Promise<void>;
  /** Thaws frozen nodes and restarts killed ones, so the next test begins with the whole cluster. */
  heal(): Promise<void>;
  /**
   * Every node also answers on `port` of its own address, through a TCP
   * forwarder in this process, for a script that assumes a port
   * (couchdb/cluster-setup.sh talks to port 5984 of each node). Resolves
   * with the function that closes the forwarders.
   */
  alsoListenOn(port: number): Promise<() => Promise<void>>;
  /**
   * Ends `child` (a kpi-live the test started against the cluster) with the
   * cluster, also when the watchdog does it after this process died. Listed
   * while it runs only, so the watchdog never signals a reused pid.
   */
  adopt(child: ChildProcess): void;
  /** The last lines of node k's log, for a failure message. */
  logTail(k: number, lines?: number): string;
  /** Kills every process of the cluster and removes its folder. Safe to call twice. */
  stop(): Promise<void>;
}

/** `authorization` header of the cluster's admin. */
export const adminHeaders = { authorization: `Basic ${Buffer.from(`${CLUSTER_ADMIN.name}:${CLUSTER_ADMIN.password}`).toString('base64')}` };

/** GET `path` of a node as the admin; the parsed JSON, or undefined when it did not answer 200 within `timeoutMs`. */
async function getJson<T>(url: string, path: string, timeoutMs = 2000): Promise<T | undefined> {
  try {
    const res = await fetch(`${url}${path}`, { headers: adminHeaders, signal: AbortSignal.timeout(timeoutMs) });
    if (res.status !== 200) {
      await res.arrayBuffer();
      return undefined;
    }
    return (await res.json()) as T;
  } catch {
    return undefined;
  }
}

/** True once the process is gone (a zombie counts as gone: it runs no more). */
function isGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}

/** Pids of every process running a program from under `dir` (beam.smp, erl_child_setup, couchjs). */
function processesUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/exe`).startsWith(`${dir}/`)) pids.push(Number(entry));
    } catch {
      // not ours to read, or ended meanwhile
    }
  }
  return pids;
}

/** Fails naming the address when something already listens on host:port (another cluster, a leftover). */
async function expectFree(host: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(`${host}:${port} is taken (${err.code}): another CouchDB cluster (or a leftover of one) runs here; the cluster tests need it`)),
    );
    server.listen(port, host, () => server.close(() => resolve()));
  });
}

/**
 * Kills the cluster's processes once `watched` (this test process) is gone,
 * and removes the folder: a test process killed at its timeout runs no
 * afterAll. It ends every process running a program of the release
 * unpacked in `dir` (beam.smp, erl_child_setup, couchjs; restarted nodes
 * included), and the kpi-live processes the test adopted and that still run.
 */
function startWatchdog(watched: number, dir: string): ChildProcess {
  const script = [
    'while kill -0 "$1" 2>/dev/null; do sleep 1; done',
    'if [ -f "$2/adopted" ]; then',
    '  while read -r p; do',
    '    case "$(tr "\\0" " " < "/proc/$p/cmdline" 2>/dev/null)" in *kpi-live.js*) kill -9 "$p" 2>/dev/null ;; esac',
    '  done < "$2/adopted"',
    'fi',
    'for p in /proc/[0-9]*; do case "$(readlink "$p/exe" 2>/dev/null)" in "$2"/*) kill -9 "${p#/proc/}" 2>/dev/null ;; esac; done',
    'sleep 1; rm -rf "$2"',
  ].join('\n');
  const child = spawn('bash', ['-c', script, 'kpi-live-cluster-watchdog', String(watched), dir], { detached: true, stdio: 'ignore' });
  child.unref();
  return child;
}

/**
 * Starts the cluster (cluster.sh unpacks the build into a new temporary
 * folder) and waits until every node is a connected member. Every step is
 * bounded and named in its error; on any failure everything started is
 * killed before the error is thrown.
 *
 * @example
 * const cluster = await startCouchCluster({ dist: '/work/shared/couchdb' });
 * try {
 *   cluster.freeze(2);
 *   cluster.thaw(2);
 * } finally {
 *   await cluster.stop();
 * }
 */
export async function startCouchCluster(options: { dist: string; nodes?: number; timeoutMs?: number }): Promise<CouchCluster> {
  const count = options.nodes ?? 3;
  const timeoutMs = options.timeoutMs ?? 90_000;
  for (let k = 1; k <= count; k++) {
    await expectFree(`127.0.0.${10 + k}`, CLUSTER_PORT);
    await expectFree(`127.0.0.${10 + k}`, DIST_PORT);
  }
  const dir = mkdtempSync(join(tmpdir(), 'kpi-live-cluster-'));
  const watchdog = startWatchdog(process.pid, dir);
  const nodes: ClusterNode[] = Array.from({ length: count }, (_, i) => {
    const host = `127.0.0.${11 + i}`;
    const auth = `${CLUSTER_ADMIN.name}:${CLUSTER_ADMIN.password}`;
    return { k: i + 1, host, url: `http://${host}:${CLUSTER_PORT}`, adminUrl: `http://${auth}@${host}:${CLUSTER_PORT}`, pid: 0, state: 'up' };
  });
  const pidFile = (k: number) => join(dir, `node${k}`, 'pid');
  const logFile = (k: number) => join(dir, `node${k}`, 'log', 'couchdb.log');
  let stopped = false;
  const adopted = new Set<number>();

  const logTail = (k: number, lines = 20) => {
    try {
      return readFileSync(logFile(k), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  };
  const node = (k: number) => {
    const found = nodes[k - 1];
    if (!found) throw new Error(`the cluster has no node ${k}`);
    return found;
  };
  const killEverything = async () => {
    for (const pid of adopted) signal(pid, 'SIGKILL');
    for (const n of nodes) if (n.pid && n.state !== 'down') signal(n.pid, 'SIGKILL');
    for (const pid of processesUnder(dir)) signal(pid, 'SIGKILL');
    await waitUntil(() => processesUnder(dir).every(isGone), 10_000, `every process of the cluster in ${dir} to end after SIGKILL`);
  };
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      await killEverything();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      if (watchdog.pid) signal(watchdog.pid, 'SIGKILL');
    }
  };
  /** The nodes that node `k`'s peers list as connected (from the first other node that answers). */
  const connectedPeersSee = async (k: number) => {
    for (const other of nodes) {
      if (other.k === k || other.state !== 'up') continue;
      const membership = await getJson<{ all_nodes: string[] }>(other.url, '/_membership');
      if (membership) return membership.all_nodes.includes(`couchdb@${node(k).host}`);
    }
    return true; // nobody else is up to ask
  };

  try {
    const script = spawn('bash', [join(options.dist, 'cluster.sh'), dir, String(count)], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    script.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    script.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    const code = await within(`cluster.sh ${dir} ${count}`, timeoutMs, new Promise<number | null>((resolve) => script.once('close', resolve))).catch(
      (e: unknown) => {
        script.kill('SIGKILL');
        throw e;
      },
    );
    if (code !== 0) throw new Error(`cluster.sh exited with ${code}: ${err.trim()}\nnode 1's log:\n${logTail(1)}`);
    if (out.trim() !== nodes[0]!.url) throw new Error(`cluster.sh printed '${out.trim()}', not ${nodes[0]!.url}`);
    for (const n of nodes) {
      n.pid = Number(readFileSync(pidFile(n.k), 'utf8'));
      if (!readlinkSync(`/proc/${n.pid}/exe`).endsWith('/beam.smp')) throw new Error(`node ${n.k}'s pid ${n.pid} is not a beam.smp`);
    }
    await waitUntil(
      async () => {
        const membership = await getJson<{ all_nodes: string[]; cluster_nodes: string[] }>(nodes[0]!.url, '/_membership');
        return membership?.all_nodes.length === count && membership.cluster_nodes.length === count;
      },
      30_000,
      `all ${count} nodes to be connected members`,
    );
  } catch (error) {
    await stop();
    throw error;
  }

  const cluster: CouchCluster = {
    dir,
    nodes,
    node,
    logTail,
    stop,
    adopt(child) {
      const pid = child.pid;
      if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      adopted.add(pid);
      writeFileSync(join(dir, 'adopted'), [...adopted].map((p) => `${p}\n`).join(''));
      child.once('exit', () => {
        adopted.delete(pid);
        if (!stopped) writeFileSync(join(dir, 'adopted'), [...adopted].map((p) => `${p}\n`).join(''));
      });
    },
    freeze(k) {
      const n = node(k);
      if (n.state !== 'up') throw new Error(`node ${k} is ${n.state}, not up: cannot freeze it`);
      signal(n.pid, 'SIGSTOP');
      n.state = 'frozen';
    },
    thaw(k) {
      const n = node(k);
      if (n.state !== 'frozen') throw new Error(`node ${k} is ${n.state}, not frozen: cannot thaw it`);
      signal(n.pid, 'SIGCONT');
      n.state = 'up';
    },
    async kill(k) {
      const n = node(k);
      if (n.state === 'down') return;
      signal(n.pid, 'SIGKILL');
      n.state = 'down';
      // its erl_child_setup (and the couchjs under it) ends when beam.smp does; stop() sweeps any left
      await waitUntil(() => isGone(n.pid), 10_000, `node ${k} (pid ${n.pid}) to end after SIGKILL`);
    },
    async restart(k) {
      const n = node(k);
      if (n.state !== 'down') throw new Error(`node ${k} is ${n.state}: only a killed node is restarted`);
      const inst = join(dir, `node${k}`);
      const rel = readdirSync(dir).find((f) => /^couchdb-/.test(f) && existsSync(join(dir, f, 'bin', 'couchdb')));
      if (!rel) throw new Error(`no unpacked CouchDB release in ${dir}`);
      const relDir = join(dir, rel);
      // exactly as cluster.sh starts a node: its own session, its ini chain and vm.args, its log
      const log = openSync(logFile(k), 'a');
      const child = spawn(join(relDir, 'bin', 'couchdb'), [], {
        cwd: inst,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: inst,
          COUCHDB_INI_FILES: `${join(relDir, 'etc', 'default.ini')} ${join(inst, 'etc', 'local.ini')}`,
          COUCHDB_ARGS_FILE: join(inst, 'etc', 'vm.args'),
        },
        detached: true,
        stdio: ['ignore', log, log],
      });
      closeSync(log);
      child.unref();
      if (!child.pid) throw new Error(`node ${k} could not be started again`);
      n.pid = child.pid;
      writeFileSync(pidFile(k), `${child.pid}\n`);
      n.state = 'up';
      await waitUntil(async () => (await getJson(n.url, '/_up')) !== undefined, 60_000, `restarted node ${k} to answer /_up`).catch((e: Error) => {
        throw new Error(`${e.message}; its log:\n${logTail(k)}`);
      });
      await waitUntil(() => connectedPeersSee(k), 30_000, `the other nodes to see restarted node ${k} connected`);
    },
    async alsoListenOn(port) {
      const servers: Server[] = [];
      const sockets = new Set<Socket>();
      const close = async () => {
        for (const socket of sockets) socket.destroy();
        await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
      };
      try {
        for (const n of nodes) {
          const server = createServer((client) => {
            const upstream = connect(CLUSTER_PORT, n.host);
            sockets.add(client).add(upstream);
            const drop = () => {
              client.destroy();
              upstream.destroy();
              sockets.delete(client);
              sockets.delete(upstream);
            };
            client.on('error', drop).on('close', drop);
            upstream.on('error', drop).on('close', drop);
            client.pipe(upstream).pipe(client);
          });
          servers.push(server);
          await new Promise<void>((resolve, reject) => {
            server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(`cannot listen on ${n.host}:${port} for node ${n.k} (${err.code})`)));
            server.listen(port, n.host, () => resolve());
          });
        }
      } catch (err) {
        await close();
        throw err;
      }
      return close;
    },
    async heal() {
      for (const n of nodes) if (n.state === 'frozen') cluster.thaw(n.k);
      for (const n of nodes) if (n.state === 'down') await cluster.restart(n.k);
    },
  };
  return cluster;
}
