/**
 * kpi-live's one typed configuration, validated once at start-up.
 *
 * Sources, later ones winning: built-in defaults, an optional JSON config file
 * (`KPI_CONFIG` or `--config`), then environment variables. Every value is
 * checked against a JSON schema built from the table below; a bad value stops
 * start-up with a message that names the variable (or config-file key) at
 * fault. Nothing else in kpi-live reads `process.env`.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Ajv, type ErrorObject } from 'ajv';
import type { Thresholds } from '../contract/kpis.js';
import { checkThresholds, InvalidThresholdsError } from '../alerts/thresholds.js';

type FieldType = 'integer' | 'number' | 'string' | 'boolean' | 'string-list' | 'proxies';

interface FieldSpec {
  readonly env: string;
  readonly type: FieldType;
  readonly default?: unknown;
  readonly minimum?: number;
  readonly maximum?: number;
  /** Shortest accepted string (1 unless set). */
  readonly minLength?: number;
  readonly enum?: readonly string[];
  /** A secret is never logged nor echoed back in an error message. */
  readonly secret?: boolean;
  readonly doc: string;
}

/** The configuration table; docs/configuration.md's table is written from the same facts. */
export const configFields = {
  host: { env: 'HOST', type: 'string', default: '127.0.0.1', doc: 'Address the HTTP server binds to (`0.0.0.0` in a container).' },
  port: { env: 'PORT', type: 'integer', default: 3434, minimum: 0, maximum: 65535, doc: 'HTTP port (3434, like the original dashboard).' },
  logLevel: { env: 'LOG_LEVEL', type: 'string', default: 'info', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], doc: 'pino log level.' },
  trustProxy: {
    env: 'KPI_TRUST_PROXY',
    type: 'proxies',
    default: false,
    doc: "Addresses and CIDRs of the proxies in front of kpi-live, whose `X-Forwarded-For` and `X-Forwarded-Proto` it believes (`10.0.0.0/8,192.168.1.7`; also `loopback`, `linklocal`, `uniquelocal`): the client is the right-most address that is not one of them. `false`: none, the socket's address is the client's. `true` and hop counts are refused: `true` takes the left-most entry, which any client writes, and a count cannot tell a proxy from a client that connects directly.",
  },

  couchdbUrl: { env: 'COUCHDB_URL', type: 'string', secret: true, doc: 'CouchDB 3 base URL. Unset: an embedded pouchdb-server is started.' },
  couchdbUser: { env: 'COUCHDB_USER', type: 'string', doc: 'CouchDB user, when not given in the URL.' },
  couchdbPassword: { env: 'COUCHDB_PASSWORD', type: 'string', secret: true, doc: 'CouchDB password, when not given in the URL.' },
  couchdbTimeoutMs: { env: 'KPI_COUCHDB_TIMEOUT_MS', type: 'integer', default: 10000, minimum: 100, doc: 'Timeout of one request to CouchDB.' },
  dbName: { env: 'KPI_DB', type: 'string', default: 'kpi_blobs', doc: 'Database holding the interaction blobs.' },
  dataDir: { env: 'KPI_DATA_DIR', type: 'string', default: './data', doc: 'Data directory of the embedded store.' },

  maxBlobsPerRequest: {
    env: 'KPI_MAX_BLOBS_PER_REQUEST',
    type: 'integer',
    default: 100,
    minimum: 1,
    maximum: 10000,
    doc: 'Largest array of blobs one POST may carry (more: 413).',
  },
  bodyLimitBytes: { env: 'KPI_BODY_LIMIT_BYTES', type: 'integer', default: 1048576, minimum: 1024, doc: 'Largest ingest body (more: 413).' },
  maxBlobAgeHours: {
    env: 'KPI_MAX_BLOB_AGE_HOURS',
    type: 'number',
    default: 720,
    minimum: 0,
    doc: 'Oldest accepted blob timestamp, in hours before now (clients retry for days).',
  },
  maxBlobFutureMinutes: {
    env: 'KPI_MAX_BLOB_FUTURE_MINUTES',
    type: 'number',
    default: 1440,
    minimum: 0,
    doc: 'Latest accepted blob timestamp, in minutes after now (client clock skew).',
  },
  rateLimitMax: {
    env: 'KPI_RATE_LIMIT_MAX',
    type: 'integer',
    default: 6000,
    minimum: 1,
    doc: 'Ingest requests per client address per window (more: 429). Dialogs behind one NAT share an address.',
  },
  rateLimitWindowMs: { env: 'KPI_RATE_LIMIT_WINDOW_MS', type: 'integer', default: 60000, minimum: 1000, doc: 'Rate-limit window.' },

  commitBatchMaxDocs: {
    env: 'KPI_COMMIT_BATCH_DOCS',
    type: 'integer',
    default: 500,
    minimum: 1,
    doc: 'Group commit: flush when this many blobs wait (1 turns group commit off).',
  },
  commitMaxWaitMs: {
    env: 'KPI_COMMIT_WAIT_MS',
    type: 'integer',
    default: 5,
    minimum: 0,
    doc: 'Group commit: flush at the latest this long after the first waiting blob.',
  },
  commitMaxInFlight: { env: 'KPI_COMMIT_IN_FLIGHT', type: 'integer', default: 2, minimum: 1, doc: 'Group commit: `_bulk_docs` writes running at once.' },
  commitMaxQueuedDocs: {
    env: 'KPI_COMMIT_QUEUE_DOCS',
    type: 'integer',
    default: 20000,
    minimum: 1,
    doc: 'Blobs waiting for a write at most; beyond it ingest answers 503.',
  },
  retryAfterSeconds: { env: 'KPI_RETRY_AFTER_SECONDS', type: 'integer', default: 30, minimum: 1, doc: '`Retry-After` sent with 503 answers.' },

  aggregatesDb: { env: 'KPI_AGGREGATES_DB', type: 'string', doc: 'Database of the aggregate checkpoint. Unset: `<KPI_DB>_aggregates`.' },
  feedBatchSize: { env: 'KPI_FEED_BATCH', type: 'integer', default: 1000, minimum: 1, maximum: 10000, doc: 'Changes read from `_changes` per request.' },
  feedLongpollMs: { env: 'KPI_FEED_LONGPOLL_MS', type: 'integer', default: 25000, minimum: 100, doc: 'How long a caught-up feed request waits for a change.' },
  checkpointEveryChanges: {
    env: 'KPI_CHECKPOINT_CHANGES',
    type: 'integer',
    default: 5000,
    minimum: 1,
    doc: 'Checkpoint the aggregate after this many changes…',
  },
  checkpointEveryMs: { env: 'KPI_CHECKPOINT_MS', type: 'integer', default: 5000, minimum: 10, doc: '…or this long after the first change not yet saved.' },
  tenMinuteHours: {
    env: 'KPI_10M_BUCKET_HOURS',
    type: 'number',
    default: 48,
    minimum: 1,
    doc: 'Keep 10-minute buckets for this many hours behind the latest blob.',
  },
  hourlyDays: { env: 'KPI_HOURLY_BUCKET_DAYS', type: 'number', default: 35, minimum: 1, doc: 'Keep hourly buckets for this many days; daily beyond.' },
  segmentsFile: { env: 'KPI_SEGMENTS_FILE', type: 'string', doc: 'JSON file of segment lists and aliases. Unset: the built-in ones.' },

  streamCoalesceMs: {
    env: 'KPI_STREAM_COALESCE_MS',
    type: 'integer',
    default: 250,
    minimum: 10,
    doc: 'Live stream: at most one update per client this often.',
  },
  streamMaxBufferBytes: {
    env: 'KPI_STREAM_MAX_BUFFER_BYTES',
    type: 'integer',
    default: 1048576,
    minimum: 1024,
    doc: 'Live stream: unsent bytes per client before its updates are dropped for a snapshot later.',
  },
  streamHeartbeatMs: {
    env: 'KPI_STREAM_HEARTBEAT_MS',
    type: 'integer',
    default: 15000,
    minimum: 100,
    doc: 'Live stream: ping interval; a client missing one is dropped.',
  },
  streamHelloTimeoutMs: {
    env: 'KPI_STREAM_HELLO_MS',
    type: 'integer',
    default: 5000,
    minimum: 100,
    doc: 'Live stream: a socket that has not sent its `hello` by then is closed (4408).',
  },
  streamMaxUngreetedPerAddress: {
    env: 'KPI_STREAM_MAX_UNGREETED_PER_ADDRESS',
    type: 'integer',
    default: 8,
    minimum: 1,
    doc: 'Live stream: sockets one client address may hold open before their `hello`; one more is closed at once (4429).',
  },

  thresholds: {
    env: 'KPI_THRESHOLDS',
    type: 'string',
    default: '{}',
    doc: 'Default alert thresholds as JSON, e.g. `{"bounceRate":{"max":0.7},"new-user.step2":{"min":0.5}}`: tile ids (newUsers, newUserDropOff, sitesMedian, resetSuccess, additionalEmail, bounceRate, errorRate) or funnel steps (`new-user.step2`…`4`, `password-reset.step2`…`3`); shares in [0, 1]. `PUT /api/thresholds` replaces them.',
  },

  apiTokens: {
    env: 'KPI_API_TOKENS',
    type: 'string-list',
    default: [],
    secret: true,
    doc: 'Comma-separated SHA-256 digests (`sha256:<hex>`) of API tokens for machines; `kpi-live token` makes one.',
  },
  users: {
    env: 'KPI_USERS',
    type: 'string-list',
    default: [],
    secret: true,
    doc: 'Comma-separated dashboard users as `name:scrypt:…` password hashes; `kpi-live user <name>` makes one.',
  },
  sessionSecret: {
    env: 'KPI_SESSION_SECRET',
    type: 'string',
    minLength: 32,
    secret: true,
    doc: 'Key signing session cookies (32+ characters; the same on every instance). Unset: one kept in the data directory.',
  },
  sessionHours: { env: 'KPI_SESSION_HOURS', type: 'number', default: 12, minimum: 0.01, maximum: 720, doc: 'A dashboard sign-in lasts this long.' },
  trustLoopback: {
    env: 'KPI_TRUST_LOOPBACK',
    type: 'boolean',
    default: false,
    doc: 'Let loopback clients read without signing in (single-user development only: never behind a proxy on the same host).',
  },

  ingestOrigins: {
    env: 'KPI_INGEST_ORIGINS',
    type: 'string-list',
    default: [],
    doc: 'Comma-separated origins whose pages may post blobs (others: 403). None: any origin.',
  },
  ingestNonceSecret: {
    env: 'KPI_INGEST_NONCE_SECRET',
    type: 'string',
    minLength: 32,
    secret: true,
    doc: 'When set, ingest needs a signed nonce from `GET /wsapi/interaction_nonce` in the `csrf` field (32+ characters).',
  },
  respectOptOut: {
    env: 'KPI_RESPECT_OPT_OUT',
    type: 'boolean',
    default: true,
    doc: 'A request with `DNT: 1` or `Sec-GPC: 1` is acknowledged and not stored.',
  },
  sampleRate: {
    env: 'KPI_SAMPLE_RATE',
    type: 'number',
    default: 1,
    minimum: 0.0001,
    maximum: 1,
    doc: "Server-side sample rate on top of the client's `sample_rate` (deterministic per blob); counts become estimates.",
  },
  retentionDays: {
    env: 'KPI_RETENTION_DAYS',
    type: 'number',
    default: 90,
    minimum: 1,
    doc: 'Raw blobs older than this are removed; aggregates stay.',
  },
  retentionIntervalMinutes: {
    env: 'KPI_RETENTION_INTERVAL_MINUTES',
    type: 'number',
    default: 60,
    minimum: 0.01,
    doc: 'How often expired blobs are looked for.',
  },

  alertWebhookUrl: {
    env: 'KPI_ALERT_WEBHOOK_URL',
    type: 'string',
    secret: true,
    doc: 'URL that gets a JSON POST when a threshold is breached and when it clears. Unset: alerts show on the dashboard only.',
  },
  alertWindowMinutes: {
    env: 'KPI_ALERT_WINDOW_MINUTES',
    type: 'number',
    default: 60,
    minimum: 10,
    doc: 'Alerts judge each KPI over this trailing window.',
  },
  alertHysteresis: {
    env: 'KPI_ALERT_HYSTERESIS',
    type: 'number',
    default: 0.1,
    minimum: 0,
    maximum: 1,
    doc: 'A breach clears only once the value is back inside the threshold by this fraction of it.',
  },
  alertMinDialogs: {
    env: 'KPI_ALERT_MIN_DIALOGS',
    type: 'integer',
    default: 20,
    minimum: 0,
    doc: 'No alert is judged on fewer dialogs than this in the window.',
  },

  metricsPublic: {
    env: 'KPI_METRICS_PUBLIC',
    type: 'boolean',
    default: false,
    doc: 'Serve `GET /metrics` to anyone (a scraper on a private network). Off: it needs a reader, e.g. an API token as `Authorization: Bearer`.',
  },
  readyMaxLagSeconds: {
    env: 'KPI_READY_MAX_LAG_SECONDS',
    type: 'number',
    default: 60,
    minimum: 1,
    doc: '`GET /health/ready` answers 503 once the aggregate has been behind the feed for this long.',
  },

  instanceId: {
    env: 'KPI_INSTANCE_ID',
    type: 'string',
    doc: 'Names this instance in the aggregate follower lease; unique per running instance. Unset: host name, process id and a random suffix.',
  },
  leaseTtlMs: {
    env: 'KPI_LEASE_TTL_MS',
    type: 'integer',
    default: 15000,
    minimum: 3000,
    doc: 'The aggregate follower lease lasts this long unless renewed (every third of it); a standby takes over within about this plus 5 s after the follower dies.',
  },
  publicView: {
    env: 'KPI_PUBLIC_VIEW',
    type: 'boolean',
    default: false,
    doc: 'Serve the public view of the aggregates to anyone: `GET /api/public/kpis` (hourly and daily, small numbers withheld). Off: it answers 404.',
  },
  publicMinCount: {
    env: 'KPI_PUBLIC_MIN_COUNT',
    type: 'integer',
    default: 20,
    minimum: 5,
    doc: 'The public view shows no number resting on fewer dialogs than this (a cell, a count, either side of a rate).',
  },
  publicRateLimitMax: {
    env: 'KPI_PUBLIC_RATE_LIMIT_MAX',
    type: 'integer',
    default: 600,
    minimum: 1,
    doc: 'Public-view requests per client address per minute (more: 429).',
  },
  role: {
    env: 'KPI_ROLE',
    type: 'string',
    default: 'auto',
    enum: ['auto', 'standby'],
    doc: 'With a shared store (`COUCHDB_URL`): `auto` takes part in electing the one instance that follows `_changes` and writes the aggregate (alone, it is elected at once); `standby` never follows and serves the published aggregate. With the embedded store the instance is the only follower and holds no lease, and `standby` is refused.',
  },
} as const satisfies Record<string, FieldSpec>;

