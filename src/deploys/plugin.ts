/**
 * Deploy markers: a CI/CD pipeline says "version X went out at T", and every
 * open dashboard draws it as a line, so that a change in the KPIs can be read
 * against the deploy that caused it.
 *
 * - `POST /api/deploys {version, at?, note?}` (authenticated like reads)
 * - `GET /api/deploys?from&to`
 *
 * Markers live in their own database (`<KPI_DB>_deploys`), apart from the
 * blobs. New markers are announced on `app.deploys.added$` (the live stream
 * pushes them). The most recent ones are kept in memory for snapshots.
 */
import { randomBytes } from 'node:crypto';
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { Subject, type Observable } from 'rxjs';
import type { Config } from '../config/config.js';
import { errorResponseSchema, HttpError } from '../http/errors.js';
import { Database } from '../store/database.js';
import { ensureDatabase } from '../store/setup.js';

import type { Deploy } from './types.js';

export type { Deploy };

export interface Deploys {
  /** Markers with `from <= at < to`, oldest first. */
  list(from?: number, to?: number): Deploy[];
  added$: Observable<Deploy>;
}

declare module 'fastify' {
  interface FastifyInstance {
    deploys: Deploys;
  }
}

/** Markers kept in memory (and so in snapshots); older ones stay in the database. */
const KEPT = 2000;
const PREFIX = 'deploy/';

const deploySchema = {
  type: 'object',
  required: ['id', 'version', 'at'],
  properties: { id: { type: 'string' }, version: { type: 'string' }, at: { type: 'integer' }, note: { type: 'string' } },
} as const;

async function deploys(app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  const store = app.store;
  const db = `${config.dbName}_deploys`;
  await ensureDatabase(store, db);
  const database = new Database(store, db);
  const loaded = await database.allDocs<Deploy>({ include_docs: true, startkey: `${PREFIX}\uffff`, endkey: PREFIX, descending: true, limit: KEPT });
  const recent: Deploy[] = loaded
    .flatMap(({ doc }) => (doc ? [doc] : []))
    .map(({ _id, _rev, ...d }) => d)
    .sort((a, b) => a.at - b.at);
  const added = new Subject<Deploy>();
  app.addHook('onClose', async () => added.complete());

  app.decorate('deploys', {
    list: (from = 0, to = Number.MAX_SAFE_INTEGER) => recent.filter((d) => d.at >= from && d.at < to),
    added$: added.asObservable(),
  } satisfies Deploys);

  await app.register(async (api) => {
    api.addHook('onRequest', app.auth.requireReader);

    api.post<{ Body: { version: string; at?: number; note?: string } }>(
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
        const deploy: Deploy = { id, version: request.body.version, at, ...(request.body.note ? { note: request.body.note } : {}) };
        await database.put({ ...deploy, _id: id });
        recent.push(deploy);
        recent.sort((a, b) => a.at - b.at);
        if (recent.length > KEPT) recent.splice(0, recent.length - KEPT);
        added.next(deploy);
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
