/**
 * The live stream's message schema: every field of every client message, with
 * every wrong JSON type, out-of-range values, missing and unknown fields, and
 * messages that are not objects at all; each problem names the field at fault.
 * The window rules are the query API's own.
 */
import { describe, expect, it } from 'vitest';
import { resolveWindow } from '../../src/aggregate/routes/plugin.js';

import { expected, MAX_EPOCH_LENGTH, MAX_TOKEN_LENGTH, readClientMessage, subscriptionProblem } from '../../src/stream/client-messages.js';
import { MAX_RANGE_MS, MAX_TOP, DIMENSIONS } from '../../src/contract/kpis.js';

const HOUR = 3_600_000;
const deep = (levels: number): unknown => {
  let value: unknown = [];
  for (let i = 1; i < levels; i++) value = [value];
  return value;
};

/** Every JSON type, once each, with a nested one. */
const VALUES: Record<string, unknown> = {
  null: null,
  boolean: true,
  integer: 5,
  fraction: 1.5,
  string: 'x',
  'numeric string': '3600000',
  array: [],
  object: {},
  nested: deep(10_000),
};
const kinds = {
  string: ['null', 'boolean', 'integer', 'fraction', 'array', 'object', 'nested'],
  integer: ['null', 'boolean', 'fraction', 'string', 'numeric string', 'array', 'object', 'nested'],
  object: ['null', 'boolean', 'integer', 'fraction', 'string', 'array', 'nested'],
};

const fullHello = () => ({
  type: 'hello',
  token: 'klt_token',
  subscribe: { rangeMs: 6 * HOUR, from: 1_795_400_000_000, bucket: '10m', segment: 'os', top: 5 },
  resume: { epoch: '9f2c', version: 12 },
});
const fullSubscribe = () => ({ type: 'subscribe', subscribe: { rangeMs: 6 * HOUR, bucket: '1h', segment: 'locale', top: MAX_TOP } });

/** Sets `value` at `path` in a copy of `message` (undefined: removes it). */
function withField(message: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const copy = structuredClone(message);
  const keys = path.split('.');
  const last = keys.pop()!;
  const parent = keys.reduce<Record<string, unknown>>((o, k) => o[k] as Record<string, unknown>, copy);
  if (value === undefined) delete parent[last];
  else parent[last] = value;
  return copy;
}

const problemOf = (value: unknown) => {
  const read = readClientMessage(value);
  return 'problem' in read ? read.problem : undefined;
};

// field path in the message → the name a problem gives it, its kind, what it must be
const FIELDS = {
  hello: [
    ['type', 'message.type', 'string', 'one of hello, subscribe'],
    ['token', 'hello.token', 'string', `a string of at most ${MAX_TOKEN_LENGTH} characters`],
    ['subscribe', 'subscribe', 'object', 'an object'],
    ['subscribe.rangeMs', 'subscribe.rangeMs', 'integer', `an integer between 600000 and ${MAX_RANGE_MS}`],
    ['subscribe.from', 'subscribe.from', 'integer', `an integer between 0 and ${Number.MAX_SAFE_INTEGER}`],
    ['subscribe.bucket', 'subscribe.bucket', 'string', 'one of 10m, 1h, 1d'],
    ['subscribe.segment', 'subscribe.segment', 'string', `one of ${DIMENSIONS.join(', ')}`],
    ['subscribe.top', 'subscribe.top', 'integer', `an integer between 1 and ${MAX_TOP}`],
    ['resume', 'hello.resume', 'object', 'an object'],
    ['resume.epoch', 'hello.resume.epoch', 'string', `a string of at most ${MAX_EPOCH_LENGTH} characters`],
    ['resume.version', 'hello.resume.version', 'integer', `an integer between 0 and ${Number.MAX_SAFE_INTEGER}`],
  ],
  subscribe: [
    ['type', 'message.type', 'string', 'one of hello, subscribe'],
    ['subscribe', 'subscribe', 'object', 'an object'],
    ['subscribe.rangeMs', 'subscribe.rangeMs', 'integer', `an integer between 600000 and ${MAX_RANGE_MS}`],
    ['subscribe.bucket', 'subscribe.bucket', 'string', 'one of 10m, 1h, 1d'],
    ['subscribe.segment', 'subscribe.segment', 'string', `one of ${DIMENSIONS.join(', ')}`],
    ['subscribe.top', 'subscribe.top', 'integer', `an integer between 1 and ${MAX_TOP}`],
  ],
} as const;

