/** The funnel comparison before/after a deploy: a two-proportion z-test per step. Pure. */
import { type FunnelStep } from '../../../src/contract/kpis.js';

/**
 * Two-proportion z statistic of x1/n1 against x2/n2 (pooled), or null when a
 * side has no trials. |z| ≥ 1.96 is a significant change at the 5% level.
 *
 * @example
 * twoProportionZ(40, 100, 25, 100); // ≈ −2.24: a significant drop
 */
export function twoProportionZ(x1: number, n1: number, x2: number, n2: number): number | null {
  if (n1 <= 0 || n2 <= 0) return null;
  const pooled = (x1 + x2) / (n1 + n2);
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2));
  if (se === 0) return 0;
  return (x2 / n2 - x1 / n1) / se;
}

export const SIGNIFICANT_Z = 1.96;

/** One step of two funnels side by side: conversion from the first step in each, and the test. */
export interface ComparedStep {
  step: number;
  name: string;
  before: number | null;
  after: number | null;
  z: number | null;
  significant: boolean;
}

export function compareFunnels(before: FunnelStep[], after: FunnelStep[]): ComparedStep[] {
  return after.map((b, i) => {
    const a = before[i];
    const z = a ? twoProportionZ(a.count, before[0]?.count ?? 0, b.count, after[0]?.count ?? 0) : null;
    return {
      step: b.step,
      name: b.name,
      before: a?.conversionFromStart ?? null,
      after: b.conversionFromStart,
      z,
      significant: i > 0 && z !== null && Math.abs(z) >= SIGNIFICANT_Z,
    };
  });
}
