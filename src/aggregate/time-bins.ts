/**
 * Time histogram bins: exact below 100 ms, then 1% wide, so that the middle
 * of a bin is within 0.5% of any time in it, and medians and p90 within 1%.
 */
const LINEAR_BELOW_MS = 100;
const LOG_STEP = Math.log(1.01);

/** The histogram bin of a time in ms. */
export function timeBin(ms: number): number {
  const v = Math.max(0, ms);
  if (v < LINEAR_BELOW_MS) return Math.floor(v);
  return LINEAR_BELOW_MS + Math.floor(Math.log(v / LINEAR_BELOW_MS) / LOG_STEP);
}

/** The value a time bin stands for (its geometric middle), ms. */
export function binValue(bin: number): number {
  if (bin < LINEAR_BELOW_MS) return bin;
  return LINEAR_BELOW_MS * Math.exp((bin - LINEAR_BELOW_MS + 0.5) * LOG_STEP);
}
