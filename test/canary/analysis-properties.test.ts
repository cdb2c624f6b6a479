import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { analyze, type Measurement } from '../../canary/analysis';
import { loadPolicy, type CanaryPolicy } from '../../canary/policy';

const policy = loadPolicy(join(__dirname, '../../canary/policy.yaml'));
const DEPLOY = 'abc123';

const counter = fc.nat({ max: 5000 });
const totalsArb = fc.record({
  requests: counter, fallbacks: counter, context7Requests: counter, context7Errors: counter,
  cacheHits: counter, cacheMisses: counter, latencyMsSum: counter, latencyCount: counter,
  storeRequests: counter, storeErrors: counter,
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
        const t = { requests: 0, fallbacks: 0, context7Requests: 0, context7Errors: 0, cacheHits: 0, cacheMisses: 0, latencyMsSum: 0, latencyCount: 0, storeRequests: 0, storeErrors: 0 };
        const measurements = increments.map((inc, k): Measurement => {
          for (const key of Object.keys(t) as (keyof typeof t)[]) t[key] += inc[key];
          const totals = {
            ...t,
            context7Errors: Math.min(t.context7Errors, t.context7Requests),
            fallbacks: Math.min(t.fallbacks, t.requests),
            storeErrors: Math.min(t.storeErrors, t.storeRequests),
          };
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

  describe('a store outage is not a Context7 failure', () => {
    const rollbackOnStoreBreach: CanaryPolicy = { ...policy, storeErrors: { ...policy.storeErrors, onBreach: 'rollback' } };

    it('store errors at or under the bound never change the decision, whatever Context7 does', () => {
      const run = fc.record({
        perMinute: fc.integer({ min: 0, max: 300 }),
        context7Shares: fc.array(fc.double({ min: 0, max: 0.3, noNaN: true }), { minLength: 30, maxLength: 30 }),
        storeShares: fc.array(fc.double({ min: 0, max: policy.storeErrors.abortIf.above, noNaN: true }), { minLength: 30, maxLength: 30 }),
      });
      fc.assert(
        fc.property(run, ({ perMinute, context7Shares, storeShares }) => {
          const withStore = fleetTimeline(perMinute, (k) => ({ context7Share: context7Shares[k - 1]!, storeShare: storeShares[k - 1]! }));
          const withoutStore = fleetTimeline(perMinute, (k) => ({ context7Share: context7Shares[k - 1]!, storeShare: 0 }), false);
          // A rate at or under the bound can never have its whole interval above it.
          expect(analyze(policy, { deployId: DEPLOY, measurements: withStore }).decision).toEqual(
            analyze(policy, { deployId: DEPLOY, measurements: withoutStore }).decision,
          );
        }),
        { numRuns: 100 },
      );
    });

    it('a store outage aborts at its first poll, never a rollback, even when Context7 breaks at the same time or later', () => {
      const outage = fc.record({
        perMinute: fc.integer({ min: 40, max: 400 }),
        storeFrom: fc.integer({ min: 1, max: 29 }),
        storeShare: fc.double({ min: 0.3, max: 1, noNaN: true }),
        context7After: fc.option(fc.integer({ min: 0, max: 10 }), { nil: undefined }),
        context7Share: fc.double({ min: 0, max: 0.8, noNaN: true }),
      });
      fc.assert(
        fc.property(outage, ({ perMinute, storeFrom, storeShare, context7After, context7Share }) => {
          const measurements = fleetTimeline(perMinute, (k) => ({
            storeShare: k >= storeFrom ? storeShare : 0,
            context7Share: context7After !== undefined && k >= storeFrom + context7After ? context7Share : 0.01,
          }));
          const aborted = analyze(policy, { deployId: DEPLOY, measurements }).decision;
          expect(aborted).toMatchObject({ kind: 'abort', trigger: 'store_errors', atSeconds: storeFrom * 120 });
          // The alternative is the policy's to choose, at the same poll.
          const rolledBack = analyze(rollbackOnStoreBreach, { deployId: DEPLOY, measurements }).decision;
          expect(rolledBack).toMatchObject({ kind: 'rollback', trigger: 'store_errors', atSeconds: storeFrom * 120 });
        }),
        { numRuns: 100 },
      );
    });
  });
});

/**
 * One instance polled every 2 minutes for an hour: half its reads miss the cache and call Context7
 * and the local store. A read the store fails is a 503: a store error, never a fallback.
 */
function fleetTimeline(perMinute: number, sharesAt: (poll: number) => { context7Share: number; storeShare: number }, withStoreCounters = true): Measurement[] {
  const t = { requests: 0, fallbacks: 0, context7Requests: 0, context7Errors: 0, cacheHits: 0, cacheMisses: 0, latencyMsSum: 0, latencyCount: 0, storeRequests: 0, storeErrors: 0 };
  const measurements: Measurement[] = [];
  for (let k = 1; k <= 30; k++) {
    const { context7Share, storeShare } = sharesAt(k);
    const calls = perMinute;
    const context7Errors = Math.floor(calls * context7Share);
    const storeErrors = Math.floor(calls * storeShare);
    t.requests += 2 * perMinute; t.cacheHits += perMinute; t.cacheMisses += calls;
    t.context7Requests += calls; t.context7Errors += context7Errors; t.latencyMsSum += calls * 100; t.latencyCount += calls;
    // Context7 failures land first on the reads whose store read worked (those are fallbacks).
    t.fallbacks += Math.min(context7Errors, calls - storeErrors);
    t.storeRequests += calls; t.storeErrors += storeErrors;
    const { storeRequests, storeErrors: storeErrorTotal, ...older } = t;
    const totals = withStoreCounters ? { ...older, storeRequests, storeErrors: storeErrorTotal } : older;
    measurements.push({
      atSeconds: k * 120,
      samples: [{
        status: 200,
        body: {
          errorRate: 0, errorRatePercent: 0, fallbackRate: 0, fallbackRatePercent: 0, avgLatency: 100, p95Latency: 100,
          cacheHitRate: 0.5, cacheHitRatePercent: 50, context7Requests: t.context7Requests,
          errorsByType: { network: 0, timeout: 0, api_error: 0, rate_limited: 0 }, cache: { hits: 0, misses: 0, size: 0, ttlMs: 1 },
          instanceId: 'srv-a', deployId: DEPLOY, startedAt: '2026-11-20T10:00:00.000Z', totals,
        },
      }],
      health: { status: 200, body: { available: true, provider: 'context7' } },
      config: { status: 200, body: { enableContext7Memory: true, context7Available: true } },
    });
  }
  return measurements;
}
