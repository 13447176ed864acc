/** Axis ticks of the chart. Pure. */

/**
 * Axis labels of shares as percentages, with as many decimals as the
 * spacing of the ticks needs (0.25% apart: one), so no two labels of a
 * narrow range read alike.
 *
 * @example
 * percentTicks([0.63, 0.6325, 0.635]); // ['63.0%', '63.2%', '63.5%']
 */
export function percentTicks(ticks: readonly number[]): string[] {
  const step = ticks.length > 1 ? Math.abs(ticks[1]! - ticks[0]!) * 100 : 1;
  const decimals = step > 0 && step < 1 ? Math.min(4, Math.ceil(-Math.log10(step) - 1e-9)) : 0;
  return ticks.map((t) => `${(t * 100).toFixed(decimals)}%`);
}
