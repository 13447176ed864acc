/**
 * Applies `couchdb/` to the store: creates the blob database and writes its
 * design document when it is missing or differs, and on a real CouchDB makes
 * kpi-live's databases readable by kpi-live's CouchDB user only. Safe to run
 * at every start and from several instances at once (a lost race is a
 * 409/412, not an error).
 */
import type { Log } from '../log.js';
import { isDeepStrictEqual } from 'node:util';
import { blobsDesignDoc } from '../../couchdb/design-docs.js';
import { ConflictError, Database } from './database.js';
import { StoreRequestError, StoreUnavailableError, type Store } from './store.js';
import { sleep } from '../sleep.js';

/** The databases kpi-live keeps beside the blob database, by suffix (`<KPI_DB>_<suffix>`). */
export const SIBLING_DB_SUFFIXES = ['aggregates', 'deploys', 'alerts', 'sessions'] as const;

/** A database's `_security` object, as CouchDB keeps it. */
export interface SecurityObject {
  admins?: { names?: string[]; roles?: string[] };
  members?: { names?: string[]; roles?: string[] };
  [key: string]: unknown;
}

/** Who kpi-live is on the store, learned once per store. */
interface StoreIdentity {
  /** Only CouchDB enforces `_security`; pouchdb-server stores it and lets everyone in. */
  enforcesSecurity: boolean;
  /** The server, for logs (`CouchDB 3.4.2`, `pouchdb-server 4.2.0`). */
  server: string;
  /** The CouchDB user kpi-live signs in as (null: anonymous). */
  user: string | null;
  roles: string[];
}

const identities = new WeakMap<Store, Promise<StoreIdentity>>();

async function learnIdentity(store: Store): Promise<StoreIdentity> {
  if (store.kind === 'embedded') return { enforcesSecurity: false, server: 'embedded pouchdb-server', user: null, roles: [] };
  // A COUCHDB_URL may name a pouchdb-server too (the test harness does): ask the server what it is.
  const root = await store.request<Record<string, unknown>>({ path: '' });
  if (root.couchdb !== 'Welcome') {
    const version = typeof root.version === 'string' ? ` ${root.version}` : '';
    return {
      enforcesSecurity: false,
      server: `${'express-pouchdb' in root ? 'pouchdb-server' : 'a server that is not CouchDB'}${version}`,
      user: null,
      roles: [],
    };
  }
  const session = await store.request<{ userCtx?: { name?: string | null; roles?: string[] } }>({ path: '_session' });
  return {
    enforcesSecurity: true,
    server: `CouchDB ${String(root.version ?? '')}`.trim(),
    user: session.userCtx?.name ?? null,
    roles: session.userCtx?.roles ?? [],
  };
}

function identityOf(store: Store): Promise<StoreIdentity> {
  let known = identities.get(store);
  if (!known) {
    known = learnIdentity(store);
    identities.set(store, known);
    // a store that did not answer is asked again next time
    known.catch(() => identities.delete(store));
  }
  return known;
}

/** The members kpi-live gives each of its databases: its own CouchDB user, and server admins. */
export function serviceMembers(user: string): { names: string[]; roles: string[] } {
  return { names: [user], roles: ['_admin'] };
}

/** Whether CouchDB lets this user change the database's `_security`: server admins and the database's admins may. */
function mayEditSecurity(who: StoreIdentity, security: SecurityObject): boolean {
  if (who.roles.includes('_admin')) return true;
  const admins = security.admins ?? {};
  return (who.user !== null && (admins.names ?? []).includes(who.user)) || (admins.roles ?? []).some((role) => who.roles.includes(role));
}

/** What {@link ensureSecurity} did. */
export type SecurityOutcome = 'set' | 'unchanged' | 'skipped';

/**
 * On a real CouchDB, makes `db` readable and writable by kpi-live's CouchDB
 * user only (and server admins): `_security.members` becomes
 * `{ names: [user], roles: ['_admin'] }`; the database's admins are kept.
 * Any other member is removed: kpi-live owns its databases' member list.
 * Skipped, with a debug line, on pouchdb-server (the embedded store), which
 * keeps `_security` but does not enforce it. A user that may not change
 * `_security` (neither server admin nor database admin) gets a warning and
 * leaves it as it is.
 *
 * @example
 * await ensureSecurity(store, store.blobsDb, log); // 'set' the first time, then 'unchanged'
 */
