/**
 * A body over the limit is answered 413, and the answer reaches a client
 * that writes its body slowly, as a browser uploading over a real network
 * does: the dialog drops its backlog only on 413 and retries on anything
 * else, so a reset connection would make it retry forever.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.js';
import { within } from '../harness/process.js';

const MB = 1024 * 1024;

interface Outcome {
  /** Status of the answer, when one was read. */
  status: number | undefined;
  /** Body bytes the client got written before the connection ended. */
  written: number;
  /** How the connection ended: `end` (the server closed it in order), `kept-alive` (open after the answer) or an error code such as ECONNRESET. */
  ending: string;
}

/**
 * Posts `size` bytes of JSON-looking body over a raw socket in 64 KiB
 * chunks, yielding between chunks, and reads the answer meanwhile. With
 * `chunked`, no Content-Length is sent (the body streams).
 */
function slowPost(port: number, size: number, path: string, options: { chunked?: boolean; headers?: Record<string, string> } = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    let written = 0;
    let done = false;
    const finish = (ending: string) => {
      if (done) return;
      done = true;
      const status = /^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1];
      socket.destroy();
      resolve({ status: status ? Number(status) : undefined, written, ending });
    };
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
    });
    socket.on('end', () => finish('end'));
    socket.on('close', () => finish('close'));
    socket.on('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
    socket.on('connect', async () => {
      const head = [
        `POST ${path} HTTP/1.1`,
        'Host: 127.0.0.1',
        'Content-Type: application/json',
        options.chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${size}`,
        ...Object.entries(options.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
        '',
        '',
      ].join('\r\n');
      socket.write(head);
      const piece = Buffer.alloc(64 * 1024, 0x20);
      piece.write('{"data":[');
      while (written < size && !done) {
        const n = Math.min(piece.length, size - written);
        const chunk = options.chunked ? Buffer.concat([Buffer.from(`${n.toString(16)}\r\n`), piece.subarray(0, n), Buffer.from('\r\n')]) : piece.subarray(0, n);
        const flushed = socket.write(chunk);
        written += n;
        if (!flushed) await new Promise<void>((r) => socket.once('drain', () => r()));
        else await new Promise<void>((r) => setImmediate(r));
      }
      if (options.chunked && !done) socket.write('0\r\n\r\n');
      // an answer that keeps the connection open (keep-alive) ends nothing: done once read
      const poll = setInterval(() => {
        if (done) clearInterval(poll);
        else if (/\r\n\r\n/.test(answer)) setTimeout(() => finish('kept-alive'), 500);
      }, 100);
    });
  });
}

describe('a body over the limit', () => {
  let t: TestApp;
  let port: number;
  beforeAll(async () => {
    t = await startTestApp({}, { listen: true });
    port = (t.app.server.address() as { port: number }).port;
  });
  afterAll(async () => {
    await t.close();
  });

  it.each([2, 5, 20])('of %i MB with Content-Length: the slow client writes it all and reads the 413', async (mb) => {
    const outcome = await within(`a ${mb} MB post`, 60_000, slowPost(port, mb * MB, '/wsapi/interaction_data'));
    expect(outcome).toEqual({ status: 413, written: mb * MB, ending: 'end' });
  });

  it.each([2, 20])('of %i MB streamed without Content-Length: the same', async (mb) => {
    const outcome = await within(`a chunked ${mb} MB post`, 60_000, slowPost(port, mb * MB, '/wsapi/interaction_data', { chunked: true }));
    expect(outcome).toEqual({ status: 413, written: mb * MB, ending: 'end' });
  });

  it('refused before its body is read (another origin, 403), the client still reads the answer', async () => {
    const other = await startTestApp({ ingestOrigins: ['https://dialog.example'] }, { listen: true });
    try {
      const otherPort = (other.app.server.address() as { port: number }).port;
      const outcome = await within(
        'a cross-origin post',
        60_000,
        slowPost(otherPort, 5 * MB, '/wsapi/interaction_data', { headers: { Origin: 'https://evil.example' } }),
      );
      expect(outcome).toEqual({ status: 403, written: 5 * MB, ending: expect.stringMatching(/^(end|kept-alive)$/) });
    } finally {
      await other.close();
    }
  });

  it('beyond what kpi-live reads to answer (64 MB), the connection is cut rather than read forever', async () => {
    const outcome = await within('a 100 MB post', 60_000, slowPost(port, 100 * MB, '/wsapi/interaction_data'));
    expect(outcome.written).toBeLessThan(100 * MB);
    expect(outcome.written).toBeGreaterThanOrEqual(64 * MB);
  });

  it('the service still answers afterwards', async () => {
    expect((await t.app.inject({ url: '/health' })).statusCode).toBe(200);
  });
});
