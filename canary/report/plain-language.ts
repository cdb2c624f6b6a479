/** A judgement said the way a person says it: "errors were 34% of 3,348 Context7 calls; the limit was 5%". */
import type { MetricJudgement } from '../analysis';
import { formatMetric, type MetricName } from '../policy';

const WHAT: Record<string, { noun: string; of: string }> = {
  errorRate: { noun: 'Context7 errors', of: 'Context7 calls' },
  fallbackRate: { noun: 'fallbacks', of: 'memory reads' },
  cacheHitRate: { noun: 'cache hits', of: 'cache lookups' },
  storeErrorRate: { noun: 'store failures', of: 'requests that needed the local store' },
};

export function plainLanguage(j: Pick<MetricJudgement, 'metric' | 'value' | 'sample' | 'bound' | 'role'>): string {
  const count = j.sample.toLocaleString('en-US');
  const limit = 'above' in j.bound ? j.bound.above : j.bound.below;
  // In rollbackIf a bound names the bad side (a limit); in the success criteria it names the good side.
  const limitWord = ('above' in j.bound) === (j.role === 'breach') ? 'the limit was' : 'the floor was';
  const bound = `${limitWord} ${formatMetric(j.metric as MetricName, limit)}`;
  if (!Number.isFinite(j.value)) return `${j.metric} could not be computed from ${count} samples; ${bound}`;
  const what = WHAT[j.metric];
  if (what) return `${what.noun} were ${formatMetric(j.metric as MetricName, j.value)} of ${count} ${what.of}; ${bound}`;
  if (j.metric === 'avgLatencyMs') return `Context7 calls took ${formatMetric('avgLatencyMs', j.value)} on average over ${count} calls; ${bound}`;
  return `${j.metric} was ${formatMetric(j.metric as MetricName, j.value)}; ${bound}`;
}
