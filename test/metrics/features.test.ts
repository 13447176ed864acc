/**
 * The pure parts behind `kpi_aggregate_buckets`: the state counts its buckets
 * by size, sizes become stable label values, and the three sizes the state
 * keeps are always listed.
 */
import { describe, expect, it } from 'vitest';
import type { FactsInput } from '../../src/aggregate/model/facts.js';

import { defaultSegmentConfig } from '../../src/aggregate/model/segments.js';
import { AggregateState } from '../../src/aggregate/model/state.js';
import { bucketReadings, durationLabel } from '../../src/metrics/features.js';
import { blobDocId } from '../../src/store/blob-ids.js';
import { BUCKET_SIZES, DAY, HOUR, MINUTE, TEN_MINUTES } from '../../src/contract/kpis.js';

const T = Date.UTC(2026, 9, 1, 12, 0);
const RUN = 'aaaaaaaaaa';

const blob = (counter: number, time: number): FactsInput & { _id: string } => ({
  _id: blobDocId(time, RUN, counter),
  timestamp: time,
  event_stream: [['screen.rp_info', 10]],
});

describe('durationLabel', () => {
  it('names a size by the largest unit that divides it', () => {
    expect([TEN_MINUTES, HOUR, DAY].map(durationLabel)).toEqual(['10m', '1h', '1d']);
    expect([2 * HOUR, 7 * DAY, 90 * MINUTE, 90_000, 1500].map(durationLabel)).toEqual(['2h', '7d', '90m', '90s', '1500ms']);
  });

  it('gives the names the query API uses for its bucket sizes', () => {
    for (const [name, ms] of Object.entries(BUCKET_SIZES)) expect(durationLabel(ms)).toBe(name);
  });
});

describe('AggregateState.bucketCounts', () => {
  it('is empty for an empty state', () => {
    expect(new AggregateState(defaultSegmentConfig).bucketCounts()).toEqual([]);
  });

  it('counts the buckets held by size, smallest first, and follows downsampling', () => {
    const state = new AggregateState(defaultSegmentConfig);
    // newest first: each later blob lands in a bucket of the size its age gives
    state.apply(blob(0, T + 20 * MINUTE));
    state.apply(blob(1, T));
    state.apply(blob(2, T - 3 * DAY));
    state.apply(blob(3, T - 40 * DAY));
    state.apply(blob(4, T - 40 * DAY - 5 * MINUTE)); // the same day bucket
    expect(state.bucketCounts()).toEqual([
      { size: TEN_MINUTES, count: 2 },
      { size: HOUR, count: 1 },
      { size: DAY, count: 1 },
    ]);
    expect(state.bucketCounts().reduce((n, c) => n + c.count, 0)).toBe(state.buckets.size);

    // three days later, the two 10-minute buckets (of one hour) have merged into an hourly one
    state.apply(blob(5, T + 3 * DAY));
    state.downsample();
    expect(state.bucketCounts()).toEqual([
      { size: TEN_MINUTES, count: 1 },
      { size: HOUR, count: 2 },
      { size: DAY, count: 1 },
    ]);
  });
});

describe('bucketReadings', () => {
  it('lists 10m, 1h and 1d always, 0 while none is held', () => {
    expect(bucketReadings([])).toEqual([
      { labels: { size: '10m' }, value: 0 },
      { labels: { size: '1h' }, value: 0 },
      { labels: { size: '1d' }, value: 0 },
    ]);
    expect(bucketReadings([{ size: HOUR, count: 840 }])).toEqual([
      { labels: { size: '10m' }, value: 0 },
      { labels: { size: '1h' }, value: 840 },
      { labels: { size: '1d' }, value: 0 },
    ]);
  });

  it('adds any other size after them', () => {
    expect(
      bucketReadings([
        { size: TEN_MINUTES, count: 3 },
        { size: 2 * HOUR, count: 1 },
        { size: DAY, count: 2 },
      ]),
    ).toEqual([
      { labels: { size: '10m' }, value: 3 },
      { labels: { size: '1h' }, value: 0 },
      { labels: { size: '1d' }, value: 2 },
      { labels: { size: '2h' }, value: 1 },
    ]);
  });
});
