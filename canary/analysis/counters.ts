/** The service's raw monotonic counters and the metrics derived from them. */
import { METRIC_TOTAL_KEYS, emptyTotals, type MetricTotals } from '../../service/contracts/http';

export type Counts = MetricTotals;

export const COUNTER_KEYS = METRIC_TOTAL_KEYS;

export const zeroCounts: () => Counts = emptyTotals;

export function addCounts(a: Counts, b: Counts): Counts {
  const sum = zeroCounts();
  for (const key of COUNTER_KEYS) sum[key] = a[key] + b[key];
  return sum;
}

export function subtractCounts(later: Counts, earlier: Counts): Counts {
  const delta = zeroCounts();
  for (const key of COUNTER_KEYS) delta[key] = later[key] - earlier[key];
  return delta;
}

/** The first counter that went down from `earlier` to `later`: a reset, or undefined. */
export function decreasedCounter(earlier: Counts, later: Counts): keyof Counts | undefined {
  return COUNTER_KEYS.find((key) => later[key] < earlier[key]);
}

/** Point values of every judged metric; rates are 0 without a denominator, like the service's. */
export interface MetricValues {
  errorRate: number;
  fallbackRate: number;
  cacheHitRate: number;
  /** requests failed by the local store, over requests that needed it */
  storeErrorRate: number;
  avgLatencyMs: number;
  context7Requests: number;
}

export function metricValues(counts: Counts): MetricValues {
  const lookups = counts.cacheHits + counts.cacheMisses;
  return {
    errorRate: counts.context7Requests > 0 ? counts.context7Errors / counts.context7Requests : 0,
    fallbackRate: counts.requests > 0 ? counts.fallbacks / counts.requests : 0,
    cacheHitRate: lookups > 0 ? counts.cacheHits / lookups : 0,
    storeErrorRate: counts.storeRequests > 0 ? counts.storeErrors / counts.storeRequests : 0,
    avgLatencyMs: counts.latencyCount > 0 ? counts.latencyMsSum / counts.latencyCount : 0,
    context7Requests: counts.context7Requests,
  };
}
