/**
 * couchdb/setup-kpi-user.sh and couchdb/cluster-setup.sh, run for real: with
 * `sh` and curl, as compose.yaml runs them, against a fake CouchDB 3
 * (./fake-couchdb.ts) that answers their requests as CouchDB 3 does. What
 * this proves: kpi-live's own CouchDB user is made with the given password
 * (hashed, and signing in with it works, quotes, backslashes, spaces and `$`
 * included), its four databases are made with that user as their only member,
 * a second run changes nothing but a changed password, no password reaches a
 * process's command line or stays behind in a file, bad settings and a wrong
 * admin stop the script with a message, and three nodes are joined into one
 * cluster (one uuid, every node a member and connected, finished once) before
 * kpi-live's user and databases are made on it. The cluster tests need
 * 127.0.0.1–3 port 5984 (cluster-setup.sh talks to http://<node>:5984); where
 * that cannot be bound they are skipped with a message, as is everything
 * where curl is not installed (`.ci/run` installs it). shellcheck, where
 * installed, must find nothing in couchdb/*.sh and scripts/*.sh.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/project-root.js';
import { runCouchdbScript, type ScriptRun } from '../harness/couchdb-script.js';
import { FakeCouchDB, type FakeCouchOptions, type FakeNetwork } from './fake-couchdb.js';

const root = projectRoot();
const ADMIN = { name: 'admin', password: 'an-admin-password' };
const KPI_PASSWORD = 'kpi-live-password-1';

/** The scripts need curl (compose runs them in a curl image); without it they cannot run here. */
const noCurl = spawnSync('curl', ['--version'], { encoding: 'utf8' }).status === 0 ? undefined : 'curl is not installed';
if (noCurl) console.log(`[kpi-live tests] couchdb/*.sh: not run, ${noCurl}`);
const DATABASES = ['kpi_blobs', 'kpi_blobs_aggregates', 'kpi_blobs_deploys', 'kpi_blobs_alerts', 'kpi_blobs_sessions'];

/** couchdb/<script> as an operator runs it; `watch`: secrets that must not show in any command line while it runs. */
const runScript = (script: string, vars: Record<string, string>, watch: string[] = []): Promise<ScriptRun> => runCouchdbScript(script, vars, { watch });

const setupVars = (couch: FakeCouchDB, extra: Record<string, string> = {}) => ({
  COUCHDB_URL: couch.url,
  COUCHDB_USER: ADMIN.name,
  COUCHDB_PASSWORD: ADMIN.password,
  KPI_COUCHDB_PASSWORD: KPI_PASSWORD,
  KPI_SETUP_WAIT_SECONDS: '4',
  ...extra,
});

/** GET /_session as name:password, as kpi-live signs in. */
async function signIn(url: string, name: string, password: string): Promise<{ status: number; name?: string }> {
  const response = await fetch(`${url}/_session`, {
    headers: { authorization: `Basic ${Buffer.from(`${name}:${password}`, 'utf8').toString('base64')}` },
  });
  const body = (await response.json()) as { userCtx?: { name: string } };
  return { status: response.status, name: body.userCtx?.name };
}

async function startFake(options: Partial<FakeCouchOptions> = {}): Promise<FakeCouchDB> {
  return new FakeCouchDB({ admin: ADMIN, ...options }).start();
}

const userDocId = (name: string) => `org.couchdb.user:${name}`;

function expectDatabasesFor(couch: FakeCouchDB, names: string[], user: string): void {
  for (const name of names) {
    const db = couch.database(name);
    expect(db, name).toBeDefined();
    expect(db!.security, name).toEqual({ admins: { names: [user], roles: ['_admin'] }, members: { names: [user], roles: ['_admin'] } });
  }
}

