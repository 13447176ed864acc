/**
 * fast-check generators of request bodies that `POST /wsapi/interaction_data`
 * must refuse with a 4xx, whatever else ingest learns to refuse: every case
 * breaks a rule of today's wire format or blob schema for certain (a wrong
 * type, an impossible number, a malformed or oversized body, a wrong content
 * type), and many add hostile extras on top (`__proto__` / `constructor` /
 * `prototype` keys, deep nesting, bytes that are not UTF-8). No case carries
 * `DNT` / `Sec-GPC` (those are acknowledged without storing, with a 200).
 */
import fc from 'fast-check';

export interface BadRequest {
  /** What the case breaks, for the summary. */
  kind: string;
  body: string | Buffer;
  /** Absent: no content-type header at all. */
  contentType: string | undefined;
}

const JSON_TYPE = 'application/json';
const FORM_TYPE = 'application/x-www-form-urlencoded';
const HOUR = 3_600_000;
/** The ingest defaults this suite runs with (docs/api.md): more is refused. */
export const LIMITS = { blobsPerRequest: 100, bodyBytes: 1_048_576, events: 2000 } as const;

const EVENTS = ['screen.rp_info', 'screen.pick_email', 'authenticate.enter_password', 'assertion_generated', 'window.unload'];

/** A blob kpi-live stores today: the base that a case breaks. */
const validBlob: fc.Arbitrary<Record<string, unknown>> = fc
  .record(
    {
      ago: fc.integer({ min: 0, max: 12 * HOUR }),
      steps: fc.array(fc.tuple(fc.constantFrom(...EVENTS), fc.nat({ max: 5000 })), { maxLength: 6 }),
      lang: fc.constantFrom('en-US', 'de', 'fr', 'pt-BR'),
      number_emails: fc.nat({ max: 5 }),
      number_sites_logged_in: fc.nat({ max: 12 }),
      new_account: fc.boolean(),
      email_type: fc.constantFrom('primary', 'secondary'),
      sample_rate: fc.constantFrom(1, 0.5, 0.1),
      screen_size: fc.record({ width: fc.constantFrom(320, 1024, 1920), height: fc.constantFrom(480, 768, 1080) }),
      user_agent: fc.record({
        os: fc.constantFrom('Macintosh', 'Windows NT 6.1'),
        browser: fc.constantFrom('Firefox', 'Chrome'),
        version: fc.constantFrom('120', 15),
      }),
      rp_api: fc.constantFrom('get', 'watch_with_onready'),
    },
    { requiredKeys: ['ago', 'steps'] },
  )
  .map(({ ago, steps, ...rest }) => {
    let offset = 0;
    const event_stream = steps.map(([name, gap]) => [name, (offset += gap)]);
    return { timestamp: Date.now() - ago, event_stream, ...rest };
  });

/** A well-formed blob for the siblings of a bad one (`data: [good, bad, good]` stores nothing). */
const siblingBlob = (i: number) => ({
  timestamp: Date.now() - i * 60_000,
  event_stream: [
    ['screen.rp_info', 10],
    ['screen.pick_email', 200],
  ],
  lang: 'en-US',
});

const longText = fc.integer({ min: 5000, max: 20_000 }).map((n) => 'x'.repeat(n));
const notInteger = fc.double({ min: 0.001, max: 1e6, noNaN: true, noInteger: true });
const someObject = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { minKeys: 1, maxKeys: 4 });
const someArray = fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 4 });
const notString = fc.oneof(fc.integer(), fc.boolean(), someArray, someObject);
const notBoolean = fc.oneof(fc.integer(), fc.string(), someArray, someObject);
const notCount = fc.oneof(
  fc.integer({ min: -1e9, max: -1 }),
  notInteger,
  fc.constantFrom(1e20, 2 ** 53, Number.MAX_VALUE),
  fc.string(),
  fc.boolean(),
  someArray,
  someObject,
);
const badEventName = fc.oneof(notString, fc.constant(''), longText, fc.constantFrom('<script>', 'a b', '../etc/passwd', 'screen.\u0000'));
const badOffset = fc.oneof(
  fc.integer({ min: -1e9, max: -1 }),
  fc.constantFrom(1e12, 1e300),
  fc.string(),
  fc.boolean(),
  someArray,
  someObject,
  fc.constant(null),
);

