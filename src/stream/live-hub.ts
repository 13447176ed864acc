/**
 * The live hub: every open dashboard socket, what each shows, and what each
 * has been sent.
 *
 * - Coalescing and fan-out: aggregate changes are throttled to one flush per
 *   `coalesceMs` (the first change of a quiet spell at once); a flush
 *   computes each distinct (subscription, last version) delta once and sends
 *   it to every socket that needs it.
 * - Deltas are computed from the state itself ("buckets changed after the
 *   version this socket has"), so nothing is queued per socket: skipping a
 *   flush loses nothing, and resuming after a reconnect is one more delta.
 * - A slow socket (more than `maxBufferedBytes` unsent) gets nothing more
 *   until it drains, then a fresh snapshot: server memory per socket stays
 *   bounded whatever the client does.
 * - Heartbeats: a socket that does not answer a ping by the next one is
 *   dropped.
 * - Top N + Other: a delta keeps a client right only while the top values
 *   are the ones it has (`Other`'s unchanged points depend on them), so a
 *   client whose top values changed gets a snapshot instead.
 * - Fixed windows (`from`): a delta with no changed point is not sent (the
 *   window did not move, so nothing in it changed).
 */
import type { FastifyBaseLogger } from 'fastify';
import { asyncScheduler, skip, throttleTime, type Subscription as RxSubscription } from 'rxjs';
import type { RawData, WebSocket } from 'ws';
import type { KpiQuery } from '../aggregate/model/query.js';
import { bucketForRange, windowEnd, type KpiAnswer } from '../contract/kpis.js';
import type { AggregateApi } from '../aggregate/routes/plugin.js';
import type { Deploys } from '../deploys/plugin.js';
import type { Verdicts } from '../verdict/plugin.js';
import { readClientMessage } from './client-messages.js';
import { CLOSE, type ClientMessage, type ServerMessage, type Subscription } from '../contract/stream.js';

export interface HubOptions {
  coalesceMs: number;
  maxBufferedBytes: number;
  heartbeatMs: number;
  helloTimeoutMs: number;
  /** Sockets one address may hold open before their `hello`; one more is closed at once (4429). */
  maxUngreetedPerAddress: number;
  /** Checks a token from a `hello`; undefined when the socket was authorised at upgrade. */
  authorize: (token: string | undefined) => boolean;
}

interface Client {
  socket: WebSocket;
  subscription: Subscription | undefined;
  epoch: string;
  version: number;
  /** It overflowed: send a snapshot once it drains. */
  needsSnapshot: boolean;
  alive: boolean;
  /** A `top` subscription: the series it was last sent (see {@link seriesKey}). */
  series: string | undefined;
}

/** The query window of a subscription, now: sliding back from now, or fixed from `from`. */
export function windowOf(sub: Subscription, now = Date.now()): KpiQuery {
  const to = sub.from !== undefined ? sub.from + sub.rangeMs : windowEnd(now);
  return {
    from: to - sub.rangeMs,
    to,
    bucket: sub.bucket ?? bucketForRange(sub.rangeMs),
    segment: sub.segment,
    ...(sub.top !== undefined ? { top: sub.top } : {}),
  };
}

/** The series of an answer, in order: what a client of a `top` subscription holds. */
const seriesKey = (answer: KpiAnswer) => answer.series.map((s) => s.segment).join('\u0000');

/** What the hub has done since it started (metrics): counts only go up. */
export interface LiveHubStats {
  /** Sockets that sent their hello. */
  clients: number;
  /** Open sockets, greeted or not. */
  sockets: number;
  /** Sockets taken. */
  connections: number;
  snapshots: number;
  /** Deltas sent, one per socket. */
  deltas: number;
  /** Times a socket had too much unsent: it got nothing more until drained, then a snapshot. */
  overflows: number;
  /** Sockets dropped for missing a heartbeat. */
  heartbeatDrops: number;
  /** Sockets closed at once: their address already held `maxUngreetedPerAddress` waiting for hello. */
  refusedUngreeted: number;
  /** Sockets closed because a message was not one the protocol allows (4400). */
  badMessages: number;
}

