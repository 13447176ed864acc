/**
 * Owns the dashboard's WebSocket for as long as its host element is on the
 * page: connects, says hello, merges snapshots and deltas, and reconnects
 * with growing delays, resuming from the last version it saw. The upgrade
 * carries the session cookie; a socket refused for want of a session (4401)
 * sends the user to sign in instead of reconnecting. Every other close
 * reconnects after 0.5 s, doubling up to 10 s until an update arrives: among
 * them 4429 (this address has too many sockets waiting for hello, as behind a
 * shared proxy: trying again later is the answer), 1011 and 1001.
 */
import type { ReactiveController, ReactiveControllerHost } from 'lit';
import { CLOSE } from '../../src/contract/stream.js';
import type { DeployVerdict } from '../../src/contract/verdict.js';
import { goToLogin } from './api.js';
import { mergeDelta, mergeDeploys, type Deploy, type KpiAnswer, type ServerMessage, type Subscription } from './model.js';

export type Connection = 'connecting' | 'live' | 'reconnecting' | 'signed-out';

export class LiveController implements ReactiveController {
  answer: KpiAnswer | undefined;
  deploys: Deploy[] = [];
  /** The latest deploy's verdict while it is recent (null: none). */
  verdict: DeployVerdict | null = null;
  connection: Connection = 'connecting';
  /** When the last snapshot or delta arrived, ms. */
  lastUpdate = 0;
  /** Reconnect attempts since the last success. */
  attempt = 0;
  /** When the next reconnect is due, ms. */
  retryAt = 0;
  #socket: WebSocket | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #epoch: string | undefined;
  #version = 0;
  #stopped = false;
  /** Subscribed anew: deltas of the old subscription still on the way are ignored until the snapshot. */
  #awaitingSnapshot = false;

  constructor(
    private readonly host: ReactiveControllerHost,
    private readonly subscription: () => Subscription,
    private readonly url: () => string = () => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/live`,
  ) {
    host.addController(this);
  }

  hostConnected(): void {
    this.#stopped = false;
    this.#connect();
  }

  hostDisconnected(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#socket?.close(1000, 'page closed');
  }

  /** Shows something else: a new snapshot follows (now, or when the socket is back). */
  resubscribe(): void {
    // what was seen belongs to the old subscription: the next hello must not resume from it
    this.#epoch = undefined;
    this.#awaitingSnapshot = true;
    if (this.#socket?.readyState === WebSocket.OPEN) this.#socket.send(JSON.stringify({ type: 'subscribe', subscribe: this.subscription() }));
  }

  #connect(): void {
    const socket = new WebSocket(this.url());
    this.#socket = socket;
    socket.addEventListener('open', () => {
      const resume = this.#epoch && !this.#awaitingSnapshot ? { epoch: this.#epoch, version: this.#version } : undefined;
      socket.send(JSON.stringify({ type: 'hello', subscribe: this.subscription(), ...(resume ? { resume } : {}) }));
    });
    socket.addEventListener('message', (event) => this.#receive(JSON.parse(String(event.data)) as ServerMessage));
    socket.addEventListener('close', (event) => {
      if (this.#socket !== socket || this.#stopped) return;
      if (event.code === CLOSE.unauthorized) {
        this.connection = 'signed-out';
        this.host.requestUpdate();
        goToLogin();
        return;
      }
      this.connection = 'reconnecting';
      const delay = Math.min(10_000, 500 * 2 ** this.attempt);
      this.attempt += 1;
      this.retryAt = Date.now() + delay;
      this.#timer = setTimeout(() => this.#connect(), delay);
      this.host.requestUpdate();
    });
  }

  #receive(message: ServerMessage): void {
    switch (message.type) {
      case 'snapshot':
        this.#awaitingSnapshot = false;
        this.answer = message.kpis;
        this.deploys = message.deploys;
        this.verdict = message.verdict ?? null;
        break;
      case 'delta':
        if (this.#awaitingSnapshot) return;
        this.answer = this.answer ? mergeDelta(this.answer, message.kpis) : message.kpis;
        break;
      case 'deploy':
        this.deploys = mergeDeploys(this.deploys, [message.deploy]);
        this.host.requestUpdate();
        return;
      case 'verdict':
        this.verdict = message.verdict;
        this.host.requestUpdate();
        return;
      case 'error':
        console.warn('kpi-live:', message.message);
        return;
    }
    this.#epoch = message.epoch;
    this.#version = message.version;
    this.connection = 'live';
    this.attempt = 0;
    this.lastUpdate = Date.now();
    this.host.requestUpdate();
  }
}
