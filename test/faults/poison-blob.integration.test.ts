/**
 * A blob holding a lone UTF-16 surrogate in a string (`"lang":"\ud800"`):
 * CouchDB 3 refuses a whole `_bulk_docs` whose JSON holds one (its JSON
 * decoder answers 400 "invalid UTF-8 JSON"), and group commit puts concurrent
 * requests in one write, so such a blob reaching the store would fail every
 * request of its batch with 503 + Retry-After, and its sender, told to retry,
 * would do it again. Ingest refuses it with a 400, so no write is poisoned.
 * (The embedded store takes such a document, so a proxy in front of the
 * harness's store answers as CouchDB does.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { nowTimestamp, startTestApp, type TestApp } from '../harness/app.js';
import { FaultProxy, pass } from '../harness/fault-proxy.js';

/** A `\uD800`–`\uDBFF` escape not followed by a `\uDC00`–`\uDFFF` one, or a low one without a high one before it. */
const LONE_SURROGATE = /\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f][0-9a-f]{2})|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}/i;

describe('a blob with a lone surrogate among concurrent requests', () => {
  let proxy: FaultProxy;
  let t: TestApp;
  const outcome = { innocent: 0, poisoned: 0, refusedBatches: 0, innocentInRefusedBatch: false };

  beforeAll(async () => {
    proxy = new FaultProxy(inject('couchUrl'));
    await proxy.open();
    proxy.rule = (method, path) =>
      method === 'POST' && path.endsWith('/_bulk_docs')
        ? {
            kind: 'inspect',
            // as CouchDB 3 answers such a body; every write waits a little, so that requests share the next one
            decide: (body) => {
              if (!LONE_SURROGATE.test(body)) return undefined;
              outcome.refusedBatches += 1;
              outcome.innocentInRefusedBatch ||= body.includes('"innocent"');
              return { status: 400, body: { error: 'bad_request', reason: 'invalid UTF-8 JSON' } };
            },
            delayMs: 150,
          }
        : { kind: 'pass' };
    t = await startTestApp({ couchdbUrl: proxy.url, commitMaxInFlight: 1, commitMaxWaitMs: 50 });
    const post = (rp: string, lang: string) =>
      t.app.inject({
        method: 'POST',
        url: '/wsapi/interaction_data',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({ data: [{ timestamp: nowTimestamp(), event_stream: [['screen.rp_info', 5]], lang, rp_api: rp }] }),
      });
    // the first write holds the only write slot; the next two requests wait for the next write together
    const first = post('first', 'en-US');
    await new Promise((r) => setTimeout(r, 20));
    const [innocent, poisoned] = await Promise.all([post('innocent', 'de'), post('poisoned', '\ud800')]);
    expect((await first).statusCode).toBe(200);
    outcome.innocent = innocent.statusCode;
    outcome.poisoned = poisoned.statusCode;
  });
  afterAll(async () => {
    proxy.rule = pass;
    await t.close();
    await proxy.close();
  });

  it('never sends the store a write holding a lone surrogate', () => {
    console.log(`poison blob: the innocent request got ${outcome.innocent}, the one with a lone surrogate ${outcome.poisoned}`);
    expect(outcome.refusedBatches).toBe(0);
    expect(outcome.innocentInRefusedBatch).toBe(false);
  });

  it('stores the innocent request, and refuses the poisoned one alone with a 400', () => {
    expect({ innocent: outcome.innocent, poisoned: outcome.poisoned }).toEqual({ innocent: 200, poisoned: 400 });
  });
});
