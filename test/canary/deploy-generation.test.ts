/** The canary judges only the deploy it analyses: fleet figures of a generation older than that deploy are refused. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyze, type Measurement } from '../../canary/analysis';
import { classifySample } from '../../canary/analysis/measurement';
import { zeroCounts } from '../../canary/analysis/counters';
import { loadPolicy } from '../../canary/policy';

const policy = loadPolicy(join(__dirname, '../../canary/policy.yaml'));
const DEPLOY_CREATED = '2026-11-24T10:00:00.000Z';

function fleetSample(generation: string, startedAt: string, calls: number, errors: number) {
  const totals = { ...zeroCounts(), requests: calls * 2, fallbacks: errors, context7Requests: calls, context7Errors: errors, cacheHits: calls, cacheMisses: calls, latencyMsSum: calls * 50, latencyCount: calls };
  return {
    status: 200,
    body: {
      errorRate: calls ? errors / calls : 0, errorRatePercent: calls ? (100 * errors) / calls : 0, fallbackRate: 0, fallbackRatePercent: 0, avgLatency: 50, p95Latency: 60,
      cacheHitRate: 0.5, cacheHitRatePercent: 50, context7Requests: calls, errorsByType: { network: 0, timeout: 0, api_error: errors, rate_limited: 0 },
      cache: { hits: calls, misses: calls, size: 1, ttlMs: 1 }, instanceId: 'i-1', deployId: 'c0ffee', startedAt, totals,
      scope: 'fleet', instancesSeen: ['i-1', 'i-2'], deployGeneration: generation, deployStartedAt: startedAt,
    },
  };
}

describe('deploy generations in the canary', () => {
  it('a generation that began before the analysed deploy is the wrong deploy; one after it is judged', () => {
    const old = classifySample(fleetSample('c0ffee-old', '2026-11-24T09:30:00.000Z', 500, 400), undefined, DEPLOY_CREATED);
    expect(old).toMatchObject({ ok: false, problem: 'wrong_deploy', detail: expect.stringContaining('set DEPLOY_NONCE per deploy') });
    expect(classifySample(fleetSample('c0ffee-new', '2026-11-24T10:01:30.000Z', 500, 0), undefined, DEPLOY_CREATED).ok).toBe(true);
    // Without the Render API there is no deploy time to compare with: the service's own generation is trusted.
    expect(classifySample(fleetSample('c0ffee-old', '2026-11-24T09:30:00.000Z', 500, 400), undefined).ok).toBe(true);
  });

  it('an old deploy of the same commit answering with its errors cannot roll the analysed deploy back', () => {
    const measurements: Measurement[] = [0, 2, 4, 6].map((minute) => ({
      atSeconds: minute * 60,
      samples: [fleetSample('c0ffee-old', '2026-11-24T09:30:00.000Z', 1000 + minute * 100, 900 + minute * 90)],
      health: { status: 200, body: { available: true, provider: 'context7' } },
      config: { status: 200, body: { enableContext7Memory: true, context7Available: true } },
    }));
    const judged = analyze(policy, { measurements, deployStartedAfter: DEPLOY_CREATED });
    expect(judged.decision?.kind).not.toBe('rollback');
    expect(judged.steps.every((step) => step.status === 'measurement_error')).toBe(true);
    // The same figures with no deploy time would have been judged, and rolled back.
    expect(analyze(policy, { measurements }).decision?.kind).toBe('rollback');
  });
});