/** The text of a frame, however `ws` delivered it. */
function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return (Buffer.isBuffer(data) ? data : Buffer.from(data)).toString('utf8');
}

/** Longest close reason, in UTF-8 bytes, the protocol allows. */
const MAX_REASON_BYTES = 123;

/**
 * Closes a socket with a code and a reason cut to what a close frame can
 * carry (at a character boundary); a socket that cannot even be closed is
 * ended.
 */
export function closeSocket(socket: WebSocket, code: number, reason: string): void {
  let text = '';
  let bytes = 0;
  for (const char of reason) {
    bytes += Buffer.byteLength(char);
    if (bytes > MAX_REASON_BYTES) break;
    text += char;
  }
  try {
    socket.close(code, text);
  } catch {
    socket.terminate();
  }
}

const subKey = (sub: Subscription) => `${sub.rangeMs}|${sub.from ?? ''}|${sub.bucket ?? ''}|${sub.segment ?? ''}|${sub.top ?? ''}`;

export class LiveHub {
  readonly #clients = new Set<Client>();
  /** Every open socket, greeted or not (closed on stop). */
  readonly #sockets = new Set<WebSocket>();
  readonly #subscriptions: RxSubscription[] = [];
  #heartbeat: NodeJS.Timeout | undefined;
  #drainCheck: NodeJS.Timeout | undefined;
  readonly #counts = { connections: 0, snapshots: 0, deltas: 0, overflows: 0, heartbeatDrops: 0, refusedUngreeted: 0, badMessages: 0 };
  /** Open sockets that have not said hello yet, by address. */
  readonly #ungreeted = new Map<string, number>();

  constructor(
    readonly aggregates: AggregateApi,
    readonly deploys: Deploys,
    readonly options: HubOptions,
    readonly log: FastifyBaseLogger,
    /** The latest deploy's verdict (src/verdict/plugin.ts): in every snapshot, and sent to every client as it changes. */
    readonly verdicts?: Pick<Verdicts, 'current' | 'current$'>,
  ) {}

  get size(): number {
    return this.#clients.size;
  }

  get stats(): LiveHubStats {
    return { clients: this.#clients.size, sockets: this.#sockets.size, ...this.#counts };
  }

  start(): void {
    // leading and trailing: a change on a quiet stream goes out at once; under
    // load, at most one flush per interval, and the last change is never held back
    this.#subscriptions.push(
      this.aggregates.changes$.pipe(throttleTime(this.options.coalesceMs, asyncScheduler, { leading: true, trailing: true })).subscribe(() => this.flush()),
    );
    this.#subscriptions.push(this.deploys.added$.subscribe((deploy) => this.#broadcast({ type: 'deploy', deploy })));
    if (this.verdicts) this.#subscriptions.push(this.verdicts.current$.pipe(skip(1)).subscribe((verdict) => this.#broadcast({ type: 'verdict', verdict })));
    this.#heartbeat = setInterval(() => this.#beat(), this.options.heartbeatMs);
    // sockets that overflowed get their snapshot once drained, even without new changes
    this.#drainCheck = setInterval(() => this.#sendDrainedSnapshots(), Math.max(this.options.coalesceMs, 100));
  }