/** Values each blob field must refuse (the schema allows `null` for most: none here is null unless null is wrong there). */
const wrongValues: Record<string, fc.Arbitrary<unknown>> = {
  timestamp: fc.oneof(
    fc.string(),
    fc.boolean(),
    fc.constant(null),
    someArray,
    someObject,
    fc.integer({ min: -1e12, max: -1 }),
    fc.integer({ min: 0, max: 1_000_000_000_000 }), // 2001: older than any accepted age
    fc.constantFrom(1e300, 8.64e15 + 1, Number.MAX_SAFE_INTEGER),
    fc.integer({ min: 1, max: HOUR }).map((ago) => Date.now() - ago + 0.5), // a time of now, not in whole ms
  ),
  event_stream: fc.oneof(
    fc.string(),
    fc.integer(),
    fc.boolean(),
    someObject,
    fc.array(fc.oneof(fc.string(), fc.integer(), fc.constant(null), someObject), { minLength: 1, maxLength: 4 }),
    fc.constantFrom(...EVENTS).map((name) => [[name]]),
    fc.constantFrom(...EVENTS).map((name) => [[name, 1, 2, 3]]),
    badEventName.map((name) => [[name, 1]]),
    badOffset.map((offset) => [['screen.rp_info', offset]]),
    badOffset.map((duration) => [['screen.rp_info', 1, duration]]),
    fc.integer({ min: LIMITS.events + 1, max: LIMITS.events + 200 }).map((n) => Array.from({ length: n }, () => ['screen.rp_info', 1])),
  ),
  email_type: fc.oneof(
    fc.string().filter((s) => s !== 'primary' && s !== 'secondary'),
    fc.integer(),
    fc.boolean(),
    someArray,
    someObject,
  ),
  number_emails: notCount,
  number_sites_logged_in: notCount,
  number_sites_signed_in: notCount,
  sites_signed_in: notCount,
  new_account: notBoolean,
  lang: fc.oneof(notString, longText),
  language: fc.oneof(notString, longText),
  screen_size: fc.oneof(
    fc.string(),
    fc.integer(),
    fc.boolean(),
    someArray,
    notCount.map((width) => ({ width })),
    notCount.map((height) => ({ width: 1024, height })),
  ),
  sample_rate: fc.oneof(
    fc.constantFrom(0, -0.5, 1.5, 1e308, -1e308),
    fc.double({ min: 1.0001, max: 1e9, noNaN: true }),
    fc.string(),
    fc.boolean(),
    someArray,
    someObject,
  ),
  user_agent: fc.oneof(
    fc.string(),
    fc.integer(),
    fc.boolean(),
    someArray,
    notString.map((os) => ({ os })),
    notString.map((browser) => ({ os: 'Macintosh', browser })),
    fc.oneof(fc.boolean(), someArray, someObject).map((version) => ({ version })),
    longText.map((os) => ({ os })),
  ),
  rp_api: fc.oneof(notString, longText),
};
const FIELDS = Object.keys(wrongValues);

/** Raw number literals JSON.parse reads as ±Infinity, 0 or a huge integer, each wrong where it is put. */
const rawNumbers: Record<string, string[]> = {
  timestamp: ['1e999', '-1e999', `1${'0'.repeat(400)}`, '123456789012345678901234567890', '-0', '1e-400', '0.5'],
  number_emails: ['1e999', '-1e999', `1${'0'.repeat(400)}`, '123456789012345678901234567890', '-1', '0.5'],
  sample_rate: ['1e999', '-1e999', '1e-400', '-0', '2'],
  event_stream: ['[["screen.rp_info",1e999]]', '[["screen.rp_info",-1e999]]', '[["screen.rp_info",1,1e400]]'],
};

/** Nested `[[[…]]]` or `{"a":{"a":…}}`, as text, at least two levels deep. */
const deepText = fc
  .record({ depth: fc.integer({ min: 2, max: 20_000 }), arrays: fc.boolean() })
  .map(({ depth, arrays }) => (arrays ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)));
/** Fields where any deep value is wrong (an object is fine in `screen_size` and `user_agent`: arrays only there). */
const DEEP_FIELDS = ['timestamp', 'event_stream', 'lang', 'number_emails', 'email_type', 'rp_api'];

const PLACEHOLDER = '"@@RAW@@"';

const parses = (text: string) => {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};
/** Text that, as `data`, is no blob: `{"data": "[]"}` would be an empty backlog, which is fine to send. */
const textNotEmptyArray = fc.string().filter((text) => !parses(text) || !(Array.isArray(JSON.parse(text)) && (JSON.parse(text) as unknown[]).length === 0));

