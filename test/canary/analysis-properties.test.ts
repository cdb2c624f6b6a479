import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { analyze, type Measurement } from '../../canary/analysis';
import { loadPolicy } from '../../canary/policy';

const policy = loadPolicy(join(__dirname, '../../canary/policy.yaml'));
const DEPLOY = 'abc123';

const counter = fc.nat({ max: 5000 });
const totalsArb = fc.record({
  requests: counter, fallbacks: counter, context7Requests: counter, context7Errors: counter,
  cacheHits: counter, cacheMisses: counter, latencyMsSum: counter, latencyCount: counter,
});
const payloadArb = fc.record({
  errorRate: fc.constant(0), errorRatePercent: fc.constant(0), fallbackRate: fc.constant(0), fallbackRatePercent: fc.constant(0),
  avgLatency: fc.constant(0), p95Latency: fc.constant(0), cacheHitRate: fc.constant(0), cacheHitRatePercent: fc.constant(0),
  context7Requests: fc.nat(), errorsByType: fc.constant({ network: 0, timeout: 0, api_error: 0, rate_limited: 0 }),
  cache: fc.constant({ hits: 0, misses: 0, size: 0, ttlMs: 1 }),
  instanceId: fc.constantFrom('srv-a', 'srv-b'), deployId: fc.constantFrom(DEPLOY, DEPLOY, 'other'),
  startedAt: fc.constantFrom('2026-11-20T10:00:00.000Z', '2026-11-20T10:20:00.000Z'),
  scope: fc.constantFrom(undefined, 'instance', 'fleet'),
  totals: totalsArb,
});
const probeArb = fc.oneof(
  payloadArb.map((body) => ({ status: 200, body })),
  fc.anything().map((body) => ({ status: 200, body })),
  fc.record({ status: fc.constantFrom(200, 404, 500, 503), body: fc.jsonValue() }),
  fc.constant({ status: null, error: 'timeout' as const }),
);
const measurementsArb = fc
  .array(fc.record({ gap: fc.integer({ min: 1, max: 600 }), samples: fc.array(probeArb, { maxLength: 4 }), health: probeArb, config: probeArb }), { maxLength: 40 })
  .map((items) => {
    let t = 0;
    return items.map(({ gap, samples, health, config }): Measurement => ({ atSeconds: (t += gap), samples, health, config }));
  });

describe('analysis properties', () => {
  it('never throws on arbitrary, hostile measurements, and decides at most once with a known kind', () => {
    fc.assert(
      fc.property(measurementsArb, fc.option(fc.constant(DEPLOY), { nil: undefined }), (measurements, deployId) => {
        const result = analyze(policy, { deployId, measurements });
        if (result.decision) {
          expect(['rollback', 'promote', 'hold', 'abort']).toContain(result.decision.kind);
          expect(result.decision.stepIndex).toBe(result.steps.length - 1);
        }
        for (const step of result.steps) for (const check of step.breachChecks) expect(['pass', 'fail', 'inconclusive']).toContain(check.verdict);
      }),
      { numRuns: 300 },
    );
  });

  it('never throws on monotone counters with arbitrary increments (deltas need not be consistent)', () => {
    fc.assert(
      fc.property(fc.array(totalsArb, { minLength: 1, maxLength: 30 }), (increments) => {
        const t = { requests: 0, fallbacks: 0, context7Requests: 0, context7Errors: 0, cacheHits: 0, cacheMisses: 0, latencyMsSum: 0, latencyCount: 0 };
        const measurements = increments.map((inc, k): Measurement => {
          for (const key of Object.keys(t) as (keyof typeof t)[]) t[key] += inc[key];
          const totals = { ...t, context7Errors: Math.min(t.context7Errors, t.context7Requests), fallbacks: Math.min(t.fallbacks, t.requests) };
          const body = { ...fc.sample(payloadArb, 1)[0]!, instanceId: 'srv-a', deployId: DEPLOY, scope: 'instance', startedAt: '2026-11-20T10:00:00.000Z', totals };
          return { atSeconds: (k + 1) * 120, samples: [{ status: 200, body }], health: { status: 200, body: { available: true, provider: 'context7' } } };
        });
        analyze(policy, { deployId: DEPLOY, measurements });
      }),
      { numRuns: 300 },
    );
  });

  it('never rolls back a healthy fleet, whatever the sampling, restarts and traffic', () => {
    const healthyRun = fc.record({
      perMinute: fc.integer({ min: 0, max: 400 }),
      restartAt: fc.option(fc.integer({ min: 1, max: 29 }), { nil: undefined }),
      missed: fc.array(fc.boolean(), { minLength: 30, maxLength: 30 }),
    });
    fc.assert(
      fc.property(healthyRun, ({ perMinute, restartAt, missed }) => {
        const measurements: Measurement[] = [];
        const base = { requests: 0, fallbacks: 0, context7Requests: 0, context7Errors: 0, cacheHits: 0, cacheMisses: 0, latencyMsSum: 0, latencyCount: 0 };
        const a = { ...base };
        const b = { ...base };
        let startedB = '2026-11-20T10:00:00.000Z';
        for (let k = 1; k <= 30; k++) {
          for (const c of [a, b]) {
            const calls = perMinute; // two minutes of traffic per poll, half of it from the cache
            c.requests += 2 * perMinute; c.cacheHits += perMinute; c.cacheMisses += calls;
            c.context7Requests += calls; c.latencyMsSum += calls * 100; c.latencyCount += calls;
          }
          if (k === restartAt) {
            Object.assign(b, base);
            startedB = `2026-11-20T10:${String(2 * k).padStart(2, '0')}:00.000Z`;
          }
          const body = (id: string, t: typeof a, startedAt: string) => ({
            errorRate: 0, errorRatePercent: 0, fallbackRate: 0, fallbackRatePercent: 0, avgLatency: 100, p95Latency: 100,
            cacheHitRate: 0.5, cacheHitRatePercent: 50, context7Requests: t.context7Requests,
            errorsByType: { network: 0, timeout: 0, api_error: 0, rate_limited: 0 }, cache: { hits: 0, misses: 0, size: 0, ttlMs: 1 },
            instanceId: id, deployId: DEPLOY, startedAt, totals: { ...t },
          });
          const samples = [{ status: 200, body: body('srv-a', a, '2026-11-20T10:00:00.000Z') }];
          if (!missed[k - 1]) samples.push({ status: 200, body: body('srv-b', b, startedB) });
          measurements.push({
            atSeconds: k * 120,
            samples,
            health: { status: 200, body: { available: true, provider: 'context7' } },
            config: { status: 200, body: { enableContext7Memory: true, context7Available: true } },
          });
        }
        const result = analyze(policy, { deployId: DEPLOY, measurements });
        expect(result.decision?.kind).not.toBe('rollback');
      }),
      { numRuns: 100 },
    );
  });
});
