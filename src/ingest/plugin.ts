/**
 * `POST /wsapi/interaction_data`: the ingest endpoint deployed dialogs speak.
 *
 * Accepts both wire forms, validates every blob before storing any (a request
 * with one bad blob stores nothing), and writes through the group committer.
 * Answers: 200 `{success, stored}` once durable; 400 naming the field; 403 an
 * origin not allowed or a bad nonce; 413 too big; 415 wrong content type; 429
 * rate limited; 503 + Retry-After when the store cannot take it. Ingest knows
 * nothing of aggregates: CouchDB's `_changes` feed is the only link to them.
 *
 * Before any of that, in this order:
 * - `Origin` allowlist (`KPI_INGEST_ORIGINS`), with CORS answers for the
 *   allowed origins (dialogs post from their own origin);
 * - opt-out: a request with `DNT: 1` or `Sec-GPC: 1` is answered
 *   `{success: true, stored: 0, optedOut: true}` without its body being read;
 * - nonce (`KPI_INGEST_NONCE_SECRET`), then plausibility (blob.ts), then the
 *   server's sample rate.
 */
import { ArrivalRuns } from './arrival-runs.js';
import { deploysDbOf } from '../aggregate/runtime/settings.js';
import { ARRIVAL_WINDOW_MS } from '../contract/verdict.js';
import rateLimit from '@fastify/rate-limit';
import fp from 'fastify-plugin';
import type { FastifyInstance, onResponseHookHandler } from 'fastify';
import type { Config } from '../config/config.js';
import { errorResponseSchema, HttpError } from '../http/errors.js';
import { BlobIdAllocator } from '../store/blob-ids.js';
import { Database } from '../store/database.js';
import { normalizeBlob, type NewBlobDoc } from './blob.js';
import { NonceKeeper } from './nonce.js';
import { sampled } from './sampling.js';
import { GroupCommitter } from './group-commit.js';
import { installWireParsers, originCheck, optsOut } from './guards.js';
import { blobsFromForm, blobsFromJson, type RawBlobs } from './parse.js';
import { coarseUserAgent } from './user-agent.js';
import { ingestStatsSchema, type IngestStats } from '../contract/ingest.js';

export const INGEST_PATH = '/wsapi/interaction_data';
export const NONCE_PATH = '/wsapi/interaction_nonce';

/** Upper bounds of the metrics' histograms: blobs per write, seconds per write. */
const BATCH_DOCS_BOUNDS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];
const FLUSH_SECONDS_BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export type { IngestStats };

const responses = {
  200: {
    type: 'object',
    required: ['success', 'stored'],
    properties: { success: { type: 'boolean', const: true }, stored: { type: 'integer' }, optedOut: { type: 'boolean' } },
  },
  400: errorResponseSchema,
  403: errorResponseSchema,
  413: errorResponseSchema,
  415: errorResponseSchema,
  429: errorResponseSchema,
  503: errorResponseSchema,
};

/**
 * The group committer of this instance's blobs, with its metrics; on close
 * it writes every blob that waits, so each request already accepted gets
 * its answer (the store closes only after this).
 */
function startCommitter(app: FastifyInstance, config: Config, blobs: Database, ids: BlobIdAllocator): GroupCommitter<NewBlobDoc> {
  const store = app.store;
  const batchDocs = app.metrics.histogram('kpi_ingest_batch_docs', 'Blobs per _bulk_docs write of the group commit.', BATCH_DOCS_BOUNDS);
  const flushSeconds = app.metrics.histogram('kpi_ingest_flush_seconds', "One _bulk_docs write, from sending it to the store's answer.", FLUSH_SECONDS_BOUNDS);
  const writeErrors = app.metrics.counter('kpi_ingest_write_errors_total', '_bulk_docs writes that failed as a whole (every request in them got a 503).');
  const committer = new GroupCommitter<NewBlobDoc>({
    // Ids are given per write batch: only blobs actually sent to the store use
    // up counters, so the aggregate's record of applied blobs stays compact.
    prepare: (docs) => ids.assign(docs),
    write: (docs) => blobs.bulk(docs),
    maxBatchDocs: config.commitBatchMaxDocs,
    maxWaitMs: config.commitMaxWaitMs,
    maxInFlight: config.commitMaxInFlight,
    maxQueuedDocs: config.commitMaxQueuedDocs,
    onWrite: ({ docs, seconds, ok }) => {
      batchDocs.observe(docs);
      flushSeconds.observe(seconds);
      if (!ok) writeErrors.inc();
    },
  });
  app.metrics.gauge('kpi_ingest_queue_docs', 'Blobs waiting for a write.', () => committer.stats.queuedDocs);
  app.metrics.gauge('kpi_ingest_writes_in_flight', '_bulk_docs writes running now.', () => committer.stats.inFlight);
  store.beforeClose(async () => {
    await committer.close();
    app.log.info(committer.stats, 'ingest flushed');
  });
  return committer;
}

