import { describe, expect, it } from 'vitest';
import { HttpError } from '../../src/http/errors.js';
import { blobsFromForm, blobsFromJson, parseFormStrictly, parseJsonSafely, utf8 } from '../../src/ingest/parse.js';

const names = (raw: { blobs: unknown[]; nameOf(i: number): string }) => raw.blobs.map((_, i) => raw.nameOf(i));

describe('wire forms', () => {
  it('reads {"data": [blobs], "csrf"} as the dialog sends its backlog', () => {
    const raw = blobsFromJson({ data: [{ timestamp: 1 }, { timestamp: 2 }], csrf: 't' });
    expect(raw.blobs).toEqual([{ timestamp: 1 }, { timestamp: 2 }]);
    expect(names(raw)).toEqual(['data[0]', 'data[1]']);
  });

  it('reads {"data": blob}, a bare blob, a bare array and data as a JSON string', () => {
    expect(names(blobsFromJson({ data: { timestamp: 1 } }))).toEqual(['data']);
    expect(names(blobsFromJson({ timestamp: 1 }))).toEqual(['']);
    expect(names(blobsFromJson([{ timestamp: 1 }]))).toEqual(['[0]']);
    expect(blobsFromJson({ data: '[{"timestamp":1}]' }).blobs).toEqual([{ timestamp: 1 }]);
  });

  it('reads the form field data holding the JSON text of a blob or an array', () => {
    expect(blobsFromForm(new URLSearchParams({ data: '{"timestamp":1}', csrf: 'x' })).blobs).toEqual([{ timestamp: 1 }]);
    expect(names(blobsFromForm(new URLSearchParams({ data: '[{"timestamp":1},{"timestamp":2}]' })))).toEqual(['data[0]', 'data[1]']);
  });

  it.each([
    [() => blobsFromForm(new URLSearchParams({ other: '1' })), 'data', 'data is required'],
    [() => blobsFromForm(new URLSearchParams({ data: '{nope' })), 'data', 'data is not valid JSON'],
    [() => blobsFromJson({ data: 5 }), 'data', 'data must be a blob'],
    [() => blobsFromJson({ data: null }), 'data', 'data must be a blob'],
    [() => blobsFromJson('text'), 'body', 'body must be a JSON object'],
    [() => blobsFromJson(null), 'body', 'body must be a JSON object'],
  ])('refuses bad shapes with a 400 naming the field (%#)', (fn, field, start) => {
    try {
      fn();
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(HttpError);
      expect((err as HttpError).statusCode).toBe(400);
      expect((err as HttpError).field).toBe(field);
      expect((err as HttpError).message.startsWith(start)).toBe(true);
    }
  });

  it('refuses prototype pollution keys', () => {
    expect(() => parseJsonSafely('{"__proto__": {"admin": true}}', 'data')).toThrow(HttpError);
    expect(() => parseJsonSafely('{"constructor": {"prototype": {"x": 1}}}', 'data')).toThrow(HttpError);
  });
});

describe('strict decoding', () => {
  it('refuses bytes that are not UTF-8, naming the body', () => {
    expect(utf8(Buffer.from('{"data":"é"}'))).toBe('{"data":"é"}');
    expect(() => utf8(Buffer.from([0x7b, 0xff, 0x7d]))).toThrow(expect.objectContaining({ statusCode: 400, field: 'body' }));
  });

  it('reads form fields like URLSearchParams, but refuses percent-encodings that are not UTF-8', () => {
    const form = parseFormStrictly('data=%7B%22a%22%3A1%7D&csrf=x+y&flag');
    expect([...form]).toEqual([...new URLSearchParams('data=%7B%22a%22%3A1%7D&csrf=x+y&flag')]);
    expect(() => parseFormStrictly('data=%FF')).toThrow(expect.objectContaining({ statusCode: 400, field: 'data' }));
    expect(() => parseFormStrictly('%E2%82=1')).toThrow(expect.objectContaining({ statusCode: 400, field: 'body' }));
  });
});
