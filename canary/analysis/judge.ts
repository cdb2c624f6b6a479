/** One metric against one bound: pass, fail or inconclusive, from counts and a confidence interval. */
import type { Bound, CanaryPolicy, MetricName } from '../policy';
import { metricValues, type Counts } from './counters';
import { wilsonInterval } from './stats';

export type Verdict = 'pass' | 'fail' | 'inconclusive';

/** `breach`: the bound describes the bad side (rollbackIf). `require`: it describes the good side. */
export type BoundRole = 'breach' | 'require';

export interface MetricJudgement {
  metric: MetricName;
  bound: Bound;
  role: BoundRole;
  verdict: Verdict;
  value: number;
  /** confidence interval for rates; equal to value for means and counts */
  lower: number;
  upper: number;
  /** the denominator behind the figure */
  sample: number;
  minimumSample: number;
  reason: string;
}

export interface Estimate {
  value: number;
  lower: number;
  upper: number;
  sample: number;
  minimumSample: number;
}

export function estimate(metric: MetricName, counts: Counts, policy: CanaryPolicy): Estimate {
  const values = metricValues(counts);
  const min = policy.minimumSample;
  const rate = (k: number, n: number, minimumSample: number): Estimate => {
    // Counters from different processes can disagree (k > n in a delta): never judge, never throw.
    if (k < 0 || k > n) return { value: Number.NaN, lower: 1, upper: 0, sample: n, minimumSample };
    const interval = wilsonInterval(k, n, policy.confidence);
    return { value: interval.estimate, lower: interval.lower, upper: interval.upper, sample: n, minimumSample };
  };
  switch (metric) {
    case 'errorRate':
      return rate(counts.context7Errors, counts.context7Requests, min.context7Requests);
    case 'fallbackRate':
      return rate(counts.fallbacks, counts.requests, min.memoryRequests);
    case 'cacheHitRate':
      return rate(counts.cacheHits, counts.cacheHits + counts.cacheMisses, min.cacheLookups);
    case 'storeErrorRate':
      return rate(counts.storeErrors, counts.storeRequests, min.storeRequests);
    case 'avgLatencyMs':
      // Only sum and count are exported, so there is no variance: the mean is trusted past the minimum sample.
      return { value: values.avgLatencyMs, lower: values.avgLatencyMs, upper: values.avgLatencyMs, sample: counts.latencyCount, minimumSample: min.context7Requests };
    case 'context7Requests':
      return { value: counts.context7Requests, lower: counts.context7Requests, upper: counts.context7Requests, sample: counts.context7Requests, minimumSample: 0 };
  }
}

export function judgeMetric(metric: MetricName, bound: Bound, role: BoundRole, counts: Counts, policy: CanaryPolicy): MetricJudgement {
  const e = estimate(metric, counts, policy);
  const base = { metric, bound, role, value: e.value, lower: e.lower, upper: e.upper, sample: e.sample, minimumSample: e.minimumSample };
  if (metric === 'context7Requests') {
    // A count is exact; zero calls is no evidence either way (no traffic), never a failure.
    const onBoundSide = 'above' in bound ? e.value > bound.above : e.value < bound.below;
    const reason = `${e.value} calls`;
    if (role === 'breach') return { ...base, verdict: onBoundSide ? 'fail' : 'pass', reason };
    if (onBoundSide) return { ...base, verdict: 'pass', reason };
    return { ...base, verdict: e.value === 0 ? 'inconclusive' : 'fail', reason: e.value === 0 ? 'no Context7 calls yet: no evidence' : reason };
  }
  const { verdict, reason } = verdictOf(e, bound, role);
  return { ...base, verdict, reason };
}

/**
 * The verdict on an estimate: inconclusive without enough data or when the interval straddles the threshold,
 * else which side of the bound the whole interval is on. Shared by every metric source.
 */
export function verdictOf(e: Estimate, bound: Bound, role: BoundRole): { verdict: Verdict; reason: string } {
  if (!Number.isFinite(e.value) || e.lower > e.upper || e.sample < 0) {
    return { verdict: 'inconclusive', reason: 'inconsistent counters in this window' };
  }
  if (e.sample < e.minimumSample) {
    return { verdict: 'inconclusive', reason: `${e.sample} < minimum sample ${e.minimumSample}` };
  }
  const threshold = 'above' in bound ? bound.above : bound.below;
  // Which side of the threshold is the whole interval on?
  const side = e.lower > threshold ? 'above' : e.upper < threshold ? 'below' : 'straddles';
  if (side === 'straddles') {
    return { verdict: 'inconclusive', reason: `interval [${fmt(e.lower)}, ${fmt(e.upper)}] contains ${fmt(threshold)}` };
  }
  const boundSide = 'above' in bound ? 'above' : 'below';
  const onBoundSide = side === boundSide;
  const verdict: Verdict = role === 'breach' ? (onBoundSide ? 'fail' : 'pass') : onBoundSide ? 'pass' : 'fail';
  return { verdict, reason: `interval [${fmt(e.lower)}, ${fmt(e.upper)}] is ${side} ${fmt(threshold)} (n=${e.sample})` };
}

function fmt(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toPrecision(3);
}
