/**
 * compose.yaml, read as Compose reads it (YAML with merge keys): no secret
 * has a default, kpi-live waits for a healthy CouchDB and for its user to be
 * made, and the `cluster` profile has three nodes and a setup job. Where a
 * Compose command is installed, `config` must accept the file with the
 * required variables set and refuse it without them. The `yaml` package comes
 * with the dev dependencies (through vite and testcontainers); without it
 * the structural checks are skipped with a message.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/project-root.js';

interface Service {
  image?: string;
  build?: unknown;
  profiles?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  volumes?: string[];
  ports?: string[];
  user?: string;
}

const root = projectRoot();
const composeFile = join(root, 'compose.yaml');
const text = readFileSync(composeFile, 'utf8');

let parse: ((source: string, options: { merge: boolean }) => unknown) | undefined;
try {
  parse = (await import('yaml')).parse as typeof parse;
} catch {
  console.log('[kpi-live tests] compose.yaml: the `yaml` package is not installed, so its structure is not checked');
}
const services = parse ? (parse(text, { merge: true }) as { services: Record<string, Service> }).services : {};
const byProfile = (profile: string | undefined) =>
  Object.keys(services).filter((name) => (profile ? services[name]!.profiles?.includes(profile) : !services[name]!.profiles));

/** Values that set secrets: passwords, keys, cookies, user and token lists. */
const SECRET_KEY = /PASSWORD|SECRET|COOKIE|TOKENS|USERS/;
/** `${VAR:?message}`: Compose refuses to run without VAR. */
const REQUIRED = /^\$\{[A-Z_]+:\?[^}]+\}$/;
/** `${VAR:-}`: VAR or nothing. */
const EMPTY_DEFAULT = /^\$\{[A-Z_]+:-\}$/;

describe.skipIf(!parse)('compose.yaml', () => {
  it('has the default services without a profile and the cluster behind profile `cluster`', () => {
    expect(byProfile(undefined).sort()).toEqual(['couchdb', 'couchdb-init', 'kpi-live']);
    expect(byProfile('cluster').sort()).toEqual(['cluster-setup', 'couchdb1', 'couchdb2', 'couchdb3', 'kpi-live-cluster']);
  });

  it('gives no secret a default: each is required or empty', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const [key, value] of Object.entries(service.environment ?? {})) {
        if (!SECRET_KEY.test(key)) continue;
        expect(REQUIRED.test(String(value)) || EMPTY_DEFAULT.test(String(value)), `${name}: ${key}=${value}`).toBe(true);
      }
    }
  });

  it('requires the CouchDB admin and the password of kpi-live’s own CouchDB user', () => {
    for (const name of ['couchdb', 'couchdb1', 'couchdb2', 'couchdb3', 'couchdb-init', 'cluster-setup']) {
      expect(services[name]!.environment!.COUCHDB_USER, name).toMatch(REQUIRED);
      expect(services[name]!.environment!.COUCHDB_PASSWORD, name).toMatch(REQUIRED);
    }
    for (const name of ['kpi-live', 'kpi-live-cluster']) {
      const env = services[name]!.environment!;
      // kpi-live signs in as its own user, never as the admin
      expect(env.COUCHDB_USER).toBe('${KPI_COUCHDB_USER:-kpi_live}');
      expect(env.COUCHDB_PASSWORD).toMatch(/^\$\{KPI_COUCHDB_PASSWORD:\?/);
      expect(Object.values(env).join(' ')).not.toMatch(/\$\{COUCHDB_PASSWORD/);
    }
  });

  it('starts kpi-live once CouchDB is healthy and kpi-live’s user is made', () => {
    const kpiLive = services['kpi-live']!;
    expect(kpiLive.environment!.COUCHDB_URL).toBe('http://couchdb:5984');
    expect(kpiLive.depends_on).toEqual({
      couchdb: { condition: 'service_healthy' },
      'couchdb-init': { condition: 'service_completed_successfully' },
    });
    expect(services.couchdb!.healthcheck?.test.join(' ')).toContain('/_up');
    expect(services['couchdb-init']!.depends_on).toEqual({ couchdb: { condition: 'service_healthy' } });
    expect(services['couchdb-init']!.entrypoint).toEqual(['/bin/sh', '/kpi-live/couchdb/setup-kpi-user.sh']);
    expect(kpiLive.build).toBe('.');
    expect(kpiLive.volumes).toEqual(['kpi-live-data:/data']);
  });

  it('runs three cluster nodes, sharing one secret and one Erlang cookie, and a setup job before kpi-live', () => {
    const nodes = ['couchdb1', 'couchdb2', 'couchdb3'];
    for (const name of nodes) {
      const env = services[name]!.environment!;
      expect(env.NODENAME).toBe(name);
      expect(env.KPI_COUCHDB_ROLE).toBe('cluster');
      expect(env.COUCHDB_SECRET).toBe('${COUCHDB_SECRET:-}');
      expect(env.COUCHDB_ERLANG_COOKIE).toBe('${COUCHDB_ERLANG_COOKIE:-}');
      expect(services[name]!.image).toBe('couchdb:3');
      expect(services[name]!.healthcheck?.test.join(' ')).toContain('/_up');
      // a volume of its own for data and for the settings CouchDB writes at run time
      expect(services[name]!.volumes).toEqual(expect.arrayContaining([`${name}-data:/opt/couchdb/data`, `${name}-etc:/opt/couchdb/etc/local.d`]));
    }
    const setup = services['cluster-setup']!;
    expect(setup.entrypoint).toEqual(['/bin/sh', '/kpi-live/couchdb/cluster-setup.sh']);
    expect(setup.environment!.COUCHDB_NODES!.split(' ')).toEqual(nodes);
    expect(setup.depends_on).toEqual(Object.fromEntries(nodes.map((node) => [node, { condition: 'service_healthy' }])));
    const kpiLive = services['kpi-live-cluster']!;
    expect(kpiLive.environment!.COUCHDB_URL).toBe('http://couchdb1:5984');
    expect(kpiLive.depends_on!['cluster-setup']).toEqual({ condition: 'service_completed_successfully' });
  });

  it('pins every image to a tag, and mounts only scripts and settings that exist', () => {
    for (const [name, service] of Object.entries(services)) {
      // a tag after the name (an interpolated one, with its default, counts)
      if (service.image) expect(service.image.replace(/\$\{[^}]+\}/g, 'tag'), name).toMatch(/^[^:]+:[^:]+$/);
      expect(service.image ?? '', name).not.toMatch(/:latest$/);
      for (const file of (service.entrypoint ?? []).filter((part) => part.startsWith('/kpi-live/'))) {
        expect(existsSync(join(root, file.replace('/kpi-live/', ''))), file).toBe(true);
      }
    }
  });
});

