/**
 * `POST /wsapi/interaction_data`: the ingest endpoint deployed dialogs speak.
 *
 * Accepts both wire forms, validates every blob before storing any (a request
 * with one bad blob stores nothing), and writes through the group committer.
 * Answers: 200 `{success, stored}` once durable; 400 naming the field; 413 too
 * big; 415 wrong content type; 429 rate limited; 503 + Retry-After when the
 * store cannot take it. Ingest knows nothing of aggregates: CouchDB's
 * `_changes` feed is the only link to them.
 */
import rateLimit from '@fastify/rate-limit';
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/config.js';
import { errorResponseSchema, HttpError } from '../http/errors.js';
import { BlobIdAllocator } from '../store/blob-ids.js';
import { normalizeBlob, type NewBlobDoc } from './blob.js';
import { GroupCommitter, type BulkDocResult } from './group-commit.js';
import { blobsFromForm, blobsFromJson, parseJsonSafely, type RawBlobs } from './parse.js';
import { coarseUserAgent } from './user-agent.js';

export const INGEST_PATH = '/wsapi/interaction_data';

const responses = {
  200: {
    type: 'object',
    required: ['success', 'stored'],
    properties: { success: { type: 'boolean', const: true }, stored: { type: 'integer' } },
  },
  400: errorResponseSchema,
  413: errorResponseSchema,
  415: errorResponseSchema,
  429: errorResponseSchema,
  503: errorResponseSchema,
};

async function ingest(app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  const store = app.store;
  const ids = new BlobIdAllocator();
  app.log.info({ run: ids.run }, 'ingest run started');
  const committer = new GroupCommitter<NewBlobDoc>({
    // Ids are given per write batch: only blobs actually sent to the store use
    // up counters, so the aggregate's record of applied blobs stays compact.
    prepare: (docs) => ids.assign(docs),
    write: (docs) => store.request<BulkDocResult[]>({ method: 'POST', db: store.blobsDb, path: '_bulk_docs', body: { docs } }),
    maxBatchDocs: config.commitBatchMaxDocs,
    maxWaitMs: config.commitMaxWaitMs,
    maxInFlight: config.commitMaxInFlight,
    maxQueuedDocs: config.commitMaxQueuedDocs,
  });
  // Closing: write every blob that waits, so each request already accepted
  // gets its answer; the store closes only after this.
  store.beforeClose(async () => {
    await committer.close();
    app.log.info(committer.stats, 'ingest flushed');
  });

  // Only the two wire forms of the original store; anything else is 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJsonSafely(body as string, 'body'));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, new URLSearchParams(body as string));
  });

  await app.register(rateLimit, {
    max: config.rateLimitMax,
    timeWindow: config.rateLimitWindowMs,
    errorResponseBuilder: (_req, context) => ({
      statusCode: 429,
      message: `too many requests: at most ${context.max} per ${context.after}; retry later`,
    }),
  });

  const maxAgeMs = config.maxBlobAgeHours * 3_600_000;
  const maxFutureMs = config.maxBlobFutureMinutes * 60_000;

  app.post(INGEST_PATH, { bodyLimit: config.bodyLimitBytes, schema: { response: responses } }, async (request) => {
    const raw: RawBlobs = request.body instanceof URLSearchParams ? blobsFromForm(request.body) : blobsFromJson(request.body);
    if (raw.blobs.length > config.maxBlobsPerRequest) {
      throw new HttpError(413, `data holds ${raw.blobs.length} blobs; at most ${config.maxBlobsPerRequest} per request`, 'data');
    }
    const ctx = { now: Date.now(), maxAgeMs, maxFutureMs, userAgent: coarseUserAgent(request.headers['user-agent']) };
    // Validate all before storing any: one bad blob stores nothing.
    const docs = raw.blobs.map((blob, i) => normalizeBlob(blob, raw.nameOf(i), ctx));
    const stored = await committer.submit(docs);
    return { success: true as const, stored };
  });
}

export default fp(ingest, { name: 'kpi-ingest', dependencies: ['kpi-store'], encapsulate: true, fastify: '5.x' });