/** One blob that breaks a rule for certain, as JSON text (hostile extras may come on top). */
const badBlobText: fc.Arbitrary<{ kind: string; text: string }> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .tuple(validBlob, fc.constantFrom(...FIELDS))
      .chain(([blob, field]) => wrongValues[field]!.map((value) => ({ kind: `wrong ${field}`, text: JSON.stringify({ ...blob, [field]: value }) }))),
  },
  { weight: 1, arbitrary: validBlob.map(({ timestamp: _gone, ...blob }) => ({ kind: 'no timestamp', text: JSON.stringify(blob) })) },
  {
    weight: 1,
    arbitrary: fc
      .oneof(fc.integer(), textNotEmptyArray, fc.boolean(), fc.constant(null), fc.array(fc.oneof(fc.integer(), fc.string()), { minLength: 1 }))
      .map((value) => ({
        kind: 'blob not an object',
        text: JSON.stringify(value),
      })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(validBlob, fc.constantFrom(...Object.keys(rawNumbers)))
      .chain(([blob, field]) =>
        fc
          .constantFrom(...rawNumbers[field]!)
          .map((raw) => ({ kind: `huge number in ${field}`, text: JSON.stringify({ ...blob, [field]: '@@RAW@@' }).replace(PLACEHOLDER, raw) })),
      ),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(validBlob, fc.constantFrom(...DEEP_FIELDS), deepText)
      .map(([blob, field, deep]) => ({ kind: 'deep nesting', text: JSON.stringify({ ...blob, [field]: '@@RAW@@' }).replace(PLACEHOLDER, deep) })),
  },
);

/** Hostile keys and values added to a blob that is already bad. */
const hostileExtra = fc.constantFrom(
  '"__proto__":{"polluted":"yes"}',
  '"constructor":{"prototype":{"polluted":"yes"}}',
  '"constructor":1',
  '"prototype":{"polluted":"yes"}',
  '"__proto__":null',
  '"toString":"x","hasOwnProperty":1,"valueOf":[]',
);
const withExtra = (text: string, extra: string) => (text.startsWith('{') && text !== '{}' ? `{${extra},${text.slice(1)}` : text);

/** Bytes that are not UTF-8: a lone continuation, an overlong form, an encoded surrogate, past U+10FFFF, a cut sequence, 0xFF. */
const notUtf8 = fc.constantFrom([0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xff, 0xfe], [0xf8, 0x88, 0x80, 0x80, 0x80]);

/** The bad blob, maybe with hostile extras, as text or (with bytes that are not UTF-8) as bytes. */
const hostileBlob: fc.Arbitrary<{ kind: string; text: string; bytes?: Buffer }> = fc
  .tuple(badBlobText, fc.option(hostileExtra, { freq: 3 }), fc.option(notUtf8, { freq: 4 }), fc.boolean())
  .map(([blob, extra, bytes, inString]) => {
    const text = extra ? withExtra(blob.text, extra) : blob.text;
    if (!bytes) return { kind: blob.kind, text };
    // in a string value of a key of their own (anywhere else in a string they could rename the
    // field at fault), or where JSON allows no text at all (then the JSON is malformed too)
    const object = text.startsWith('{');
    const [before, after] = object && inString ? ['{"note":"', `",${text.slice(1)}`] : object ? ['{', text.slice(1)] : ['', text];
    return { kind: `${blob.kind} + bytes not UTF-8`, text, bytes: Buffer.concat([Buffer.from(before), Buffer.from(bytes), Buffer.from(after)]) };
  });

/** Puts a bad blob in one of the request forms the dialog uses. */
const inWireForm: fc.Arbitrary<BadRequest> = fc
  .tuple(hostileBlob, fc.nat({ max: 5 }), fc.nat({ max: 5 }), fc.constantFrom('bare', 'data', 'data-array', 'array', 'data-string', 'form'), fc.boolean())
  .map(([blob, before, after, form, csrf]) => {
    const siblings = (n: number, from: number) => Array.from({ length: n }, (_, i) => JSON.stringify(siblingBlob(from + i)));
    const list = [...siblings(before, 0), '@@BLOB@@', ...siblings(after, before)].join(',');
    const extra = csrf ? ',"csrf":"c5rf"' : '';
    const kind = `${blob.kind} (${form})`;
    // bytes that are not UTF-8 go where the blob's text goes, as bytes
    const fill = (template: string) => {
      const [head, tail] = template.split('@@BLOB@@') as [string, string];
      return blob.bytes ? Buffer.concat([Buffer.from(head), blob.bytes, Buffer.from(tail)]) : head + blob.text + tail;
    };
    switch (form) {
      case 'bare':
        return { kind, body: fill('@@BLOB@@'), contentType: JSON_TYPE };
      case 'data':
        return { kind, body: fill(`{"data":@@BLOB@@${extra}}`), contentType: JSON_TYPE };
      case 'data-array':
        return { kind, body: fill(`{"data":[${list}]${extra}}`), contentType: JSON_TYPE };
      case 'array':
        return { kind, body: fill(`[${list}]`), contentType: JSON_TYPE };
      case 'data-string':
        return { kind, body: blob.bytes ?? `{"data":${JSON.stringify(`[${list.replace('@@BLOB@@', blob.text)}]`)}${extra}}`, contentType: JSON_TYPE };
      default: {
        const data = blob.bytes
          ? [...blob.bytes].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')
          : encodeURIComponent(`[${list.replace('@@BLOB@@', blob.text)}]`);
        return { kind, body: `${csrf ? 'csrf=c5rf&' : ''}data=${data}`, contentType: FORM_TYPE };
      }
    }
  });