type Fields = typeof configFields;
type ValueOf<S extends FieldSpec> = S['type'] extends 'integer' | 'number'
  ? number
  : S['type'] extends 'proxies'
    ? TrustedProxies
    : S['type'] extends 'boolean'
      ? boolean
      : S['type'] extends 'string-list'
        ? string[]
        : string;

/** The validated configuration. Fields without a default may be absent. */
export type Config = {
  readonly [K in keyof Fields as Fields[K] extends { default: unknown } ? K : never]: ValueOf<Fields[K]>;
} & {
  readonly [K in keyof Fields as Fields[K] extends { default: unknown } ? never : K]?: ValueOf<Fields[K]>;
};

/**
 * Whom kpi-live believes about the client's address (Fastify's `trustProxy`):
 * nobody (`false`), or the proxies at these addresses/CIDRs.
 */
export type TrustedProxies = false | string[];

/** Raised when configuration is invalid; its message names the field at fault. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

function jsonSchemaOf(spec: FieldSpec): Record<string, unknown> {
  const schema: Record<string, unknown> =
    spec.type === 'string-list'
      ? { type: 'array', items: { type: 'string', minLength: 1 } }
      : spec.type === 'proxies'
        ? { type: ['boolean', 'integer', 'string'] }
        : { type: spec.type };
  if (spec.minimum !== undefined) schema.minimum = spec.minimum;
  if (spec.maximum !== undefined) schema.maximum = spec.maximum;
  if ('enum' in spec && spec.enum) schema.enum = spec.enum;
  if (spec.type === 'string') schema.minLength = spec.minLength ?? 1;
  return schema;
}

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: Object.fromEntries(Object.entries(configFields).map(([key, spec]) => [key, jsonSchemaOf(spec)])),
};

const ajv = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true });
const validate = ajv.compile(schema);

/** Reads an environment string into the field's type; JSON schema checks the rest. */
function fromEnv(spec: FieldSpec, raw: string): unknown {
  const text = raw.trim();
  switch (spec.type) {
    case 'integer':
    case 'number':
      return text === '' ? raw : Number(text);
    case 'boolean':
      if (/^(1|true|yes|on)$/i.test(text)) return true;
      if (/^(0|false|no|off)$/i.test(text)) return false;
      return raw;
    case 'string-list':
      return text === ''
        ? []
        : text
            .split(',')
            .map((s) => s.trim())
            .filter((s) => s.length > 0);
    default:
      return text;
  }
}

