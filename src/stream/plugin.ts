/**
 * `GET /api/live`: the WebSocket stream of KPI updates (protocol.ts). Uses
 * only the aggregate's public interface (`app.aggregates`) and the deploy
 * markers' (`app.deploys`).
 *
 * Who may connect, as for reads (`app.auth`): an API token (`Authorization:
 * Bearer` on the upgrade, or in `hello`), a session cookie, or a trusted
 * loopback client. A browser's upgrade must come from this service's own
 * origin, so another site cannot open the stream with the user's cookie.
 * Refused sockets are closed with 4401.
 */
import websocket from '@fastify/websocket';
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/config.js';
import { LiveHub } from './live-hub.js';
import { CLOSE } from './protocol.js';

async function stream(app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  const hub = new LiveHub(
    app.aggregates,
    app.deploys,
    {
      coalesceMs: config.streamCoalesceMs,
      maxBufferedBytes: config.streamMaxBufferBytes,
      heartbeatMs: config.streamHeartbeatMs,
      helloTimeoutMs: 10_000,
      authorize: (token) => app.auth.checkToken(token),
    },
    app.log,
  );
  hub.start();
  const m = app.metrics;
  m.gauge('kpi_live_clients', 'Live-stream sockets that sent their hello.', () => hub.stats.clients);
  m.gauge('kpi_live_sockets', 'Open live-stream sockets, greeted or not.', () => hub.stats.sockets);
  m.counterFrom('kpi_live_connections_total', 'Live-stream sockets taken.', () => hub.stats.connections);
  m.counterFrom('kpi_live_snapshots_sent_total', 'Snapshots sent to live-stream clients.', () => hub.stats.snapshots);
  m.counterFrom('kpi_live_deltas_sent_total', 'Deltas sent to live-stream clients, one per socket.', () => hub.stats.deltas);
  m.counterFrom(
    'kpi_live_overflows_total',
    'Times a live-stream socket had too much unsent (KPI_STREAM_MAX_BUFFER_BYTES): updates held back for a snapshot once it drains.',
    () => hub.stats.overflows,
  );
  m.counterFrom('kpi_live_heartbeat_drops_total', 'Live-stream sockets dropped for missing a heartbeat.', () => hub.stats.heartbeatDrops);
  // On close, every dashboard is told why (1001) before the server waits for
  // connections to end; this replaces the plugin's own close-without-code.
  await app.register(websocket, { options: { maxPayload: 64 * 1024 }, preClose: async () => hub.stop() });

  app.get('/api/live', { websocket: true }, (socket, request) => {
    if (!app.auth.sameOrigin(request)) {
      socket.close(CLOSE.unauthorized, "the stream is open to this service's own pages only");
      return;
    }
    const who = app.auth.identify(request);
    if (!who && request.headers.authorization !== undefined) {
      socket.close(CLOSE.unauthorized, 'the token is not valid');
      return;
    }
    // Not yet known: the token may come in `hello`.
    hub.attach(socket, who !== undefined);
  });
}

export default fp(stream, { name: 'kpi-stream', dependencies: ['kpi-auth', 'kpi-aggregates', 'kpi-deploys', 'kpi-metrics'], fastify: '5.x' });
