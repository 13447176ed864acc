/**
 * The Prometheus text exposition format, version 0.0.4: pure functions from
 * metric families to the text a scraper reads. No IO, no state.
 *
 * One family is a `# HELP` line, a `# TYPE` line, then its samples, all
 * together. Families come out sorted by name, so two scrapes of the same
 * registry list them in the same order whatever order features registered
 * them in; samples keep the order they are given in (a histogram's buckets
 * ascending, then `_sum` and `_count`, as the format asks).
 */

export type MetricType = 'counter' | 'gauge' | 'histogram';

/** One line of a family: `name{label="value",…} value`. */
export interface Sample {
  /** The family's name, or with a suffix (`_bucket`, `_sum`, `_count`). */
  readonly name: string;
  /** Label names and values, in the order they are written. */
  readonly labels: readonly (readonly [string, string])[];
  readonly value: number;
}

export interface MetricFamily {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly samples: readonly Sample[];
}

/** The content type a scraper expects of this format. */
export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Metric names of the format. */
export const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
/** Label names of the format (`__` prefixes are the scraper's own). */
export const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * A `# HELP` text: backslash and line feed escaped.
 *
 * @example
 * escapeHelp('a\\b\nc'); // 'a\\\\b\\nc'
 */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/**
 * A label value: backslash, double quote and line feed escaped.
 *
 * @example
 * escapeLabelValue('say "hi"'); // 'say \\"hi\\"'
 */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/**
 * A sample value (or an `le` bound) as the format writes it: `+Inf`, `-Inf`,
 * `NaN`, else the shortest decimal that reads back as the same number.
 *
 * @example
 * formatValue(Infinity); // '+Inf'
 * formatValue(0.25);     // '0.25'
 */
export function formatValue(value: number): string {
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  if (Number.isNaN(value)) return 'NaN';
  return String(value);
}

function sampleLine(sample: Sample): string {
  if (sample.labels.length === 0) return `${sample.name} ${formatValue(sample.value)}`;
  const labels = sample.labels.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(',');
  return `${sample.name}{${labels}} ${formatValue(sample.value)}`;
}

/**
 * The exposition of some families, sorted by name, ending with a line feed.
 *
 * @example
 * formatExposition([{ name: 'up', help: 'Whether it runs.', type: 'gauge', samples: [{ name: 'up', labels: [], value: 1 }] }]);
 * // '# HELP up Whether it runs.\n# TYPE up gauge\nup 1\n'
 */
export function formatExposition(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const family of [...families].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`);
    for (const sample of family.samples) lines.push(sampleLine(sample));
  }
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}