  stop(): void {
    for (const s of this.#subscriptions) s.unsubscribe();
    clearInterval(this.#heartbeat);
    clearInterval(this.#drainCheck);
    for (const socket of this.#sockets) socket.close(CLOSE.goingAway, 'kpi-live is shutting down');
    this.#sockets.clear();
    this.#clients.clear();
  }

  /**
   * Takes a new socket from `address` (the client's, as the upgrade request
   * says). Its message handler is attached at once, before anything
   * asynchronous, so the `hello` cannot be missed. Nothing a client sends
   * can make the handler throw: a message of any shape is checked against the
   * protocol's schema (client-messages.ts), and anything unforeseen closes
   * that socket (1011), never the service.
   */
  attach(socket: WebSocket, authorizedAtUpgrade: boolean, address = ''): void {
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'live socket error'));
    const waiting = this.#ungreeted.get(address) ?? 0;
    if (waiting >= this.options.maxUngreetedPerAddress) {
      this.#counts.refusedUngreeted++;
      this.log.debug({ address, waiting }, 'live socket refused: too many from this address waiting for hello');
      closeSocket(socket, CLOSE.tooManyWaiting, 'too many sockets waiting for hello from this address');
      return;
    }
    this.#ungreeted.set(address, waiting + 1);
    const client: Client = { socket, subscription: undefined, epoch: '', version: 0, needsSnapshot: false, alive: true, series: undefined };
    this.#sockets.add(socket);
    this.#counts.connections++;
    let greeted = false;
    /** Closed by the hub: messages still arriving are ignored. */
    let closing = false;
    const stopWaiting = () => {
      if (greeted) return;
      greeted = true;
      clearTimeout(helloTimer);
      const left = (this.#ungreeted.get(address) ?? 1) - 1;
      if (left > 0) this.#ungreeted.set(address, left);
      else this.#ungreeted.delete(address);
    };
    const close = (code: number, reason: string) => {
      closing = true;
      if (code === CLOSE.badMessage) this.#counts.badMessages++;
      closeSocket(socket, code, reason);
    };
    const helloTimer = setTimeout(() => {
      if (!greeted) close(CLOSE.helloTimeout, 'no hello received');
    }, this.options.helloTimeoutMs);

    const receive = (data: RawData, isBinary: boolean) => {
      if (isBinary) return close(CLOSE.badMessage, 'messages are JSON text');
      let parsed: unknown;
      try {
        parsed = JSON.parse(rawText(data));
      } catch {
        return close(CLOSE.badMessage, 'messages are JSON text');
      }
      const read = readClientMessage(parsed);
      if ('problem' in read) {
        this.#send(client, { type: 'error', message: read.problem.message });
        return close(CLOSE.badMessage, read.problem.message);
      }
      const message = read.message;
      if (!greeted) {
        if (message.type !== 'hello') return close(CLOSE.badMessage, 'the first message must be hello');
        if (!authorizedAtUpgrade && !this.#authorize(message.token)) {
          return close(CLOSE.unauthorized, message.token ? 'the token is not valid' : 'a token is needed');
        }
        stopWaiting();
        this.#clients.add(client);
      } else if (message.type !== 'subscribe') return close(CLOSE.badMessage, 'expected subscribe');
      this.#subscribe(client, message);
    };
    socket.on('message', (data, isBinary) => {
      if (closing) return;
      try {
        receive(data, isBinary);
      } catch (err) {
        this.log.debug({ err: (err as Error).message }, 'live message handler failed: socket closed');
        close(CLOSE.internalError, 'internal error');
      }
    });
    socket.on('pong', () => {
      client.alive = true;
    });
    socket.on('close', () => {
      stopWaiting();
      this.#clients.delete(client);
      this.#sockets.delete(socket);
    });
  }

  /** A token from a hello: only a string can be one, whatever `authorize` would make of anything else. */
  #authorize(token: unknown): boolean {
    if (typeof token !== 'string' && token !== undefined) return false;
    try {
      return this.options.authorize(token) === true;
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'live token check failed: refused');
      return false;
    }
  }

  /** A checked subscription takes effect: a snapshot, or a delta when it resumes. */
  #subscribe(client: Client, message: ClientMessage): void {
    client.subscription = message.subscribe;
    // A client that does not read what it asked for gets one snapshot once
    // it drains, not one more per request: asking is no way around the bound.
    if (!this.#hasRoom(client)) {
      this.#overflow(client);
      return;
    }
    const resume = message.type === 'hello' ? message.resume : undefined;
    const current = this.aggregates.version();
    // a resumed `top` client's series are not known here: a snapshot keeps it right
    if (resume && resume.epoch === current.epoch && resume.version <= current.version && message.subscribe.top === undefined) {
      client.epoch = resume.epoch;
      client.version = resume.version;
      this.#sendDelta(client);
    } else this.#sendSnapshot(client);
  }