describe.skipIf(noCurl)('couchdb/setup-kpi-user.sh', () => {
  describe('on a fresh CouchDB, then again', () => {
    let couch: FakeCouchDB;
    beforeAll(async () => {
      couch = await startFake();
    });
    afterAll(() => couch.close());

    it('makes kpi_live (type user, no roles, password hashed) and the four databases with kpi_live as their only member', async () => {
      const run = await runScript('setup-kpi-user.sh', setupVars(couch));
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain('setup-kpi-user: user kpi_live created');
      for (const name of DATABASES) expect(run.stdout).toContain(`setup-kpi-user: database ${name} created;`);
      const doc = couch.doc('_users', userDocId('kpi_live'))!;
      expect(doc).toMatchObject({ _id: userDocId('kpi_live'), name: 'kpi_live', type: 'user', roles: [], password_scheme: 'pbkdf2' });
      expect(doc).not.toHaveProperty('password');
      expect(doc._rev).toMatch(/^1-/);
      expectDatabasesFor(couch, DATABASES, 'kpi_live');
      expect(await signIn(couch.url, 'kpi_live', KPI_PASSWORD)).toEqual({ status: 200, name: 'kpi_live' });
      // the user, not an admin, reads its database
      const read = await fetch(`${couch.url}/kpi_blobs`, { headers: { authorization: `Basic ${Buffer.from(`kpi_live:${KPI_PASSWORD}`).toString('base64')}` } });
      expect(read.status).toBe(200);
      expect(run.leftovers).toEqual([]);
    });

    it('run again: says the user exists and rewrites nothing', async () => {
      const rev = couch.doc('_users', userDocId('kpi_live'))!._rev;
      const run = await runScript('setup-kpi-user.sh', setupVars(couch));
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain('setup-kpi-user: user kpi_live exists and its password is the one given');
      for (const name of DATABASES) expect(run.stdout).toContain(`setup-kpi-user: database ${name} exists;`);
      expect(couch.doc('_users', userDocId('kpi_live'))!._rev).toBe(rev);
      expect(couch.requests.filter((request) => request.method === 'PUT' && request.path.startsWith('/_users/'))).toHaveLength(1);
    });

    it('run with another KPI_COUCHDB_PASSWORD: changes the password (new revision; the new one signs in, the old one not)', async () => {
      const run = await runScript('setup-kpi-user.sh', setupVars(couch, { KPI_COUCHDB_PASSWORD: 'another-kpi-password' }));
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain('setup-kpi-user: user kpi_live: password changed');
      expect(couch.doc('_users', userDocId('kpi_live'))!._rev).toMatch(/^2-/);
      expect(await signIn(couch.url, 'kpi_live', 'another-kpi-password')).toEqual({ status: 200, name: 'kpi_live' });
      expect((await signIn(couch.url, 'kpi_live', KPI_PASSWORD)).status).toBe(401);
    });
  });

  it('takes passwords with quotes, backslashes, spaces and $ as they are, and never puts one on a command line', async () => {
    const admin = { name: 'admin', password: `ad"min \\ pass $HOME 'x' %s:é` };
    const kpiPassword = `kpi "live" \\\\ $PATH $(id) %s:1`;
    // each answer 40 ms late, so that curl processes live long enough to be seen
    const couch = await new FakeCouchDB({ admin, delayMs: 40 }).start();
    try {
      const watchable = existsSync('/proc/self/cmdline');
      const run = await runScript(
        'setup-kpi-user.sh',
        setupVars(couch, { COUCHDB_PASSWORD: admin.password, KPI_COUCHDB_PASSWORD: kpiPassword }),
        watchable ? [admin.password, kpiPassword] : [],
      );
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain('setup-kpi-user: user kpi_live created');
      expect(await signIn(couch.url, 'kpi_live', kpiPassword)).toEqual({ status: 200, name: 'kpi_live' });
      expect(couch.requests.filter((request) => request.user === 'admin').length).toBeGreaterThan(5);
      if (watchable) {
        expect(run.curlsSeen, 'no curl process was seen: the command-line check saw nothing').toBeGreaterThan(0);
        expect(run.leaks).toEqual([]);
      } else {
        console.log('[kpi-live tests] setup-kpi-user.sh: no /proc here, so command lines are not checked for passwords');
      }
      expect(run.leftovers).toEqual([]);
    } finally {
      await couch.close();
    }
  });

  it('names the databases after KPI_DB and KPI_AGGREGATES_DB', async () => {
    const couch = await startFake();
    try {
      const run = await runScript('setup-kpi-user.sh', setupVars(couch, { KPI_DB: 'kpi_other', KPI_AGGREGATES_DB: 'kpi_rollups' }));
      expect(run.code, run.stderr).toBe(0);
      expectDatabasesFor(couch, ['kpi_other', 'kpi_rollups', 'kpi_other_deploys', 'kpi_other_alerts', 'kpi_other_sessions'], 'kpi_live');
      expect(couch.database('kpi_blobs')).toBeUndefined();
    } finally {
      await couch.close();
    }
  });

  it('with KPI_COUCHDB_USER the admin: makes no user, only the databases, for the admin and the _admin role', async () => {
    const couch = await startFake();
    try {
      const run = await runScript('setup-kpi-user.sh', setupVars(couch, { KPI_COUCHDB_USER: ADMIN.name, KPI_COUCHDB_PASSWORD: ADMIN.password }));
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain('kpi-live signs in as the admin (admin): no user of its own to make');
      expect(couch.database('_users')!.docs.size).toBe(0);
      for (const name of DATABASES) {
        expect(couch.database(name)!.security, name).toEqual({ admins: { names: [], roles: ['_admin'] }, members: { names: ['admin'], roles: ['_admin'] } });
      }
    } finally {
      await couch.close();
    }
  });

  describe('refuses, with exit 1 and a message', () => {
    let couch: FakeCouchDB;
    beforeAll(async () => {
      couch = await startFake();
      // a user that signs in but is no server admin
      const auth = `Basic ${Buffer.from(`${ADMIN.name}:${ADMIN.password}`).toString('base64')}`;
      const made = await fetch(`${couch.url}/_users/${userDocId('someone')}`, {
        method: 'PUT',
        headers: { authorization: auth, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'someone', type: 'user', roles: [], password: 'someone-password' }),
      });
      expect(made.status).toBe(201);
    });
    afterAll(() => couch.close());
    const unchanged = () => {
      expect(couch.database('_users')!.docs.size).toBe(1);
      for (const name of DATABASES) expect(couch.database(name), name).toBeUndefined();
    };

    it('a wrong admin password, naming COUCHDB_USER', async () => {
      const run = await runScript('setup-kpi-user.sh', setupVars(couch, { COUCHDB_PASSWORD: 'not-the-admin-password' }));
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('COUCHDB_USER does not sign in as a server admin');
      expect(run.stderr).not.toContain('not-the-admin-password');
      expect(run.leftovers).toEqual([]);
      unchanged();
    });

    it('a COUCHDB_USER that signs in but is no server admin', async () => {
      const run = await runScript('setup-kpi-user.sh', setupVars(couch, { COUCHDB_USER: 'someone', COUCHDB_PASSWORD: 'someone-password' }));
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('COUCHDB_USER does not sign in as a server admin');
      unchanged();
    });

    it.each([['_bad'], ['kpi live'], ['kpi:live']])('KPI_COUCHDB_USER %j, before any request', async (user) => {
      const before = couch.requests.length;
      const run = await runScript('setup-kpi-user.sh', setupVars(couch, { KPI_COUCHDB_USER: user }));
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('KPI_COUCHDB_USER must be');
      expect(couch.requests.length).toBe(before);
    });

    it('a KPI_COUCHDB_PASSWORD shorter than 12 characters, before any request', async () => {
      const before = couch.requests.length;
      const run = await runScript('setup-kpi-user.sh', setupVars(couch, { KPI_COUCHDB_PASSWORD: 'short-pass' }));
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('KPI_COUCHDB_PASSWORD must have at least 12 characters');
      expect(couch.requests.length).toBe(before);
    });

    it('a CouchDB that does not answer within KPI_SETUP_WAIT_SECONDS', async () => {
      const port = await new Promise<number>((resolve) => {
        const probe = createServer().listen(0, '127.0.0.1', () => {
          const { port } = probe.address() as { port: number };
          probe.close(() => resolve(port));
        });
      });
      const started = Date.now();
      const run = await runScript('setup-kpi-user.sh', setupVars(couch, { COUCHDB_URL: `http://127.0.0.1:${port}`, KPI_SETUP_WAIT_SECONDS: '2' }));
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`setup-kpi-user: CouchDB at http://127.0.0.1:${port} is not up`);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(run.leftovers).toEqual([]);
    });
  });
});

