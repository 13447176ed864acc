/**
 * A fake CouchDB 3 node for the tests of couchdb/setup-kpi-user.sh and
 * couchdb/cluster-setup.sh: only the endpoints those scripts call, answering
 * with CouchDB 3's status codes and JSON bodies (chttpd, chttpd_auth_request,
 * setup_httpd, setup.erl, mem3_httpd), with the settings of couchdb/local.ini
 * (require_valid_user, /_up open). Passwords are kept as pbkdf2 hashes, as
 * CouchDB keeps them, so signing in is checked against exactly the password
 * that was sent.
 *
 * Cluster nodes share a `FakeNetwork` (host → node): `add_node` reaches the
 * other node through it, and a node that joins takes the coordinator's
 * cluster: its membership (`_nodes`, cluster_nodes), connected nodes
 * (all_nodes, connected `connectDelayMs` after add_node, as Erlang
 * distribution connects after the node document is written) and databases.
 */
import { createHash, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

interface Hash {
  salt: string;
  derived_key: string;
  iterations: number;
}

interface Database {
  security: JsonObject;
  docs: Map<string, JsonObject>;
}

/** What nodes of one cluster share; a node alone is a cluster of one. */
interface ClusterState {
  /** The `_nodes` database: cluster_nodes of `_membership`. */
  members: Set<string>;
  /** Nodes connected to each other: all_nodes of `_membership`. */
  connected: Set<string>;
  databases: Map<string, Database>;
}

export type FakeNetwork = Map<string, FakeCouchDB>;

export interface FakeCouchOptions {
  admin: { name: string; password: string };
  host?: string;
  /** 0 (default): any free port. */
  port?: number;
  /** couchdb/local.ini's single_node = true: _users and _replicator exist from the start. Default true. */
  singleNode?: boolean;
  /** Cluster nodes: how add_node finds the other nodes. */
  network?: FakeNetwork;
  connectDelayMs?: number;
  /** Every answer this much later (keeps curl processes alive long enough to be seen). */
  delayMs?: number;
}

interface UserCtx {
  name: string;
  roles: string[];
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly reason: string,
  ) {
    super(`${status} ${error}: ${reason}`);
  }
}

const ITERATIONS = 10;
const SYSTEM_DBS = ['_users', '_replicator'];
const USER_PREFIX = 'org.couchdb.user:';
const DB_NAME = /^[a-z][a-z0-9_$()+/-]*$/;

function hashPassword(password: string): Hash {
  const salt = randomBytes(16).toString('hex');
  return { salt, iterations: ITERATIONS, derived_key: pbkdf2Sync(password, salt, ITERATIONS, 32, 'sha256').toString('hex') };
}

function passwordMatches(password: string, hash: Hash): boolean {
  const key = pbkdf2Sync(password, hash.salt, hash.iterations, 32, 'sha256');
  const expected = Buffer.from(hash.derived_key, 'hex');
  return key.length === expected.length && timingSafeEqual(key, expected);
}

const notServerAdmin = () => new HttpError(401, 'unauthorized', 'You are not a server admin.');
const missingDoc = () => new HttpError(404, 'not_found', 'missing');
const conflict = () => new HttpError(409, 'conflict', 'Document update conflict.');

const namesOf = (security: JsonObject, part: 'admins' | 'members', key: 'names' | 'roles'): string[] => {
  const group = security[part] as JsonObject | undefined;
  const list = group?.[key];
  return Array.isArray(list) ? (list.filter((v) => typeof v === 'string') as string[]) : [];
};

export class FakeCouchDB {
  readonly host: string;
  readonly nodeName: string;
  uuid = randomBytes(16).toString('hex');
  readonly admins = new Map<string, Hash>();
  cluster: ClusterState;
  /** Every request, without credentials: method, path, user it signed in as. */
  readonly requests: { method: string; path: string; user: string | null }[] = [];
  private server: Server | undefined;
  private port: number;

