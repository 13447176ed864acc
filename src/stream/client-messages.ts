/**
 * What a live-stream client may send, as JSON schema compiled by Ajv: the
 * `subscribe` object is built from the same field schemas as the query API's
 * query string (src/contract/window-schema.ts) and checked with the same
 * cross-field rules, so a window the HTTP API refuses the stream refuses too.
 *
 * Every value a client can send maps to a message or to a problem naming the
 * field at fault (`subscribe.rangeMs must be …`, `hello.token must be a
 * string`): a frame is never trusted to have any shape. Unknown fields are
 * refused, so a misspelt one is named rather than silently ignored.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { windowFieldSchemas, windowProblem, type FieldProblem } from '../contract/window-schema.js';
import type { ClientMessage, Subscription } from '../contract/stream.js';

/** Longest token a `hello` may carry (a kpi-live token is 47 characters). */
export const MAX_TOKEN_LENGTH = 512;
/** Longest epoch a `resume` may carry (the service's are 12 hex digits). */
export const MAX_EPOCH_LENGTH = 64;

const subscriptionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['rangeMs'],
  properties: {
    rangeMs: windowFieldSchemas.rangeMs,
    from: windowFieldSchemas.time,
    bucket: windowFieldSchemas.bucket,
    segment: windowFieldSchemas.segment,
    top: windowFieldSchemas.top,
  },
} as const;

const envelopeSchema = {
  type: 'object',
  required: ['type'],
  properties: { type: { type: 'string', enum: ['hello', 'subscribe'] } },
} as const;

const helloSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'subscribe'],
  properties: {
    type: { const: 'hello' },
    token: { type: 'string', maxLength: MAX_TOKEN_LENGTH },
    subscribe: subscriptionSchema,
    resume: {
      type: 'object',
      additionalProperties: false,
      required: ['epoch', 'version'],
      properties: {
        epoch: { type: 'string', maxLength: MAX_EPOCH_LENGTH },
        version: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
      },
    },
  },
} as const;

const subscribeSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'subscribe'],
  properties: { type: { const: 'subscribe' }, subscribe: subscriptionSchema },
} as const;

// No coercion, defaults or removal: a message is checked as sent. `verbose`
// gives each error its schema, from which the message says what is expected.
const ajv = new Ajv({ strict: true, allErrors: false, verbose: true, coerceTypes: false, useDefaults: false, removeAdditional: false });
const validateEnvelope = ajv.compile(envelopeSchema);
const validateHello = ajv.compile(helloSchema);
const validateSubscribe = ajv.compile(subscribeSchema);
const validateSubscription = ajv.compile(subscriptionSchema);

const SUBSCRIBE_NAMES = { prefix: 'subscribe', range: { field: 'subscribe.rangeMs', name: 'subscribe.rangeMs' } } as const;

/** What a schema asks for, in words: `an integer between 1 and 20`, `one of 10m, 1h, 1d`. */
export function expected(schema: unknown): string {
  const s = (typeof schema === 'object' && schema !== null ? schema : {}) as Record<string, unknown>;
  if ('const' in s) return JSON.stringify(s.const);
  if (Array.isArray(s.enum)) return `one of ${s.enum.join(', ')}`;
  switch (s.type) {
    case 'integer': {
      const min = s.minimum as number | undefined;
      const max = s.maximum as number | undefined;
      if (min !== undefined && max !== undefined) return `an integer between ${min} and ${max}`;
      return min !== undefined ? `an integer ≥ ${min}` : 'an integer';
    }
    case 'string':
      return s.maxLength !== undefined ? `a string of at most ${String(s.maxLength)} characters` : 'a string';
    case 'object':
      return 'an object';
    default:
      return 'valid';
  }
}

/** A client-chosen name, shown only when it is short and plain. */
const shown = (name: string) => (/^[A-Za-z0-9_$-]{1,32}$/.test(name) ? `"${name}"` : 'a field');

/**
 * The field an Ajv error is about and what is wrong with it. The `subscribe`
 * object is named `subscribe` in both messages; other fields are named under
 * `root` (`hello.token`, `hello.resume.version`).
 */
function problemOf(error: ErrorObject, root: string): FieldProblem {
  const parts = error.instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const field = parts[0] === 'subscribe' ? parts.join('.') : [root, ...parts].join('.');
  if (error.keyword === 'required') {
    const missing = (error.params as { missingProperty: string }).missingProperty;
    return { field: `${field}.${missing}`, message: `${field}.${missing} is required` };
  }
  if (error.keyword === 'additionalProperties') {
    const extra = (error.params as { additionalProperty: string }).additionalProperty;
    return { field, message: `${field} has ${shown(extra)} it does not know (it takes ${Object.keys(propertiesOf(error.parentSchema)).join(', ')})` };
  }
  return { field, message: `${field} must be ${expected(error.parentSchema)}` };
}

const propertiesOf = (schema: unknown) => ((schema as { properties?: Record<string, unknown> } | undefined)?.properties ?? {}) as Record<string, unknown>;

/**
 * Checks a subscription: its fields by schema, then the rules between them.
 * Returns a message naming the field at fault, or undefined.
 *
 * @example
 * subscriptionProblem({ rangeMs: 'x' }); // { field: 'subscribe.rangeMs', message: 'subscribe.rangeMs must be an integer between 600000 and 34560000000' }
 */
export function subscriptionProblem(sub: unknown): FieldProblem | undefined {
  if (!validateSubscription(sub)) return problemOf(validateSubscription.errors![0]!, 'subscribe');
  return windowProblem(sub as Subscription, SUBSCRIBE_NAMES);
}

/**
 * A client message from its parsed JSON, whatever that is: the message, or
 * the first problem with it, naming the field.
 *
 * @example
 * readClientMessage({ type: 'hello', token: 5, subscribe: { rangeMs: 3_600_000 } });
 * // { problem: { field: 'hello.token', message: 'hello.token must be a string of at most 512 characters' } }
 */
export function readClientMessage(value: unknown): { message: ClientMessage } | { problem: FieldProblem } {
  if (!validateEnvelope(value)) {
    const error = validateEnvelope.errors![0]!;
    if (error.instancePath === '' && error.keyword === 'type') return { problem: { field: 'message', message: 'a message must be a JSON object' } };
    return { problem: problemOf(error, 'message') };
  }
  const type = (value as { type: 'hello' | 'subscribe' }).type;
  const validate = type === 'hello' ? validateHello : validateSubscribe;
  if (!validate(value)) return { problem: problemOf(validate.errors![0]!, type === 'hello' ? 'hello' : 'message') };
  const message = value as ClientMessage;
  const problem = windowProblem(message.subscribe, SUBSCRIBE_NAMES);
  return problem ? { problem } : { message };
}
