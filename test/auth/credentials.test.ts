import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hashPassword, newApiToken, parseUsers, tokenChecker, tokenDigest, userEntry, verifyPassword } from '../../src/auth/credentials.js';
import { cookieValue, SessionKeeper } from '../../src/auth/sessions.js';

describe('API tokens', () => {
  it('are random, shown once, and configured only as a digest that checks them', () => {
    const a = newApiToken();
    const b = newApiToken();
    expect(a.token).not.toBe(b.token);
    expect(a.token.length).toBeGreaterThanOrEqual(40);
    expect(a.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(a.digest).not.toContain(a.token);
    const valid = tokenChecker([a.digest]);
    expect(valid(a.token)).toBe(true);
    expect(valid(b.token)).toBe(false);
    expect(valid(undefined)).toBe(false);
    expect(valid(a.digest)).toBe(false);
  });

  it('never accepts a token other than the configured ones', () => {
    const valid = tokenChecker([tokenDigest('the-one')]);
    fc.assert(fc.property(fc.string(), (token) => valid(token) === (token === 'the-one')));
  });
});

describe('passwords', () => {
  it('are kept as salted scrypt hashes and verified', () => {
    const one = hashPassword('correct horse battery');
    const two = hashPassword('correct horse battery');
    expect(one).toMatch(/^scrypt:16384:8:1:/);
    expect(one).not.toBe(two);
    expect(one).not.toContain('correct');
    expect(verifyPassword('correct horse battery', one)).toBe(true);
    expect(verifyPassword('correct horse batterz', one)).toBe(false);
    expect(verifyPassword('', one)).toBe(false);
    expect(verifyPassword('x', 'not-a-hash')).toBe(false);
  });

  it('reads KPI_USERS entries and names a bad one by position, never by content', () => {
    const entry = userEntry('oncall', 'a long enough password');
    const users = parseUsers([entry]);
    expect(verifyPassword('a long enough password', users.get('oncall')!)).toBe(true);
    expect(() => parseUsers([entry, 'mallory:plaintext-secret'])).toThrow(/entry 2 is not/);
    try {
      parseUsers(['mallory:plaintext-secret']);
    } catch (err) {
      expect((err as Error).message).not.toContain('plaintext-secret');
    }
    expect(() => userEntry('bad name', 'x'.repeat(20))).toThrow(/user name/);
  });
});

describe('sessions', () => {
  const keeper = new SessionKeeper('k'.repeat(40), 3_600_000);

  it('accept their own cookie until it expires, and nothing else', () => {
    const { session, cookie } = keeper.issue('oncall', keeper.credentialId('hash'), 1_000);
    expect(keeper.verify(cookie, 2_000)).toEqual(session);
    expect(keeper.verify(cookie, 1_000 + 3_600_000)).toBeUndefined();
    expect(new SessionKeeper('o'.repeat(40), 3_600_000).verify(cookie, 2_000)).toBeUndefined();
    const [payload, mac] = cookie.split('.');
    const forged = Buffer.from(JSON.stringify({ u: 'admin', i: session.id, e: session.expiresAt })).toString('base64url');
    expect(keeper.verify(`${forged}.${mac}`, 2_000)).toBeUndefined();
    expect(keeper.verify(`${payload}.${mac}x`, 2_000)).toBeUndefined();
    expect(keeper.verify(undefined)).toBeUndefined();
    expect(keeper.verify('garbage')).toBeUndefined();
  });

  it('refuse cookies of any other shape, even genuinely signed ones (verify is total)', () => {
    // what only someone holding the key could make: the payload's shape is still checked
    const signed = (payload: unknown) => {
      const text = Buffer.from(JSON.stringify(payload) ?? '').toString('base64url');
      return `${text}.${createHmac('sha256', 'k'.repeat(40)).update(text).digest('base64url')}`;
    };
    const id = 'A'.repeat(22);
    expect(keeper.verify(signed({ u: 'a', i: id, c: 'c', e: 9e15 }))).toMatchObject({ user: 'a', id, credential: 'c' });
    for (const value of [
      undefined,
      null,
      5,
      {},
      ['a.b'],
      '',
      '.',
      'a.',
      '.b',
      '%%%.###',
      'x'.repeat(1024 * 1024),
      signed(null),
      signed([1]),
      signed('text'),
      signed({ u: 'a', i: id, c: 'c', e: '9e15' }),
      signed({ u: 'a', i: id, e: 9e15 }), // made before sessions named their credential
      signed({ u: 'a', i: '../x', c: 'c', e: 9e15 }),
      signed({ u: {}, i: id, c: 'c', e: 9e15 }),
    ])
      expect(keeper.verify(value)).toBeUndefined();
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.jsonValue().map(signed)), (cookie) => {
        const session = keeper.verify(cookie);
        if (session)
          expect(session).toEqual({ user: expect.any(String), id: expect.any(String), credential: expect.any(String), expiresAt: expect.any(Number) });
      }),
    );
  });

  it('each have their own CSRF token', () => {
    const a = keeper.issue('a', 'c').session;
    const b = keeper.issue('a', 'c').session;
    expect(keeper.checkCsrf(a, keeper.csrfToken(a))).toBe(true);
    expect(keeper.checkCsrf(a, keeper.csrfToken(b))).toBe(false);
    expect(keeper.checkCsrf(a, undefined)).toBe(false);
  });

  it('finds a cookie among others', () => {
    expect(cookieValue('a=1; kpi_session=abc.def; b=2', 'kpi_session')).toBe('abc.def');
    expect(cookieValue('kpi_sessionx=1', 'kpi_session')).toBeUndefined();
    expect(cookieValue(undefined, 'kpi_session')).toBeUndefined();
    // repeated cookies: the first; several headers: joined; any other shape: none
    expect(cookieValue('kpi_session=first; kpi_session=second', 'kpi_session')).toBe('first');
    expect(cookieValue(['a=1', 'kpi_session=x.y'], 'kpi_session')).toBe('x.y');
    for (const shape of [5, {}, null, [{}], '', ';;;', '=;=', 'kpi_session']) expect(cookieValue(shape, 'kpi_session')).toBeUndefined();
    expect(cookieValue(`${'a=b; '.repeat(200_000)}kpi_session=z`, 'kpi_session')).toBe('z');
  });
});
