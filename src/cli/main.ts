/**
 * The `kpi-live` command: `serve` runs the service, `simulate` sends it
 * synthetic dialog traffic, `rebuild` recomputes the aggregate, `import` and
 * `export` move blobs in and out, `token` and `user` make credentials,
 * `config` lists the settings.
 */
import { verdictCommand } from './verdict.js';
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { blobCount, rebuild } from '../aggregate/runtime/rebuild.js';
import { aggregateSettings } from '../aggregate/runtime/settings.js';
import { newApiToken, userEntry } from '../auth/credentials.js';
import { ConfigError, configFields, loadConfig } from '../config/config.js';
import { createLogger } from '../logger.js';
import { runUntilSignalled } from '../server.js';
import { parseBreaks } from '../simulate/generator.js';
import { simulate } from '../simulate/run.js';
import { openStore } from '../store/store.js';
import { Progress } from './progress.js';
import { exportCommand, importCommand } from './transfer.js';

const USAGE = `kpi-live: live KPIs from sign-in dialog interaction data

Usage:
  kpi-live serve [--config <file.json>]
      Run the service (ingest, read API, health). Without COUCHDB_URL it
      starts an embedded CouchDB-compatible store in ./data.
  kpi-live simulate [--url <service>] [--rate <blobs/s>] [--duration <s>]
                    [--seed <n>] [--break <event>=<stop chance>]...
                    [--batch <blobs per POST>] [--concurrency <n>] [--spread-hours <h>]
      Post synthetic dialog sessions through the HTTP API, then print a summary.
      Example of a bad deploy: --break user.user_staged=0.8 (any step of any
      script; --break screen.error=<chance> sets the chance of an error screen)
  kpi-live rebuild [--config <file.json>] [--dry-run]
      Recompute every KPI aggregate from the stored blobs and replace the
      checkpoint atomically (a running service reloads from it). --dry-run
      only recomputes and prints totals.
  kpi-live import (--from-url <base url> [--token <t> | --token-file <path>] | --file <path|->)
                  [--start <ms|ISO>] [--end <ms|ISO>] [--max-age-hours <h>]
                  [--max-future-minutes <m>] [--source-label <name>]
                  [--batch <blobs per write>] [--config <file.json>]
      Load blobs into the configured store from a range API (the original
      store's JSON arrays, or another kpi-live's NDJSON pages; --start
      defaults to the retention cutoff, --end to now) or from an NDJSON file
      (- for stdin). Each blob is validated as ingest does; blobs older than
      --max-age-hours (default: no limit), further ahead than
      --max-future-minutes (default KPI_MAX_BLOB_FUTURE_MINUTES) or already
      past KPI_RETENTION_DAYS are refused. Refused lines are reported and
      skipped. Re-running an import stores nothing twice. Exit 0 when every
      blob read is stored or already there, 1 otherwise.
  kpi-live export [--from <ms|ISO>] [--to <ms|ISO>] [--out <file>]
                  [--url <service>] [--token <t> | --token-file <path>]
  kpi-live export --direct [--from …] [--to …] [--out <file>] [--config <file.json>]
      Write the stored blobs of [from, to) as NDJSON (stdout without --out),
      through the service's read API (default http://127.0.0.1:PORT, with an
      API token), or with --direct straight from the configured store.
  kpi-live verdict [--deploy <id|latest>] [--wait <duration>] [--every <duration>]
                   [--url <service>] [--token <t> | --token-file <path>]
      Did this deploy break sign-ups? Asks the service for the deploy's
      verdict (default the latest), once or, with --wait 15m, every --every
      (10s) until it is healthy or broken. Exit 0 healthy, 1 broken, 2 still
      undecided at the deadline, 3 no verdict (unknown deploy, no access,
      service unreachable). A rollback gate for CI/CD.
  kpi-live token
      Make an API token for a machine (CI/CD, scripts): prints the token once,
      and the digest to add to KPI_API_TOKENS (the service keeps only that).
  kpi-live user <name>
      Make a dashboard user: reads the password from stdin, prints the entry
      to add to KPI_USERS (name and scrypt hash; never the password).
  kpi-live config [--markdown]
      List the settings (environment variables) and their defaults.
`;