const NODES = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];

/** Three fake nodes on NODES port 5984, sharing one network. */
async function startCluster(): Promise<FakeCouchDB[]> {
  const network: FakeNetwork = new Map();
  const started: FakeCouchDB[] = [];
  try {
    for (const host of NODES) started.push(await new FakeCouchDB({ admin: ADMIN, host, port: 5984, singleNode: false, network, connectDelayMs: 150 }).start());
  } catch (error) {
    await Promise.all(started.map((node) => node.close()));
    throw error;
  }
  return started;
}

/** Why the cluster tests cannot run here, if they cannot. */
async function clusterUnavailable(): Promise<string | undefined> {
  try {
    await Promise.all((await startCluster()).map((node) => node.close()));
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL' || code === 'EACCES') return `${NODES.join(', ')} port 5984 cannot be bound (${code})`;
    throw error;
  }
}
const clusterSkip = noCurl ?? (await clusterUnavailable());
if (clusterSkip) console.log(`[kpi-live tests] cluster-setup.sh: not run, ${clusterSkip}`);

const clusterVars = {
  COUCHDB_NODES: NODES.join(' '),
  COUCHDB_USER: ADMIN.name,
  COUCHDB_PASSWORD: ADMIN.password,
  KPI_COUCHDB_PASSWORD: KPI_PASSWORD,
  KPI_SETUP_WAIT_SECONDS: '4',
};

