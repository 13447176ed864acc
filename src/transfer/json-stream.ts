/**
 * Splitting a byte stream into JSON texts without holding it whole: NDJSON
 * lines, and the elements of one top-level JSON array (the original store's
 * range API answers a single array, however long the range).
 *
 * Both work on bytes: JSON's structural characters are ASCII, and every byte
 * of a multi-byte UTF-8 character is ≥ 0x80, so no split can fall inside a
 * character. Decoding each piece on its own (strictly) lets one line that is
 * not UTF-8 be reported without losing the others. Memory is one piece at a
 * time, capped by `maxBytes`.
 */

/** One NDJSON line: its number (1-based) and bytes, without the line break; `tooLong` instead past the cap. */
export interface Line {
  line: number;
  bytes: Buffer;
  /** The line was longer than the cap; `bytes` is empty and the line was skipped. */
  tooLong?: boolean;
}

const NEWLINE = 0x0a;
const CR = 0x0d;

/**
 * The lines of a byte stream. A final line without a line break counts; a
 * `\r` before the break is dropped, as is a UTF-8 byte-order mark at the start.
 *
 * @example
 * for await (const { line, bytes } of lines(createReadStream('blobs.ndjson'))) console.log(line, bytes.toString());
 */
export async function* lines(chunks: AsyncIterable<Uint8Array | string>, maxBytes = 1 << 20): AsyncGenerator<Line> {
  let parts: Buffer[] = [];
  let size = 0;
  let skipping = false;
  let line = 1;
  const finish = (): Line => {
    if (skipping) return { line, bytes: Buffer.alloc(0), tooLong: true };
    let bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
    if (line === 1 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3); // byte-order mark
    if (bytes.length > 0 && bytes[bytes.length - 1] === CR) bytes = bytes.subarray(0, -1);
    return { line, bytes };
  };
  for await (const chunk of chunks) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let from = 0;
    for (;;) {
      const at = buf.indexOf(NEWLINE, from);
      const end = at < 0 ? buf.length : at;
      if (!skipping && end > from) {
        if (size + (end - from) > maxBytes) {
          skipping = true;
          parts = [];
        } else {
          parts.push(buf.subarray(from, end));
        }
        size += end - from;
      }
      if (at < 0) break;
      yield finish();
      line++;
      parts = [];
      size = 0;
      skipping = false;
      from = at + 1;
    }
  }
  if (size > 0 || skipping) {
    const last = finish();
    if (last.bytes.length > 0 || last.tooLong) yield last;
  }
}

/** The stream is not one well-formed JSON array (cut off, or something else). */
export class JsonArrayError extends Error {
  override readonly name = 'JsonArrayError';
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const COMMA = 0x2c;
const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * The elements of the one JSON array a byte stream holds, each as its own
 * bytes (to decode and parse), as they arrive. An element is not checked
 * here beyond its nesting: `JSON.parse` does that, so one bad element is one
 * bad item, not a lost answer.
 *
 * @throws {JsonArrayError} when the stream does not start with `[`, ends
 * before the closing `]` (an answer cut off), has anything after it, or
 * holds an element longer than `maxBytes`
 *
 * @example
 * for await (const element of jsonArrayElements(response.body)) JSON.parse(element.toString());
 */
export async function* jsonArrayElements(chunks: AsyncIterable<Uint8Array | string>, maxBytes = 1 << 20): AsyncGenerator<Buffer> {
  let state = 'before' as 'before' | 'in' | 'after';
  let depth = 0;
  let inString = false;
  let escaped = false;
  let parts: Buffer[] = [];
  let size = 0;
  let emitted = 0;
  const take = (): Buffer | undefined => {
    const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
    parts = [];
    size = 0;
    let start = 0;
    let end = bytes.length;
    while (start < end && isSpace(bytes[start]!)) start++;
    while (end > start && isSpace(bytes[end - 1]!)) end--;
    return start < end ? bytes.subarray(start, end) : undefined;
  };
  const keep = (buf: Buffer, from: number, to: number) => {
    if (to <= from) return;
    size += to - from;
    if (size > maxBytes) throw new JsonArrayError(`element ${emitted + 1} is longer than ${maxBytes} bytes`);
    parts.push(buf.subarray(from, to));
  };

  for await (const chunk of chunks) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let i = 0;
    let from = 0;
    while (i < buf.length) {
      const c = buf[i]!;
      if (state === 'before') {
        if (c === OPEN_BRACKET) {
          state = 'in';
          from = i + 1;
        } else if (!isSpace(c) && c !== 0xef && c !== 0xbb && c !== 0xbf /* a byte-order mark */) {
          throw new JsonArrayError('the answer is not a JSON array');
        }
      } else if (state === 'after') {
        if (!isSpace(c)) throw new JsonArrayError('the answer has more after its closing ]');
      } else if (inString) {
        if (escaped) escaped = false;
        else if (c === BACKSLASH) escaped = true;
        else if (c === QUOTE) inString = false;
      } else if (c === QUOTE) {
        inString = true;
      } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        depth++;
      } else if (c === CLOSE_BRACE || (c === CLOSE_BRACKET && depth > 0)) {
        depth = Math.max(depth - 1, 0); // a stray } is the element's problem, found by JSON.parse
      } else if (depth === 0 && (c === COMMA || c === CLOSE_BRACKET)) {
        keep(buf, from, i);
        const element = take();
        if (element) {
          emitted++;
          yield element;
        } else if (c === COMMA || emitted > 0) {
          emitted++;
          yield Buffer.alloc(0); // an empty element: not JSON, reported as such
        }
        from = i + 1;
        if (c === CLOSE_BRACKET) state = 'after';
      }
      i++;
    }
    if (state === 'in') keep(buf, from, buf.length);
  }
  if (state !== 'after') throw new JsonArrayError(state === 'before' ? 'the answer is empty' : 'the answer ended before its closing ] (cut off)');
}
