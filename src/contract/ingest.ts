/**
 * The contract between the service and the dashboard, part 3: what ingest
 * reports of itself (`GET /api/ingest-stats`), and the check the dashboard
 * runs on an answer before it shows it.
 */

/** What ingest did since this instance started. */
export interface IngestStats {
  since: number;
  /** Blobs stored. */
  accepted: number;
  /** Requests acknowledged and not stored: `DNT: 1` / `Sec-GPC: 1`. */
  optedOut: number;
  /** Blobs not stored by the server's sample rate. */
  sampledOut: number;
  /** Requests refused with a 4xx (bad input, origin, nonce, size, rate). */
  rejected: number;
}

const FIELDS = ['since', 'accepted', 'optedOut', 'sampledOut', 'rejected'] as const;

/** True for a value of the {@link IngestStats} shape (every field a number). */
export const isIngestStats = (value: unknown): value is IngestStats =>
  typeof value === 'object' && value !== null && FIELDS.every((k) => typeof (value as Record<string, unknown>)[k] === 'number');

/** The JSON schema of {@link IngestStats}: every field required, nothing else sent. */
export const ingestStatsSchema = {
  type: 'object',
  additionalProperties: false,
  required: [...FIELDS],
  properties: Object.fromEntries(FIELDS.map((field) => [field, { type: 'integer', minimum: 0 }])),
} as const;
