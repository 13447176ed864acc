/**
 * The readiness rule of `GET /health/ready` (src/health/probes.ts), on its own.
 */
import { describe, expect, it } from 'vitest';
import { readiness } from '../../src/health/probes.js';

describe('readiness', () => {
  it('is ready when the store answers and the aggregate is within the bound', () => {
    expect(readiness({ storeReachable: true, phase: 'live', lagSeconds: 0 }, 60)).toEqual({ ready: true, reasons: [] });
    expect(readiness({ storeReachable: true, phase: 'catching-up', lagSeconds: 59 }, 60)).toEqual({ ready: true, reasons: [] });
    expect(readiness({ storeReachable: true, phase: 'retrying', lagSeconds: 5 }, 60).ready).toBe(true);
  });

  it('is not ready when the store does not answer, whatever the aggregate', () => {
    expect(readiness({ storeReachable: false, phase: 'live', lagSeconds: 0 }, 60)).toEqual({ ready: false, reasons: ['the store does not answer'] });
  });

  it('is not ready once the lag reaches the bound, and gives every reason', () => {
    expect(readiness({ storeReachable: false, phase: 'retrying', lagSeconds: 75 }, 60)).toEqual({
      ready: false,
      reasons: ['the store does not answer', 'the aggregate has been behind the feed for 75 s (at most 60 s)'],
    });
    expect(readiness({ storeReachable: true, phase: 'catching-up', lagSeconds: 60 }, 60).ready).toBe(false);
  });

  it('is not ready when the aggregate stopped following the feed for good', () => {
    expect(readiness({ storeReachable: true, phase: 'failed', lagSeconds: 0 }, 60)).toEqual({
      ready: false,
      reasons: ['the aggregate has failed: it no longer follows the feed'],
    });
  });

  it('judges a standby by how fresh its copy of the published state is', () => {
    expect(readiness({ storeReachable: true, phase: 'standby', lagSeconds: 3 }, 60).ready).toBe(true);
    expect(readiness({ storeReachable: true, phase: 'standby', lagSeconds: 90 }, 60).reasons).toEqual([
      'the published state this standby serves was last confirmed current 90 s ago (at most 60 s)',
    ]);
  });
});
