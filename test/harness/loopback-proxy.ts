/**
 * What every loopback HTTP proxy in front of the store shares: a server on
 * 127.0.0.1 at a free port, the store URL through it (the target's
 * credentials and path kept), a keep-alive agent to the store, and a close
 * that ends open connections, and forwarding a request as it came.
 * Subclasses answer or forward each request.
 */
import { createServer, request as httpRequest, Agent, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export abstract class LoopbackProxy {
  #server: Server | undefined;
  protected readonly sockets = new Set<Socket>();
  protected readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });
  protected readonly target: URL;

  /**
   * @param target the store's base URL (credentials are passed on by the client's own headers)
   * @param name how errors name this proxy
   */
  constructor(
    target: string,
    private readonly name: string,
  ) {
    this.target = new URL(target);
  }

  /** Answers or forwards one request. */
  protected abstract handle(req: IncomingMessage, res: ServerResponse): void;

  async open(): Promise<void> {
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.#server = server;
  }

  get port(): number {
    const address = this.#server?.address();
    if (!address || typeof address !== 'object') throw new Error(`${this.name} not open`);
    return address.port;
  }

  /** The store URL through the proxy, keeping the target's credentials and path. */
  get url(): string {
    const url = new URL(this.target.toString());
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.toString().replace(/\/$/, '');
  }

  /** Sends the request on to the store; `body` when it was read already. */
  protected forward(req: IncomingMessage, res: ServerResponse, body?: Buffer): void {
    const headers = { ...req.headers, host: this.target.host };
    const upstream = httpRequest(
      {
        host: this.target.hostname,
        port: this.target.port || 80,
        method: req.method,
        path: req.url,
        headers,
        agent: this.agent,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    if (body) {
      upstream.end(body);
      return;
    }
    req.pipe(upstream);
    req.resume();
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.agent.destroy();
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
