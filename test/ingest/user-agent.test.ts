import { describe, expect, it } from 'vitest';
import { coarseUserAgent } from '../../src/ingest/user-agent.js';

describe('coarseUserAgent', () => {
  it.each([
    ['Mozilla/5.0 (Windows NT 6.1; WOW64; rv:15.0) Gecko/20100101 Firefox/15.0', { os: 'Windows NT 6.1', browser: 'Firefox', version: 15 }],
    ['Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0)', { os: 'Windows NT 6.1', browser: 'MSIE', version: 9 }],
    [
      'Mozilla/5.0 (Windows NT 6.2; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/30.0.1599.101 Safari/537.36',
      { os: 'Windows NT 6.2', browser: 'Chrome', version: 30 },
    ],
    ['Mozilla/5.0 (Windows NT 5.1; rv:10.0) Gecko/20100101 Firefox/10.0', { os: 'Windows NT 5.1', browser: 'Firefox', version: 10 }],
    [
      'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15',
      { os: 'Macintosh', browser: 'Safari', version: 17 },
    ],
    [
      'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
      { os: 'iPhone', browser: 'Safari', version: 17 },
    ],
    [
      'Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1',
      { os: 'iPad', browser: 'Safari', version: 16 },
    ],
    [
      'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36',
      { os: 'Android', browser: 'Chrome', version: 120 },
    ],
    ['Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0', { os: 'Linux', browser: 'Firefox', version: 120 }],
    ['Mozilla/5.0 (Mobile; rv:26.0) Gecko/26.0 Firefox/26.0', { os: 'FirefoxOS', browser: 'Firefox', version: 26 }],
    ['curl/8.0', { os: 'Unknown', browser: 'Unknown', version: 'Unknown' }],
  ])('reduces %s to family and major version', (header, expected) => {
    expect(coarseUserAgent(header)).toEqual(expected);
  });

  it('gives nothing without a header', () => {
    expect(coarseUserAgent(undefined)).toBeUndefined();
    expect(coarseUserAgent('')).toBeUndefined();
  });

  it('hands out copies, so a caller cannot corrupt the cache', () => {
    const ua = 'Mozilla/5.0 (Windows NT 6.1; rv:15.0) Gecko/20100101 Firefox/15.0';
    coarseUserAgent(ua)!.os = 'changed';
    expect(coarseUserAgent(ua)!.os).toBe('Windows NT 6.1');
  });
});
