/**
 * Writing stored blobs out as NDJSON (one blob a line, as the read API gives
 * them: no `_id`, no `_rev`), for backups and analysis; `kpi-live import
 * --file` reads it back.
 *
 * Two ways in:
 * - the running service's read API with an API token (what anyone with a
 *   token uses; the service checks who may read): cursor pages of
 *   `GET /wsapi/interaction_data?start&end&limit`, each read whole before it
 *   is written, so a page that fails is asked again without a line twice;
 * - the store itself, with the service's configuration (`--direct`, for
 *   operators): `_all_docs` pages, as the read API reads them.
 *
 * Memory is one page; the output is written with backpressure.
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { redactUrl } from '../config/config.js';
import { readBlobs } from '../store/blob-reader.js';
import type { Store } from '../store/store.js';
import { retrying } from '../retry.js';
import { endpointUrl, get, RetryableError, SourceError } from './sources.js';

export interface ExportSummary {
  exported: number;
  bytes: number;
  seconds: number;
  ratePerSec: number;
}

export interface ExportRange {
  /** Inclusive, ms. */
  start?: number;
  /** Exclusive, ms. */
  end?: number;
}

export interface ApiExportOptions extends ExportRange {
  /** The service's base URL. */
  url: string;
  /** API token, sent as `Authorization: Bearer`; never shown. */
  token?: string;
  out: Writable;
  /** Blobs per page (the read API allows up to 10,000); 5000. */
  pageSize?: number;
  /** Retries of a page (network errors, 5xx, 429); 5. */
  retries?: number;
  retryDelayMs?: number;
  /** A page that gets no byte for this long is retried, ms; 60 s. */
  pageTimeoutMs?: number;
  onProgress?: (exported: number) => void;
}

/** Writes with backpressure; an output that failed (a closed pipe, a full disk) ends the export with its error. */
async function write(out: Writable, chunk: Buffer | string): Promise<void> {
  if (out.errored) throw out.errored;
  if (!out.write(chunk)) await once(out, 'drain');
}

/** Runs an export with the output's errors caught (one emitted between writes would otherwise end the process). */
async function guarded<T>(out: Writable, run: () => Promise<T>): Promise<T> {
  const ignore = () => undefined; // write() reports it through out.errored
  out.on('error', ignore);
  try {
    return await run();
  } finally {
    out.off('error', ignore);
  }
}

function countLines(buf: Buffer): number {
  let n = 0;
  for (let i = buf.indexOf(0x0a); i >= 0; i = buf.indexOf(0x0a, i + 1)) n++;
  return n;
}

function rangeParams(range: ExportRange): Record<string, string> {
  return {
    ...(range.start !== undefined ? { start: String(range.start) } : {}),
    ...(range.end !== undefined ? { end: String(range.end) } : {}),
  };
}

/**
 * Exports the blobs of a range through a kpi-live read API.
 *
 * @throws {SourceError} when the service refuses (401/403/4xx), does not
 * answer NDJSON, or still fails after the retries
 *
 * @example
 * await exportFromApi({ url: 'http://127.0.0.1:3434', token, start: Date.UTC(2026, 0, 1), out: createWriteStream('jan.ndjson') });
 */
export function exportFromApi(options: ApiExportOptions): Promise<ExportSummary> {
  return guarded(options.out, () => apiExport(options));
}

async function apiExport(options: ApiExportOptions): Promise<ExportSummary> {
  const started = Date.now();
  const pageSize = options.pageSize ?? 5000;
  const retries = options.retries ?? 5;
  const shown = redactUrl(options.url);
  let exported = 0;
  let bytes = 0;
  let cursor: string | undefined;
  do {
    const url = endpointUrl(options.url);
    url.search = new URLSearchParams({ ...rangeParams(options), limit: String(pageSize), ...(cursor ? { cursor } : {}) }).toString();
    const { page, next } = await retrying(
      async () => {
        const { res, chunks } = await get(url, { token: options.token, idleTimeoutMs: options.pageTimeoutMs ?? 60_000 });
        if (!(res.headers.get('content-type') ?? '').includes('ndjson')) {
          await res.body?.cancel();
          throw new SourceError('it did not answer NDJSON: is it a kpi-live service?');
        }
        const parts: Uint8Array[] = [];
        for await (const chunk of chunks) parts.push(chunk);
        return { page: Buffer.concat(parts), next: res.headers.get('x-next-cursor') ?? undefined };
      },
      {
        initialMs: options.retryDelayMs ?? 500,
        maxMs: 30_000,
        retries,
        shouldRetry: (err) => err instanceof RetryableError,
        waitFor: (err) => (err as RetryableError).retryAfterMs,
      },
    ).catch((err: unknown) => {
      // every refusal and the last retryable failure, named with the service's (redacted) URL
      if (err instanceof RetryableError) throw new SourceError(`${shown}: ${err.message} (gave up after ${retries + 1} attempts)`);
      if (err instanceof SourceError) throw new SourceError(`${shown}: ${err.message}`);
      throw err;
    });
    await write(options.out, page);
    exported += countLines(page);
    bytes += page.length;
    options.onProgress?.(exported);
    cursor = next;
  } while (cursor);
  const seconds = Math.max((Date.now() - started) / 1000, 1e-3);
  return { exported, bytes, seconds, ratePerSec: exported / seconds };
}

export interface StoreExportOptions extends ExportRange {
  store: Store;
  out: Writable;
  /** Blobs per `_all_docs` page; 1000. */
  pageSize?: number;
  onProgress?: (exported: number) => void;
}

/**
 * Exports the blobs of a range straight from the store.
 *
 * @example
 * await exportFromStore({ store, start: 0, out: process.stdout });
 */
export function exportFromStore(options: StoreExportOptions): Promise<ExportSummary> {
  return guarded(options.out, () => storeExport(options));
}

async function storeExport(options: StoreExportOptions): Promise<ExportSummary> {
  const started = Date.now();
  let exported = 0;
  let bytes = 0;
  let lines: string[] = [];
  const pageSize = options.pageSize ?? 1000;
  const flush = async () => {
    if (lines.length === 0) return;
    const text = lines.join('');
    lines = [];
    await write(options.out, text);
    bytes += Buffer.byteLength(text);
    options.onProgress?.(exported);
  };
  for await (const blob of readBlobs<object>(options.store, { start: options.start, end: options.end }, pageSize)) {
    lines.push(`${JSON.stringify(blob)}\n`);
    exported++;
    if (lines.length >= pageSize) await flush();
  }
  await flush();
  const seconds = Math.max((Date.now() - started) / 1000, 1e-3);
  return { exported, bytes, seconds, ratePerSec: exported / seconds };
}
