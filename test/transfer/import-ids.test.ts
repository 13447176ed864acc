/**
 * Ids of imported blobs: of the ingest id form (time order, run and counter
 * for the aggregate's applied set), with a run fixed by bucket and source
 * label; digests that ignore key order.
 */
import { describe, expect, it } from 'vitest';
import { AppliedSet } from '../../src/aggregate/model/applied-set.js';
import { blobDocId, parseBlobDocId, runAndCounter, timeKey } from '../../src/store/blob-ids.js';
import { blobDigest, canonicalJson, importRun, runKeys } from '../../src/transfer/import-ids.js';

const BUCKET = Date.UTC(2026, 10, 23, 12, 10);

describe('import runs', () => {
  it('are ten base-32 characters, the same for the same bucket and label, different otherwise', () => {
    const run = importRun(BUCKET);
    expect(run).toMatch(/^[0-9a-v]{10}$/);
    expect(importRun(BUCKET)).toBe(run);
    expect(importRun(BUCKET + 600_000)).not.toBe(run);
    expect(importRun(BUCKET, 'region-eu')).not.toBe(run);
    expect(importRun(BUCKET, 'region-eu')).toBe(importRun(BUCKET, 'region-eu'));
  });

  it('give ids that ingest, retention and the aggregate all read as blob ids', () => {
    const id = blobDocId(BUCKET, importRun(BUCKET), 41);
    expect(parseBlobDocId(id)).toEqual({ time: BUCKET, run: importRun(BUCKET), counter: 41 });
    expect(runAndCounter(id)).toEqual({ run: importRun(BUCKET), counter: 41 });
    expect(id.startsWith(`${timeKey(BUCKET)}_`)).toBe(true);
  });

  it('keep a large import in the applied set as one range per bucket', () => {
    const applied = new AppliedSet();
    for (let b = 0; b < 144; b++) {
      const bucket = BUCKET + b * 600_000;
      for (let counter = 0; counter < 500; counter++) applied.add(blobDocId(bucket, importRun(bucket), counter));
    }
    expect(applied.size).toEqual({ runs: 144, ranges: 144, foreign: 0 });
  });

  it('have key ranges holding exactly the run’s ids of the bucket', () => {
    const run = importRun(BUCKET);
    const { startkey, endkey } = runKeys(BUCKET, run);
    const inside = [0, 1, 35, 36, 2 ** 40].map((c) => blobDocId(BUCKET, run, c));
    const outside = [blobDocId(BUCKET, importRun(BUCKET, 'x'), 0), blobDocId(BUCKET + 600_000, run, 0), blobDocId(BUCKET - 600_000, run, 0)];
    for (const id of inside) expect(id > startkey && id < endkey).toBe(true);
    for (const id of outside) expect(id > startkey && id < endkey).toBe(false);
  });
});

describe('blob digests', () => {
  it('ignore key order, _id and _rev, and tell different content apart', () => {
    const a = { timestamp: BUCKET, event_stream: [['screen.rp_info', 1]], screen_size: { width: 1, height: 2 } };
    const b = { screen_size: { height: 2, width: 1 }, _id: 'x', _rev: '1-a', event_stream: [['screen.rp_info', 1]], timestamp: BUCKET };
    expect(blobDigest(a)).toBe(blobDigest(b));
    expect(blobDigest(a)).not.toBe(blobDigest({ ...a, event_stream: [['screen.rp_info', 2]] }));
    expect(blobDigest({ ...a, user_agent: { version: '5' } })).not.toBe(blobDigest({ ...a, user_agent: { version: 5 } }));
    expect(canonicalJson({ b: [1, { d: 1, c: undefined }], a: 'x' })).toBe('{"a":"x","b":[1,{"d":1}]}');
  });
});
