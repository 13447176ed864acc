/**
 * The text formatter and the registry, pure: escaping, ordering, histogram
 * layout, name rules, monotonic readers.
 */
import { describe, expect, it } from 'vitest';
import { escapeHelp, escapeLabelValue, formatExposition, formatValue } from '../../src/metrics/exposition.js';
import { monotonic, MetricsRegistry } from '../../src/metrics/registry.js';

describe('formatExposition', () => {
  it('escapes label values: backslash, double quote, line feed (and nothing else)', () => {
    expect(escapeLabelValue('a\\b"c"\nd\te')).toBe('a\\\\b\\"c\\"\\nd\te');
    const text = formatExposition([{ name: 'x', help: 'h', type: 'gauge', samples: [{ name: 'x', labels: [['path', 'C:\\dir "q"\nnext']], value: 1 }] }]);
    expect(text).toBe('# HELP x h\n# TYPE x gauge\nx{path="C:\\\\dir \\"q\\"\\nnext"} 1\n');
  });

  it('escapes HELP text: backslash and line feed, quotes kept', () => {
    expect(escapeHelp('a \\ "b"\nc')).toBe('a \\\\ "b"\\nc');
  });

  it('writes special values as the format spells them', () => {
    expect([Infinity, -Infinity, NaN, 0, 1.5, 1e-7, 12345678901234].map(formatValue)).toEqual(['+Inf', '-Inf', 'NaN', '0', '1.5', '1e-7', '12345678901234']);
  });

  it('sorts families by name, keeps each family together, and samples in the given order', () => {
    const text = formatExposition([
      {
        name: 'b_total',
        help: 'B.',
        type: 'counter',
        samples: [
          { name: 'b_total', labels: [['k', 'z']], value: 2 },
          { name: 'b_total', labels: [['k', 'a']], value: 1 },
        ],
      },
      { name: 'a', help: 'A.', type: 'gauge', samples: [{ name: 'a', labels: [], value: 3 }] },
      { name: 'a_b', help: 'AB.', type: 'gauge', samples: [] },
    ]);
    expect(text).toBe(
      [
        '# HELP a A.',
        '# TYPE a gauge',
        'a 3',
        '# HELP a_b AB.',
        '# TYPE a_b gauge',
        '# HELP b_total B.',
        '# TYPE b_total counter',
        'b_total{k="z"} 2',
        'b_total{k="a"} 1',
        '',
      ].join('\n'),
    );
  });

  it('writes several labels in order, comma-separated', () => {
    const text = formatExposition([
      {
        name: 'i',
        help: 'I.',
        type: 'gauge',
        samples: [
          {
            name: 'i',
            labels: [
              ['version', '1.0'],
              ['node', 'v20'],
            ],
            value: 1,
          },
        ],
      },
    ]);
    expect(text.split('\n')[2]).toBe('i{version="1.0",node="v20"} 1');
  });

  it('is empty for no families', () => {
    expect(formatExposition([])).toBe('');
  });
});

describe('MetricsRegistry', () => {
  it('renders counters, gauges and histograms; histogram buckets are cumulative, +Inf equals _count', async () => {
    const registry = new MetricsRegistry();
    const requests = registry.counter('req_total', 'Requests.', ['status']);
    requests.labels('200').inc();
    requests.labels('200').inc(2);
    requests.labels('400').inc();
    registry.gauge('depth', 'Depth.', () => 7);
    const h = registry.histogram('size', 'Sizes.', [1, 5, 10]);
    for (const v of [0.5, 1, 3, 5, 9, 50]) h.observe(v);
    expect(await registry.render()).toBe(
      [
        '# HELP depth Depth.',
        '# TYPE depth gauge',
        'depth 7',
        '# HELP req_total Requests.',
        '# TYPE req_total counter',
        'req_total{status="200"} 3',
        'req_total{status="400"} 1',
        '# HELP size Sizes.',
        '# TYPE size histogram',
        'size_bucket{le="1"} 2',
        'size_bucket{le="5"} 4',
        'size_bucket{le="10"} 5',
        'size_bucket{le="+Inf"} 6',
        'size_sum 68.5',
        'size_count 6',
        '',
      ].join('\n'),
    );
  });

  it('lists a family whose reader has nothing to say without samples', async () => {
    const registry = new MetricsRegistry();
    registry.gauge('maybe', 'Maybe.', () => undefined);
    expect(await registry.render()).toBe('# HELP maybe Maybe.\n# TYPE maybe gauge\n');
  });

  it('leaves out the samples of a reader that throws, and says so', async () => {
    const errors: string[] = [];
    const registry = new MetricsRegistry({ onReadError: (name) => errors.push(name) });
    registry.gauge('broken', 'Broken.', () => {
      throw new Error('no');
    });
    registry.gauge('fine', 'Fine.', () => 1);
    expect(await registry.render()).toBe('# HELP broken Broken.\n# TYPE broken gauge\n# HELP fine Fine.\n# TYPE fine gauge\nfine 1\n');
    expect(errors).toEqual(['broken']);
  });

  it('runs before-scrape work once per scrape, before the readers', async () => {
    const registry = new MetricsRegistry();
    let pinged = 0;
    registry.beforeScrape(async () => {
      pinged++;
    });
    registry.gauge('pings', 'Pings.', () => pinged);
    expect(await registry.render()).toContain('pings 1\n');
    expect(await registry.render()).toContain('pings 2\n');
  });

  it('refuses bad names, counters without _total, other types with it, and names taken twice', () => {
    const registry = new MetricsRegistry();
    expect(() => registry.gauge('1bad', 'x', () => 1)).toThrow(/does not match/);
    expect(() => registry.gauge('bad-name', 'x', () => 1)).toThrow(/does not match/);
    expect(() => registry.counter('requests', 'x')).toThrow(/_total/);
    expect(() => registry.gauge('requests_total', 'x', () => 1)).toThrow(/only counters/);
    expect(() => registry.gauge('g', 'x', () => 1, ['__reserved'])).toThrow(/not allowed/);
    expect(() => registry.gauge('g', 'x', () => 1, ['a-b'])).toThrow(/not allowed/);
    registry.histogram('lat_seconds', 'x', [1]);
    expect(() => registry.gauge('lat_seconds_count', 'x', () => 1)).toThrow(/twice/);
    expect(() => registry.histogram('lat_seconds', 'x', [1])).toThrow(/twice/);
    expect(() => registry.histogram('h', 'x', [2, 1])).toThrow(/increase/);
    expect(() => registry.histogram('h2', 'x', [1, Infinity])).toThrow(/finite/);
  });

  it('counters only go up', () => {
    const registry = new MetricsRegistry();
    const c = registry.counter('c_total', 'C.');
    expect(() => c.inc(-1)).toThrow(RangeError);
    expect(() => c.inc(NaN)).toThrow(RangeError);
    c.inc(0);
    c.inc();
    expect(c.value()).toBe(1);
    expect(() => c.labels('x')).toThrow(/label value/);
    const l = registry.counter('l_total', 'L.', ['k']);
    expect(() => l.inc()).toThrow(/has labels/);
    expect(l.labels('a')).toBe(l.labels('a'));
  });
});

describe('monotonic', () => {
  it('keeps a total that restarts from 0 going up', () => {
    const values = [undefined, 3, 5, 5, 2, 4, 0, 1];
    let i = 0;
    const read = monotonic(() => values[i++]);
    expect(values.map(() => read())).toEqual([undefined, 3, 5, 5, 7, 9, 9, 10]);
  });
});
