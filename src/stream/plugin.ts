/**
 * `GET /api/live`: the WebSocket stream of KPI updates (protocol.ts). Uses
 * only the aggregate's public interface (`app.aggregates`) and the deploy
 * markers' (`app.deploys`).
 *
 * Who may connect, as for reads: with tokens configured, a valid
 * `Authorization: Bearer` on the upgrade request or a token in `hello`;
 * without tokens, loopback clients only (others are closed with 4401).
 */
import websocket from '@fastify/websocket';
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/config.js';
import { bearerToken, isLoopback, tokenCheck } from '../http/read-auth.js';
import { LiveHub } from './live-hub.js';
import { CLOSE } from './protocol.js';

async function stream(app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  const valid = tokenCheck(config.readTokens);
  const hub = new LiveHub(
    app.aggregates,
    app.deploys,
    {
      coalesceMs: config.streamCoalesceMs,
      maxBufferedBytes: config.streamMaxBufferBytes,
      heartbeatMs: config.streamHeartbeatMs,
      helloTimeoutMs: 10_000,
      authorize: valid,
    },
    app.log,
  );
  hub.start();
  // On close, every dashboard is told why (1001) before the server waits for
  // connections to end; this replaces the plugin's own close-without-code.
  await app.register(websocket, { options: { maxPayload: 64 * 1024 }, preClose: async () => hub.stop() });

  app.get('/api/live', { websocket: true }, (socket, request) => {
    if (config.readTokens.length === 0) {
      if (!isLoopback(request.socket.remoteAddress)) {
        socket.close(CLOSE.unauthorized, 'no token is configured: only loopback clients may connect');
        return;
      }
      hub.attach(socket, true);
      return;
    }
    const header = bearerToken(request);
    if (header !== undefined && !valid(header)) {
      socket.close(CLOSE.unauthorized, 'the token is not valid');
      return;
    }
    hub.attach(socket, header !== undefined);
  });
}

export default fp(stream, { name: 'kpi-stream', dependencies: ['kpi-aggregates', 'kpi-deploys'], fastify: '5.x' });
