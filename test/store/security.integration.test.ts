/**
 * Who may read kpi-live's databases. On a real CouchDB, start-up makes the
 * blob database and its siblings readable by kpi-live's CouchDB user only
 * (`_security.members`); on pouchdb-server, which does not enforce
 * `_security`, it leaves them alone and says so at debug level.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { applySetup, databaseExists, ensureDatabase, ensureSecurity, serviceMembers, SIBLING_DB_SUFFIXES, type SecurityObject } from '../../src/store/setup.js';
import { openStore, StoreRequestError, type Store } from '../../src/store/store.js';
import { dropDb, startTestApp, uniqueDbName, type TestApp } from '../harness/app.js';

const onEmbedded = inject('couchKind') === 'embedded';

/** A logger whose lines the test can read. */
function recordingLog() {
  const lines: { level: number; msg: string; [key: string]: unknown }[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
  return { log, lines };
}

/** The harness's CouchDB base URL without credentials, and those credentials. */
function harness(): { base: string; user: string; password: string } {
  const url = new URL(inject('couchUrl'));
  const user = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  url.username = '';
  url.password = '';
  return { base: url.toString().replace(/\/$/, ''), user, password };
}

type Credentials = { name: string; password: string } | 'anonymous';

/** One plain HTTP request to the harness's CouchDB, as the harness's user, another user, or nobody. */
async function couch(
  path: string,
  options: { method?: string; body?: unknown; as?: Credentials } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const { base, user, password } = harness();
  const as = options.as ?? (user ? { name: user, password } : 'anonymous');
  const headers: Record<string, string> = { accept: 'application/json' };
  if (as !== 'anonymous') headers.authorization = `Basic ${Buffer.from(`${as.name}:${as.password}`).toString('base64')}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}/${path}`, {
    method: options.method ?? 'GET',
    headers,
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

describe('_security of kpi-live databases', () => {
  let t: TestApp;
  let dbs: string[];

  beforeAll(async () => {
    t = await startTestApp();
    dbs = [t.store.blobsDb];
    for (const suffix of SIBLING_DB_SUFFIXES) {
      const db = `${t.store.blobsDb}_${suffix}`;
      if (await databaseExists(t.store, db)) dbs.push(db);
    }
  });
  afterAll(async () => {
    await t.close();
  });

  it('asks nothing of an embedded store: it is pouchdb-server, which does not enforce _security', async () => {
    const neverAsked = {
      kind: 'embedded',
      request: () => Promise.reject(new Error('the embedded store must not be asked about _security')),
    } as unknown as Store;
    const { log, lines } = recordingLog();
    expect(await ensureSecurity(neverAsked, 'kpi_blobs', log)).toBe('skipped');
    expect(lines).toContainEqual(expect.objectContaining({ level: 20, db: 'kpi_blobs', msg: '_security left as it is: the store does not enforce it' }));
  });

  describe.skipIf(!onEmbedded)('on pouchdb-server (the harness runs the embedded store)', () => {
    it('start-up skips _security with a debug line and writes none', async () => {
      const { log, lines } = recordingLog();
      await applySetup(t.store, log);
      const skipped = lines.filter((line) => line.msg === '_security left as it is: the store does not enforce it');
      expect(skipped.map((line) => line.db)).toEqual(dbs);
      expect(skipped.every((line) => line.level === 20 && String(line.server).startsWith('pouchdb-server'))).toBe(true);
      expect(lines.find((line) => line.msg === 'store ready')?.security).toEqual(Object.fromEntries(dbs.map((db) => [db, 'skipped'])));
      for (const db of dbs) expect(await t.store.request<SecurityObject>({ db, path: '_security' })).toEqual({});
    });

    it('a database made by a feature is created and skipped the same way', async () => {
      const db = uniqueDbName('security');
      try {
        const { log, lines } = recordingLog();
        expect(await ensureDatabase(t.store, db, log)).toBe(true);
        expect(await ensureDatabase(t.store, db, log)).toBe(false);
        expect(lines.filter((line) => line.db === db && line.level === 20)).toHaveLength(2);
      } finally {
        await dropDb(db);
      }
    });
  });

  describe.skipIf(onEmbedded)('on CouchDB (COUCHDB_URL or testcontainers)', () => {
    let serviceUser: string;
    beforeAll(async () => {
      const session = await t.store.request<{ userCtx: { name: string } }>({ path: '_session' });
      serviceUser = session.userCtx.name;
    });

    it("every kpi-live database has kpi-live's user, and server admins, as its only members", async () => {
      expect(dbs).toContain(t.store.blobsDb);
      for (const db of dbs) {
        const security = await t.store.request<SecurityObject>({ db, path: '_security' });
        expect(security.members, db).toEqual(serviceMembers(serviceUser));
      }
    });

    it('an anonymous read is refused (401/403), of the database, its documents and its feed', async () => {
      for (const db of dbs) {
        for (const path of [db, `${db}/_all_docs`, `${db}/_changes`]) {
          const { status } = await couch(path, { as: 'anonymous' });
          expect([401, 403], path).toContain(status);
        }
      }
    });

    it('is idempotent, and puts back the member list when someone widened it', async () => {
      const { log } = recordingLog();
      for (const db of dbs) expect(await ensureSecurity(t.store, db, log)).toBe('unchanged');
      const security = await t.store.request<SecurityObject>({ db: t.store.blobsDb, path: '_security' });
      await t.store.request({
        method: 'PUT',
        db: t.store.blobsDb,
        path: '_security',
        body: { ...security, members: { names: [serviceUser, 'someone-else'], roles: ['_admin', 'readers'] } },
      });
      await applySetup(t.store, log);
      const after = await t.store.request<SecurityObject>({ db: t.store.blobsDb, path: '_security' });
      expect(after.members).toEqual(serviceMembers(serviceUser));
      expect(after.admins).toEqual(security.admins);
    });

    describe('with a dedicated CouchDB user, as couchdb/setup-kpi-user.sh makes it', () => {
      const dedicated = { name: `kpi_live_test_${Date.now().toString(36)}`, password: 'a-password-for-a-kpi-live-test-user' };
      const db = uniqueDbName('dedicated');
      let userRev: string | undefined;

      beforeAll(async () => {
        // What the setup script does, as the admin: the user, the database, and its _security.
        const users = await couch('_users', { method: 'PUT' });
        expect([201, 202, 412]).toContain(users.status);
        const created = await couch(`_users/org.couchdb.user:${dedicated.name}`, {
          method: 'PUT',
          body: { _id: `org.couchdb.user:${dedicated.name}`, name: dedicated.name, password: dedicated.password, roles: [], type: 'user' },
        });
        expect(created.status).toBeLessThan(300);
        userRev = created.body.rev as string;
        expect((await couch(db, { method: 'PUT' })).status).toBeLessThan(300);
        const secured = await couch(`${db}/_security`, {
          method: 'PUT',
          body: { admins: { names: [dedicated.name], roles: ['_admin'] }, members: serviceMembers(dedicated.name) },
        });
        expect(secured.status).toBeLessThan(300);
      });
      afterAll(async () => {
        await dropDb(db);
        if (userRev) await couch(`_users/org.couchdb.user:${dedicated.name}?rev=${userRev}`, { method: 'DELETE' });
      });

      it('kpi-live starts with it on databases an admin made, and the admin-only user cannot read them', async () => {
        const { base } = harness();
        const url = new URL(base);
        url.username = encodeURIComponent(dedicated.name);
        url.password = encodeURIComponent(dedicated.password);
        const config = loadConfig({ env: {}, overrides: { couchdbUrl: url.toString(), dbName: db, logLevel: 'silent' } });
        const { log, lines } = recordingLog();
        const store = await openStore(config, log);
        try {
          expect(lines.find((line) => line.msg === 'store ready')).toMatchObject({ created: false, security: { [db]: 'unchanged' } });
          // a database it may not create is named in the error, with what to do
          const refused = await ensureDatabase(store, uniqueDbName('not-allowed'), log).catch((err: unknown) => err);
          expect(refused).toBeInstanceOf(StoreRequestError);
          expect((refused as StoreRequestError).message).toMatch(/only server admins may.*setup-kpi-user\.sh/);
        } finally {
          await store.close();
        }
      });

      it('another user of the same CouchDB is refused (403)', async () => {
        const { status } = await couch(t.store.blobsDb, { as: dedicated });
        expect(status).toBe(403);
      });
    });
  });
});
