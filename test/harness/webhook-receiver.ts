/**
 * A webhook receiver on loopback that keeps what it is sent (JSON bodies),
 * for the tests of the alert webhook.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Receiver<T> {
  server: Server;
  /** Where to send, with a path that stands for a secret one. */
  url: string;
  received: T[];
  close(): Promise<void>;
}

export async function startReceiver<T = { kind: string }>(): Promise<Receiver<T>> {
  const received: T[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      received.push(JSON.parse(body) as T);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}/hooks/a-secret-path`, received, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
