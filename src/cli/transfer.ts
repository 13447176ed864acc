/**
 * `kpi-live import` and `kpi-live export`: the command-line shell around
 * src/transfer (options, the store from the service's configuration,
 * progress on stderr, a one-line summary, the exit code).
 */
import { createWriteStream, readFileSync, renameSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { loadConfig, redactUrl, type Config } from '../config/config.js';
import { createLogger } from '../logger.js';
import { retentionCutoff } from '../retention/retention.js';
import { countBlobs } from '../store/blob-reader.js';
import { openStore, type Store } from '../store/store.js';
import { exportFromApi, exportFromStore, type ExportSummary } from '../transfer/exporter.js';
import { importBlobs, type ImportSummary } from '../transfer/importer.js';
import { fileSource, rangeApiSource, type SourceItem } from '../transfer/sources.js';
import { Progress } from './progress.js';

/** Where a command writes; the process's streams unless a caller (a test) gives others. */
export interface Io {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown; isTTY?: boolean };
  /** Exports without `--out` go here. */
  data?: Writable;
}

const processIo = (): Io => ({ stdout: process.stdout, stderr: process.stderr, data: process.stdout });

/** How long a count for the progress bar may take. */
const COUNT_TIMEOUT_MS = 3000;

/** Refused items shown one by one; the rest are counted. */
export const MAX_REPORTED = 100;

const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})?)?$/;

/** A time option: ms since the epoch, or an ISO 8601 date or date-time (UTC unless it names an offset). */
export function parseTime(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const iso = ISO_TIME.exec(value);
  const ms = /^\d+$/.test(value) ? Number(value) : iso ? Date.parse(iso[1] === undefined && value.includes('T') ? `${value}Z` : value) : Number.NaN;
  if (!Number.isFinite(ms)) throw new Error(`--${name} must be ms since the epoch or an ISO date (2026-11-01, 2026-11-01T12:30Z), got "${value}"`);
  return ms;
}

