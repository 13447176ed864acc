/**
 * The read API of the original store, for analysts and tools:
 *
 * - `GET /wsapi/interaction_data?start&end[&limit&cursor]`: blobs whose
 *   timestamp is in `[start, end)` (ms), in time order, streamed as a JSON
 *   array, or as NDJSON with `Accept: application/x-ndjson`. Without `limit`
 *   the whole range streams; with it, one page, and `X-Next-Cursor` (plus a
 *   `Link: rel="next"`) when more follow.
 * - `GET /wsapi/interaction_data/count?start&end`: `{count}`, from the
 *   `by_time` view. CouchDB brings a view up to date when it is read: after
 *   a bulk import (a million blobs took 89–140 s on CouchDB 3.5) the read
 *   times out while the store still answers, and the answer is a 503 that
 *   says the index is being built,
 *   with a `Retry-After` of {@link INDEXING_RETRY_SECONDS}. The build goes on
 *   in CouchDB meanwhile; a count that may lag is `kpi-live export`'s
 *   estimate (`stale`), not this answer.
 *
 * Guarded by {@link readAuth}.
 */
import { Readable } from 'node:stream';
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { errorResponseSchema, HttpError, sendUnavailable } from '../http/errors.js';
import { MAX_ID_TIME } from '../store/blob-ids.js';
import { countBlobs, readBlobPage, readBlobs, type TimeRange } from '../store/blob-reader.js';
import { StoreUnavailableError } from '../store/store.js';

const PAGE_SIZE = 1000;
/** Retry-After of a count whose index is still being built: such builds take minutes, not seconds. */
export const INDEXING_RETRY_SECONDS = 30;
export const MAX_LIMIT = 10_000;

const rangeQuery = {
  start: { type: 'integer', minimum: 0, maximum: MAX_ID_TIME, description: 'inclusive, ms since epoch' },
  end: { type: 'integer', minimum: 0, maximum: MAX_ID_TIME, description: 'exclusive, ms since epoch' },
} as const;

const errors = { 400: errorResponseSchema, 401: errorResponseSchema, 403: errorResponseSchema, 503: errorResponseSchema };

function checkedRange(query: TimeRange): TimeRange {
  if (query.start !== undefined && query.end !== undefined && query.end <= query.start) {
    throw new HttpError(400, 'query.end must be greater than query.start', 'query.end');
  }
  return query;
}

async function* asJsonArray(blobs: AsyncIterable<object> | Iterable<object>): AsyncGenerator<string> {
  let first = true;
  for await (const blob of blobs) {
    yield (first ? '[' : ',') + JSON.stringify(blob);
    first = false;
  }
  yield first ? '[]' : ']';
}

async function* asNdjson(blobs: AsyncIterable<object> | Iterable<object>): AsyncGenerator<string> {
  for await (const blob of blobs) yield JSON.stringify(blob) + '\n';
}

async function read(app: FastifyInstance): Promise<void> {
  const store = app.store;
  app.addHook('onRequest', app.auth.requireReader);

  app.get<{ Querystring: TimeRange & { limit?: number; cursor?: string } }>(
    '/wsapi/interaction_data',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            ...rangeQuery,
            limit: { type: 'integer', minimum: 1, maximum: MAX_LIMIT },
            cursor: { type: 'string', minLength: 1, maxLength: 64 },
          },
        },
        response: { 200: { type: 'array', items: { type: 'object', additionalProperties: true } }, ...errors },
      },
    },
    async (request, reply) => {
      const { limit, cursor, ...query } = request.query;
      const range = checkedRange(query);
      // The first page is read before answering, so a store that is down
      // gets a proper 503 rather than a cut-off 200.
      const first = await readBlobPage(store, range, limit ?? PAGE_SIZE, cursor);
      let blobs: AsyncIterable<object> | Iterable<object> = first.blobs;
      if (limit !== undefined) {
        if (first.next) {
          const next = new URLSearchParams({
            ...(range.start !== undefined ? { start: String(range.start) } : {}),
            ...(range.end !== undefined ? { end: String(range.end) } : {}),
            limit: String(limit),
            cursor: first.next,
          });
          reply.header('x-next-cursor', first.next).header('link', `</wsapi/interaction_data?${next}>; rel="next"`);
        }
      } else if (first.next) {
        const rest = readBlobs(store, range, PAGE_SIZE, first.next);
        blobs = (async function* () {
          yield* first.blobs;
          yield* rest;
        })();
      }
      const ndjson = (request.headers.accept ?? '').includes('application/x-ndjson');
      const body = Readable.from(ndjson ? asNdjson(blobs) : asJsonArray(blobs));
      body.on('error', (err) => request.log.error({ err: err.message }, 'blob stream cut off by a store error'));
      return reply.type(ndjson ? 'application/x-ndjson' : 'application/json; charset=utf-8').send(body);
    },
  );

  app.get<{ Querystring: TimeRange }>(
    '/wsapi/interaction_data/count',
    {
      schema: {
        querystring: { type: 'object', additionalProperties: false, properties: rangeQuery },
        response: { 200: { type: 'object', required: ['count'], properties: { count: { type: 'integer' }, ...rangeQuery } }, ...errors },
      },
    },
    async (request, reply) => {
      const range = checkedRange(request.query);
      try {
        return { count: await countBlobs(store, range), ...range };
      } catch (err) {
        // a store that answers at once but not the view is indexing; one that answers nothing is down
        if (!(err instanceof StoreUnavailableError && err.timedOut) || !(await store.ping())) throw err;
        request.log.warn({ err: err.message }, 'count timed out: the by_time index is being brought up to date');
        return sendUnavailable(
          reply,
          INDEXING_RETRY_SECONDS,
          `the store is still indexing the blobs for counting (after a large import this takes minutes); retry in ${INDEXING_RETRY_SECONDS} s`,
        );
      }
    },
  );
}

export default fp(read, { name: 'kpi-read', dependencies: ['kpi-auth', 'kpi-store'], encapsulate: true, fastify: '5.x' });
