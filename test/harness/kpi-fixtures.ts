/**
 * KPI fixtures: funnel steps for tests that need an answer without blobs
 * behind it (the dashboard's, the alerts'), computed from the counts as the
 * query computes them; and aggregate states of a few blobs, for the
 * checkpoint tests (one node and the cluster).
 */
import { defaultSegmentConfig } from '../../src/aggregate/model/segments.js';
import { AggregateState, defaultRetention } from '../../src/aggregate/model/state.js';
import { TEN_MINUTES, type FunnelStep } from '../../src/contract/kpis.js';
import { blobDocId, newRunId } from '../../src/store/blob-ids.js';

/**
 * The steps of a funnel with these counts: conversion from the start and
 * from the step before, drop-off; estimates equal to the counts.
 *
 * @example
 * funnelSteps([100, 80], ['Enter email', 'Choose password']); // step 2: conversionFromPrevious 0.8
 */
export function funnelSteps(counts: number[], names: readonly string[] = counts.map((_, i) => `step ${i + 1}`)): FunnelStep[] {
  return counts.map((count, i) => {
    const previous = i > 0 ? counts[i - 1]! : counts[0]!;
    const fromPrevious = previous > 0 ? count / previous : null;
    return {
      step: i + 1,
      name: names[i] ?? `step ${i + 1}`,
      count,
      estimate: count,
      conversionFromStart: counts[0]! > 0 ? count / counts[0]! : null,
      conversionFromPrevious: fromPrevious,
      dropOff: fromPrevious === null ? null : 1 - fromPrevious,
    };
  });
}

/**
 * The aggregate of `n` blobs of one ingest run (blobs 0…n−1, so a larger n
 * holds every blob of a smaller one), over the six 10-minute buckets from
 * `start`: a state to checkpoint without a store behind it.
 *
 * @example
 * snapshotOf(stateOfBlobs(30, { start: T }), 'seq-30', 0);
 */
export function stateOfBlobs(n: number, options: { start: number; run?: string }): AggregateState {
  const state = new AggregateState(defaultSegmentConfig, defaultRetention);
  const run = options.run ?? newRunId();
  for (let i = 0; i < n; i++) {
    const timestamp = options.start + (i % 6) * TEN_MINUTES;
    state.apply({ _id: blobDocId(timestamp, run, i), timestamp, event_stream: [['screen.rp_info', i]] });
  }
  state.downsample();
  return state;
}
