/**
 * The store as a Fastify plugin: opens it at start, decorates `app.store`,
 * closes it (and the embedded server) when the app closes. Features declare
 * `dependencies: ['kpi-store']` and use `app.store`.
 */
import fp from 'fastify-plugin';
import type { Config } from '../config/config.js';
import { openStore, type Store } from './store.js';

declare module 'fastify' {
  interface FastifyInstance {
    store: Store;
  }
}

export default fp<{ config: Config }>(
  async (app, { config }) => {
    const store = await openStore(config, app.log);
    app.decorate('store', store);
    app.addHook('onClose', async () => {
      await store.close();
      app.log.info({ store: store.kind }, 'store closed');
    });
  },
  { name: 'kpi-store', fastify: '5.x' },
);
