/**
 * Where imported blobs come from, as one stream of {@link SourceItem}s:
 *
 * - an NDJSON file (or stdin): one blob a line, as `kpi-live export` writes;
 * - a range API, `GET /wsapi/interaction_data?start&end`: the original store
 *   answers one JSON array per request (its `end` is inclusive: a CouchDB
 *   view's `endkey`); kpi-live answers NDJSON pages with a cursor
 *   (`limit`, `X-Next-Cursor`; its `end` is exclusive). One client reads
 *   both: it asks for time windows `[from, to)` with `limit` and
 *   `Accept: application/x-ndjson`, follows a cursor when one is given, and
 *   drops what lies outside the window, so a blob on a window's edge comes
 *   once whichever meaning `end` has.
 *
 * Memory stays bounded: a file or an answer is read as it arrives, one line
 * or array element at a time.
 */
import { createReadStream } from 'node:fs';
import { BUCKET_MS, floorToBucket } from '../store/blob-ids.js';
import { redactUrl } from '../config/config.js';
import { backoffDelay } from '../retry.js';
import { sleep } from '../sleep.js';
import { JsonArrayError, jsonArrayElements, lines } from './json-stream.js';

/** One blob as read from a source, or why it could not be read. */
export interface SourceItem {
  /** Where it is in the source, for reports: `line 17`, `blob 1234`. */
  position: string;
  /** The parsed JSON value (a CouchDB view row's `value` already taken out); absent when `problem` is set. */
  value?: unknown;
  /** Why this item is not a blob: the field at fault (`json`, `line`) and what is wrong. */
  problem?: { field: string; message: string };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A source blob: the value itself, or, for a CouchDB view row such as the
 * original store's range API gives (`{id, key, value}` or `{doc}`), the blob
 * inside it.
 */
export function unwrapRow(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || 'timestamp' in value) return value;
  const row = value as { value?: unknown; doc?: unknown };
  if (row.value !== null && typeof row.value === 'object' && !Array.isArray(row.value)) return row.value;
  if (row.doc !== null && typeof row.doc === 'object' && !Array.isArray(row.doc)) return row.doc;
  return value;
}

/** Parses one line or array element. */
export function parseItem(bytes: Buffer, position: string): SourceItem {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { position, problem: { field: 'json', message: 'is not UTF-8' } };
  }
  try {
    return { position, value: unwrapRow(JSON.parse(text)) };
  } catch (err) {
    return { position, problem: { field: 'json', message: `is not JSON (${(err as Error).message})` } };
  }
}

/** The blobs of an NDJSON stream, one a line; blank lines are skipped. */
export async function* ndjsonItems(chunks: AsyncIterable<Uint8Array | string>, maxLineBytes = 1 << 20): AsyncGenerator<SourceItem> {
  for await (const { line, bytes, tooLong } of lines(chunks, maxLineBytes)) {
    const position = `line ${line}`;
    if (tooLong) {
      yield { position, problem: { field: 'line', message: `is longer than ${maxLineBytes} bytes` } };
      continue;
    }
    if (bytes.every((c) => c === 0x20 || c === 0x09)) continue;
    yield parseItem(bytes, position);
  }
}

/** The blobs of an NDJSON file, or of stdin for `-`. */
export function fileSource(path: string): AsyncIterable<SourceItem> {
  return ndjsonItems(path === '-' ? process.stdin : createReadStream(path));
}

/** The source cannot be read: refused, not found, not a range API, or down for longer than the retries. */
export class SourceError extends Error {
  override readonly name = 'SourceError';
}

