/**
 * The public view (`KPI_PUBLIC_VIEW`, off by default): the page `/public`
 * (web/public.html: the KPIs, and what is collected and kept, with the full
 * privacy text at `/public/privacy`) and `GET /api/public/kpis?bucket=1h|1d`
 * for anyone, no sign-in, the seed KPIs and
 * both funnels with small numbers withheld (suppress.ts) over fixed windows
 * (answer.ts), and the deploy markers marked public. Off, nothing is
 * registered and it answers 404.
 *
 * Cheap to serve to everyone: each answer is computed at most once a second
 * (and only when the aggregate or the hour changed), kept in memory with
 * its ETag, sent with `Cache-Control: public, max-age=60` and `304` to a
 * matching `If-None-Match`; CORS lets any site embed it; a rate limit per
 * address of its own (`KPI_PUBLIC_RATE_LIMIT_MAX` a minute).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import rateLimit from '@fastify/rate-limit';
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/config.js';
import { errorResponseSchema, HttpError } from '../http/errors.js';
import { DASHBOARD_HEADERS } from '../dashboard-host/plugin.js';
import { projectRoot } from '../project-root.js';
import { publicAnswer, publicWindows, type PublicBucket } from './answer.js';

/** A cached answer is computed again at most this often, ms. */
const RECOMPUTE_MS = 1000;
const MAX_AGE_SECONDS = 60;

interface Cached {
  key: string;
  computedAt: number;
  version: string;
  body: string;
  etag: string;
}

async function publicView(app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  if (!config.publicView) return;
  const cache = new Map<PublicBucket, Cached>();
  /** The answer for `bucket` now, from the cache while neither the window nor (for a second) the aggregate moved on. */
  const answerFor = (bucket: PublicBucket, now: number): Cached => {
    const window = publicWindows(now)[bucket];
    const v = app.aggregates.version();
    const version = `${v.epoch}:${v.version}:${app.deploys.list().length}`;
    const key = `${window.from}:${window.to}`;
    const cached = cache.get(bucket);
    if (cached && cached.key === key && (cached.version === version || now - cached.computedAt < RECOMPUTE_MS)) return cached;
    const body = JSON.stringify(publicAnswer((q) => app.aggregates.kpis(q), bucket, now, config.publicMinCount, app.deploys.list(window.from, window.to)));
    const fresh = { key, computedAt: now, version, body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
    cache.set(bucket, fresh);
    return fresh;
  };

  // the page: web/public.html as built (its scripts and styles under /assets/, see dashboard-host), and the full privacy text
  const page = join(projectRoot(), 'web', 'dist', 'public.html');
  app.get('/public', async (_request, reply) => {
    if (!existsSync(page)) return reply.code(503).type('text/plain; charset=utf-8').send('The public view is not built: run `npm run build`.\n');
    return reply
      .headers(DASHBOARD_HEADERS)
      .type('text/html; charset=utf-8')
      .send(await readFile(page, 'utf8'));
  });
  const privacy = await readFile(join(projectRoot(), 'PRIVACY.md'), 'utf8');
  app.get('/public/privacy', async (_request, reply) => reply.headers(DASHBOARD_HEADERS).type('text/plain; charset=utf-8').send(privacy));

  await app.register(async (api) => {
    await api.register(rateLimit, {
      max: config.publicRateLimitMax,
      timeWindow: 60_000,
      errorResponseBuilder: (_req, context) => ({ statusCode: 429, message: `too many requests: at most ${context.max} per ${context.after}; retry later` }),
    });
    api.addHook('onSend', async (_request, reply) => {
      reply.header('access-control-allow-origin', '*');
      reply.header('vary', 'accept-encoding');
    });
    api.options('/api/public/kpis', async (_request, reply) =>
      reply.header('access-control-allow-methods', 'GET').header('access-control-max-age', '86400').code(204).send(),
    );
    api.get<{ Querystring: { bucket?: PublicBucket } }>(
      '/api/public/kpis',
      {
        schema: {
          querystring: { type: 'object', additionalProperties: false, properties: { bucket: { type: 'string', enum: ['1h', '1d'], default: '1h' } } },
          response: { 400: errorResponseSchema, 429: errorResponseSchema },
        },
      },
      async (request, reply) => {
        // the windows are fixed (answer.ts): a parameter that would choose one is refused, not ignored
        for (const key of new URL(request.url, 'http://x').searchParams.keys())
          if (key !== 'bucket') throw new HttpError(400, `query.${key} is not taken: the public windows are fixed (bucket=1h or 1d only)`, `query.${key}`);
        const answer = answerFor(request.query.bucket ?? '1h', Date.now());
        reply.header('cache-control', `public, max-age=${MAX_AGE_SECONDS}`).header('etag', answer.etag);
        if (request.headers['if-none-match'] === answer.etag) return reply.code(304).send();
        return reply.type('application/json; charset=utf-8').send(answer.body);
      },
    );
  });
}

export default fp(publicView, { name: 'kpi-public', dependencies: ['kpi-aggregates', 'kpi-deploys'], fastify: '5.x' });
