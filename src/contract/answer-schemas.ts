/**
 * The contract, part 4: the JSON schemas of the KPI answers (`/api/kpis`,
 * `/api/funnels/:name`), field for field as kpis.ts types them. Fastify
 * serializes a response through its schema, so these are what a client can
 * rely on: every field required, nothing else sent. A test validates real
 * answers against them (test/contract/answer-schemas.test.ts), so a field
 * added to the types and not here fails there instead of vanishing from the
 * response.
 */
import { DIMENSIONS } from './kpis.js';

const nullableNumber = { type: ['number', 'null'] } as const;
const count = { type: 'integer', minimum: 0 } as const;

/** An object whose every listed field is required, and nothing else. */
const exactly = <P extends Record<string, unknown>>(properties: P) =>
  ({ type: 'object', additionalProperties: false, required: Object.keys(properties), properties }) as const;

const funnelStepSchema = exactly({
  step: { type: 'integer', minimum: 0 },
  name: { type: 'string' },
  count,
  estimate: { type: 'number', minimum: 0 },
  conversionFromStart: nullableNumber,
  conversionFromPrevious: nullableNumber,
  dropOff: nullableNumber,
});

const funnelSchema = { type: 'array', items: funnelStepSchema } as const;

export const kpisSchema = exactly({
  sampled: { type: 'boolean' },
  dialogs: count,
  dialogsEstimate: { type: 'number', minimum: 0 },
  assertions: count,
  newUsers: count,
  newUsersEstimate: { type: 'number', minimum: 0 },
  sitesLoggedIn: exactly({ median: nullableNumber, mean: nullableNumber, p90: nullableNumber }),
  newUserFunnel: funnelSchema,
  passwordResetFunnel: funnelSchema,
  progress: funnelSchema,
  passwordResetSuccess: nullableNumber,
  additionalEmailShare: nullableNumber,
  bounceRate: nullableNumber,
  newUserBounce: nullableNumber,
  errorScreenRate: nullableNumber,
  outcomes: exactly({ bounce: count, fallback: count, idp: count, assertion: count, fail: count }),
  timeToLoginMs: exactly({ median: nullableNumber, p90: nullableNumber, count }),
  newUserStepTimesMs: { type: 'array', items: exactly({ step: { type: 'integer' }, name: { type: 'string' }, median: nullableNumber, p90: nullableNumber }) },
});

const time = { type: 'integer', minimum: 0 } as const;
const segment = { anyOf: [{ type: 'string', enum: [...DIMENSIONS] }, { type: 'null' }] } as const;

const { required: answerRequired, ...answerShape } = exactly({
  from: time,
  to: time,
  bucket: { type: 'string', enum: ['10m', '1h', '1d'] },
  bucketMs: { type: 'integer', minimum: 1 },
  segment,
  watermark: time,
  series: {
    type: 'array',
    items: exactly({
      segment: { type: 'string' },
      total: kpisSchema,
      points: { type: 'array', items: exactly({ start: time, end: time, kpis: kpisSchema }) },
    }),
  },
  overall: kpisSchema,
});

/** `GET /api/kpis` (KpiAnswer): `overall` only with a segmentation. */
export const kpiAnswerSchema = { ...answerShape, required: answerRequired.filter((field) => field !== 'overall') } as const;

/** `GET /api/funnels/:name` (FunnelAnswer). */
export const funnelAnswerSchema = exactly({
  funnel: { type: 'string', enum: ['new-user', 'password-reset', 'progress'] },
  from: time,
  to: time,
  segment,
  series: { type: 'array', items: exactly({ segment: { type: 'string' }, steps: funnelSchema }) },
});
