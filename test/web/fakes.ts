/**
 * Stand-ins for the service in happy-dom tests of the dashboard: a fetch that
 * answers from a table of routes (recording every call), and a WebSocket the
 * test drives.
 */
import { vi } from 'vitest';
import type { ServerMessage } from '../../src/contract/stream.js';

export interface FetchCall {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: unknown;
}

/** A route's answer: status and JSON body (or a function of the call). */
export type Route = { status: number; body?: unknown } | ((call: FetchCall) => { status: number; body?: unknown });

/**
 * Replaces `fetch` with one that answers `routes` (by "METHOD /path", or
 * "/path" for GET; the query string is ignored unless the key has one), 404
 * otherwise.
 */
export function stubFetch(routes: Record<string, Route>): { calls: FetchCall[]; routes: Record<string, Route> } {
  const calls: FetchCall[] = [];
  vi.stubGlobal('fetch', async (input: string, init: RequestInit = {}) => {
    const method = init.method ?? 'GET';
    const headers = Object.fromEntries(Object.entries((init.headers ?? {}) as Record<string, string>).map(([k, v]) => [k.toLowerCase(), v]));
    const call: FetchCall = { method, path: input, headers, body: init.body === undefined ? undefined : JSON.parse(String(init.body)) };
    calls.push(call);
    if (init.signal?.aborted) throw new DOMException('aborted', 'AbortError');
    const bare = input.split('?')[0]!;
    const route = routes[`${method} ${input}`] ?? routes[`${method} ${bare}`] ?? (method === 'GET' ? (routes[input] ?? routes[bare]) : undefined);
    const answer = route === undefined ? { status: 404, body: { message: 'not found' } } : typeof route === 'function' ? route(call) : route;
    return new Response(answer.body === undefined ? null : JSON.stringify(answer.body), {
      status: answer.status,
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
  });
  return { calls, routes };
}

/** A WebSocket that never touches the network: the test opens it, reads what was sent, and delivers messages. */
export class FakeWebSocket extends EventTarget {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  static instances: FakeWebSocket[] = [];
  readyState = FakeWebSocket.CONNECTING;
  sent: Record<string, unknown>[] = [];

  constructor(readonly url: string) {
    super();
    FakeWebSocket.instances.push(this);
  }

  send(text: string): void {
    this.sent.push(JSON.parse(text) as Record<string, unknown>);
  }

  close(code = 1000): void {
    this.readyState = FakeWebSocket.CLOSED;
    this.dispatchEvent(Object.assign(new Event('close'), { code }));
  }

  open(): void {
    this.readyState = FakeWebSocket.OPEN;
    this.dispatchEvent(new Event('open'));
  }

  deliver(message: ServerMessage): void {
    this.dispatchEvent(Object.assign(new Event('message'), { data: JSON.stringify(message) }));
  }

  /** The server closes it (e.g. 4401). */
  closeFromServer(code: number): void {
    this.readyState = FakeWebSocket.CLOSED;
    this.dispatchEvent(Object.assign(new Event('close'), { code }));
  }
}

/** Lets pending promises (fetch answers, Lit updates) settle. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => queueMicrotask(resolve));
}

/** Makes the page hidden or visible, as switching tabs does. */
export function setVisibility(state: 'hidden' | 'visible'): void {
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => state });
  document.dispatchEvent(new Event('visibilitychange'));
}
