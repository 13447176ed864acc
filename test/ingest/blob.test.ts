import { describe, expect, it } from 'vitest';
import { BlobFieldError, normalizeBlob, type NormalizeContext } from '../../src/ingest/blob.js';

const NOW = Date.UTC(2026, 10, 23, 12, 34, 56, 789);
const ctx: NormalizeContext = { now: NOW, maxAgeMs: 30 * 24 * 3_600_000, maxFutureMs: 24 * 3_600_000, userAgent: undefined };

function fieldError(fn: () => unknown): BlobFieldError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BlobFieldError);
    return err as BlobFieldError;
  }
  throw new Error('expected a BlobFieldError');
}

describe('normalizeBlob', () => {
  it('rounds the timestamp down to 10 minutes, and leaves the id to the writer', () => {
    const doc = normalizeBlob({ timestamp: NOW, event_stream: [] }, '', ctx);
    expect(doc.timestamp).toBe(Date.UTC(2026, 10, 23, 12, 30));
    expect(doc).not.toHaveProperty('_id');
  });

  it('keeps the known fields and drops every other one', () => {
    const doc = normalizeBlob(
      {
        timestamp: NOW,
        event_stream: [
          ['screen.rp_info', 5],
          ['assertion_generated', 900, 12],
        ],
        email_type: 'secondary',
        number_emails: 2,
        number_sites_logged_in: 4,
        new_account: false,
        lang: 'en-US',
        screen_size: { width: 1280, height: 800, depth: 24 },
        sample_rate: 0.5,
        user_agent: { os: 'Macintosh', browser: 'Safari', version: '5.1', build: 'x' },
        rp_api: 'get',
        number_sites_remembered: 3,
        orphaned: false,
        csrf: 'token',
        email: 'someone@example.com',
        ip: '10.0.0.1',
      },
      'data',
      ctx,
    );
    const { _id, ...rest } = doc;
    expect(rest).toEqual({
      timestamp: Date.UTC(2026, 10, 23, 12, 30),
      event_stream: [
        ['screen.rp_info', 5],
        ['assertion_generated', 900, 12],
      ],
      email_type: 'secondary',
      number_emails: 2,
      number_sites_logged_in: 4,
      new_account: false,
      lang: 'en-US',
      screen_size: { width: 1280, height: 800 },
      sample_rate: 0.5,
      user_agent: { os: 'Macintosh', browser: 'Safari', version: '5.1' },
      rp_api: 'get',
    });
  });

  it.each([
    ['number_sites_signed_in', 7],
    ['sites_signed_in', 3],
  ])('accepts the legacy %s as number_sites_logged_in', (key, value) => {
    const doc = normalizeBlob({ timestamp: NOW, [key]: value }, '', ctx);
    expect(doc.number_sites_logged_in).toBe(value);
    expect(doc).not.toHaveProperty(key);
  });

  it('accepts the legacy language as lang', () => {
    const doc = normalizeBlob({ timestamp: NOW, language: 'fr' }, '', ctx);
    expect(doc.lang).toBe('fr');
    expect(doc).not.toHaveProperty('language');
  });

  it('treats null as absent (deployed dialogs send lang: null)', () => {
    const doc = normalizeBlob({ timestamp: NOW, lang: null, email_type: null, number_emails: null, screen_size: null, event_stream: null }, '', ctx);
    expect(doc).not.toHaveProperty('lang');
    expect(doc).not.toHaveProperty('email_type');
    expect(doc).not.toHaveProperty('number_emails');
    expect(doc).not.toHaveProperty('screen_size');
    expect(doc.event_stream).toEqual([]);
  });

  it('stores an empty event stream when the blob has none', () => {
    expect(normalizeBlob({ timestamp: NOW }, '', ctx).event_stream).toEqual([]);
  });

  it("derives the user agent from the request when the blob has none, and keeps the blob's own otherwise", () => {
    const header = { os: 'Windows NT 6.1', browser: 'Firefox', version: 15 as const };
    expect(normalizeBlob({ timestamp: NOW }, '', { ...ctx, userAgent: header }).user_agent).toEqual(header);
    const own = { os: 'Linux', browser: 'Chrome', version: 9001 };
    expect(normalizeBlob({ timestamp: NOW, user_agent: own }, '', { ...ctx, userAgent: header }).user_agent).toEqual(own);
  });

  it.each([
    [{}, 'data[2].timestamp', 'is required'],
    [{ timestamp: 'yesterday' }, 'data[2].timestamp', 'must be integer'],
    [{ timestamp: NOW + 0.5 }, 'data[2].timestamp', 'must be integer'],
    [{ timestamp: NOW, event_stream: 'x' }, 'data[2].event_stream', 'must be array,null'],
    [
      {
        timestamp: NOW,
        event_stream: [
          ['a', 1],
          ['b', 'x'],
        ],
      },
      'data[2].event_stream[1][1]',
      'must be number',
    ],
    [{ timestamp: NOW, event_stream: [['a']] }, 'data[2].event_stream[0]', 'must NOT have fewer than 2 items'],
    [{ timestamp: NOW, event_stream: [['', 1]] }, 'data[2].event_stream[0][0]', 'must NOT have fewer than 1 characters'],
    [{ timestamp: NOW, event_stream: [['a', -1]] }, 'data[2].event_stream[0][1]', 'must be >= 0'],
    [{ timestamp: NOW, email_type: 'tertiary' }, 'data[2].email_type', 'must be equal to one of the allowed values'],
    [{ timestamp: NOW, number_emails: -1 }, 'data[2].number_emails', 'must be >= 0'],
    [{ timestamp: NOW, number_emails: 1.5 }, 'data[2].number_emails', 'must be integer,null'],
    [{ timestamp: NOW, new_account: 'yes' }, 'data[2].new_account', 'must be boolean,null'],
    [{ timestamp: NOW, sample_rate: 0 }, 'data[2].sample_rate', 'must be >= 0.01'],
    // below the floor one blob would stand for more than 100 dialogs (a billion at 1e-9)
    [{ timestamp: NOW, sample_rate: 0.009 }, 'data[2].sample_rate', 'must be >= 0.01'],
    [{ timestamp: NOW, sample_rate: 1e-9 }, 'data[2].sample_rate', 'must be >= 0.01'],
    [{ timestamp: NOW, sample_rate: 5e-324 }, 'data[2].sample_rate', 'must be >= 0.01'],
    [{ timestamp: NOW, sample_rate: 1.5 }, 'data[2].sample_rate', 'must be <= 1'],
    [{ timestamp: NOW, screen_size: { width: 'wide' } }, 'data[2].screen_size.width', 'must be integer'],
    [{ timestamp: NOW, user_agent: { os: 7 } }, 'data[2].user_agent.os', 'must be string'],
    [{ timestamp: NOW, lang: 'x'.repeat(36) }, 'data[2].lang', 'must NOT have more than 35 characters'],
  ])('rejects %j naming %s', (blob, field, problem) => {
    const err = fieldError(() => normalizeBlob(blob, 'data[2]', ctx));
    expect(err.field).toBe(field);
    expect(err.message).toBe(`${field} ${problem}`);
    expect(err.statusCode).toBe(400);
  });

  it('names fields of a bare blob without a prefix', () => {
    expect(fieldError(() => normalizeBlob({ timestamp: NOW, number_emails: 'two' }, '', ctx)).field).toBe('number_emails');
  });

  it('rejects what is not an object', () => {
    expect(fieldError(() => normalizeBlob([1, 2], 'data[0]', ctx)).message).toBe('data[0] must be a JSON object');
    expect(fieldError(() => normalizeBlob('blob', '', ctx)).message).toBe('body must be a JSON object');
  });

  it('rejects timestamps outside the accepted window, inclusive bounds accepted', () => {
    expect(fieldError(() => normalizeBlob({ timestamp: NOW - ctx.maxAgeMs - 1 }, 'data', ctx)).message).toBe('data.timestamp is older than the accepted 720 h');
    expect(fieldError(() => normalizeBlob({ timestamp: NOW + ctx.maxFutureMs + 1 }, 'data', ctx)).message).toBe(
      'data.timestamp is more than 1440 min in the future',
    );
    expect(() => normalizeBlob({ timestamp: NOW - ctx.maxAgeMs }, 'data', ctx)).not.toThrow();
    expect(() => normalizeBlob({ timestamp: NOW + ctx.maxFutureMs }, 'data', ctx)).not.toThrow();
  });

  it('refuses overlong event streams', () => {
    const events = Array.from({ length: 2001 }, (_, i) => ['e', i]);
    expect(fieldError(() => normalizeBlob({ timestamp: NOW, event_stream: events }, '', ctx)).field).toBe('event_stream');
  });
});
