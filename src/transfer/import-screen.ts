/**
 * What the importer makes of one source item, before any store request:
 * outside the asked range, refused (with the field at fault), or a blob
 * ready to store. Pure: ingest's one validation ({@link normalizeBlob})
 * with the import's own age window, plus the retention cutoff.
 */
import { BlobFieldError, normalizeBlob, type BlobDoc, type NormalizeContext } from '../ingest/blob.js';
import { timeKey } from '../store/blob-ids.js';
import { blobDigest } from './import-ids.js';
import type { SourceItem } from './sources.js';

/** A valid blob on its way to the store. */
export interface Pending {
  doc: BlobDoc;
  digest: string;
  bucket: number;
  position: string;
  /** A write of it may have reached the store (the request failed without an answer). */
  attempted?: boolean;
}

export type Screened = { kind: 'outside' } | { kind: 'refused'; field: string; message: string } | { kind: 'blob'; pending: Pending };

export interface ScreenRules {
  /** Timestamps as sent in [start, end) are imported; others are outside. */
  start: number;
  end: number;
  /** ingest's context: now and the age and future windows. */
  context: NormalizeContext;
  /** Blobs of buckets before it are refused (a retention pass would remove them). */
  retention?: { cutoff: number; days: number };
}

/** `event_stream[2][1]` → `event_stream`. */
export const topField = (field: string): string => field.split(/[.[]/)[0] || field;

/**
 * Sorts one source item.
 *
 * @example
 * screenItem({ position: 'line 3', value: { timestamp: 0 } }, rules); // { kind: 'refused', field: 'event_stream', … }
 */
export function screenItem(item: SourceItem, rules: ScreenRules): Screened {
  if (item.problem) return { kind: 'refused', field: item.problem.field, message: item.problem.message };
  const raw = item.value;
  const sent = raw !== null && typeof raw === 'object' ? (raw as { timestamp?: unknown }).timestamp : undefined;
  if (typeof sent === 'number' && (sent < rules.start || sent >= rules.end)) return { kind: 'outside' };
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { kind: 'refused', field: 'blob', message: 'is not a JSON object' };
  let doc;
  try {
    doc = normalizeBlob(raw, '', rules.context);
  } catch (err) {
    if (!(err instanceof BlobFieldError)) throw err;
    return { kind: 'refused', field: err.field, message: err.message.slice(err.field.length + 1) };
  }
  const { retention } = rules;
  if (retention && doc.timestamp < retention.cutoff) {
    return {
      kind: 'refused',
      field: 'timestamp',
      message: `is before the retention cutoff ${timeKey(retention.cutoff)} (KPI_RETENTION_DAYS=${retention.days}): a retention pass would remove it at once`,
    };
  }
  return { kind: 'blob', pending: { doc: doc as BlobDoc, digest: blobDigest(doc), bucket: doc.timestamp, position: item.position } };
}