async function ingest(app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  const store = app.store;
  const blobs = new Database(store, store.blobsDb);
  const ids = new BlobIdAllocator();
  // a new run after each deploy marker (src/deploys/arrivals.ts), the first one recorded before any blob
  const runs = new ArrivalRuns(ids, new Database(store, deploysDbOf(config)), app.log);
  await runs.start(app.deploys.list(Date.now() - ARRIVAL_WINDOW_MS, Date.now() + ARRIVAL_WINDOW_MS));
  app.deploys.onDeploy((deploy) => runs.deployed(deploy));
  store.beforeClose(async () => runs.close());
  const committer = startCommitter(app, config, blobs, ids);
  const requests = app.metrics.counter('kpi_ingest_requests_total', 'Ingest POSTs answered, by HTTP status.', ['status']);
  installWireParsers(app);

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
  const nonces = config.ingestNonceSecret ? new NonceKeeper(config.ingestNonceSecret) : undefined;
  const stats: IngestStats = { since: Date.now(), accepted: 0, optedOut: 0, sampledOut: 0, rejected: 0 };
  app.metrics.counterFrom('kpi_ingest_blobs_stored_total', 'Blobs stored and acknowledged.', () => stats.accepted);
  app.metrics.counterFrom('kpi_ingest_blobs_sampled_out_total', "Valid blobs not stored by the server's sample rate.", () => stats.sampledOut);
  app.metrics.counterFrom('kpi_ingest_opted_out_requests_total', 'Requests acknowledged and not read (DNT: 1 or Sec-GPC: 1).', () => stats.optedOut);

  const checkOrigin = originCheck(config.ingestOrigins);
  const countAnswer: onResponseHookHandler = async (_request, reply) => {
    requests.labels(String(reply.statusCode)).inc();
    if (reply.statusCode >= 400 && reply.statusCode < 500) stats.rejected++;
  };

  app.get(
    '/api/ingest-stats',
    {
      onRequest: app.auth.requireReader,
      config: { rateLimit: false },
      schema: { response: { 200: ingestStatsSchema, 401: errorResponseSchema } },
    },
    async () => stats,
  );

  app.options(INGEST_PATH, { onRequest: checkOrigin, config: { rateLimit: false } }, async (_request, reply) =>
    reply
      .code(204)
      .header('access-control-allow-methods', 'POST')
      .header('access-control-allow-headers', 'content-type, x-csrf-token')
      .header('access-control-max-age', '600')
      .send(),
  );

  if (nonces) {
    app.get(
      NONCE_PATH,
      {
        onRequest: checkOrigin,
        schema: { response: { 200: { type: 'object', required: ['csrf'], properties: { csrf: { type: 'string' } } }, 403: errorResponseSchema } },
      },
      async (_request, reply) => {
        reply.header('cache-control', 'no-store');
        return { csrf: nonces.issue() };
      },
    );
  }

  app.post(
    INGEST_PATH,
    {
      bodyLimit: config.bodyLimitBytes,
      schema: { response: responses },
      onRequest: [
        checkOrigin,
        // Opt-out before the body is parsed: nothing of it is read or kept.
        async (request, reply) => {
          if (!config.respectOptOut || !optsOut(request.headers)) return;
          stats.optedOut++;
          return reply.code(200).send({ success: true, stored: 0, optedOut: true });
        },
      ],
      onResponse: countAnswer,
    },
    async (request) => {
      const raw: RawBlobs = request.body instanceof URLSearchParams ? blobsFromForm(request.body) : blobsFromJson(request.body);
      if (raw.blobs.length > config.maxBlobsPerRequest) {
        throw new HttpError(413, `data holds ${raw.blobs.length} blobs; at most ${config.maxBlobsPerRequest} per request`, 'data');
      }
      if (nonces) {
        const header = request.headers['x-csrf-token'];
        const problem = nonces.problem(raw.csrf ?? (Array.isArray(header) ? header[0] : header));
        if (problem) throw new HttpError(403, `csrf ${problem}`, 'csrf');
      }
      const ctx = { now: Date.now(), maxAgeMs, maxFutureMs, userAgent: coarseUserAgent(request.headers['user-agent']) };
      // Validate all before storing any: one bad blob stores nothing.
      const docs = raw.blobs.map((blob, i) => normalizeBlob(blob, raw.nameOf(i), ctx));
      const kept = docs.map((doc) => sampled(doc, config.sampleRate)).filter((doc): doc is NewBlobDoc => doc !== undefined);
      stats.sampledOut += docs.length - kept.length;
      const stored = kept.length > 0 ? await committer.submit(kept) : 0;
      stats.accepted += stored;
      return { success: true as const, stored };
    },
  );
}

export default fp(ingest, { name: 'kpi-ingest', dependencies: ['kpi-auth', 'kpi-store', 'kpi-metrics', 'kpi-deploys'], encapsulate: true, fastify: '5.x' });
