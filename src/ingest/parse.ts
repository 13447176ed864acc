/**
 * The two wire forms of `POST /wsapi/interaction_data` (kpi-definitions §1),
 * reduced to a list of raw blobs with the name each has in the request, so
 * that an error can name the field at fault as the client wrote it. Pure.
 */
import secureJson from 'secure-json-parse';
import { HttpError } from '../http/errors.js';

export interface RawBlobs {
  blobs: unknown[];
  /** How the client addresses blob i: `data[2]`, `data`, `[2]` or '' (bare blob). */
  nameOf(i: number): string;
  /** The `csrf` field beside `data` (the ingest nonce), when the client sent one. */
  csrf?: string;
}

const csrfOf = (value: unknown): string | undefined => (typeof value === 'string' && value.length <= 512 ? value : undefined);

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A body's text, refusing bytes that are not UTF-8: decoding them leniently
 * would store U+FFFD in place of what the client sent.
 */
export function utf8(body: Buffer): string {
  try {
    return strictUtf8.decode(body);
  } catch {
    throw new HttpError(400, 'body is not valid UTF-8', 'body');
  }
}

/**
 * A form body's fields. Unlike URLSearchParams, a percent-encoding that is
 * not UTF-8 (`%FF`) is refused rather than replaced by U+FFFD.
 */
export function parseFormStrictly(text: string): URLSearchParams {
  const form = new URLSearchParams();
  for (const pair of text.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const [rawName, rawValue] = eq < 0 ? [pair, ''] : [pair.slice(0, eq), pair.slice(eq + 1)];
    const decode = (part: string, what: string) => {
      try {
        return decodeURIComponent(part.replace(/\+/g, ' '));
      } catch {
        throw new HttpError(400, `${what} is not valid percent-encoded UTF-8`, what);
      }
    };
    const name = decode(rawName, 'body');
    form.append(name, decode(rawValue, name));
  }
  return form;
}

/** JSON.parse that refuses `__proto__` and `constructor.prototype` keys. */
export function parseJsonSafely(text: string, field: string): unknown {
  try {
    return secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (err) {
    throw new HttpError(400, `${field} is not valid JSON: ${(err as Error).message}`, field);
  }
}

function fromData(data: unknown): RawBlobs {
  const value = typeof data === 'string' ? parseJsonSafely(data, 'data') : data;
  if (Array.isArray(value)) return { blobs: value, nameOf: (i) => `data[${i}]` };
  if (typeof value === 'object' && value !== null) return { blobs: [value], nameOf: () => 'data' };
  throw new HttpError(400, 'data must be a blob (object) or an array of blobs', 'data');
}

/**
 * The blobs of a JSON body: `{"data": blob | [blobs] | "<JSON>"}`, a bare
 * blob, or an array of blobs. Beside `data`, `csrf` is read (the ingest
 * nonce); other keys are ignored.
 */
export function blobsFromJson(body: unknown): RawBlobs {
  if (Array.isArray(body)) return { blobs: body, nameOf: (i) => `[${i}]` };
  if (typeof body !== 'object' || body === null) {
    throw new HttpError(400, 'body must be a JSON object: {"data": blob or [blobs]} or a blob', 'body');
  }
  if (Object.hasOwn(body, 'data')) return { ...fromData((body as { data: unknown }).data), csrf: csrfOf((body as { csrf?: unknown }).csrf) };
  return { blobs: [body], nameOf: () => '' };
}

/** The blobs of a form body: field `data` holding the JSON text of a blob or an array. */
export function blobsFromForm(form: URLSearchParams): RawBlobs {
  const data = form.get('data');
  if (data === null) throw new HttpError(400, 'data is required (the JSON text of a blob or an array of blobs)', 'data');
  return { ...fromData(data), csrf: csrfOf(form.get('csrf')) };
}
