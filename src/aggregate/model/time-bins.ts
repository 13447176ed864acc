/**
 * Time histogram bins: exact below 100 ms, then 2% wide. A bin stands for its
 * geometric middle, within √1.02 − 1 = 0.995% of any time in the bin, so
 * medians and p90 are within 1%; wider bins would break that, narrower ones
 * only cost memory.
 */
const LINEAR_BELOW_MS = 100;
const LOG_STEP = Math.log(1.02);

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