describe.skipIf(clusterSkip)('couchdb/cluster-setup.sh', () => {
  describe('on three fresh nodes, then again', () => {
    let nodes: FakeCouchDB[];
    beforeAll(async () => {
      nodes = await startCluster();
    });
    afterAll(() => Promise.all(nodes.map((node) => node.close())));

    it('gives them one uuid, adds the nodes, finishes the cluster, then makes kpi_live and its databases on it', async () => {
      const uuid = nodes[0]!.uuid;
      const run = await runScript('cluster-setup.sh', clusterVars);
      expect(run.code, run.stderr).toBe(0);
      const lines = run.stdout.trim().split('\n');
      expect(lines.slice(0, 10)).toEqual([
        "cluster-setup: 127.0.0.2 takes the cluster's uuid",
        "cluster-setup: 127.0.0.3 takes the cluster's uuid",
        'cluster-setup: 127.0.0.1 was enabled already',
        'cluster-setup: 127.0.0.2 was enabled already',
        'cluster-setup: 127.0.0.3 was enabled already',
        'cluster-setup: 127.0.0.2 added',
        'cluster-setup: 127.0.0.3 added',
        'cluster-setup: cluster finished',
        'cluster-setup: 3 nodes connected ({"state":"cluster_finished"})',
        'setup-kpi-user: user kpi_live created',
      ]);
      expect(nodes.map((node) => node.uuid)).toEqual([uuid, uuid, uuid]);
      const names = NODES.map((host) => `couchdb@${host}`);
      for (const node of nodes) {
        expect([...node.cluster.members].sort()).toEqual(names);
        expect([...node.cluster.connected].sort()).toEqual(names);
      }
      expect(nodes[0]!.doc('_users', userDocId('kpi_live'))).toMatchObject({ type: 'user', roles: [] });
      expectDatabasesFor(nodes[0]!, DATABASES, 'kpi_live');
      // one cluster: kpi_live signs in on any node
      expect(await signIn('http://127.0.0.3:5984', 'kpi_live', KPI_PASSWORD)).toEqual({ status: 200, name: 'kpi_live' });
      expect(run.leftovers).toEqual([]);
    });

    it('run again: takes every step as done already', async () => {
      const run = await runScript('cluster-setup.sh', clusterVars);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).not.toContain('uuid');
      for (const host of NODES) expect(run.stdout).toContain(`cluster-setup: ${host} was enabled already`);
      expect(run.stdout).toContain('cluster-setup: 127.0.0.2 is a member already');
      expect(run.stdout).toContain('cluster-setup: 127.0.0.3 is a member already');
      expect(run.stdout).toContain('cluster-setup: cluster was finished already');
      expect(run.stdout).toContain('setup-kpi-user: user kpi_live exists and its password is the one given');
      expect(run.leftovers).toEqual([]);
    });
  });

  it('adds a node that is connected (all_nodes) but no member (cluster_nodes)', async () => {
    const nodes = await startCluster();
    try {
      // e.g. a node removed from _nodes that stays connected until it restarts
      nodes[0]!.cluster.connected.add('couchdb@127.0.0.2');
      const run = await runScript('cluster-setup.sh', clusterVars);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain('cluster-setup: 127.0.0.2 added');
      expect([...nodes[0]!.cluster.members].sort()).toEqual(NODES.map((host) => `couchdb@${host}`));
    } finally {
      await Promise.all(nodes.map((node) => node.close()));
    }
  });

  it('stops when a node is not up, naming it', async () => {
    const nodes = await startCluster();
    await nodes[2]!.close();
    try {
      const run = await runScript('cluster-setup.sh', { ...clusterVars, KPI_SETUP_WAIT_SECONDS: '1' });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('cluster-setup: node 127.0.0.3 is not up');
      expect(run.leftovers).toEqual([]);
    } finally {
      await Promise.all(nodes.slice(0, 2).map((node) => node.close()));
    }
  });
});

const shellcheck = spawnSync('shellcheck', ['--version'], { encoding: 'utf8' }).status === 0;
if (!shellcheck) console.log('[kpi-live tests] couchdb/*.sh, scripts/*.sh: shellcheck is not installed, so the scripts are not linted');

describe.skipIf(!shellcheck)('couchdb/*.sh and scripts/*.sh with shellcheck', () => {
  it('finds nothing (run from the repository root, where the `# shellcheck source=` paths resolve)', () => {
    const scripts = ['couchdb', 'scripts'].flatMap((dir) =>
      readdirSync(join(root, dir))
        .filter((name) => name.endsWith('.sh'))
        .map((name) => `${dir}/${name}`),
    );
    expect(scripts.length).toBeGreaterThanOrEqual(5);
    const result = spawnSync('shellcheck', ['-x', ...scripts], { cwd: root, encoding: 'utf8', timeout: 30_000 });
    expect(result.status, result.stdout + result.stderr).toBe(0);
  });
});
