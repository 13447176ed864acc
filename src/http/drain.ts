/**
 * Answers that reach a client still sending its body.
 *
 * When kpi-live refuses a request before reading all of its body (413 over
 * the body limit, 403 from another origin, 415), Fastify answers with
 * `Connection: close`, and closing a socket with unread data makes the
 * kernel reset it. A client still uploading then gets a reset instead of
 * the answer: the dialog, which drops its backlog only on 413 and retries
 * on anything else, would retry such a body forever. So the rest of the
 * body is read and thrown away before the answer goes out, up to a bound
 * in bytes and in time; beyond it the connection is cut.
 */
import type { FastifyInstance } from 'fastify';
import type { IncomingMessage } from 'node:http';

/** At most this much of a refused body is read to let its client see the answer. */
export const MAX_DRAIN_BYTES = 64 * 1024 * 1024;
/** …and for at most this long. */
export const MAX_DRAIN_MS = 30_000;

/**
 * Reads and discards what is left of a request body; resolves true once it
 * ended, false when the bound was reached first (or the socket failed).
 */
export function drainBody(raw: IncomingMessage, maxBytes = MAX_DRAIN_BYTES, maxMs = MAX_DRAIN_MS): Promise<boolean> {
  if (raw.complete || raw.destroyed) return Promise.resolve(raw.complete);
  return new Promise((resolve) => {
    let read = 0;
    const finish = (ended: boolean) => {
      clearTimeout(timer);
      raw.off('data', onData);
      raw.off('end', onEnd);
      raw.off('error', onFail);
      raw.off('close', onClose);
      resolve(ended);
    };
    const onData = (chunk: Buffer | string) => {
      read += chunk.length;
      if (read > maxBytes) {
        raw.pause();
        finish(false);
      }
    };
    const onEnd = () => finish(true);
    const onFail = () => finish(false);
    const onClose = () => finish(raw.complete);
    const timer = setTimeout(() => finish(false), maxMs);
    timer.unref();
    raw.on('data', onData);
    raw.on('end', onEnd);
    raw.on('error', onFail);
    raw.on('close', onClose);
    raw.resume();
  });
}

/** Makes every refusal of `app` wait for the rest of the body (bounded) before it is sent. */
export function drainRefusedBodies(app: FastifyInstance): void {
  app.addHook('onSend', async (request, reply, payload) => {
    // `complete` is false only on a socket's request whose body is still
    // coming (an injected request has no such flag and nothing to wait for)
    if (reply.statusCode >= 400 && request.raw.complete === false && !request.raw.readableEnded) await drainBody(request.raw);
    return payload;
  });
}
