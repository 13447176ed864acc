/**
 * The import and export commands' small pure parts: time options, the
 * screening of one source item and the summary line.
 */
import { describe, expect, it } from 'vitest';
import { importSummaryLine, parseTime } from '../../src/cli/transfer.js';
import { blobDigest } from '../../src/transfer/import-ids.js';
import { screenItem, topField, type ScreenRules } from '../../src/transfer/import-screen.js';

describe('import and export options', () => {
  it('take times as ms or ISO dates, and say what is wrong otherwise', () => {
    expect(parseTime('start', undefined)).toBeUndefined();
    expect(parseTime('start', '1795400400000')).toBe(1_795_400_400_000);
    expect(parseTime('start', '2026-11-01')).toBe(Date.UTC(2026, 10, 1));
    expect(parseTime('to', '2026-11-01T12:30:00+01:00')).toBe(Date.UTC(2026, 10, 1, 11, 30));
    expect(parseTime('to', '2026-11-01T12:30')).toBe(Date.UTC(2026, 10, 1, 12, 30)); // UTC, not this machine's zone
    expect(() => parseTime('from', 'last week')).toThrow('--from must be ms since the epoch or an ISO date (2026-11-01, 2026-11-01T12:30Z), got "last week"');
    for (const bad of ['-5', '2026-13-01', '1 2', '2026-11-01T25:00Z']) expect(() => parseTime('from', bad)).toThrow(/--from must be/);
  });
});

describe('the import summary', () => {
  it('is one line: read, rate, stored, already there, refused by field (most first), and what else happened', () => {
    const summary = { read: 12, stored: 5, alreadyThere: 2, refused: 4, failed: 1, outside: 0, seconds: 2, ratePerSec: 6 };
    expect(importSummaryLine({ ...summary, refusedByField: { json: 1, timestamp: 3 } }, 'x.ndjson')).toBe(
      'import from x.ndjson: read 12 blobs in 2.0 s (6/s): stored 5, already there 2, refused 4 (timestamp: 3, json: 1), not written 1',
    );
    expect(importSummaryLine({ ...summary, read: 1, refused: 0, failed: 0, outside: 3, refusedByField: {} }, 'stdin')).toBe(
      'import from stdin: read 1 blob in 2.0 s (6/s): stored 5, already there 2, refused 0, outside the range 3',
    );
  });

  it('groups refusals by the top-level field', () => {
    expect(topField('event_stream[2][1]')).toBe('event_stream');
    expect(topField('user_agent.os')).toBe('user_agent');
    expect(topField('timestamp')).toBe('timestamp');
  });
});

describe('screening one source item', () => {
  const now = Date.UTC(2026, 10, 20, 12);
  const rules: ScreenRules = {
    start: Date.UTC(2026, 10, 1),
    end: Date.UTC(2026, 10, 20),
    context: { now, maxAgeMs: Number.POSITIVE_INFINITY, maxFutureMs: 0, userAgent: undefined },
    retention: { cutoff: Date.UTC(2026, 10, 5), days: 15 },
  };
  const blob = (timestamp: number) => ({ timestamp, event_stream: [['screen.rp_info', 12]], lang: 'en-US' });

  it('passes a valid blob on, rounded to its bucket, with its digest', () => {
    const screened = screenItem({ position: 'line 1', value: blob(Date.UTC(2026, 10, 10, 8, 17)) }, rules);
    expect(screened.kind).toBe('blob');
    if (screened.kind !== 'blob') return;
    expect(screened.pending).toMatchObject({ bucket: Date.UTC(2026, 10, 10, 8, 10), position: 'line 1' });
    expect(screened.pending.digest).toBe(blobDigest(screened.pending.doc));
    expect(screened.pending.doc).not.toHaveProperty('_id'); // given by the bucket's ledger when written
  });

  it('counts a timestamp outside the range as outside, before any validation', () => {
    expect(screenItem({ position: 'line 2', value: { timestamp: Date.UTC(2026, 10, 21), junk: true } }, rules)).toEqual({ kind: 'outside' });
  });

  it('refuses what the source could not parse, what is no object, a bad field and what retention removes, naming the field', () => {
    expect(screenItem({ position: 'line 3', problem: { field: 'json', message: 'is not JSON' } }, rules)).toEqual({
      kind: 'refused',
      field: 'json',
      message: 'is not JSON',
    });
    expect(screenItem({ position: 'line 4', value: [1] }, rules)).toMatchObject({ kind: 'refused', field: 'blob' });
    expect(screenItem({ position: 'line 5', value: { ...blob(Date.UTC(2026, 10, 10)), event_stream: 'x' } }, rules)).toMatchObject({
      kind: 'refused',
      field: 'event_stream',
    });
    expect(screenItem({ position: 'line 6', value: blob(Date.UTC(2026, 10, 2)) }, rules)).toMatchObject({
      kind: 'refused',
      field: 'timestamp',
      message: expect.stringContaining('KPI_RETENTION_DAYS=15'),
    });
  });
});
