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
import { asyncScheduler, throttleTime, type Subscription as RxSubscription } from 'rxjs';
import type { WebSocket } from 'ws';
import { BUCKET_SIZES, bucketForRange, MAX_POINTS, MAX_RANGE_MS, MAX_TOP, windowEnd, type KpiAnswer, type KpiQuery } from '../aggregate/query.js';
import type { Aggregates } from '../aggregate/plugin.js';
import { DIMENSIONS } from '../aggregate/segments.js';
import { TEN_MINUTES } from '../aggregate/state.js';
import type { Deploys } from '../deploys/plugin.js';
import { CLOSE, type ClientMessage, type ServerMessage, type Subscription } from './protocol.js';

export interface HubOptions {
  coalesceMs: number;
  maxBufferedBytes: number;
  heartbeatMs: number;
  helloTimeoutMs: number;
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

/** Checks a client's subscription; returns a message naming what is wrong, or undefined. */
export function invalidSubscription(sub: unknown): string | undefined {
  if (typeof sub !== 'object' || sub === null) return 'subscribe must be an object';
  const { rangeMs, from, bucket, segment, top } = sub as Record<string, unknown>;
  if (typeof rangeMs !== 'number' || !Number.isInteger(rangeMs) || rangeMs < TEN_MINUTES || rangeMs > MAX_RANGE_MS) {
    return `subscribe.rangeMs must be an integer between ${TEN_MINUTES} and ${MAX_RANGE_MS}`;
  }
  if (bucket !== undefined && !(typeof bucket === 'string' && Object.hasOwn(BUCKET_SIZES, bucket))) return 'subscribe.bucket must be 10m, 1h or 1d';
  if (bucket !== undefined && rangeMs / BUCKET_SIZES[bucket as keyof typeof BUCKET_SIZES] > MAX_POINTS) return 'subscribe.bucket is too small for this range';
  if (segment !== undefined && !(DIMENSIONS as readonly unknown[]).includes(segment)) return `subscribe.segment must be one of ${DIMENSIONS.join(', ')}`;
  if (from !== undefined && !(typeof from === 'number' && Number.isSafeInteger(from) && from >= 0))
    return 'subscribe.from must be a time in ms (an integer ≥ 0)';
  if (top !== undefined) {
    if (!(typeof top === 'number' && Number.isInteger(top) && top >= 1 && top <= MAX_TOP)) return `subscribe.top must be an integer between 1 and ${MAX_TOP}`;
    if (segment === undefined) return 'subscribe.top needs subscribe.segment';
  }
  return undefined;
}

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
}

const subKey = (sub: Subscription) => `${sub.rangeMs}|${sub.from ?? ''}|${sub.bucket ?? ''}|${sub.segment ?? ''}|${sub.top ?? ''}`;

export class LiveHub {
  readonly #clients = new Set<Client>();
  /** Every open socket, greeted or not (closed on stop). */
  readonly #sockets = new Set<WebSocket>();
  readonly #subscriptions: RxSubscription[] = [];
  #heartbeat: NodeJS.Timeout | undefined;
  #drainCheck: NodeJS.Timeout | undefined;
  readonly #counts = { connections: 0, snapshots: 0, deltas: 0, overflows: 0, heartbeatDrops: 0 };

  constructor(
    readonly aggregates: Aggregates,
    readonly deploys: Deploys,
    readonly options: HubOptions,
    readonly log: FastifyBaseLogger,
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
   * Takes a new socket. Its message handler is attached at once, before
   * anything asynchronous, so the `hello` cannot be missed.
   */
  attach(socket: WebSocket, authorizedAtUpgrade: boolean): void {
    const client: Client = { socket, subscription: undefined, epoch: '', version: 0, needsSnapshot: false, alive: true, series: undefined };
    this.#sockets.add(socket);
    this.#counts.connections++;
    let greeted = false;
    const helloTimer = setTimeout(() => {
      if (!greeted) socket.close(CLOSE.helloTimeout, 'no hello received');
    }, this.options.helloTimeoutMs);

    socket.on('message', (data, isBinary) => {
      let message: ClientMessage;
      try {
        if (isBinary) throw new Error('binary');
        message = JSON.parse(data.toString()) as ClientMessage;
      } catch {
        socket.close(CLOSE.badMessage, 'messages are JSON text');
        return;
      }
      if (!greeted) {
        if (message.type !== 'hello') {
          socket.close(CLOSE.badMessage, 'the first message must be hello');
          return;
        }
        if (!authorizedAtUpgrade && !this.options.authorize(message.token)) {
          socket.close(CLOSE.unauthorized, message.token ? 'the token is not valid' : 'a token is needed');
          return;
        }
        greeted = true;
        clearTimeout(helloTimer);
        this.#clients.add(client);
      } else if (message.type !== 'subscribe') {
        socket.close(CLOSE.badMessage, 'expected subscribe');
        return;
      }
      const problem = invalidSubscription(message.subscribe);
      if (problem) {
        this.#send(client, { type: 'error', message: problem });
        socket.close(CLOSE.badMessage, problem.slice(0, 120));
        return;
      }
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
    });
    socket.on('pong', () => {
      client.alive = true;
    });
    socket.on('close', () => {
      clearTimeout(helloTimer);
      this.#clients.delete(client);
      this.#sockets.delete(socket);
    });
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'live socket error'));
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
    this.#send(client, { type: 'snapshot', epoch: current.epoch, version: current.version, kpis, deploys: this.deploys.list(window.from, window.to) });
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