describe('live-stream client messages', () => {
  it('accept the messages the protocol describes, as sent', () => {
    expect(readClientMessage(fullHello())).toEqual({ message: fullHello() });
    expect(readClientMessage(fullSubscribe())).toEqual({ message: fullSubscribe() });
    expect(readClientMessage({ type: 'hello', subscribe: { rangeMs: HOUR } })).toEqual({ message: { type: 'hello', subscribe: { rangeMs: HOUR } } });
  });

  it('refuse a message that is not an object', () => {
    for (const value of [null, 5, -1.5, 'x', '', true, false, [], [{ type: 'hello' }], deep(10_000)]) {
      expect(problemOf(value)).toEqual({ field: 'message', message: 'a message must be a JSON object' });
    }
  });

  for (const [type, fields] of Object.entries(FIELDS)) {
    const base = type === 'hello' ? fullHello : fullSubscribe;
    describe(`${type}`, () => {
      for (const [path, name, kind, must] of fields) {
        it.each(kinds[kind])(`refuses ${path} of the wrong type (%s), naming ${name}`, (k) => {
          const value = VALUES[k];
          const problem = problemOf(withField(base(), path, value));
          expect(problem).toEqual({ field: name, message: expect.stringMatching(new RegExp(`^${name.replaceAll('.', '\\.')} must be `)) });
          expect(problem!.message).toBe(`${name} must be ${must}`);
        });
      }
      it.each(['', 'type', 'subscribe'].concat(type === 'hello' ? ['resume'] : []))('refuses an unknown field in %s, naming where', (at) => {
        const message = base() as Record<string, unknown>;
        const target = at === '' ? message : (message[at] as Record<string, unknown>);
        if (at === 'type') return; // a string has no fields
        target.colour = 'blue';
        const where = at === '' ? (type === 'hello' ? 'hello' : 'message') : at === 'resume' ? 'hello.resume' : at;
        expect(problemOf(message)).toEqual({
          field: where,
          message: expect.stringMatching(new RegExp(`^${where} has "colour" it does not know \\(it takes `)),
        });
      });
    });
  }

  it.each([
    ['type', 'message.type'],
    ['subscribe', 'hello.subscribe'],
    ['subscribe.rangeMs', 'subscribe.rangeMs'],
    ['resume.epoch', 'hello.resume.epoch'],
    ['resume.version', 'hello.resume.version'],
  ])('refuses a hello without %s, naming %s', (path, name) => {
    expect(problemOf(withField(fullHello(), path, undefined))).toEqual({ field: name, message: `${name} is required` });
  });

  it.each([
    ['subscribe.rangeMs', 5, 'subscribe.rangeMs'],
    ['subscribe.rangeMs', MAX_RANGE_MS + 1, 'subscribe.rangeMs'],
    ['subscribe.rangeMs', Number.MAX_VALUE, 'subscribe.rangeMs'],
    ['subscribe.from', -1, 'subscribe.from'],
    ['subscribe.from', 2 ** 53, 'subscribe.from'],
    ['subscribe.top', 0, 'subscribe.top'],
    ['subscribe.top', MAX_TOP + 1, 'subscribe.top'],
    ['subscribe.bucket', '5m', 'subscribe.bucket'],
    ['subscribe.bucket', '__proto__', 'subscribe.bucket'],
    ['subscribe.segment', 'planet', 'subscribe.segment'],
    ['subscribe.segment', 'constructor', 'subscribe.segment'],
    ['token', 'x'.repeat(MAX_TOKEN_LENGTH + 1), 'hello.token'],
    ['token', 'x'.repeat(60_000), 'hello.token'],
    ['resume.epoch', 'e'.repeat(MAX_EPOCH_LENGTH + 1), 'hello.resume.epoch'],
    ['resume.version', -1, 'hello.resume.version'],
    ['resume.version', 2 ** 53, 'hello.resume.version'],
    ['type', 'goodbye', 'message.type'],
    ['type', 'constructor', 'message.type'],
  ])('refuses %s out of range (case %#), naming %s', (path, value, name) => {
    expect(problemOf(withField(fullHello(), path, value))).toEqual({
      field: name,
      message: expect.stringMatching(new RegExp(`^${name.replaceAll('.', '\\.')} must be `)),
    });
  });

  it('never quotes a long or odd field name a client sent', () => {
    const message = { ...fullHello(), ['x'.repeat(60_000)]: 1 };
    expect(problemOf(message)!.message).toMatch(/^hello has a field it does not know/);
    expect(problemOf({ ...fullHello(), 'a\u0000b': 1 })!.message).toMatch(/^hello has a field it does not know/);
  });

  it('refuses a __proto__ key as the unknown field it is', () => {
    const parsed = JSON.parse('{"type":"hello","subscribe":{"rangeMs":3600000,"__proto__":{"top":1}},"__proto__":{"token":"x"}}') as unknown;
    expect(problemOf(parsed)).toEqual({ field: 'hello', message: expect.stringMatching(/^hello has "__proto__" it does not know/) });
    expect(({} as Record<string, unknown>).token).toBeUndefined();
  });
});

describe('the window rules are the query API’s', () => {
  it.each([
    [{ rangeMs: 300 * 86_400_000, bucket: '10m' }, 'bucket', /^subscribe\.bucket 10m gives too many points for this range; use a larger one$/],
    [{ rangeMs: HOUR, top: 5 }, 'top', /^subscribe\.top needs subscribe\.segment/],
  ] as const)('%j: refused by both, naming %s', (sub, field, message) => {
    expect(subscriptionProblem(sub)).toEqual({ field: `subscribe.${field}`, message: expect.stringMatching(message) });
    expect(problemOf({ type: 'subscribe', subscribe: sub })?.field).toBe(`subscribe.${field}`);
    const to = 1_795_400_000_000;
    const query = { from: to - sub.rangeMs, to, ...('bucket' in sub ? { bucket: sub.bucket } : {}), ...('top' in sub ? { top: sub.top } : {}) };
    expect(() => resolveWindow(query)).toThrow(
      expect.objectContaining({ field: `query.${field}`, message: expect.stringMatching(message.source.replaceAll('subscribe', 'query')) }),
    );
  });
});

describe('expected', () => {
  it('says in words what a schema asks for', () => {
    expect(expected({ type: 'integer', minimum: 1, maximum: 3 })).toBe('an integer between 1 and 3');
    expect(expected({ type: 'integer', minimum: 0 })).toBe('an integer ≥ 0');
    expect(expected({ type: 'string', enum: ['a', 'b'] })).toBe('one of a, b');
    expect(expected({ const: 'hello' })).toBe('"hello"');
    expect(expected({ type: 'object' })).toBe('an object');
    expect(expected(undefined)).toBe('valid');
  });
});