export class RetryableError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export interface RangeApiOptions {
  /** The store's base URL (`https://piggybank.example`), or its `/wsapi/interaction_data` URL. */
  baseUrl: string;
  /** Inclusive, ms. */
  start: number;
  /** Exclusive, ms. */
  end: number;
  /** Sent as `Authorization: Bearer`; never shown. */
  token?: string;
  /** `limit` asked of a paging store (kpi-live); 5000. */
  pageSize?: number;
  /** First window, ms (rounded to 10-minute buckets); 1 h. Windows then adapt to hold about `windowTarget` blobs. */
  windowMs?: number;
  /** Longest window, ms; 24 h. */
  maxWindowMs?: number;
  /** Blobs a window should hold; 5000. */
  windowTarget?: number;
  /** A request that gets no byte for this long is retried; 60 s. */
  idleTimeoutMs?: number;
  /** Retries of one request (network errors, 5xx, 429) before giving up; 5. */
  retries?: number;
  /** First retry delay, doubled each time (a `Retry-After` wins, up to 30 s); 500 ms. */
  retryDelayMs?: number;
  /** Told of each request (path and query, never the token). */
  onRequest?: (url: string) => void;
}

/** `…/wsapi/interaction_data` under a base URL, whether or not the base names it already. */
export function endpointUrl(baseUrl: string, suffix = ''): URL {
  const base = new URL(baseUrl);
  base.pathname = base.pathname.replace(/\/wsapi\/interaction_data\/?$/, '').replace(/\/?$/, '/');
  return new URL(`wsapi/interaction_data${suffix}`, base);
}

function headersFor(token: string | undefined): Record<string, string> {
  const headers: Record<string, string> = { accept: 'application/x-ndjson, application/json;q=0.9' };
  if (token) headers.authorization = `Bearer ${token}`;
  return headers;
}

async function problemText(res: Response): Promise<string> {
  const text = (await res.text().catch(() => '')).slice(0, 300);
  try {
    const body = JSON.parse(text) as { message?: unknown; error?: unknown };
    if (typeof body.message === 'string') return body.message;
    if (typeof body.error === 'string') return body.error;
  } catch {
    // not JSON
  }
  return text.replace(/\s+/g, ' ').trim() || res.statusText;
}

/**
 * GET with an idle timeout that runs only while waiting for the source (not
 * while the caller works on what it gave), and the statuses sorted into
 * retry-worthy and final ones.
 */
export async function get(url: URL, options: Pick<RangeApiOptions, 'token' | 'idleTimeoutMs'>): Promise<{ res: Response; chunks: AsyncGenerator<Uint8Array> }> {
  const idleMs = options.idleTimeoutMs ?? 60_000;
  const controller = new AbortController();
  let timer = setTimeout(() => controller.abort(), idleMs);
  let res: Response;
  try {
    res = await fetch(url, { headers: headersFor(options.token), signal: controller.signal });
  } catch (err) {
    clearTimeout(timer);
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new RetryableError(controller.signal.aborted ? `no answer within ${idleMs} ms` : (cause?.code ?? cause?.message ?? (err as Error).message));
  }
  clearTimeout(timer);
  if (res.status !== 200) {
    const message = await problemText(res);
    if (res.status === 401 || res.status === 403) {
      throw new SourceError(
        `the source answered ${res.status} (${message}): ${options.token ? 'it refuses the token' : 'it needs a token (--token or --token-file)'}`,
      );
    }
    if (res.status === 429 || res.status === 408 || res.status >= 500) {
      const seconds = Number(res.headers.get('retry-after'));
      throw new RetryableError(`the source answered ${res.status}: ${message}`, Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : undefined);
    }
    throw new SourceError(`the source answered ${res.status} for ${url.pathname}: ${message}`);
  }
  const body = res.body;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    if (!body) return;
    const reader = body.getReader();
    try {
      for (;;) {
        timer = setTimeout(() => controller.abort(), idleMs);
        let next: Awaited<ReturnType<typeof reader.read>>;
        try {
          next = await reader.read();
        } catch (err) {
          throw new RetryableError(controller.signal.aborted ? `the answer stalled for ${idleMs} ms` : `the answer was cut off: ${(err as Error).message}`);
        } finally {
          clearTimeout(timer);
        }
        if (next.done) return;
        yield next.value;
      }
    } finally {
      clearTimeout(timer);
      controller.abort(); // releases the connection if the caller stopped early
    }
  }
  return { res, chunks: chunks() };
}