  constructor(private readonly options: FakeCouchOptions) {
    this.host = options.host ?? '127.0.0.1';
    this.port = options.port ?? 0;
    this.nodeName = `couchdb@${this.host}`;
    this.admins.set(options.admin.name, hashPassword(options.admin.password));
    this.cluster = { members: new Set([this.nodeName]), connected: new Set([this.nodeName]), databases: new Map() };
    if (options.singleNode ?? true) for (const name of SYSTEM_DBS) this.createDatabase(name);
  }

  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  async start(): Promise<this> {
    const server = createServer((req, res) => void this.serve(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, this.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    this.options.network?.set(this.host, this);
    return this;
  }

  async close(): Promise<void> {
    this.options.network?.delete(this.host);
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  database(name: string): Database | undefined {
    return this.cluster.databases.get(name);
  }

  /** A document as the admin reads it. */
  doc(db: string, id: string): JsonObject | undefined {
    return this.database(db)?.docs.get(id);
  }

  private createDatabase(name: string): void {
    // couchdb/local.ini: default_security = admin_only
    const adminOnly = { names: [], roles: ['_admin'] };
    this.cluster.databases.set(name, { security: { admins: adminOnly, members: adminOnly }, docs: new Map() });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let status = 200;
    let answer: Json;
    let user: UserCtx | null = null;
    const url = new URL(req.url ?? '/', 'http://fake');
    const parts = url.pathname
      .split('/')
      .filter((part) => part !== '')
      .map((part) => decodeURIComponent(part));
    try {
      const body = await readBody(req);
      user = this.authenticate(req);
      if (!(parts.length === 1 && parts[0] === '_up') && !user) throw new HttpError(401, 'unauthorized', 'Authentication required.');
      [status, answer] = await this.route(req, parts, body, user);
    } catch (error) {
      const known = error instanceof HttpError ? error : new HttpError(500, 'unknown_error', String(error));
      status = known.status;
      answer = { error: known.error, reason: known.reason };
    }
    this.requests.push({ method: req.method ?? '', path: url.pathname, user: user?.name ?? null });
    if (this.options.delayMs) await new Promise((resolve) => setTimeout(resolve, this.options.delayMs));
    res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'must-revalidate', Server: 'CouchDB/3.4.3 (Erlang OTP/26)' });
    res.end(`${JSON.stringify(answer)}\n`);
  }

  /** Basic auth, as chttpd_auth's default handler: wrong credentials are a 401 on any request. */
  private authenticate(req: IncomingMessage): UserCtx | null {
    const header = req.headers.authorization;
    if (!header) return null;
    const match = /^Basic\s+(\S+)$/i.exec(header);
    if (!match) throw new HttpError(400, 'bad_request', 'Authorization header is invalid.');
    const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const name = colon < 0 ? decoded : decoded.slice(0, colon);
    const password = colon < 0 ? '' : decoded.slice(colon + 1);
    const admin = this.admins.get(name);
    if (admin && passwordMatches(password, admin)) return { name, roles: ['_admin'] };
    const doc = this.doc('_users', USER_PREFIX + name);
    if (!admin && doc && doc.type === 'user' && typeof doc.derived_key === 'string' && passwordMatches(password, doc as unknown as Hash)) {
      return { name, roles: (doc.roles as string[]) ?? [] };
    }
    throw new HttpError(401, 'unauthorized', 'Name or password is incorrect.');
  }

  private async route(req: IncomingMessage, parts: string[], body: string, user: UserCtx | null): Promise<[number, Json]> {
    const method = req.method ?? 'GET';
    const isAdmin = user?.roles.includes('_admin') ?? false;
    const requireAdmin = () => {
      if (!isAdmin) throw notServerAdmin();
    };
    const [first, second, third, fourth, fifth] = parts;
    if (first === '_up' && parts.length === 1 && method === 'GET') return [200, { status: 'ok', seeds: {} }];
    if (first === '_session' && parts.length === 1 && method === 'GET') {
      return [
        200,
        { ok: true, userCtx: { name: user!.name, roles: user!.roles }, info: { authentication_handlers: ['cookie', 'default'], authenticated: 'default' } },
      ];
    }
    if (first === '_node' && third === '_config' && parts.length === 5) {
      requireAdmin();
      if (second !== '_local' && second !== this.nodeName) throw new HttpError(404, 'not_found', 'missing');
      if (fourth !== 'couchdb' || fifth !== 'uuid') throw new HttpError(404, 'not_found', 'unknown_config_value');
      if (method === 'GET') return [200, this.uuid];
      if (method === 'PUT') {
        const value = parseJson(body);
        if (typeof value !== 'string') throw new HttpError(400, 'bad_request', 'Config values must be JSON strings');
        const old = this.uuid;
        this.uuid = value;
        return [200, old];
      }
    }
    if (first === '_membership' && parts.length === 1 && method === 'GET') {
      requireAdmin();
      const allNodes = this.cluster.connected.has(this.nodeName) ? [...this.cluster.connected] : [this.nodeName];
      return [200, { all_nodes: allNodes.sort(), cluster_nodes: [...this.cluster.members].sort() }];
    }
    if (first === '_cluster_setup' && parts.length === 1) {
      requireAdmin();
      if (method === 'GET') {
        const finished = SYSTEM_DBS.every((name) => this.database(name));
        return [200, { state: (this.options.singleNode ?? true) ? 'single_node_enabled' : finished ? 'cluster_finished' : 'cluster_enabled' }];
      }
      if (method === 'POST') {
        if (!/^application\/json\b/.test(req.headers['content-type'] ?? '')) {
          throw new HttpError(415, 'bad_content_type', 'Content-Type must be application/json');
        }
        return this.clusterSetup(parseJson(body));
      }
    }
    if (first && !first.startsWith('_') && !DB_NAME.test(first)) {
      throw new HttpError(
        400,
        'illegal_database_name',
        `Name: '${first}'. Only lowercase characters (a-z), digits (0-9), and any of the characters _, $, (, ), +, -, and / are allowed. Must begin with a letter.`,
      );
    }
    if (first && (first === '_users' || first === '_replicator' || !first.startsWith('_'))) return this.databaseRequest(method, parts, body, user!);
    throw new HttpError(400, 'bad_request', `Unsupported by the fake: ${method} /${parts.join('/')}`);
  }

  private async clusterSetup(setup: Json): Promise<[number, Json]> {
    const options = (setup && typeof setup === 'object' && !Array.isArray(setup) ? setup : {}) as JsonObject;
    const badRequest = (reason: string) => new HttpError(400, 'bad_request', reason);
    switch (options.action) {
      case 'enable_cluster':
        // setup:is_cluster_enabled(): a bind address other than 127.0.0.1 and
        // an admin. The official image has both from its start.
        if (this.admins.size > 0) throw badRequest('Cluster is already enabled');
        if (typeof options.username !== 'string' || typeof options.password !== 'string') {
          throw badRequest('Cluster setup requires admin account to be configured');
        }
        this.admins.set(options.username, hashPassword(options.password));
        return [201, { ok: true }];
      case 'add_node': {
        const host = String(options.host ?? '');
        const other = this.options.network?.get(host);
        if (!other || String(options.port ?? 5984) !== new URL(other.url).port) throw badRequest('Add node failed. Invalid Host and/or Port.');
        const admin = other.admins.get(String(options.username ?? ''));
        // setup.erl posts receive_cookie to the other node; a refusal there
        // (wrong credentials) is not an error to it: 201, and no node added.
        if (!admin || !passwordMatches(String(options.password ?? ''), admin)) return [201, { ok: true }];
        const name = `${String(options.name ?? 'couchdb')}@${host}`;
        if (this.cluster.members.has(name)) throw conflict();
        const cluster = this.cluster;
        cluster.members.add(name);
        setTimeout(() => {
          other.cluster = cluster;
          cluster.connected.add(name);
        }, this.options.connectDelayMs ?? 0);
        return [201, { ok: true }];
      }
      case 'finish_cluster': {
        // setup:finish_cluster/1: waits for the members to connect, copies
        // admins and uuid to them, then makes the system databases once.
        const deadline = Date.now() + 5_000;
        while ([...this.cluster.members].some((name) => !this.cluster.connected.has(name))) {
          if (Date.now() > deadline) throw new HttpError(500, 'setup_error', 'Cluster setup timed out waiting for nodes to connect');
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        for (const other of this.options.network?.values() ?? []) {
          if (other === this || !this.cluster.members.has(other.nodeName)) continue;
          for (const [name, hash] of this.admins) other.admins.set(name, hash);
          other.uuid = this.uuid;
        }
        if (SYSTEM_DBS.every((name) => this.database(name))) throw badRequest('Cluster is already finished');
        for (const name of SYSTEM_DBS) if (!this.database(name)) this.createDatabase(name);
        return [201, { ok: true }];
      }
      default:
        throw badRequest("Invalid Action'");
    }
  }

  private databaseRequest(method: string, parts: string[], body: string, user: UserCtx): [number, Json] {
    const [name, docId, rest] = parts as [string, string | undefined, string | undefined];
    const isAdmin = user.roles.includes('_admin');
    const db = this.database(name);
    if (parts.length === 1 && method === 'PUT') {
      if (!isAdmin) throw notServerAdmin();
      if (db) throw new HttpError(412, 'file_exists', 'The database could not be created, the file already exists.');
      this.createDatabase(name);
      return [201, { ok: true }];
    }
    if (!db) throw new HttpError(404, 'not_found', 'Database does not exist.');
    const isMember = (security: JsonObject) =>
      namesOf(security, 'members', 'names').includes(user.name) ||
      namesOf(security, 'members', 'roles').some((role) => user.roles.includes(role)) ||
      namesOf(security, 'admins', 'names').includes(user.name);
    const isDbAdmin = isAdmin || namesOf(db.security, 'admins', 'names').includes(user.name);
    // _users: every user may reach it, for its own document (couch_users_db)
    if (!isAdmin && name !== '_users' && !isMember(db.security)) throw new HttpError(403, 'forbidden', 'You are not allowed to access this db.');
    if (parts.length === 1 && method === 'GET') {
      return [200, { db_name: name, doc_count: db.docs.size, doc_del_count: 0, update_seq: `${db.docs.size}-fake`, props: {} }];
    }
    if (docId === '_security' && parts.length === 2) {
      if (method === 'GET') return [200, db.security];
      if (method === 'PUT') {
        if (!isDbAdmin) throw new HttpError(401, 'unauthorized', 'You are not a db or server admin.');
        const security = parseJson(body);
        if (!security || typeof security !== 'object' || Array.isArray(security)) throw new HttpError(400, 'bad_request', 'invalid security object');
        db.security = security;
        return [200, { ok: true }];
      }
    }
    if (docId && !rest && !docId.startsWith('_')) {
      const current = db.docs.get(docId);
      const own = name === '_users' && docId === USER_PREFIX + user.name;
      if (method === 'GET') {
        if (!current || (name === '_users' && !isAdmin && !own)) throw missingDoc();
        return [200, current];
      }
      if (method === 'PUT') return this.putDoc(name, db, docId, parseJson(body), current, isAdmin || (name !== '_users' && isMember(db.security)));
    }
    throw new HttpError(400, 'bad_request', `Unsupported by the fake: ${method} /${parts.join('/')}`);
  }

  private putDoc(dbName: string, db: Database, id: string, value: Json, current: JsonObject | undefined, mayWrite: boolean): [number, Json] {
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw new HttpError(400, 'bad_request', 'Document must be a JSON object');
    const doc: JsonObject = { ...value, _id: id };
    if ((current?._rev ?? null) !== (doc._rev ?? null)) throw conflict();
    if (dbName === '_users') {
      // _users' validate_doc_update and before_doc_update (the password hashed)
      if (!mayWrite) throw new HttpError(403, 'forbidden', 'You may only update your own user document.');
      if (doc.type !== 'user') throw new HttpError(403, 'forbidden', 'doc.type must be user');
      if (typeof doc.name !== 'string' || USER_PREFIX + doc.name !== id) {
        throw new HttpError(403, 'forbidden', 'Doc ID must be of the form org.couchdb.user:name');
      }
      if (doc.name.startsWith('_')) throw new HttpError(403, 'forbidden', 'Username may not start with underscore.');
      if (!Array.isArray(doc.roles)) throw new HttpError(403, 'forbidden', 'doc.roles must be an array');
      if (typeof doc.password === 'string') {
        Object.assign(doc, { password_scheme: 'pbkdf2', pbkdf2_prf: 'sha256' }, hashPassword(doc.password));
        delete doc.password;
      }
    } else if (!mayWrite) {
      throw new HttpError(403, 'forbidden', 'You are not allowed to access this db.');
    }
    const generation = current ? Number(String(current._rev).split('-')[0]) + 1 : 1;
    doc._rev = `${generation}-${createHash('md5').update(JSON.stringify(doc)).update(randomBytes(8)).digest('hex')}`;
    db.docs.set(id, doc);
    return [201, { ok: true, id, rev: doc._rev }];
  }
}

function parseJson(body: string): Json {
  try {
    return JSON.parse(body) as Json;
  } catch {
    throw new HttpError(400, 'bad_request', 'invalid UTF-8 JSON');
  }
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
