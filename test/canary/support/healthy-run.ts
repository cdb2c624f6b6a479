/**
 * A healthy deploy's measurements on a policy's own clock: every runbook criterion passes. Tests add what they
 * judge (a backfill status, a probe run) per measurement through `extra`.
 */
import type { Measurement } from '../../../canary/analysis';
import { zeroCounts } from '../../../canary/analysis/counters';
import type { CanaryPolicy } from '../../../canary/policy';

export function healthyRun(
  policy: Pick<CanaryPolicy, 'durationMinutes' | 'pollIntervalSeconds'>,
  extra: (atSeconds: number) => Partial<Measurement> = () => ({}),
): Measurement[] {
  const measurements: Measurement[] = [];
  for (let seconds = 0; seconds <= policy.durationMinutes * 60; seconds += policy.pollIntervalSeconds) {
    const calls = 10 * seconds;
    const totals = { ...zeroCounts(), requests: calls * 2, context7Requests: calls, cacheHits: calls, cacheMisses: calls, latencyMsSum: calls * 80, latencyCount: calls, storeRequests: calls };
    const body = {
      errorRate: 0, errorRatePercent: 0, fallbackRate: 0, fallbackRatePercent: 0, avgLatency: 80, p95Latency: 90, cacheHitRate: 0.5, cacheHitRatePercent: 50,
      context7Requests: calls, errorsByType: { network: 0, timeout: 0, api_error: 0, rate_limited: 0 }, cache: { hits: calls, misses: calls, size: 1, ttlMs: 1 },
      instanceId: 'i-1', deployId: 'abc', startedAt: '2026-11-24T10:00:00.000Z', totals,
    };
    measurements.push({
      atSeconds: seconds,
      samples: [{ status: 200, body }],
      health: { status: 200, body: { available: true, provider: 'context7' } },
      config: { status: 200, body: { enableContext7Memory: true, context7Available: true } },
      ...extra(seconds),
    });
  }
  return measurements;
}