/** The items of one answer, as NDJSON or as a JSON array, by its content type. */
async function* answerItems(res: Response, chunks: AsyncGenerator<Uint8Array>, position: (index: number) => string): AsyncGenerator<SourceItem> {
  const type = res.headers.get('content-type') ?? '';
  let index = 0;
  if (type.includes('ndjson')) {
    for await (const item of ndjsonItems(chunks)) yield { ...item, position: position(index++) };
    return;
  }
  try {
    for await (const element of jsonArrayElements(chunks)) yield parseItem(element, position(index++));
  } catch (err) {
    if (err instanceof JsonArrayError && /cut off/.test(err.message)) throw new RetryableError(err.message);
    if (err instanceof JsonArrayError) throw new SourceError(`${err.message}: is this a range API (GET /wsapi/interaction_data)?`);
    throw err;
  }
}

const timestampOf = (value: unknown): number | undefined =>
  value !== null && typeof value === 'object' && typeof (value as { timestamp?: unknown }).timestamp === 'number'
    ? (value as { timestamp: number }).timestamp
    : undefined;

/**
 * The blobs of `[start, end)` from a range API, window by window in time
 * order, each window page by page when the store gives a cursor. A request
 * that fails for a reason worth retrying (network, 5xx, 429, an answer cut
 * off) is sent again, and the items already handed out are skipped, so
 * nothing comes twice.
 *
 * @throws {SourceError} when the source refuses (401/403/4xx), is not a
 * range API, or still fails after the retries
 */
export async function* rangeApiSource(options: RangeApiOptions): AsyncGenerator<SourceItem> {
  const pageSize = options.pageSize ?? 5000;
  const target = options.windowTarget ?? 5000;
  const maxBuckets = Math.max(1, Math.floor((options.maxWindowMs ?? 24 * 3_600_000) / BUCKET_MS));
  let buckets = Math.min(maxBuckets, Math.max(1, Math.round((options.windowMs ?? 3_600_000) / BUCKET_MS)));
  const retries = options.retries ?? 5;
  const backoff = { initialMs: options.retryDelayMs ?? 500, maxMs: 30_000 };
  const shown = redactUrl(options.baseUrl);
  let n = 0;

  for (let from = options.start; from < options.end;) {
    const to = Math.min(options.end, floorToBucket(from) + buckets * BUCKET_MS);
    let inWindow = 0;
    let cursor: string | undefined;
    do {
      const url = endpointUrl(options.baseUrl);
      url.search = new URLSearchParams({ start: String(from), end: String(to), limit: String(pageSize), ...(cursor ? { cursor } : {}) }).toString();
      let handedOut = 0;
      for (let attempt = 0; ; attempt++) {
        try {
          options.onRequest?.(`${url.pathname}${url.search}`);
          const { res, chunks } = await get(url, options);
          let index = 0;
          for await (const item of answerItems(res, chunks, () => `blob ${n + 1}`)) {
            if (index++ < handedOut) continue;
            const time = timestampOf(item.value);
            if (time === undefined || (time >= from && time < to)) {
              n++;
              inWindow++;
              yield item;
            }
            handedOut = index;
          }
          cursor = res.headers.get('x-next-cursor') ?? undefined;
          break;
        } catch (err) {
          if (!(err instanceof RetryableError)) throw err;
          if (attempt >= retries) throw new SourceError(`${shown}: ${err.message} (gave up after ${retries + 1} attempts)`);
          // a loop of its own, not retrying(): a retry resumes the items this generator already handed out
          await sleep(Math.min(err.retryAfterMs ?? backoffDelay(attempt + 1, backoff), backoff.maxMs));
        }
      }
    } while (cursor);
    if (inWindow > 2 * target) buckets = Math.max(1, Math.floor(buckets / 2));
    else if (inWindow < target / 2) buckets = Math.min(maxBuckets, buckets * 2);
    from = to;
  }
}
