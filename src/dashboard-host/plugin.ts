/**
 * Serves the dashboard (web/, built by Vite into web/dist) at `/`, and
 * `GET /api/settings` (its alert thresholds), with a
 * Content-Security-Policy that allows only what the page needs: its own
 * scripts and styles, and connections back to this service (HTTP and the
 * WebSocket). No inline script.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { parseThresholds, type Config } from '../config/config.js';
import { projectRoot } from '../project-root.js';

export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers of every dashboard answer. */
export const DASHBOARD_HEADERS = { 'content-security-policy': DASHBOARD_CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'same-origin' };

async function dashboard(app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  // What the dashboard needs to know of the configuration (nothing secret).
  const thresholds = parseThresholds(config.thresholds);
  await app.register(async (api) => {
    api.addHook('onRequest', app.auth.requireReader);
    api.get(
      '/api/settings',
      {
        schema: {
          response: { 200: { type: 'object', properties: { thresholds: { type: 'object', additionalProperties: true }, publicView: { type: 'boolean' } } } },
        },
      },
      async () => ({
        thresholds,
        // the dashboard's footer links the public page (what is collected) when there is one
        publicView: config.publicView,
      }),
    );
  });

  const root = join(projectRoot(), 'web', 'dist');
  if (!existsSync(join(root, 'index.html'))) {
    app.log.warn({ root }, 'the dashboard is not built (npm run build): / explains how');
    app.get('/', async (_request, reply) => {
      return reply
        .headers(DASHBOARD_HEADERS)
        .code(503)
        .type('text/plain; charset=utf-8')
        .send('The kpi-live dashboard is not built: run `npm run build` (npm start does it).\n');
    });
    return;
  }
  // The page itself needs a reader too: a browser that is not signed in is
  // sent to the login page and comes back here after it.
  await app.register(async (page) => {
    page.addHook('onRequest', async (request, reply) => {
      if (app.auth.identify(request)) return;
      // the built scripts and styles hold no data, and the public view's page (public/plugin.ts) shares them
      if (config.publicView && request.method === 'GET' && request.url.startsWith('/assets/')) return;
      if (request.method === 'GET' && (request.headers.accept ?? '').includes('text/html')) {
        return reply
          .code(303)
          .header('location', `/login?next=${encodeURIComponent(request.url)}`)
          .send();
      }
      return app.auth.requireReader.call(page, request, reply, () => undefined);
    });
    await page.register(fastifyStatic, {
      root,
      prefix: '/',
      index: 'index.html',
      wildcard: false,
      setHeaders: (res) => {
        for (const [name, value] of Object.entries(DASHBOARD_HEADERS)) res.setHeader(name, value);
      },
    });
  });
}

export default fp(dashboard, { name: 'kpi-dashboard', dependencies: ['kpi-auth'], fastify: '5.x' });