  /** Sends every client what changed since its version (one computation per distinct need). */
  flush(): void {
    const current = this.aggregates.version();
    const groups = new Map<string, Client[]>();
    for (const client of this.#clients) {
      if (!client.subscription) continue;
      if (client.epoch !== current.epoch) {
        // the aggregate restarted or reloaded: versions no longer compare
        if (!client.needsSnapshot && this.#hasRoom(client)) this.#sendSnapshot(client);
        else this.#overflow(client);
        continue;
      }
      if (client.version >= current.version) continue;
      if (client.needsSnapshot || !this.#hasRoom(client)) {
        this.#overflow(client);
        continue;
      }
      const key = `${subKey(client.subscription)}@${client.version}`;
      const group = groups.get(key);
      if (group) group.push(client);
      else groups.set(key, [client]);
    }
    for (const group of groups.values()) {
      const first = group[0]!;
      const sub = first.subscription!;
      const kpis = this.aggregates.kpis(windowOf(sub), first.version);
      if (sub.from !== undefined && kpis.series.every((s) => s.points.length === 0)) {
        // a fixed window none of whose buckets changed: nothing to tell
        for (const client of group) client.version = current.version;
        continue;
      }
      const series = sub.top !== undefined ? seriesKey(kpis) : undefined;
      let text: string | undefined;
      for (const client of group) {
        if (client.series !== series) {
          this.#sendSnapshot(client);
          continue;
        }
        text ??= JSON.stringify({ type: 'delta', epoch: current.epoch, version: current.version, kpis } satisfies ServerMessage);
        client.version = current.version;
        client.socket.send(text);
        this.#counts.deltas++;
      }
    }
  }

  #hasRoom(client: Client): boolean {
    return client.socket.bufferedAmount <= this.options.maxBufferedBytes;
  }

  /** The client gets nothing more until it drains, then a snapshot (counted once per overflow). */
  #overflow(client: Client): void {
    if (client.needsSnapshot) return;
    client.needsSnapshot = true;
    this.#counts.overflows++;
  }

  #sendSnapshot(client: Client): void {
    const current = this.aggregates.version();
    const window = windowOf(client.subscription!);
    client.epoch = current.epoch;
    client.version = current.version;
    client.needsSnapshot = false;
    const kpis = this.aggregates.kpis(window);
    client.series = client.subscription!.top !== undefined ? seriesKey(kpis) : undefined;
    this.#send(client, {
      type: 'snapshot',
      epoch: current.epoch,
      version: current.version,
      kpis,
      deploys: this.deploys.list(window.from, window.to),
      ...(this.verdicts ? { verdict: this.verdicts.current() } : {}),
    });
    this.#counts.snapshots++;
  }

  #sendDelta(client: Client): void {
    const current = this.aggregates.version();
    const kpis = this.aggregates.kpis(windowOf(client.subscription!), client.version);
    client.version = current.version;
    this.#send(client, { type: 'delta', epoch: current.epoch, version: current.version, kpis });
    this.#counts.deltas++;
  }

  #sendDrainedSnapshots(): void {
    for (const client of this.#clients) if (client.needsSnapshot && client.subscription && this.#hasRoom(client)) this.#sendSnapshot(client);
  }

  #send(client: Client, message: ServerMessage): void {
    client.socket.send(JSON.stringify(message));
  }

  #broadcast(message: ServerMessage): void {
    const text = JSON.stringify(message);
    for (const client of this.#clients) {
      if (!client.subscription) continue;
      // a full socket gets it with its next snapshot (snapshots list the window's markers)
      if (this.#hasRoom(client)) client.socket.send(text);
      else this.#overflow(client);
    }
  }

  #beat(): void {
    for (const client of this.#clients) {
      if (!client.alive) {
        this.log.debug('live socket missed a heartbeat: dropped');
        client.socket.terminate();
        this.#counts.heartbeatDrops++;
        this.#clients.delete(client);
        this.#sockets.delete(client.socket);
        continue;
      }
      client.alive = false;
      client.socket.ping();
    }
  }
}
