/**
 * `GET /api/live`: the WebSocket stream of KPI updates (src/contract/stream.ts). Uses
 * only the aggregate's public interface (`app.aggregates`) and the deploy
 * markers' (`app.deploys`).
 *
 * Who may connect, as for reads (`app.auth`): an API token (`Authorization:
 * Bearer` on the upgrade, or in `hello`), a session cookie, or a trusted
 * loopback client. A browser's upgrade must come from this service's own
 * origin, so another site cannot open the stream with the user's cookie.
 * Refused sockets are closed with 4401; an address holding
 * `KPI_STREAM_MAX_UNGREETED_PER_ADDRESS` sockets that have not said hello
 * gets its next one closed at once (4429).
 */
import websocket from '@fastify/websocket';
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/config.js';
import { LiveHub } from './live-hub.js';
import { CLOSE } from '../contract/stream.js';

async function stream(app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  const hub = new LiveHub(
    app.aggregates,
    app.deploys,
    {
      coalesceMs: config.streamCoalesceMs,
      maxBufferedBytes: config.streamMaxBufferBytes,
      heartbeatMs: config.streamHeartbeatMs,
      helloTimeoutMs: config.streamHelloTimeoutMs,
      maxUngreetedPerAddress: config.streamMaxUngreetedPerAddress,
      authorize: (token) => app.auth.checkToken(token),
    },
    app.log,
    app.verdicts,
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
  m.counterFrom(
    'kpi_live_refused_ungreeted_total',
    'Live-stream sockets closed at once (4429): their address already held KPI_STREAM_MAX_UNGREETED_PER_ADDRESS sockets waiting for hello.',
    () => hub.stats.refusedUngreeted,
  );
  m.counterFrom('kpi_live_bad_messages_total', 'Live-stream sockets closed for a message the protocol does not allow (4400).', () => hub.stats.badMessages);
  // On close, every dashboard is told why (1001) before the server waits for
  // connections to end; this replaces the plugin's own close-without-code.
  await app.register(websocket, {
    options: { maxPayload: 64 * 1024 },
    preClose: async () => hub.stop(),
    // A client's frame that breaks the protocol (not UTF-8, over maxPayload)
    // is its mistake, not the service's: logged at debug, not as an error.
    // `ws` has already sent the close (1007, 1009, 1002) and ends the socket
    // once it is written; a socket that is not closing is ended here.
    errorHandler: (err, socket, request) => {
      request.log.debug({ err: err.message }, 'live socket error');
      if (socket.readyState !== socket.CLOSING && socket.readyState !== socket.CLOSED) socket.terminate();
    },
  });

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
    // Not yet known: the token may come in `hello`. The address is the
    // client's as KPI_TRUST_PROXY says, so a proxy's clients are told apart.
    hub.attach(socket, who !== undefined, request.ip);
  });
}

export default fp(stream, { name: 'kpi-stream', dependencies: ['kpi-auth', 'kpi-aggregates', 'kpi-deploys', 'kpi-verdicts', 'kpi-metrics'], fastify: '5.x' });
