/**
 * The coarse user agent kpi-live keeps instead of the `User-Agent` header.
 *
 * The dialog does not send a user agent; like the original receiving server,
 * kpi-live derives `{ os, browser, version }` from the request header: OS
 * family, browser family and major version only, in the original's vocabulary
 * (`Windows NT 6.1`, `Macintosh`, `iPhone`, …) so that old and new blobs
 * segment alike. The raw header is never stored nor logged: coarseness is the
 * privacy point (no fingerprinting).
 */
import { UAParser } from 'ua-parser-js';

export interface CoarseUserAgent {
  os: string;
  browser: string;
  version: number | 'Unknown';
}

const WINDOWS_NT: Record<string, string> = {
  XP: 'Windows NT 5.1',
  Vista: 'Windows NT 6.0',
  '7': 'Windows NT 6.1',
  '8': 'Windows NT 6.2',
  '8.1': 'Windows NT 6.3',
  '10': 'Windows NT 10.0',
  '11': 'Windows NT 10.0',
};

const BROWSERS: Record<string, string> = {
  IE: 'MSIE',
  IEMobile: 'MSIE',
  'Mobile Safari': 'Safari',
  'Mobile Firefox': 'Firefox',
  'Chrome WebView': 'Chrome',
  'Chrome Headless': 'Chrome',
  Chromium: 'Chrome',
};

function osFamily(parsed: UAParser.IResult): string {
  const name = parsed.os.name ?? '';
  switch (name) {
    case 'Windows':
      return WINDOWS_NT[parsed.os.version ?? ''] ?? 'Windows';
    case 'Mac OS':
    case 'macOS':
      return 'Macintosh';
    case 'iOS': {
      const model = parsed.device.model ?? '';
      return model === 'iPad' || model === 'iPod' ? model : 'iPhone';
    }
    case 'Firefox OS':
      return 'FirefoxOS';
    case '':
      return 'Unknown';
    default:
      return ['Ubuntu', 'Debian', 'Fedora', 'Linux', 'Arch', 'Mint', 'CentOS', 'Red Hat', 'SUSE', 'Gentoo'].includes(name) ? 'Linux' : name;
  }
}

function coarsen(header: string): CoarseUserAgent {
  const parsed = new UAParser(header).getResult();
  const name = parsed.browser.name ?? 'Unknown';
  const major = Number.parseInt(parsed.browser.major ?? '', 10);
  return { os: osFamily(parsed), browser: BROWSERS[name] ?? name, version: Number.isFinite(major) ? major : 'Unknown' };
}

const CACHE_LIMIT = 5000;
const cache = new Map<string, CoarseUserAgent>();

/**
 * The coarse user agent of a `User-Agent` header, or undefined without one.
 * Results are cached (a few thousand distinct headers cover real traffic);
 * the cache is cleared when full, so memory stays bounded.
 *
 * @example
 * coarseUserAgent('Mozilla/5.0 (Windows NT 6.1; rv:15.0) Gecko/20100101 Firefox/15.0');
 * // { os: 'Windows NT 6.1', browser: 'Firefox', version: 15 }
 */
export function coarseUserAgent(header: string | undefined): CoarseUserAgent | undefined {
  if (!header) return undefined;
  const key = header.slice(0, 512);
  let hit = cache.get(key);
  if (!hit) {
    hit = coarsen(key);
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(key, hit);
  }
  return { ...hit };
}
