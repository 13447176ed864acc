/**
 * Segmentations (kpi-definitions §5): which segment value a blob has along
 * each dimension. The lists and aliases are configuration
 * (`segments.default.json`, replaceable with `KPI_SEGMENTS_FILE`); a value
 * outside the configured list is `Other`, a missing one `Unknown`. Pure.
 */
import { readFileSync } from 'node:fs';
import defaults from './segments.default.json' with { type: 'json' };

import { OTHER, type Dimension } from '../../contract/kpis.js';

export const UNKNOWN = 'Unknown';

interface Categorical {
  /** Raw value → shown value. */
  aliases: Record<string, string>;
  /** Shown values kept; anything else is Other. Absent: the aliases' targets. */
  values?: string[];
}

export interface SegmentConfig {
  os: Categorical;
  browser: Categorical;
  screen: { desktopMinWidth: number; mobileMaxWidth: number };
  locale: Categorical & { matchPrimarySubtag?: boolean };
  api: Categorical;
  emailType: Categorical;
}

export const defaultSegmentConfig: SegmentConfig = defaults as SegmentConfig;

/** Reads a segment configuration file, checking its shape; throws naming what is wrong. */
export function loadSegmentConfig(file: string | undefined): SegmentConfig {
  if (!file) return defaultSegmentConfig;
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<SegmentConfig>;
  const config = { ...defaultSegmentConfig, ...parsed };
  for (const key of ['os', 'browser', 'locale', 'api', 'emailType'] as const) {
    const dim = config[key];
    if (typeof dim?.aliases !== 'object' || (dim.values !== undefined && !Array.isArray(dim.values))) {
      throw new Error(`segment config ${file}: "${key}" needs "aliases" (object) and optionally "values" (array)`);
    }
  }
  if (typeof config.screen?.desktopMinWidth !== 'number' || typeof config.screen?.mobileMaxWidth !== 'number') {
    throw new Error(`segment config ${file}: "screen" needs numeric "desktopMinWidth" and "mobileMaxWidth"`);
  }
  return config;
}

/** The values kept per dimension, computed once per configuration (this runs for every blob). */
const keptValues = new WeakMap<Categorical, Set<string>>();

function categorical(dim: Categorical, raw: unknown): string {
  if (raw === undefined || raw === null || raw === '') return UNKNOWN;
  const text = String(raw);
  const shown = Object.hasOwn(dim.aliases, text) ? dim.aliases[text]! : text;
  let kept = keptValues.get(dim);
  if (!kept) {
    kept = new Set(dim.values ?? Object.values(dim.aliases));
    keptValues.set(dim, kept);
  }
  return kept.has(shown) ? shown : OTHER;
}

/** The fields of a stored blob that segmentation reads. */
export interface SegmentInput {
  number_emails?: number;
  lang?: string;
  screen_size?: { width?: number };
  user_agent?: { os?: string; browser?: string };
  rp_api?: string;
  email_type?: string;
}

/**
 * The segment value of a blob along every dimension. `hasFlowSteps`: the blob
 * has new-user or password-reset steps, which makes its email type Fallback.
 *
 * @example
 * segmentsOf({ user_agent: { os: 'Windows NT 6.1' }, screen_size: { width: 1280 } }, false, defaultSegmentConfig);
 * // { os: 'Windows 7', browser: 'Unknown', screen: 'Desktop', emails: 'Unknown', locale: 'Unknown', api: 'Unknown', emailType: 'Unknown' }
 */
export function segmentsOf(blob: SegmentInput, hasFlowSteps: boolean, config: SegmentConfig): Record<Dimension, string> {
  const width = blob.screen_size?.width;
  const emails = blob.number_emails;
  let locale = categorical(config.locale, blob.lang);
  if (locale === OTHER && config.locale.matchPrimarySubtag && blob.lang) {
    // en-US is English when only `en` is listed
    const primary = categorical(config.locale, blob.lang.split(/[-_]/)[0]);
    if (primary !== UNKNOWN) locale = primary;
  }
  return {
    os: categorical(config.os, blob.user_agent?.os),
    browser: categorical(config.browser, blob.user_agent?.browser),
    screen:
      typeof width !== 'number' ? UNKNOWN : width >= config.screen.desktopMinWidth ? 'Desktop' : width <= config.screen.mobileMaxWidth ? 'Mobile' : 'Tablet',
    emails: typeof emails !== 'number' ? UNKNOWN : emails >= 3 ? '3+' : String(emails),
    locale,
    api: categorical(config.api, blob.rp_api),
    emailType: hasFlowSteps ? 'Fallback' : categorical(config.emailType, blob.email_type),
  };
}