/** A Compose command, if one is installed: `docker compose` (v2) or `docker-compose`. */
function composeCommand(): string[] | undefined {
  for (const command of [['docker', 'compose'], ['docker-compose']]) {
    const probe = spawnSync(command[0]!, [...command.slice(1), 'version'], { encoding: 'utf8', timeout: 20_000 });
    if (probe.status === 0) return command;
  }
  return undefined;
}
const compose = composeCommand();
if (!compose) console.log('[kpi-live tests] compose.yaml: no docker compose / docker-compose here, so `config` is not run');

describe.skipIf(!compose)('compose.yaml with the installed Compose', () => {
  // an empty env file: a developer's .env beside compose.yaml must not make these pass
  const dir = mkdtempSync(join(tmpdir(), 'kpi-live-compose-'));
  const emptyEnvFile = join(dir, 'empty.env');
  writeFileSync(emptyEnvFile, '');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const required = { COUCHDB_USER: 'admin', COUCHDB_PASSWORD: 'an-admin-password', KPI_COUCHDB_PASSWORD: 'a-kpi-live-password' };
  const run = (args: string[], env: Record<string, string>) =>
    spawnSync(compose![0]!, [...compose!.slice(1), '--env-file', emptyEnvFile, '-f', composeFile, ...args], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
      // only what Compose needs, not the variables of whoever runs the tests
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    });

  it.each([[[] as string[]], [['--profile', 'cluster']]])('accepts the file %j with the required variables set', (profile) => {
    const result = run([...profile, 'config'], required);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('kpi-live');
  });

  it.each(Object.keys(required))('refuses to run without %s, naming it', (missing) => {
    const env: Record<string, string> = { ...required };
    delete env[missing];
    const result = run(['config'], env);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(missing);
  });
});
