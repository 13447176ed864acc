/**
 * Splitting byte streams into JSON texts: NDJSON lines and the elements of
 * one JSON array, whatever the chunk boundaries.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jsonArrayElements, lines } from '../../src/transfer/json-stream.js';
import { ndjsonItems, unwrapRow } from '../../src/transfer/sources.js';

/** The bytes cut at the given offsets (sorted, deduplicated). */
async function* chunked(bytes: Buffer, cuts: number[]): AsyncGenerator<Buffer> {
  let from = 0;
  for (const at of [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)) {
    yield bytes.subarray(from, at);
    from = at;
  }
  yield bytes.subarray(from);
}

async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe('jsonArrayElements', () => {
  it('gives each element of any JSON array, however the bytes are cut (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.jsonValue(), { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 8 }), fc.boolean(), async (values, cuts, pretty) => {
        const bytes = Buffer.from(JSON.stringify(values, null, pretty ? 2 : undefined));
        const elements = await all(jsonArrayElements(chunked(bytes, cuts)));
        expect(elements.map((e) => JSON.parse(e.toString()) as unknown)).toEqual(JSON.parse(bytes.toString()));
      }),
      { numRuns: 300 },
    );
  });

  it('keeps strings with brackets, commas, quotes and multi-byte characters whole, cut anywhere', async () => {
    const values = [{ a: 'x],[{"y' }, 'é\\"]', [1, [2, { b: '}' }]], { 'ü😀': null }];
    const bytes = Buffer.from(JSON.stringify(values));
    for (let cut = 0; cut <= bytes.length; cut++) {
      const elements = await all(jsonArrayElements(chunked(bytes, [cut])));
      expect(elements.map((e) => JSON.parse(e.toString()) as unknown)).toEqual(values);
    }
  });

  it('says when the answer is cut off, is not an array, or goes on after it', async () => {
    await expect(all(jsonArrayElements(chunked(Buffer.from('[{"a":1},{"b"'), [])))).rejects.toThrow(/cut off/);
    await expect(all(jsonArrayElements(chunked(Buffer.from('{"error":"nope"}'), [])))).rejects.toThrow(/not a JSON array/);
    await expect(all(jsonArrayElements(chunked(Buffer.from('[1] [2]'), [])))).rejects.toThrow(/more after/);
    await expect(all(jsonArrayElements(chunked(Buffer.from(''), [])))).rejects.toThrow(/empty/);
    expect(await all(jsonArrayElements(chunked(Buffer.from(' [ ] \n'), [])))).toEqual([]);
  });

  it('gives an empty element (reported as not JSON) rather than losing its neighbours', async () => {
    const elements = await all(jsonArrayElements(chunked(Buffer.from('[1,,2]'), [])));
    expect(elements.map((e) => e.toString())).toEqual(['1', '', '2']);
  });

  it('refuses an element over the size cap', async () => {
    await expect(all(jsonArrayElements(chunked(Buffer.from(`[${JSON.stringify('x'.repeat(100))}]`), [10, 50]), 64))).rejects.toThrow(/longer than 64/);
  });
});

describe('lines and NDJSON items', () => {
  it('numbers lines from 1, drops \\r and a byte-order mark, keeps a last line without a break (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.string({ unit: 'grapheme' }).map((s) => s.replace(/[\r\n]/g, '')),
          { minLength: 1, maxLength: 10 },
        ),
        fc.array(fc.nat(), { maxLength: 6 }),
        async (texts, cuts) => {
          const bytes = Buffer.from(`\uFEFF${texts.join('\r\n')}`);
          const got = await all(lines(chunked(bytes, cuts)));
          expect(got.map((l) => l.line)).toEqual(got.map((_, i) => i + 1));
          expect(got.map((l) => l.bytes.toString())).toEqual(texts[texts.length - 1] === '' ? texts.slice(0, -1) : texts);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('reports lines that are not JSON, not UTF-8 or too long, with their numbers, and skips blank ones', async () => {
    const bytes = Buffer.concat([
      Buffer.from('{"timestamp":1}\n\n{not json\n'),
      Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d, 0x0a]),
      Buffer.from(`${JSON.stringify({ pad: 'x'.repeat(200) })}\n[1]\n  \n"text"`),
    ]);
    const items = await all(ndjsonItems(chunked(bytes, [3, 40]), 100));
    expect(items).toEqual([
      { position: 'line 1', value: { timestamp: 1 } },
      { position: 'line 3', problem: { field: 'json', message: expect.stringMatching(/^is not JSON/) } },
      { position: 'line 4', problem: { field: 'json', message: 'is not UTF-8' } },
      { position: 'line 5', problem: { field: 'line', message: 'is longer than 100 bytes' } },
      { position: 'line 6', value: [1] },
      { position: 'line 8', value: 'text' },
    ]);
  });

  it('takes the blob out of a CouchDB view row, and leaves blobs alone', () => {
    const blob = { timestamp: 1, event_stream: [] };
    expect(unwrapRow({ id: 'x', key: 1, value: blob })).toBe(blob);
    expect(unwrapRow({ id: 'x', doc: blob })).toBe(blob);
    expect(unwrapRow(blob)).toBe(blob);
    expect(unwrapRow({ value: 3 })).toEqual({ value: 3 });
    expect(unwrapRow([blob])).toEqual([blob]);
  });
});
