/**
 * Deploy markers: a CI/CD pipeline says "version X went out at T", and every
 * open dashboard draws it as a line, so that a change in the KPIs can be read
 * against the deploy that caused it.
 *
 * - `POST /api/deploys {version, at?, note?, public?}` (authenticated like reads;
 *   `public: true` lets the public view show it, note included)
 * - `GET /api/deploys?from&to`
 *
 * Markers live in their own database (`<KPI_DB>_deploys`), apart from the
 * blobs, with the ingest runs' arrival records (arrivals.ts). New markers are
 * announced on `app.deploys.added$` (the live stream pushes them), those
 * taken here and, through the database's `_changes` feed, those another
 * instance took. The most recent ones are kept in memory for snapshots.
 *
 * Before a marker taken here is answered 201, the handlers of `onDeploy`
 * run (ingest starts a run after it, so that what this instance
 * acknowledges after the answer counts as arrived after the deploy); a
 * marker seen on the feed runs them too.
 */
import { randomBytes } from 'node:crypto';
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { Subject, type Observable } from 'rxjs';
import type { Config } from '../config/config.js';
import { errorResponseSchema, HttpError } from '../http/errors.js';
import { Database } from '../store/database.js';
import { couchChangesReader } from '../store/changes.js';
import { sleep } from '../sleep.js';
import { deploysDbOf } from '../aggregate/runtime/settings.js';
import { ensureDatabase } from '../store/setup.js';

import type { Deploy } from './types.js';

export type { Deploy };

export interface Deploys {
  /** Markers with `from <= at < to`, oldest first. */
  list(from?: number, to?: number): Deploy[];
  /** A marker kept in memory, by id. */
  get(id: string): Deploy | undefined;
  added$: Observable<Deploy>;
  /** Runs for each new marker: awaited (bounded) before a marker taken here is answered. */
  onDeploy(handler: (deploy: Deploy) => Promise<void>): void;
  /** Settles once the handlers of a marker this instance has learnt of are done (undefined: not learnt). */
  handled(id: string): Promise<void> | undefined;
}

declare module 'fastify' {
  interface FastifyInstance {
    deploys: Deploys;
  }
}

/** Markers kept in memory (and so in snapshots); older ones stay in the database. */
const KEPT = 2000;
/** How often the markers other instances take are looked for, ms. */
const DEPLOY_POLL_MS = 1000;
/** How long the answer to a new marker waits for ingest to start its run after it. */
const HANDLERS_WAIT_MS = 5000;
const PREFIX = 'deploy/';

const deploySchema = {
  type: 'object',
  required: ['id', 'version', 'at'],
  properties: { id: { type: 'string' }, version: { type: 'string' }, at: { type: 'integer' }, note: { type: 'string' }, public: { type: 'boolean' } },
} as const;

