/**
 * The KPI answers' JSON schemas say exactly what the answers hold: real
 * answers, over random blobs (sampled ones too), for every bucket,
 * segmentation and funnel, validate against them with nothing missing and
 * nothing extra. Fastify serializes a response through its schema, so a
 * field the schema did not list would vanish from the API, and a count it
 * typed as an integer that is not one would be rounded.
 */
import { Ajv } from 'ajv';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { queryFunnel, queryKpis } from '../../src/aggregate/model/query.js';
import { defaultSegmentConfig } from '../../src/aggregate/model/segments.js';
import { AggregateState } from '../../src/aggregate/model/state.js';
import { funnelAnswerSchema, kpiAnswerSchema } from '../../src/contract/answer-schemas.js';
import { DIMENSIONS, type BucketName, type Dimension, type FunnelName, DAY } from '../../src/contract/kpis.js';
import { BASE_TIME, blobList } from '../aggregate/model/blob-arbitrary.js';

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
const validKpis = ajv.compile(kpiAnswerSchema);
const validFunnel = ajv.compile(funnelAnswerSchema);

describe('the KPI answers and their schemas', () => {
  it('every /api/kpis and /api/funnels answer validates, every field listed, none extra (property)', () => {
    fc.assert(
      fc.property(
        blobList(3, 40),
        fc.constantFrom<BucketName>('10m', '1h', '1d'),
        fc.constantFrom<Dimension | undefined>(undefined, ...DIMENSIONS),
        fc.constantFrom<FunnelName>('new-user', 'password-reset', 'progress'),
        (blobs, bucket, segment, funnel) => {
          const state = new AggregateState(defaultSegmentConfig);
          for (const blob of blobs) state.apply(blob);
          const window = { from: BASE_TIME, to: BASE_TIME + 3 * DAY, segment, ...(segment ? { top: 3 } : {}) };
          const answer = queryKpis(state, { ...window, bucket });
          if (!validKpis(answer)) throw new Error(`/api/kpis: ${ajv.errorsText(validKpis.errors)}`);
          expect('overall' in answer).toBe(segment !== undefined);
          const funnelAnswer = queryFunnel(state, funnel, window);
          if (!validFunnel(funnelAnswer)) throw new Error(`/api/funnels/${funnel}: ${ajv.errorsText(validFunnel.errors)}`);
        },
      ),
      { numRuns: 60 },
    );
  });
});
