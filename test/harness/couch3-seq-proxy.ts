/**
 * A loopback HTTP proxy in front of the store that makes it speak CouchDB 3's
 * sequence dialect, whatever the backend is (the embedded pouchdb-server's
 * sequences are plain integers, and its `_changes` has no `pending`):
 *
 * - every sequence the store sends (`_changes` `results[].seq` and
 *   `last_seq`, `GET /<db>` `update_seq` and `purge_seq`) is replaced by a
 *   fresh opaque string `<prefix>-<60 random base64url characters>`: the same
 *   position gets a new string each time, the strings do not sort like the
 *   positions, and the numeric prefix lies on two mints of three (so parsing
 *   or comparing a sequence breaks);
 * - `since` (query string, or the JSON body of a `POST _changes`) is mapped
 *   back: `0` and `now` pass, a string the proxy minted becomes the real
 *   position, anything else is answered 400 as CouchDB does;
 * - `_changes` answers gain `pending`: the changes after `last_seq`, counted
 *   by asking the store for them.
 *
 * Everything else passes unchanged, credentials included (the client's own
 * headers).
 */
import { randomBytes, randomInt } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { LoopbackProxy } from './loopback-proxy.js';

export interface SeqProxyCounts {
  /** Opaque sequences sent in place of the store's. */
  minted: number;
  /** `since` values mapped from an opaque sequence to the store's position. */
  translated: number;
  /** `since` values refused (neither `0`, `now` nor minted here). */
  refused: number;
  /** `_changes` answers given a `pending`. */
  pendingAdded: number;
  /** The largest `pending` sent. */
  maxPending: number;
}

/** One `_changes` request as the proxy received it. */
export interface ChangesRequest {
  db: string;
  /** `since` as the client sent it (undefined: none). */
  since: string | undefined;
  /** The store's position it was mapped to (undefined: passed as is, or refused). */
  real: unknown;
}

/** What a CouchDB 3 node answers a `since` it cannot decode. */
export const MALFORMED_SINCE = { error: 'bad_request', reason: "Malformed sequence supplied in 'since' parameter." };

export const OPAQUE_SEQ = /^\d+-[A-Za-z0-9_-]{60}$/;

export class Couch3SeqProxy extends LoopbackProxy {
  /** opaque → the store's own sequence */
  readonly #real = new Map<string, unknown>();
  /** Where each minted string came from: `_changes` or `update_seq` (and `purge_seq`, which is no position of the feed). */
  readonly #origin = new Map<string, 'changes' | 'update_seq' | 'purge_seq'>();
  readonly counts: SeqProxyCounts = { minted: 0, translated: 0, refused: 0, pendingAdded: 0, maxPending: 0 };
  /** Every `_changes` request, in arrival order. */
  readonly changesRequests: ChangesRequest[] = [];

  /** @param target the store's base URL */
  constructor(target: string) {
    super(target, 'seq proxy');
  }

  /** The store's position behind an opaque sequence this proxy minted (undefined: not one of ours). */
  realSeq(opaque: unknown): unknown {
    return typeof opaque === 'string' ? this.#real.get(opaque) : undefined;
  }

  /** Where a minted sequence was sent: in a `_changes` answer, or as a database's `update_seq`/`purge_seq`. */
  originOf(opaque: unknown): 'changes' | 'update_seq' | 'purge_seq' | undefined {
    return typeof opaque === 'string' ? this.#origin.get(opaque) : undefined;
  }

  /** A fresh opaque sequence for the store's `real` one. */
  #mint(real: unknown, origin: 'changes' | 'update_seq' | 'purge_seq'): string {
    const n = typeof real === 'number' ? real : Number.parseInt(String(real), 10) || 0;
    const k = this.counts.minted++;
    // the prefix is n once in three; otherwise a lie: much larger, or smaller
    const prefix = k % 3 === 0 ? n : k % 3 === 1 ? n + randomInt(1, 1_000_000) : randomInt(0, Math.max(1, n));
    let opaque: string;
    do opaque = `${prefix}-${randomBytes(45).toString('base64url')}`;
    while (this.#real.has(opaque));
    this.#real.set(opaque, real);
    this.#origin.set(opaque, origin);
    return opaque;
  }