/** A well-formed body, to break in other ways. */
const goodBody = fc.array(validBlob, { minLength: 1, maxLength: 3 }).map((blobs) => JSON.stringify({ data: blobs, csrf: 'c5rf' }));

const malformed: fc.Arbitrary<BadRequest> = fc.oneof(
  goodBody.chain((text) => fc.nat({ max: text.length - 1 }).map((cut) => ({ kind: 'truncated JSON', body: text.slice(0, cut), contentType: JSON_TYPE }))),
  fc
    .tuple(goodBody, fc.nat(), fc.constantFrom(',', ':', '{', '}', '[', ']', '"', '\\', "'", 'NaN', 'undefined', '//', '/*', '\u0000', '\ufeff'))
    .map(([text, at, junk]) => {
      const i = at % text.length;
      return text.slice(0, i) + junk + text.slice(i + 1);
    })
    .filter((text) => !parses(text))
    .map((text) => ({ kind: 'mangled JSON', body: text, contentType: JSON_TYPE })),
  fc
    .string({ maxLength: 200 })
    .filter((text) => !parses(text))
    .map((text) => ({ kind: 'not JSON', body: text, contentType: JSON_TYPE })),
  fc
    .constantFrom('', ' ', 'null', 'true', '42', '"text"', '{"data":null}', '{"data":5}', '{"data":"{"}', '{"data":""}', '{"data":true}', '{"data":[1]}')
    .map((body) => ({
      kind: 'not a blob',
      body,
      contentType: JSON_TYPE,
    })),
);

const oversized: fc.Arbitrary<BadRequest> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .integer({ min: LIMITS.blobsPerRequest + 1, max: LIMITS.blobsPerRequest + 60 })
      .map((n) => ({ kind: 'too many blobs', body: JSON.stringify({ data: Array.from({ length: n }, (_, i) => siblingBlob(i)) }), contentType: JSON_TYPE })),
  },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 1, max: 64 * 1024 }).map((extra) => ({
      kind: 'body too large',
      body: JSON.stringify({ data: [siblingBlob(0)], pad: 'x'.repeat(LIMITS.bodyBytes + extra) }),
      contentType: JSON_TYPE,
    })),
  },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 1, max: 64 * 1024 }).map((extra) => ({
      kind: 'form too large',
      body: `data=${encodeURIComponent(JSON.stringify(siblingBlob(0)))}&pad=${'x'.repeat(LIMITS.bodyBytes + extra)}`,
      contentType: FORM_TYPE,
    })),
  },
);

/** Content types ingest does not read: even a good body is refused. */
const wrongType: fc.Arbitrary<BadRequest> = fc
  .tuple(
    goodBody,
    fc.constantFrom(
      undefined,
      'text/plain',
      'text/plain;charset=UTF-8',
      'text/html',
      'text/json',
      'application/xml',
      'multipart/form-data; boundary=x',
      'application/octet-stream',
      'application/x-ndjson',
      'application/jsonx',
      'image/png',
      ';;;',
      'json',
    ),
  )
  .map(([body, contentType]) => ({ kind: 'wrong content type', body, contentType }));

/** Form bodies without a usable `data`. */
const badForm: fc.Arbitrary<BadRequest> = fc
  .oneof(
    fc.constantFrom(
      '',
      'foo=bar',
      'csrf=x',
      'data=',
      'data',
      'data[]=' + encodeURIComponent(JSON.stringify(siblingBlob(0))),
      'DATA=' + encodeURIComponent(JSON.stringify(siblingBlob(0))),
    ),
    fc.constantFrom('%ZZ', '%E0%A4%A', '%FF%FE', '%', '%%%', '+++').map((junk) => `data=${junk}`),
    goodBody.map((text) => text), // JSON sent as a form: no field called data
    fc.tuple(badBlobText, goodBody).map(([bad, good]) => `data=${encodeURIComponent(bad.text)}&data=${encodeURIComponent(good)}`),
    badBlobText.map((bad) => `__proto__=1&constructor=2&data=${encodeURIComponent(withExtra(bad.text, '"__proto__":{"polluted":"yes"}'))}`),
  )
  .map((body) => ({ kind: 'bad form', body, contentType: FORM_TYPE }));

/** Every kind of bad request, mostly bad blobs. */
export const badRequest: fc.Arbitrary<BadRequest> = fc.oneof(
  { weight: 10, arbitrary: inWireForm },
  { weight: 3, arbitrary: malformed },
  { weight: 1, arbitrary: oversized },
  { weight: 2, arbitrary: wrongType },
  { weight: 2, arbitrary: badForm },
);