function positiveNumber(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number ≥ 0, got "${value}"`);
  return n;
}

/** `--token`, or the first line of `--token-file` (e.g. the data directory's access-token); never printed. */
export function tokenFrom(values: { token?: string; 'token-file'?: string }): string | undefined {
  if (values.token !== undefined && values['token-file'] !== undefined) throw new Error('give --token or --token-file, not both');
  if (values['token-file'] === undefined) return values.token;
  const token = readFileSync(values['token-file'], 'utf8').split(/\r?\n/)[0]!.trim();
  if (!token) throw new Error(`--token-file ${values['token-file']} is empty`);
  return token;
}

/**
 * The store's log lines, on stderr (stdout carries the summary, or the
 * exported data), and at the default level none: the command reports what
 * went wrong itself. LOG_LEVEL=warn or lower shows them.
 */
function quietLogger(config: Config) {
  return createLogger({ logLevel: config.logLevel === 'info' ? 'fatal' : config.logLevel }, process.stderr);
}

/** The configured store; says plainly when the embedded one is held by a running service. */
async function openConfiguredStore(config: Config, log: ReturnType<typeof createLogger>): Promise<Store> {
  try {
    return await openStore(config, log);
  } catch (err) {
    if (!config.couchdbUrl && /IO error: lock/.test((err as Error).message)) {
      throw new Error(
        `the embedded store in ${config.dataDir} is in use by a running kpi-live: stop it first (it counts what was imported when it starts again), or run both on a CouchDB (COUCHDB_URL)`,
      );
    }
    throw err;
  }
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The one-line summary of an import. */
export function importSummaryLine(summary: ImportSummary, from: string): string {
  const fields = Object.entries(summary.refusedByField)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([field, n]) => `${field}: ${n}`)
    .join(', ');
  return (
    `import from ${from}: read ${plural(summary.read, 'blob')} in ${summary.seconds.toFixed(1)} s (${summary.ratePerSec.toFixed(0)}/s): ` +
    `stored ${summary.stored}, already there ${summary.alreadyThere}, refused ${summary.refused}${fields ? ` (${fields})` : ''}` +
    `${summary.outside ? `, outside the range ${summary.outside}` : ''}${summary.failed ? `, not written ${summary.failed}` : ''}`
  );
}

export async function importCommand(args: string[], io: Io = processIo()): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      'from-url': { type: 'string' },
      file: { type: 'string' },
      start: { type: 'string' },
      end: { type: 'string' },
      token: { type: 'string' },
      'token-file': { type: 'string' },
      'max-age-hours': { type: 'string' },
      'max-future-minutes': { type: 'string' },
      'source-label': { type: 'string' },
      batch: { type: 'string' },
      config: { type: 'string' },
    },
  });
  if ((values['from-url'] === undefined) === (values.file === undefined)) throw new Error('give either --from-url <base url> or --file <path|->');
  const token = tokenFrom(values);
  if (token !== undefined && values.file !== undefined) throw new Error('--token is for --from-url');
  const config = loadConfig(values.config ? { file: values.config } : {});
  const now = Date.now();
  const maxAgeHours = positiveNumber('max-age-hours', values['max-age-hours']);
  const maxFutureMinutes = positiveNumber('max-future-minutes', values['max-future-minutes']) ?? config.maxBlobFutureMinutes;
  const batch = positiveNumber('batch', values.batch);
  let start = parseTime('start', values.start);
  let end = parseTime('end', values.end);

  let source: AsyncIterable<SourceItem>;
  let from: string;
  if (values['from-url'] !== undefined) {
    const baseUrl = values['from-url'];
    try {
      new URL(baseUrl);
    } catch {
      throw new Error(`--from-url must be a URL, got "${redactUrl(baseUrl)}"`);
    }
    // Older than retention would be refused anyway; later than the future window too.
    start ??= Math.max(retentionCutoff(now, config.retentionDays), maxAgeHours !== undefined ? now - maxAgeHours * 3_600_000 : 0);
    end ??= now + maxFutureMinutes * 60_000 + 1;
    if (end <= start) throw new Error('--end must be after --start');
    source = rangeApiSource({ baseUrl, start, end, token });
    from = redactUrl(baseUrl);
  } else {
    if (start !== undefined && end !== undefined && end <= start) throw new Error('--end must be after --start');
    source = fileSource(values.file!);
    from = values.file === '-' ? 'stdin' : values.file!;
  }

  const log = quietLogger(config);
  const store = await openConfiguredStore(config, log);
  const stop = new AbortController();
  const interrupt = () => stop.abort();
  process.once('SIGINT', interrupt);
  let summary: ImportSummary;
  let reported = 0;
  try {
    const progress = new Progress({ label: 'import', unit: 'blobs', stream: io.stderr as NodeJS.WriteStream });
    summary = await importBlobs(source, {
      store,
      range: { start, end },
      maxAgeMs: maxAgeHours !== undefined ? maxAgeHours * 3_600_000 : undefined,
      maxFutureMs: maxFutureMinutes * 60_000,
      retentionDays: config.retentionDays,
      sourceLabel: values['source-label'],
      batchSize: batch !== undefined ? Math.max(1, Math.trunc(batch)) : undefined,
      signal: stop.signal,
      onProgress: (counts) => {
        progress.note(`stored ${counts.stored}, already there ${counts.alreadyThere}, refused ${counts.refused}`);
        progress.update(counts.read);
      },
      onRefused: (refusal) => {
        if (++reported <= MAX_REPORTED) progress.log(`kpi-live import: ${refusal.position}: ${refusal.field} ${refusal.message}`);
      },
    });
    progress.finish(summary.read);
  } finally {
    process.removeListener('SIGINT', interrupt);
    await store.close();
    await new Promise<void>((resolve) => log.flush(() => resolve()));
  }
  if (reported > MAX_REPORTED) io.stderr.write(`kpi-live import: ${reported - MAX_REPORTED} more not shown\n`);
  io.stdout.write(`${importSummaryLine(summary, from)}\n`);
  if (summary.error !== undefined) {
    io.stderr.write(
      `kpi-live import: stopped${summary.stoppedAfter ? ` after ${summary.stoppedAfter}` : ''}: ${summary.error}. ` +
        'Running the same import again is safe: nothing is stored twice.\n',
    );
  }
  return summary.error === undefined && summary.refused === 0 && summary.failed === 0 ? 0 : 1;
}

/**
 * About how many blobs the store holds in a range, for the progress bar:
 * the count view as it stands (`stale=ok`: a count must not make the store
 * build the view over every blob while the export reads them), or undefined.
 */
async function storeCount(store: Store, start: number | undefined, end: number | undefined): Promise<number | undefined> {
  try {
    return (await countBlobs(store, { start, end }, { stale: true, timeoutMs: COUNT_TIMEOUT_MS })) || undefined;
  } catch {
    return undefined;
  }
}

export async function exportCommand(args: string[], io: Io = processIo()): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      from: { type: 'string' },
      to: { type: 'string' },
      url: { type: 'string' },
      direct: { type: 'boolean', default: false },
      token: { type: 'string' },
      'token-file': { type: 'string' },
      out: { type: 'string' },
      config: { type: 'string' },
    },
  });
  const start = parseTime('from', values.from);
  const end = parseTime('to', values.to);
  if (start !== undefined && end !== undefined && end <= start) throw new Error('--to must be after --from');
  if (values.direct && values.url !== undefined) throw new Error('give --url or --direct, not both');
  const token = tokenFrom(values);
  if (values.direct && token !== undefined) throw new Error('--direct reads the store with the service configuration: it takes no token');
  const config = loadConfig(values.config ? { file: values.config } : {});

  // Written to <out>.partial first and renamed at the end: a file named
  // <out> is always a complete export.
  const partial = values.out !== undefined ? `${values.out}.partial` : undefined;
  const file = partial !== undefined ? createWriteStream(partial) : undefined;
  const out: Writable = file ?? io.data ?? process.stdout;
  const progressOf = (total: number | undefined) => new Progress({ label: 'export', unit: 'blobs', total, stream: io.stderr as NodeJS.WriteStream });
  let summary: ExportSummary;
  let progress: Progress;
  try {
    if (values.direct) {
      const log = quietLogger(config);
      const store = await openConfiguredStore(config, log);
      try {
        const shown = (progress = progressOf(await storeCount(store, start, end)));
        summary = await exportFromStore({ store, start, end, out, onProgress: (n) => shown.update(n) });
      } finally {
        await store.close();
        await new Promise<void>((resolve) => log.flush(() => resolve()));
      }
    } else {
      const url = values.url ?? `http://127.0.0.1:${config.port}`;
      const shown = (progress = progressOf(undefined));
      summary = await exportFromApi({ url, token, start, end, out, onProgress: (n) => shown.update(n) });
    }
    if (file) {
      file.end();
      await once(file, 'close');
      renameSync(partial!, values.out!);
    }
  } catch (err) {
    if (file) {
      file.destroy();
      rmSync(partial!, { force: true });
    }
    throw err;
  }
  progress.finish(summary.exported);
  io.stderr.write(
    `exported ${plural(summary.exported, 'blob')} (${(summary.bytes / 1e6).toFixed(1)} MB) in ${summary.seconds.toFixed(1)} s (${summary.ratePerSec.toFixed(0)}/s)` +
      `${values.out !== undefined ? ` to ${values.out}` : ''}\n`,
  );
  return 0;
}