function number(name: string, value: string | undefined, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number ≥ ${min}, got "${value}"`);
  return n;
}

async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' } }, strict: true });
  const config = loadConfig(values.config ? { file: values.config } : {});
  const log = createLogger(config);
  let code: number;
  try {
    code = await runUntilSignalled(config, log);
  } catch (err) {
    log.fatal({ err: { type: (err as Error).name, message: (err as Error).message } }, 'kpi-live could not start');
    code = 1;
  }
  // pino writes asynchronously; the command exits right after this returns.
  await new Promise<void>((resolve) => log.flush(() => resolve()));
  return code;
}

async function simulateCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      url: { type: 'string', default: 'http://127.0.0.1:3434' },
      rate: { type: 'string' },
      duration: { type: 'string' },
      seed: { type: 'string' },
      break: { type: 'string', multiple: true, default: [] },
      batch: { type: 'string' },
      concurrency: { type: 'string' },
      'spread-hours': { type: 'string' },
    },
  });
  const seed = values.seed !== undefined ? Math.trunc(number('seed', values.seed, 0)) : randomInt(2 ** 31);
  const summary = await simulate({
    url: values.url,
    rate: number('rate', values.rate, 50, 0.001),
    durationSeconds: number('duration', values.duration, 10, 0.001),
    seed,
    breaks: parseBreaks(values.break),
    batch: Math.trunc(number('batch', values.batch, 1, 1)),
    concurrency: Math.trunc(number('concurrency', values.concurrency, 64, 1)),
    spreadHours: number('spread-hours', values['spread-hours'], 0),
  });
  const statuses = Object.entries(summary.byStatus)
    .map(([status, n]) => `${status}: ${n}`)
    .join(', ');
  process.stdout.write(
    `sent ${summary.sent} blobs in ${summary.seconds.toFixed(1)} s (${summary.ratePerSec.toFixed(0)}/s): ` +
      `accepted ${summary.accepted}, rejected ${summary.rejected}, failed ${summary.failed} [${statuses}] (seed ${summary.seed})\n`,
  );
  return summary.failed > 0 || summary.rejected > 0 ? 2 : 0;
}

async function rebuildCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' }, 'dry-run': { type: 'boolean', default: false } }, strict: true });
  const config = loadConfig(values.config ? { file: values.config } : {});
  const log = createLogger({ logLevel: config.logLevel === 'info' ? 'warn' : config.logLevel });
  const store = await openStore(config, log);
  try {
    const total = await blobCount(store, store.blobsDb);
    const progress = new Progress({ label: 'rebuild', total, unit: 'changes' });
    const result = await rebuild({
      ...aggregateSettings(config, store, log),
      onProgress: (n) => progress.update(n),
      dryRun: values['dry-run'],
    });
    progress.finish(result.changesRead);
    process.stdout.write(
      `rebuilt from ${result.changesRead} changes: ${result.counted} blobs counted in ${result.state.buckets.size} buckets` +
        `${values['dry-run'] ? ' (dry run: checkpoint left alone)' : '; checkpoint replaced'}\n`,
    );
    return 0;
  } finally {
    await store.close();
    await new Promise<void>((resolve) => log.flush(() => resolve()));
  }
}

function listConfig(args: string[]): number {
  const { values } = parseArgs({ args, options: { markdown: { type: 'boolean', default: false } }, strict: true });
  if (values.markdown) process.stdout.write('| variable | default | what |\n| --- | --- | --- |\n');
  for (const [key, spec] of Object.entries(configFields)) {
    const fallback = 'default' in spec ? JSON.stringify(spec.default) : '(unset)';
    if (values.markdown) process.stdout.write(`| \`${spec.env}\` | ${fallback === '(unset)' ? fallback : `\`${fallback}\``} | ${spec.doc} |\n`);
    else process.stdout.write(`${spec.env.padEnd(28)} ${fallback.padEnd(12)} ${spec.doc} [${key}]\n`);
  }
  return 0;
}

function tokenCommand(): number {
  const { token, digest } = newApiToken();
  process.stderr.write('API token (shown once; give it to the machine that reads):\n');
  process.stdout.write(`${token}\n`);
  process.stderr.write(`Add its digest to KPI_API_TOKENS (comma-separated):\n${digest}\n`);
  return 0;
}

async function userCommand(args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, strict: true });
  if (positionals.length !== 1) throw new Error('usage: kpi-live user <name> (password on stdin)');
  if (process.stdin.isTTY) process.stderr.write(`Password for ${positionals[0]} (then Enter): `);
  let input = '';
  for await (const chunk of process.stdin) {
    input += String(chunk);
    if (input.includes('\n')) break;
  }
  const password = input.split(/\r?\n/)[0] ?? '';
  if (password.length < 12) throw new Error('the password must have at least 12 characters');
  process.stdout.write(`${userEntry(positionals[0]!, password)}\n`);
  process.stderr.write('Add this entry to KPI_USERS (comma-separated).\n');
  return 0;
}

const COMMANDS = ['serve', 'simulate', 'rebuild', 'import', 'export', 'verdict', 'token', 'user', 'config'] as const;

/** The part of the usage that tells of `command` (all its forms); the whole usage for an unknown one. */
export function usageOf(command: string): string {
  if (!(COMMANDS as readonly string[]).includes(command)) return USAGE;
  const [head, ...entries] = USAGE.split(/\n(?= {2}kpi-live )/);
  const own = entries.filter((entry) => entry.startsWith(`  kpi-live ${command}`));
  return `${head!.replace(/\n+Usage:$/, '')}\n\nUsage:\n${own.join('\n').trimEnd()}\n`;
}

/** True when the arguments ask for help (`--help` or `-h`, before any `--`). */
const asksForHelp = (args: string[]) => {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).some((arg) => arg === '--help' || arg === '-h');
};

/** Runs the command line; resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command && (COMMANDS as readonly string[]).includes(command) && asksForHelp(rest)) {
    process.stdout.write(usageOf(command));
    return 0;
  }
  if (command === 'help' && rest[0]) {
    process.stdout.write(usageOf(rest[0]));
    return (COMMANDS as readonly string[]).includes(rest[0]) ? 0 : 1;
  }
  try {
    switch (command) {
      case 'serve':
        return await serve(rest);
      case 'simulate':
        return await simulateCommand(rest);
      case 'rebuild':
        return await rebuildCommand(rest);
      case 'import':
        return await importCommand(rest);
      case 'export':
        return await exportCommand(rest);
      case 'verdict':
        return await verdictCommand(rest);
      case 'token':
        return tokenCommand();
      case 'user':
        return await userCommand(rest);
      case 'config':
        return listConfig(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return command === undefined ? 1 : 0;
      default:
        process.stderr.write(`kpi-live: unknown command "${command}"\n\n${USAGE}`);
        return 1;
    }
  } catch (err) {
    const message = err instanceof ConfigError || err instanceof TypeError || err instanceof Error ? err.message : String(err);
    process.stderr.write(`kpi-live ${command}: ${message}\n`);
    return 1;
  }
}
