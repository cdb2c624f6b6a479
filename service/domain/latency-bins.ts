/**
 * Latency histograms with 5 %-wide logarithmic bins: a percentile read from them is within 5 % of the truth, and
 * bin counts add up across instances and subtract between two snapshots (a window's histogram). Pure.
 * Shared by the fleet's Context7 p95 (service/fleet/fleet-metrics.ts) and the cohorts' request latency
 * (cohort-metrics.ts).
 */
const BIN_GROWTH = 1.05;
const LOG_BIN_GROWTH = Math.log(BIN_GROWTH);

/** Histogram bin of a latency: bins grow by 5%, so a percentile read from them is within 5% of the truth. */
export function latencyBin(ms: number): number {
  return Math.max(0, Math.floor(Math.log1p(Math.max(0, ms)) / LOG_BIN_GROWTH));
}

/** Upper edge of a bin, in ms: the value reported for a percentile that falls in it. */
export function latencyBinUpperMs(bin: number): number {
  return Math.expm1((bin + 1) * Math.log(BIN_GROWTH));
}

/** Nearest-rank percentile over bin counts; 0 with no samples. */
export function percentileFromBins(bins: Map<number, number>, p: number): number {
  return percentilesFromBins(bins, [p])[0]!;
}

/** Several nearest-rank percentiles over bin counts, the bins sorted once; 0 each with no samples. */
export function percentilesFromBins(bins: Map<number, number>, ps: readonly number[]): number[] {
  let total = 0;
  for (const count of bins.values()) total += count;
  if (total === 0) return ps.map(() => 0);
  const sorted = [...bins.keys()].sort((a, b) => a - b);
  return ps.map((p) => {
    const rank = Math.max(1, Math.ceil((p / 100) * total));
    let seen = 0;
    for (const bin of sorted) {
      seen += bins.get(bin)!;
      if (seen >= rank) return latencyBinUpperMs(bin);
    }
    return 0;
  });
}
