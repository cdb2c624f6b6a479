/**
 * Observations from pluggable metric sources (in the spirit of Argo Rollouts' metric providers): each source
 * contributes named figures per measurement, counts since the analysed deploy started, and the analysis judges
 * every one with the same statistics as the service's own metrics (Wilson intervals, minimum samples).
 */
import { z } from 'zod';
import type { Bound, CanaryPolicy, PlatformMetric } from '../policy';
import { PLATFORM_METRICS } from '../policy';
import { verdictOf, type Verdict } from './judge';
import { wilsonInterval } from './stats';

export const observationSchema = z.discriminatedUnion('kind', [
  /** `events` of `total`, e.g. 5xx answers of all requests through the load balancer */
  z.object({ name: z.string(), kind: z.literal('rate'), events: z.number().int().nonnegative(), total: z.number().int().nonnegative() }),
  /** a measured value and how much data is behind it, e.g. p95 latency over n requests */
  z.object({ name: z.string(), kind: z.literal('value'), value: z.number(), sample: z.number().int().nonnegative(), unit: z.string(), detail: z.string().optional() }),
]);
export type Observation = z.infer<typeof observationSchema>;

/** What one source read at one measurement; `error` when it could not read (a measurement problem, never a breach). */
export const sourceReadingSchema = z.object({
  source: z.string(),
  observations: z.array(observationSchema),
  error: z.string().optional(),
});
export type SourceReading = z.infer<typeof sourceReadingSchema>;

export const RENDER_PLATFORM_SOURCE = 'render-platform';

export interface ObservationJudgement {
  source: string;
  name: string;
  bound: Bound;
  verdict: Verdict;
  value: number;
  lower: number;
  upper: number;
  sample: number;
  minimumSample: number;
  reason: string;
}

function minimumSampleOf(policy: CanaryPolicy, name: string): number {
  return name === 'memoryGrowthMb' ? policy.platform.minimumMemorySamples : policy.platform.minimumRequests;
}

/** One observation against a breach bound (the bound describes the bad side), as judgeMetric does for the service's. */
export function judgeObservation(source: string, observation: Observation, bound: Bound, policy: CanaryPolicy): ObservationJudgement {
  const minimumSample = minimumSampleOf(policy, observation.name);
  const estimate =
    observation.kind === 'rate'
      ? observation.events > observation.total
        ? { value: Number.NaN, lower: 1, upper: 0, sample: observation.total }
        : (() => {
            const interval = wilsonInterval(observation.events, observation.total, policy.confidence);
            return { value: interval.estimate, lower: interval.lower, upper: interval.upper, sample: observation.total };
          })()
      : { value: observation.value, lower: observation.value, upper: observation.value, sample: observation.sample };
  const { verdict, reason } = verdictOf({ ...estimate, minimumSample }, bound, 'breach');
  return { source, name: observation.name, bound, ...estimate, minimumSample, verdict, reason };
}

/** Judges a platform reading's observations against policy.platform.rollbackIf. */
export function judgePlatformReading(reading: SourceReading, policy: CanaryPolicy): ObservationJudgement[] {
  return PLATFORM_METRICS.flatMap((metric: PlatformMetric) => {
    const bound = policy.platform.rollbackIf[metric];
    const observation = reading.observations.find((o) => o.name === metric);
    return bound && observation ? [judgeObservation(reading.source, observation, bound, policy)] : [];
  });
}

/** "12.5% (5 of 40)" / "830 ms": for reports. */
export function describeObservation(observation: Observation): string {
  if (observation.kind === 'rate') {
    const rate = observation.total > 0 ? observation.events / observation.total : 0;
    return `${(rate * 100).toFixed(rate < 0.1 ? 2 : 1)}% (${observation.events} of ${observation.total})`;
  }
  return `${Number.isInteger(observation.value) ? observation.value : observation.value.toFixed(1)} ${observation.unit}${observation.detail ? ` (${observation.detail})` : ''}`;
}
