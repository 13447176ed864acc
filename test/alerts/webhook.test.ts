/**
 * Webhook delivery with a fake fetch: in order, retried with backoff on
 * failures worth retrying, final on a refusal, bounded in queue and time,
 * and never a word of the URL beyond its origin in the logs.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { AlertEvent } from '../../src/alerts/types.js';
import { isWebhookUrl, urlOrigin, WebhookSender } from '../../src/alerts/webhook.js';
import { waitUntil } from '../harness/process.js';

const URL_WITH_SECRET = 'https://hooks.example.test/services/T000/B000/s3cr3t-path?token=s3cr3t-query';

function event(n: number): AlertEvent {
  return { kind: n % 2 ? 'cleared' : 'breached', key: 'bounceRate', value: n, bound: 'max', limit: 0.7, windowMs: 3_600_000, at: n, service: 'kpi-live' };
}

/** A logger whose lines are kept. */
function capturedLog() {
  const lines: string[] = [];
  const log = pino(
    { level: 'debug' },
    new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  );
  return { log, lines };
}

/** A fetch that answers from a script of statuses (or throws for 'error'/'hang'), recording the bodies. */
function scriptedFetch(script: (number | 'error' | 'hang')[]) {
  const bodies: AlertEvent[] = [];
  const fake = (async (_url: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const next = script.shift() ?? 204;
    bodies.push(JSON.parse(String(init!.body)) as AlertEvent);
    if (next === 'error') throw Object.assign(new TypeError(`fetch failed for ${String(_url)}`), { cause: { code: 'ECONNREFUSED' } });
    if (next === 'hang')
      return new Promise<Response>((_resolve, reject) => init!.signal!.addEventListener('abort', () => reject(init!.signal!.reason as Error), { once: true }));
    return new Response(null, { status: next });
  }) as typeof fetch;
  return { fetch: fake, bodies };
}

const fast = { backoffMs: 1, maxBackoffMs: 5, timeoutMs: 50 };

describe('WebhookSender', () => {
  it('delivers each transition once, in order', async () => {
    const { log } = capturedLog();
    const { fetch, bodies } = scriptedFetch([]);
    const sender = new WebhookSender({ url: URL_WITH_SECRET, log, fetch, ...fast });
    for (let i = 0; i < 5; i++) sender.send(event(i));
    await waitUntil(() => sender.status.delivered === 5, 5000, 'five deliveries');
    expect(bodies.map((b) => b.value)).toEqual([0, 1, 2, 3, 4]);
    expect(sender.status).toEqual({ queued: 0, delivered: 5, failed: 0, dropped: 0 });
    await sender.close();
  });

  it('retries network errors, timeouts, 429 and 5xx with backoff, up to the attempt limit', async () => {
    const { log } = capturedLog();
    const { fetch, bodies } = scriptedFetch(['error', 'hang', 503, 429, 204]);
    const sender = new WebhookSender({ url: URL_WITH_SECRET, log, fetch, ...fast, maxAttempts: 5 });
    sender.send(event(0));
    await waitUntil(() => sender.status.delivered === 1, 5000, 'delivery after retries');
    expect(bodies).toHaveLength(5);

    const failing = scriptedFetch([500, 500, 500, 500]);
    const giveUp = new WebhookSender({ url: URL_WITH_SECRET, log, fetch: failing.fetch, ...fast, maxAttempts: 3 });
    giveUp.send(event(1));
    await waitUntil(() => giveUp.status.failed === 1, 5000, 'giving up');
    expect(failing.bodies).toHaveLength(3);
    await Promise.all([sender.close(), giveUp.close()]);
  });

  it('does not retry a refusal', async () => {
    const { log } = capturedLog();
    const { fetch, bodies } = scriptedFetch([400, 204]);
    const sender = new WebhookSender({ url: URL_WITH_SECRET, log, fetch, ...fast });
    sender.send(event(0));
    sender.send(event(1));
    await waitUntil(() => sender.status.delivered === 1, 5000, 'the second delivered');
    expect(sender.status.failed).toBe(1);
    expect(bodies.map((b) => b.value)).toEqual([0, 1]);
    await sender.close();
  });

  it('keeps a bounded queue while the receiver is down, dropping the oldest and counting them', async () => {
    const { log } = capturedLog();
    const { fetch, bodies } = scriptedFetch(['hang']);
    const sender = new WebhookSender({ url: URL_WITH_SECRET, log, fetch, backoffMs: 1, maxAttempts: 1, timeoutMs: 200, maxQueue: 3 });
    for (let i = 0; i < 10; i++) sender.send(event(i));
    // the first is being sent; of the nine waiting, the six oldest go
    expect(sender.status).toEqual({ queued: 4, delivered: 0, failed: 0, dropped: 6 });
    await waitUntil(() => sender.status.delivered === 3, 5000, 'the queue sent once the receiver answers');
    expect(bodies.map((b) => b.value)).toEqual([0, 7, 8, 9]);
    expect(sender.status).toEqual({ queued: 0, delivered: 3, failed: 1, dropped: 6 });
    await sender.close();
  });

  it('closes within its grace even when the receiver hangs, counting what it could not send', async () => {
    const { log } = capturedLog();
    const { fetch } = scriptedFetch(['hang', 'hang']);
    const sender = new WebhookSender({ url: URL_WITH_SECRET, log, fetch, timeoutMs: 60_000 });
    sender.send(event(0));
    sender.send(event(1));
    const started = Date.now();
    await sender.close(100);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(sender.status).toEqual({ queued: 0, delivered: 0, failed: 1, dropped: 1 });
    sender.send(event(2));
    expect(sender.status.queued).toBe(0);
  });

  it('never logs the URL beyond its origin', async () => {
    const { log, lines } = capturedLog();
    const { fetch } = scriptedFetch(['error', 500, 400, 'hang', 204]);
    const sender = new WebhookSender({ url: URL_WITH_SECRET, log, fetch, ...fast, maxAttempts: 2, maxQueue: 1 });
    for (let i = 0; i < 4; i++) sender.send(event(i));
    await waitUntil(() => sender.status.delivered + sender.status.failed + sender.status.dropped === 4, 5000, 'all handled');
    await sender.close();
    const text = lines.join('');
    expect(text).toContain('https://hooks.example.test');
    expect(text).not.toContain('s3cr3t');
    expect(text).not.toContain('/services/');
    expect(urlOrigin(URL_WITH_SECRET)).toBe('https://hooks.example.test');
    expect(urlOrigin('https://user:pw@hooks.example.test/x')).toBe('https://hooks.example.test');
  });

  it('takes only http and https URLs', () => {
    expect(isWebhookUrl(URL_WITH_SECRET)).toBe(true);
    expect(isWebhookUrl('http://127.0.0.1:9/hook')).toBe(true);
    expect(isWebhookUrl('ftp://hooks.example.test/x')).toBe(false);
    expect(isWebhookUrl('hooks.example.test/x')).toBe(false);
  });
});