async function deploys(app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  const store = app.store;
  const db = deploysDbOf(config);
  await ensureDatabase(store, db);
  const database = new Database(store, db);
  const loaded = await database.allDocs<Deploy>({ include_docs: true, startkey: `${PREFIX}\uffff`, endkey: PREFIX, descending: true, limit: KEPT });
  const recent: Deploy[] = loaded
    .flatMap(({ doc }) => (doc ? [doc] : []))
    .map(({ _id, _rev, ...d }) => d)
    .sort((a, b) => a.at - b.at);
  const added = new Subject<Deploy>();
  const handlers: ((deploy: Deploy) => Promise<void>)[] = [];
  /** Takes a marker in (once), announces it, and runs the handlers. */
  const handledById = new Map<string, Promise<void>>();
  const learn = (deploy: Deploy): Promise<void> => {
    const known = handledById.get(deploy.id);
    if (known) return known;
    if (recent.some((d) => d.id === deploy.id)) return Promise.resolve(); // loaded at start
    recent.push(deploy);
    recent.sort((a, b) => a.at - b.at);
    if (recent.length > KEPT) recent.splice(0, recent.length - KEPT);
    added.next(deploy);
    const done = Promise.all(handlers.map((handler) => handler(deploy))).then(() => undefined);
    handledById.set(deploy.id, done);
    if (handledById.size > KEPT) handledById.delete(handledById.keys().next().value!);
    return done;
  };

  // Markers other instances take: read from the database's feed, from now
  // on, once a second. Short reads, not a longpoll: no request is left
  // open on the store between reads (pouchdb-server fails on a longpoll
  // whose database goes away under it).
  const read = couchChangesReader(store, db, { limit: 100, longpollMs: 0 });
  const stop = new AbortController();
  const info = await database.info<{ update_seq: unknown }>();
  const follow = (async () => {
    let since: unknown = info?.update_seq ?? 0;
    let failing = false;
    while (!stop.signal.aborted) {
      await sleep(DEPLOY_POLL_MS, stop.signal);
      if (stop.signal.aborted) break;
      try {
        const batch = await read(since, stop.signal, false);
        since = batch.lastSeq;
        failing = false;
        for (const change of batch.changes) {
          const doc = change.doc as (Deploy & { _id: string; _rev?: string }) | undefined;
          if (!change.id.startsWith(PREFIX) || change.deleted || !doc || typeof doc.version !== 'string' || typeof doc.at !== 'number') continue;
          const { _id, _rev, ...deploy } = doc;
          void learn(deploy).catch((err: Error) => app.log.warn({ err: err.message }, 'a deploy handler failed'));
        }
      } catch (err) {
        if (!failing && !stop.signal.aborted) app.log.warn({ err: (err as Error).message }, 'cannot read new deploy markers; retrying');
        failing = true;
      }
    }
  })();
  app.addHook('onClose', async () => {
    stop.abort();
    await follow;
    added.complete();
  });

  app.decorate('deploys', {
    list: (from = 0, to = Number.MAX_SAFE_INTEGER) => recent.filter((d) => d.at >= from && d.at < to),
    get: (id: string) => recent.find((d) => d.id === id),
    added$: added.asObservable(),
    onDeploy: (handler) => void handlers.push(handler),
    handled: (id: string) => handledById.get(id),
  } satisfies Deploys);

  await app.register(async (api) => {
    api.addHook('onRequest', app.auth.requireReader);

    api.post<{ Body: { version: string; at?: number; note?: string; public?: boolean } }>(
      '/api/deploys',
      {
        schema: {
          body: {
            type: 'object',
            required: ['version'],
            additionalProperties: false,
            properties: {
              version: { type: 'string', minLength: 1, maxLength: 100 },
              at: { type: 'integer', minimum: 0 },
              note: { type: 'string', maxLength: 500 },
              public: { type: 'boolean' },
            },
          },
          response: { 201: deploySchema, 400: errorResponseSchema, 401: errorResponseSchema, 403: errorResponseSchema, 503: errorResponseSchema },
        },
      },
      async (request, reply) => {
        const at = request.body.at ?? Date.now();
        if (at > Date.now() + 24 * 3_600_000) throw new HttpError(400, 'body.at is more than a day in the future', 'body.at');
        // ids sort by time, so the newest are read back first at start
        const id = `${PREFIX}${new Date(at).toISOString()}_${randomBytes(4).toString('hex')}`;
        const deploy: Deploy = {
          id,
          version: request.body.version,
          at,
          ...(request.body.note ? { note: request.body.note } : {}),
          ...(request.body.public ? { public: true } : {}),
        };
        await database.put({ ...deploy, _id: id });
        // ingest's new run first (bounded: the marker is stored, and the run follows when the store lets it)
        const handled = learn(deploy);
        const waited = new AbortController();
        const late = await Promise.race([handled.then(() => false), sleep(HANDLERS_WAIT_MS, waited.signal).then(() => !waited.signal.aborted)]);
        waited.abort();
        if (late) request.log.warn({ waitedMs: HANDLERS_WAIT_MS }, 'deploy marker answered before ingest started its run after it');
        request.log.info({ version: deploy.version, at }, 'deploy marker added');
        return reply.code(201).send(deploy);
      },
    );

    api.get<{ Querystring: { from?: number; to?: number } }>(
      '/api/deploys',
      {
        schema: {
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: { from: { type: 'integer', minimum: 0 }, to: { type: 'integer', minimum: 0 } },
          },
          response: {
            200: { type: 'object', properties: { deploys: { type: 'array', items: deploySchema } } },
            401: errorResponseSchema,
            403: errorResponseSchema,
          },
        },
      },
      async (request) => ({ deploys: app.deploys.list(request.query.from, request.query.to) }),
    );
  });
}

export default fp(deploys, { name: 'kpi-deploys', dependencies: ['kpi-auth', 'kpi-store'], fastify: '5.x' });