  /** The store's `since` for a client's: `{ok}` or undefined when refused. */
  #translate(since: unknown): { ok: true; value: unknown; real: unknown } | undefined {
    if (since === undefined || since === 0 || since === '0' || since === 'now') return { ok: true, value: since, real: undefined };
    if (typeof since === 'string' && this.#real.has(since)) {
      this.counts.translated += 1;
      const real = this.#real.get(since);
      return { ok: true, value: real, real };
    }
    this.counts.refused += 1;
    return undefined;
  }

  /** The path without the target's own path prefix, split into segments. */
  #segments(req: IncomingMessage): string[] {
    const base = this.target.pathname.replace(/\/$/, '');
    let path = (req.url ?? '/').split('?')[0]!;
    if (base && path.startsWith(base)) path = path.slice(base.length);
    return path.split('/').filter(Boolean).map(decodeURIComponent);
  }

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    const method = (req.method ?? 'GET').toUpperCase();
    const segments = this.#segments(req);
    if (segments.length === 2 && segments[1] === '_changes' && (method === 'GET' || method === 'POST')) {
      void this.#changes(req, res, segments[0]!, method).catch(() => res.destroy());
      return;
    }
    if (segments.length === 1 && !segments[0]!.startsWith('_') && method === 'GET') {
      void this.#dbInfo(req, res).catch(() => res.destroy());
      return;
    }
    this.forward(req, res);
  }

  async #changes(req: IncomingMessage, res: ServerResponse, db: string, method: string): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const body = await readAll(req);
    const feed = url.searchParams.get('feed');
    if (feed && feed !== 'normal' && feed !== 'longpoll') {
      answer(res, 400, { error: 'bad_request', reason: `the CouchDB 3 sequence proxy does not speak feed=${feed}` });
      return;
    }
    // since: in the query string, or in a POST body
    let sentBody = body;
    const querySince = url.searchParams.get('since') ?? undefined;
    let since: unknown = querySince;
    let parsedBody: Record<string, unknown> | undefined;
    if (method === 'POST' && body.length > 0) {
      try {
        const parsed = JSON.parse(body.toString('utf8')) as unknown;
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) parsedBody = parsed as Record<string, unknown>;
      } catch {
        // not JSON: the store answers it
      }
      if (parsedBody && 'since' in parsedBody) since = parsedBody.since;
    }
    const mapped = this.#translate(since);
    const request: ChangesRequest = { db, since: since === undefined ? undefined : String(since), real: mapped?.real };
    this.changesRequests.push(request);
    if (!mapped) {
      answer(res, 400, MALFORMED_SINCE);
      return;
    }
    if (mapped.real !== undefined) {
      if (parsedBody && 'since' in parsedBody) sentBody = Buffer.from(JSON.stringify({ ...parsedBody, since: mapped.real }));
      if (querySince !== undefined) url.searchParams.set('since', String(mapped.real));
    }
    const upstream = await this.#request(req, res, method, `${url.pathname}${url.search}`, sentBody);
    if (!upstream) return;
    if (upstream.status !== 200) {
      answer(res, upstream.status, upstream.text, upstream.headers);
      return;
    }
    const changes = JSON.parse(upstream.text) as { results?: { seq?: unknown }[]; last_seq?: unknown; pending?: unknown };
    if (!Array.isArray(changes.results)) {
      answer(res, upstream.status, upstream.text, upstream.headers);
      return;
    }
    // pending: what the store has after last_seq (one more read, without docs or a wait)
    const after = new URL(url.toString());
    for (const name of ['feed', 'timeout', 'heartbeat', 'limit', 'include_docs', 'since']) after.searchParams.delete(name);
    after.searchParams.set('since', String(changes.last_seq));
    const rest = await this.#request(req, res, method, `${after.pathname}${after.search}`, method === 'POST' ? withoutSince(parsedBody, sentBody) : undefined);
    if (!rest) return;
    const pending = (JSON.parse(rest.text) as { results?: unknown[] }).results?.length;
    if (rest.status !== 200 || pending === undefined) {
      answer(res, 502, { error: 'proxy', reason: `could not count pending changes: ${rest.status}` });
      return;
    }
    const rewritten = {
      ...changes,
      results: changes.results.map((change) => ({ ...change, seq: this.#mint(change.seq, 'changes') })),
      last_seq: this.#mint(changes.last_seq, 'changes'),
      pending,
    };
    this.counts.pendingAdded += 1;
    this.counts.maxPending = Math.max(this.counts.maxPending, pending);
    answer(res, 200, rewritten, upstream.headers);
  }

  async #dbInfo(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const upstream = await this.#request(req, res, 'GET', req.url ?? '/', undefined);
    if (!upstream) return;
    if (upstream.status !== 200) {
      answer(res, upstream.status, upstream.text, upstream.headers);
      return;
    }
    const info = JSON.parse(upstream.text) as Record<string, unknown>;
    if (info.update_seq !== undefined) info.update_seq = this.#mint(info.update_seq, 'update_seq');
    if (info.purge_seq !== undefined) info.purge_seq = this.#mint(info.purge_seq, 'purge_seq');
    answer(res, 200, info, upstream.headers);
  }

  /**
   * One request to the store with the client's headers, read whole; undefined
   * when the client went away first (then the store's request is ended too).
   */
  #request(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    path: string,
    body: Buffer | undefined,
  ): Promise<{ status: number; headers: IncomingHttpHeaders; text: string } | undefined> {
    return new Promise((resolve, reject) => {
      const headers: IncomingHttpHeaders = { ...req.headers, host: this.target.host };
      delete headers['content-length'];
      delete headers['transfer-encoding'];
      delete headers['accept-encoding'];
      if (body) headers['content-length'] = String(body.length);
      const upstream = httpRequest({ host: this.target.hostname, port: this.target.port || 80, method, path, headers, agent: this.agent }, (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => chunks.push(chunk));
        answer.on('end', () => resolve({ status: answer.statusCode ?? 502, headers: answer.headers, text: Buffer.concat(chunks).toString('utf8') }));
        answer.on('error', reject);
      });
      const onClose = () => {
        if (!res.writableFinished) {
          upstream.destroy();
          resolve(undefined);
        }
      };
      res.on('close', onClose);
      upstream.on('error', (err) => (res.destroyed ? resolve(undefined) : reject(err)));
      upstream.on('close', () => res.off('close', onClose));
      upstream.end(body);
    });
  }
}

function readAll(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function withoutSince(parsed: Record<string, unknown> | undefined, body: Buffer): Buffer {
  if (!parsed) return body;
  const rest: Record<string, unknown> = { ...parsed };
  delete rest.since;
  return Buffer.from(JSON.stringify(rest));
}

/** Answers with JSON (a text body is sent as it is), keeping the store's headers but its length and encoding. */
function answer(res: ServerResponse, status: number, body: unknown, headers: IncomingHttpHeaders = {}): void {
  if (res.destroyed) return;
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const kept = { ...headers };
  for (const name of ['content-length', 'transfer-encoding', 'content-encoding', 'etag', 'connection', 'keep-alive']) delete kept[name];
  res.writeHead(status, { ...kept, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
