/**
 * KPI values for tests that need an answer without blobs behind it (the
 * dashboard's, the alerts'): one builder of funnel steps, computed from the
 * counts as the query computes them.
 */
import type { FunnelStep } from '../../src/contract/kpis.js';

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
