/** The live answer, kept up to date by merging the stream's deltas and deploy markers into it. Pure. */
import { type KpiAnswer, type KpiPoint, type KpiSeries } from '../../../src/contract/kpis.js';
import type { Deploy } from '../../../src/deploys/types.js';

/**
 * The answer after a delta: totals replaced, changed points replaced or
 * added, points that slid out of the window dropped.
 *
 * @example
 * answer = mergeDelta(answer, delta.kpis);
 */
export function mergeDelta(current: KpiAnswer, delta: KpiAnswer): KpiAnswer {
  const previous = new Map(current.series.map((s) => [s.segment, s]));
  const series: KpiSeries[] = delta.series.map((d) => {
    const points = new Map<number, KpiPoint>();
    for (const p of previous.get(d.segment)?.points ?? []) if (p.start >= delta.from && p.start < delta.to) points.set(p.start, p);
    for (const p of d.points) points.set(p.start, p);
    return { segment: d.segment, total: d.total, points: [...points.values()].sort((a, b) => a.start - b.start) };
  });
  return { ...delta, series };
}

/** Merges deploy markers by id, oldest first. */
export function mergeDeploys(current: Deploy[], added: Deploy[]): Deploy[] {
  const byId = new Map(current.map((d) => [d.id, d]));
  for (const d of added) byId.set(d.id, d);
  return [...byId.values()].sort((a, b) => a.at - b.at);
}
