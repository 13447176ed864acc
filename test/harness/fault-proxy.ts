/**
 * A loopback HTTP proxy in front of the store that can answer for it: fail
 * requests (500s, refusals, per-document errors), delay them, or pass them
 * on. Tests use it to make the store misbehave at the HTTP level whatever the
 * backend is (embedded, container, URL); {@link TcpProxy} cuts the network.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackProxy } from './loopback-proxy.js';

/** What the proxy does with one request to the store. */
export type FaultAction =
  | { kind: 'pass' }
  /** Forwarded after a pause (a slow store). */
  | { kind: 'delay'; ms: number }
  /** Answered by the proxy (the body may be made from the request's body); the store never sees the request. */
  | { kind: 'answer'; status: number; body: unknown; bodyFrom?: (requestBody: string) => unknown }
  /** Read first, then answered by the proxy when `decide` gives an answer, else forwarded (after `delayMs`). */
  | { kind: 'inspect'; decide: (requestBody: string) => { status: number; body: unknown } | undefined; delayMs?: number };

/** Decides per request; `path` is the URL path (no query), `method` upper-case. */
export type FaultRule = (method: string, path: string) => FaultAction;

export const pass: FaultRule = () => ({ kind: 'pass' });

export interface FaultCounts {
  /** Requests answered by the proxy instead of the store. */
  answered: number;
  delayed: number;
  passed: number;
}

export class FaultProxy extends LoopbackProxy {
  rule: FaultRule = pass;
  readonly counts: FaultCounts = { answered: 0, delayed: 0, passed: 0 };

  /** @param target the store's base URL (credentials are passed on by the client's own headers) */
  constructor(target: string) {
    super(target, 'fault proxy');
  }

  /** Ends every open connection (requests in flight get no answer); new ones are taken as before. */
  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!;
    const action = this.rule((req.method ?? 'GET').toUpperCase(), path);
    if (action.kind === 'answer') {
      this.counts.answered += 1;
      // read the request fully first, as a server would, so the client sees an answer, not a reset
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const text = JSON.stringify(action.bodyFrom ? action.bodyFrom(Buffer.concat(chunks).toString('utf8')) : action.body);
        res.writeHead(action.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      });
      return;
    }
    if (action.kind === 'inspect') {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const answer = action.decide(body.toString('utf8'));
        if (answer) {
          this.counts.answered += 1;
          const text = JSON.stringify(answer.body);
          res.writeHead(answer.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
          res.end(text);
          return;
        }
        this.counts.passed += 1;
        setTimeout(() => this.forward(req, res, body), action.delayMs ?? 0);
      });
      return;
    }
    if (action.kind === 'delay') {
      this.counts.delayed += 1;
      req.pause();
      setTimeout(() => this.forward(req, res), action.ms);
      return;
    }
    this.counts.passed += 1;
    this.forward(req, res);
  }
}