function describe(key: string, origin: Map<string, string>, error: ErrorObject): string {
  const spec = (configFields as Record<string, FieldSpec>)[key];
  const where = origin.get(key) ?? `config key "${key}"`;
  const shown = spec?.secret ? '' : ` (${JSON.stringify(error.data)})`;
  return `invalid configuration: ${where} ${error.message ?? 'is invalid'}${shown}`;
}

export interface LoadOptions {
  /** Environment to read; defaults to `process.env`. */
  env?: Record<string, string | undefined>;
  /** Config file path; defaults to `KPI_CONFIG` from the environment. */
  file?: string;
  /** Values that win over every other source (tests, CLI flags). */
  overrides?: Partial<Record<keyof Fields, unknown>>;
}

/**
 * Loads and validates the configuration.
 *
 * @example
 * const config = loadConfig({ env: { PORT: '8080' } });
 * config.port; // 8080
 * @throws {ConfigError} naming the variable or key whose value is invalid.
 */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const origin = new Map<string, string>();
  const merged: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(configFields) as [string, FieldSpec][]) {
    if (spec.default !== undefined) merged[key] = structuredClone(spec.default);
  }

  const file = options.file ?? env.KPI_CONFIG;
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      // JSON.parse's message may quote the text around the fault, and the
      // file holds secrets: say where, never what.
      throw new ConfigError(`config file ${file} is not valid JSON${syntaxErrorPlace(text, err as Error)}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError(`config file ${file} must hold a JSON object`);
    }
    for (const [key, value] of Object.entries(parsed)) {
      merged[key] = value;
      origin.set(key, `config file ${file}, key "${key}",`);
    }
  }

  for (const [key, spec] of Object.entries(configFields) as [string, FieldSpec][]) {
    const raw = env[spec.env];
    if (raw === undefined) continue;
    if (raw.trim() === '' && spec.default === undefined) continue;
    merged[key] = fromEnv(spec, raw);
    origin.set(key, spec.env);
  }

  for (const [key, value] of Object.entries(options.overrides ?? {})) {
    if (value === undefined) continue;
    merged[key] = value;
    origin.set(key, `option "${key}"`);
  }

  if (!validate(merged)) {
    const error = validate.errors![0]!;
    if (error.keyword === 'additionalProperties') {
      const extra = (error.params as { additionalProperty: string }).additionalProperty;
      throw new ConfigError(`invalid configuration: unknown key "${extra}" (${origin.get(extra) ?? 'config'})`);
    }
    const key = error.instancePath.split('/')[1] ?? '';
    throw new ConfigError(describe(key, origin, error));
  }
  merged.trustProxy = parseTrustedProxies(merged.trustProxy, origin.get('trustProxy') ?? 'KPI_TRUST_PROXY');
  const config = merged as Config;
  parseThresholds(config.thresholds);
  if (config.tenMinuteHours >= config.hourlyDays * 24) {
    throw new ConfigError('invalid configuration: KPI_10M_BUCKET_HOURS must be shorter than KPI_HOURLY_BUCKET_DAYS');
  }
  if (config.role === 'standby' && config.couchdbUrl === undefined) {
    throw new ConfigError(
      'invalid configuration: KPI_ROLE=standby needs a store other instances share (COUCHDB_URL): the embedded store has no follower to stand by for',
    );
  }
  if (config.couchdbUrl !== undefined) {
    let url: URL;
    try {
      url = new URL(config.couchdbUrl);
    } catch {
      throw new ConfigError('invalid configuration: COUCHDB_URL is not a URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ConfigError('invalid configuration: COUCHDB_URL must be an http: or https: URL');
    }
  }
  return Object.freeze(config);
}

/** Named address ranges proxy-addr (Fastify's trustProxy) knows. */
const PROXY_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

function isAddressOrCidr(entry: string): boolean {
  if (PROXY_RANGES.has(entry)) return true;
  const [address, bits, ...rest] = entry.split('/');
  const family = isIP(address ?? '');
  if (family === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

/**
 * `KPI_TRUST_PROXY` read into whom to believe. `true` is refused: Fastify
 * would then take the left-most `X-Forwarded-For` entry, which the client
 * writes itself, so every request could pick its own address (and its own
 * rate limit). A hop count is refused too: it cannot tell the proxy from a
 * client that reaches kpi-live directly and writes enough hops itself
 * (Fastify 5 trusts nobody when given one). Only the proxies' own addresses
 * say who appended an entry.
 */
export function parseTrustedProxies(value: unknown, where = 'KPI_TRUST_PROXY'): TrustedProxies {
  const text = typeof value === 'string' ? value.trim().toLowerCase() : value;
  if (text === false || text === 0 || text === '' || (typeof text === 'string' && /^(0|false|no|off)$/.test(text))) return false;
  if (text === true || (typeof text === 'string' && /^(true|yes|on)$/.test(text))) {
    throw new ConfigError(
      `invalid configuration: ${where} may not be "true" (it would believe any X-Forwarded-For a client writes): give the addresses or CIDRs of the proxies in front of kpi-live (e.g. 10.0.0.0/8 or loopback)`,
    );
  }
  if (typeof text === 'number' || (typeof text === 'string' && /^\d+$/.test(text))) {
    throw new ConfigError(
      `invalid configuration: ${where} takes the proxies' addresses or CIDRs (e.g. 10.0.0.0/8 or loopback), not a number of hops: a count cannot tell a proxy from a client that connects directly`,
    );
  }
  const entries = String(value)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const bad = entries.findIndex((e) => !isAddressOrCidr(e));
  if (bad >= 0) {
    throw new ConfigError(
      `invalid configuration: ${where} entry ${bad + 1} ("${entries[bad]!.slice(0, 64)}") is not an IP address, a CIDR, loopback, linklocal or uniquelocal`,
    );
  }
  return entries;
}