export async function ensureSecurity(store: Store, db: string, log?: Log): Promise<SecurityOutcome> {
  const who = await identityOf(store);
  if (!who.enforcesSecurity) {
    log?.debug({ db, server: who.server }, '_security left as it is: the store does not enforce it');
    return 'skipped';
  }
  if (who.user === null) {
    log?.warn({ db, server: who.server }, '_security left as it is: kpi-live signs in to CouchDB anonymously, so there is no user to name');
    return 'skipped';
  }
  const database = new Database(store, db);
  const current = await database.security<SecurityObject>();
  const members = serviceMembers(who.user);
  if (isDeepStrictEqual(current.members, members)) return 'unchanged';
  if (!mayEditSecurity(who, current)) {
    log?.warn(
      { db, user: who.user },
      "_security left as it is: kpi-live's CouchDB user is neither a server admin nor an admin of this database (couchdb/setup-kpi-user.sh makes it one)",
    );
    return 'skipped';
  }
  await database.setSecurity({ ...current, members });
  log?.info({ db, members }, "database readable by kpi-live's CouchDB user only");
  return 'set';
}

/** Whether a database exists (and kpi-live may look at it). */
export async function databaseExists(store: Store, db: string): Promise<boolean> {
  return (await new Database(store, db).info()) !== undefined;
}

async function ensureDatabaseOnly(store: Store, db: string): Promise<boolean> {
  // Asked first: CouchDB lets only server admins PUT a database, even one that
  // exists, and a dedicated kpi-live user is no server admin.
  if (await databaseExists(store, db)) return false;
  try {
    return await new Database(store, db).create();
  } catch (err) {
    if (err instanceof StoreRequestError && (err.statusCode === 401 || err.statusCode === 403)) {
      throw new StoreRequestError(
        `database ${db} does not exist, and kpi-live's CouchDB user may not create it (only server admins may): create it as an admin, e.g. with couchdb/setup-kpi-user.sh (${err.message})`,
        err.statusCode,
        err.error,
      );
    }
    throw err;
  }
}

/**
 * Creates a database unless it exists, then applies {@link ensureSecurity};
 * true when it was created.
 */
export async function ensureDatabase(store: Store, db: string, log?: Log): Promise<boolean> {
  const created = await ensureDatabaseOnly(store, db);
  await ensureSecurity(store, db, log);
  return created;
}

/** What {@link ensureDesignDoc} did. */
type DesignOutcome = 'created' | 'updated' | 'unchanged';

/**
 * Writes a design document when it is missing or differs. Written whole, so
 * a field an older kpi-live put there and this one no longer has (the blob
 * database's `validate_doc_update`) is removed; a lost race with another
 * instance writing the same document is a 409, not an error.
 */
async function ensureDesignDoc(database: Database, design: Record<string, unknown> & { _id: string }, log: Log): Promise<DesignOutcome> {
  const current = await database.get<Record<string, unknown>>(design._id);
  const { _rev, ...rest }: Record<string, unknown> = current ?? {};
  if (current && isDeepStrictEqual(rest, design)) return 'unchanged';
  try {
    await database.put(current ? { ...design, _rev } : design);
  } catch (err) {
    if (err instanceof ConflictError) return 'unchanged';
    throw err;
  }
  if (!current) return 'created';
  const removed = Object.keys(rest).filter((field) => !(field in design));
  const changed = Object.keys(design).filter((field) => field in rest && !isDeepStrictEqual(rest[field], design[field]));
  log.info({ db: database.name, design: design._id, removed, changed }, 'design document updated');
  return 'updated';
}

/**
 * Creates what the blob database needs, and applies {@link ensureSecurity}
 * to it and to its sibling databases that exist (the features that use them
 * apply it when they create them). A store that is still starting is retried
 * for a while (a CouchDB container may accept connections before it
 * answers); a refusal (bad credentials, say) fails at once.
 */
export async function applySetup(store: Store, log: Log, waitMs = 30_000): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const created = await ensureDatabaseOnly(store, store.blobsDb);
      const security: Record<string, SecurityOutcome> = { [store.blobsDb]: await ensureSecurity(store, store.blobsDb, log) };
      const design = await ensureDesignDoc(new Database(store, store.blobsDb), blobsDesignDoc, log);
      for (const suffix of SIBLING_DB_SUFFIXES) {
        const db = `${store.blobsDb}_${suffix}`;
        if (await databaseExists(store, db)) security[db] = await ensureSecurity(store, db, log);
      }
      log.info({ db: store.blobsDb, created, design, security }, 'store ready');
      return;
    } catch (err) {
      if (!(err instanceof StoreUnavailableError) || Date.now() > deadline) throw err;
      log.warn({ err: err.message }, 'store not ready yet; retrying');
      await sleep(500);
    }
  }
}
