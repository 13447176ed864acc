/**
 * What a KPI window may be asked with, said once: the JSON schema of each
 * field, which the query API's query string (`/api/kpis`,
 * `/api/funnels/:name`, plugin.ts) and the live stream's `subscribe`
 * (src/stream/client-messages.ts) are both built from, and the rules between
 * fields that a schema cannot say ({@link windowProblem}), which both call.
 * So the HTTP API and the stream refuse the same windows with the same words.
 */
import { BUCKET_SIZES, DAY, DIMENSIONS, MAX_POINTS, MAX_RANGE_MS, MAX_TOP, TEN_MINUTES, type BucketName, type Dimension } from './kpis.js';

/**
 * The JSON schema of each field a window is asked with.
 *
 * @example
 * const querystring = { type: 'object', properties: { top: windowFieldSchemas.top } };
 */
export const windowFieldSchemas = {
  /** A time, ms since the epoch (`from`, `to`). */
  time: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
  /** The length of a window, ms. */
  rangeMs: { type: 'integer', minimum: TEN_MINUTES, maximum: MAX_RANGE_MS },
  bucket: { type: 'string', enum: Object.keys(BUCKET_SIZES) },
  segment: { type: 'string', enum: [...DIMENSIONS] },
  /** With `segment`: the N biggest values, the rest merged into Other. */
  top: { type: 'integer', minimum: 1, maximum: MAX_TOP },
} as const;

/** A window's fields as far as the cross-field rules need them. */
export interface WindowShape {
  rangeMs: number;
  bucket?: BucketName | undefined;
  segment?: Dimension | null | undefined;
  top?: number | undefined;
}

/** A field at fault and a message that names it. */
export interface FieldProblem {
  field: string;
  message: string;
}

/** How the caller's client names the fields: `query.bucket`, `subscribe.bucket`. */
export interface WindowNames {
  /** Prefix of every field: `query`, `subscribe`. */
  prefix: string;
  /** The range as the client gave it, and the field to blame for it. */
  range: { field: string; name: string };
}

/**
 * The rules between a window's fields: a range of at most {@link MAX_RANGE_MS},
 * a bucket that cuts it into at most {@link MAX_POINTS} points, `top` only with
 * a `segment`. Returns the first one broken, or undefined.
 *
 * @example
 * windowProblem({ rangeMs: 3_600_000, top: 5 }, { prefix: 'subscribe', range: { field: 'subscribe.rangeMs', name: 'subscribe.rangeMs' } });
 * // { field: 'subscribe.top', message: 'subscribe.top needs subscribe.segment (the values to keep the top of)' }
 */
export function windowProblem(window: WindowShape, names: WindowNames): FieldProblem | undefined {
  const { prefix } = names;
  if (window.rangeMs > MAX_RANGE_MS) return { field: names.range.field, message: `${names.range.name} spans more than ${MAX_RANGE_MS / DAY} days` };
  if (window.bucket !== undefined && window.rangeMs / BUCKET_SIZES[window.bucket] > MAX_POINTS) {
    return { field: `${prefix}.bucket`, message: `${prefix}.bucket ${window.bucket} gives too many points for this range; use a larger one` };
  }
  if (window.top !== undefined && !window.segment) {
    return { field: `${prefix}.top`, message: `${prefix}.top needs ${prefix}.segment (the values to keep the top of)` };
  }
  return undefined;
}