/** Where in `text` a JSON syntax error lies (` at line L, column C`), when the engine says. */
function syntaxErrorPlace(text: string, err: Error): string {
  const at = /position (\d+)/.exec(err.message);
  if (!at) return '';
  const position = Math.min(Number(at[1]), text.length);
  const before = text.slice(0, position);
  const line = before.split('\n').length;
  const column = position - (before.lastIndexOf('\n') + 1) + 1;
  return ` at line ${line}, column ${column}`;
}

/**
 * The alert thresholds of the configuration, checked like `PUT /api/thresholds`
 * checks them (keys: tile KPI ids and funnel steps such as `new-user.step3`);
 * throws a ConfigError naming what is wrong.
 */
export function parseThresholds(text: string): Thresholds {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ConfigError('invalid configuration: KPI_THRESHOLDS is not JSON');
  }
  try {
    return checkThresholds(parsed, 'KPI_THRESHOLDS');
  } catch (err) {
    if (err instanceof InvalidThresholdsError) throw new ConfigError(`invalid configuration: ${err.message}`);
    throw err;
  }
}

/** The configuration with secrets masked, fit for a log line. */
export function redactedConfig(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    const spec = (configFields as Record<string, FieldSpec>)[key];
    if (value === undefined) continue;
    if (key === 'couchdbUrl') out[key] = redactUrl(String(value));
    else if (spec?.secret) out[key] = Array.isArray(value) ? `[${value.length} hidden]` : '[hidden]';
    else out[key] = value;
  }
  return out;
}

/** A URL without its user and password, for logs and messages. */
export function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    url.username = '';
    url.password = '';
    return url.toString();
  } catch {
    return '[unparseable url]';
  }
}
