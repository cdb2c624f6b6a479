import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyze, judgeMetric, wilsonInterval, type Measurement } from '../../canary/analysis';
import { zeroCounts, type Counts } from '../../canary/analysis/counters';
import { loadPolicy, type CanaryPolicy } from '../../canary/policy';

const policy = loadPolicy(join(__dirname, '../../canary/policy.yaml'));
const DEPLOY = 'abc123';
const STARTED = '2026-11-20T10:00:00.000Z';

/** Counters of `calls` Context7 calls with `errors` failures, as many reads, half of them cache hits. */
function totals(calls: number, errors: number, latencyMs = 100): Counts {
  return {
    ...zeroCounts(),
    requests: calls * 2,
    fallbacks: errors,
    context7Requests: calls,
    context7Errors: errors,
    cacheHits: calls,
    cacheMisses: calls,
    latencyMsSum: calls * latencyMs,
    latencyCount: calls,
  };
}

function payload(t: Counts, opts: { instanceId?: string; startedAt?: string; deployId?: string } = {}) {
  const rate = t.context7Requests ? t.context7Errors / t.context7Requests : 0;
  const fb = t.requests ? t.fallbacks / t.requests : 0;
  const hit = t.cacheHits + t.cacheMisses ? t.cacheHits / (t.cacheHits + t.cacheMisses) : 0;
  return {
    errorRate: rate,
    errorRatePercent: rate * 100,
    fallbackRate: fb,
    fallbackRatePercent: fb * 100,
    avgLatency: t.latencyCount ? t.latencyMsSum / t.latencyCount : 0,
    p95Latency: 0,
    cacheHitRate: hit,
    cacheHitRatePercent: hit * 100,
    context7Requests: t.context7Requests,
    errorsByType: { network: 0, timeout: 0, api_error: t.context7Errors, rate_limited: 0 },
    cache: { hits: t.cacheHits, misses: t.cacheMisses, size: 1, ttlMs: 300000 },
    instanceId: opts.instanceId ?? 'srv-a',
    deployId: opts.deployId ?? DEPLOY,
    startedAt: opts.startedAt ?? STARTED,
    totals: t,
  };
}

const healthy = { status: 200, body: { available: true, provider: 'context7' } };
const config = { status: 200, body: { enableContext7Memory: true, context7Available: true } };

function at(minute: number, ...bodies: unknown[]): Measurement {
  return { atSeconds: minute * 60, samples: bodies.map((body) => ({ status: 200, body })), health: healthy, config };
}

describe('Wilson interval', () => {
  it('matches published values and stays in [0, 1]', () => {
    const i = wilsonInterval(1, 3, 0.95);
    expect(i.estimate).toBeCloseTo(1 / 3);
    expect(i.lower).toBeCloseTo(0.0615, 3);
    expect(i.upper).toBeCloseTo(0.7923, 3);
    const zero = wilsonInterval(0, 40, 0.95);
    expect(zero.lower).toBe(0);
    expect(zero.upper).toBeCloseTo(0.0876, 3);
    expect(wilsonInterval(0, 0, 0.95)).toEqual({ estimate: 0, lower: 0, upper: 1 });
  });

  it('judges 1 error in 3 calls as inconclusive, not a 33% error rate', () => {
    const lenient: CanaryPolicy = { ...policy, minimumSample: { ...policy.minimumSample, context7Requests: 1, memoryRequests: 1, cacheLookups: 1 } };
    for (const p of [policy, lenient]) {
      expect(judgeMetric('errorRate', { above: 0.1 }, 'breach', totals(3, 1), p).verdict).toBe('inconclusive');
    }
    expect(judgeMetric('errorRate', { above: 0.1 }, 'breach', totals(300, 100), policy).verdict).toBe('fail');
    expect(judgeMetric('errorRate', { above: 0.1 }, 'breach', totals(300, 3), policy).verdict).toBe('pass');
    expect(judgeMetric('errorRate', { below: 0.05 }, 'require', totals(300, 3), policy).verdict).toBe('pass');
    expect(judgeMetric('errorRate', { below: 0.05 }, 'require', totals(300, 60), policy).verdict).toBe('fail');
  });
});

describe('analysis', () => {
  it('rolls back at the first window showing a significant breach, without waiting for a checkpoint', () => {
    const result = analyze(policy, {
      deployId: DEPLOY,
      measurements: [at(2, payload(totals(200, 2))), at(4, payload(totals(400, 4))), at(6, payload(totals(600, 80)))],
    });
    expect(result.decision).toMatchObject({ kind: 'rollback', trigger: 'breach', atSeconds: 360, stepIndex: 2 });
    expect(result.steps[2]!.breachChecks.find((c) => c.scope === 'window' && c.metric === 'errorRate')!.verdict).toBe('fail');
  });

  it('sums the counters of every instance instead of averaging their percentages', () => {
    // srv-a: 1000 calls, 10 errors; srv-b: 10 calls, 9 errors. Average of rates: 45.5%; summed: 1.9%.
    const measurements = [at(2, payload(totals(1000, 10)), payload(totals(10, 9), { instanceId: 'srv-b' }))];
    const result = analyze(policy, { deployId: DEPLOY, measurements });
    expect(result.decision).toBeUndefined();
    expect(result.steps[0]!.instances).toEqual(['srv-a', 'srv-b']);
    expect(result.steps[0]!.cumulative.values.errorRate).toBeCloseTo(19 / 1010);
  });

  it('uses fleet-wide figures once, whichever instance answers, and never adds per-instance ones to them', () => {
    const fleet = (t: Counts, instanceId: string) => ({ ...payload(t, { instanceId }), scope: 'fleet', instancesSeen: ['srv-a', 'srv-b'] });
    const result = analyze(policy, {
      deployId: DEPLOY,
      measurements: [
        at(2, fleet(totals(200, 2), 'srv-a'), fleet(totals(200, 2), 'srv-b')),
        at(4, fleet(totals(400, 4), 'srv-b')),
        at(6, payload(totals(150, 1), { instanceId: 'srv-a' })),
      ],
    });
    expect(result.steps[0]!.cumulative.counts.context7Requests).toBe(200);
    expect(result.steps[1]!.window).toMatchObject({ valid: true, counts: expect.objectContaining({ context7Requests: 200 }) });
    expect(result.steps[2]!.status).toBe('measurement_error');
    expect(result.steps[2]!.sampleProblems[0]!.problem).toBe('instance_scope');
  });

  it('refuses totals that cannot be true and survives a switch to fleet-wide figures mid-period', () => {
    const impossible = { ...payload(totals(10, 0)), totals: { ...totals(10, 0), context7Errors: 11 } };
    const refused = analyze(policy, { deployId: DEPLOY, measurements: [at(2, impossible)] });
    expect(refused.steps[0]!.sampleProblems[0]).toMatchObject({ problem: 'malformed', detail: expect.stringContaining('inconsistent') });

    // Each payload is consistent, but the window between them is not (5 errors in 2 calls): inconclusive, no throw.
    const odd = analyze(policy, { deployId: DEPLOY, measurements: [at(2, payload(totals(10, 0))), at(4, payload(totals(12, 5)))] });
    expect(odd.steps[1]!.breachChecks.find((c) => c.scope === 'window' && c.metric === 'errorRate')).toMatchObject({ verdict: 'inconclusive', reason: expect.stringContaining('inconsistent') });

    const fleet = { ...payload(totals(150, 1)), scope: 'fleet' };
    const switched = analyze(policy, { deployId: DEPLOY, measurements: [at(2, payload(totals(200, 2))), at(4, fleet), at(6, { ...fleet, totals: totals(300, 2) })] });
    expect(switched.decision).toBeUndefined();
    expect(switched.steps[1]!.window.valid).toBe(false);
    expect(switched.steps[2]!.period.counts.context7Requests).toBe(150);
  });

  it('treats a counter decrease, a new startedAt and a new instance as invalid windows, never as failures', () => {
    const result = analyze(policy, {
      deployId: DEPLOY,
      measurements: [
        at(2, payload(totals(200, 2))),
        at(4, payload(totals(20, 0))), // counters went down: the registry reset
        at(6, payload(totals(40, 1), { startedAt: '2026-11-20T10:05:00.000Z' })),
        at(8, payload(totals(60, 1), { startedAt: '2026-11-20T10:05:00.000Z' }), payload(totals(5, 0), { instanceId: 'srv-c' })),
      ],
    });
    expect(result.decision).toBeUndefined();
    expect(result.steps.map((s) => s.window.valid)).toEqual([true, false, false, false]);
    expect(result.steps[1]!.window.invalidReason).toMatch(/counter requests went down/);
    expect(result.steps[2]!.window.invalidReason).toMatch(/restarted/);
    expect(result.steps[3]!.window.invalidReason).toMatch(/new instance srv-c/);
    // Cumulative keeps every epoch: 200 + 20 + 60 + 5 calls.
    expect(result.steps[3]!.cumulative.counts.context7Requests).toBe(285);
  });

  it('refuses figures from another deploy and pins the deploy from the first valid sample', () => {
    const measurements = [at(2, payload(totals(100, 1))), at(4, payload(totals(200, 150), { deployId: 'other' }))];
    const pinned = analyze(policy, { measurements });
    expect(pinned.deployId).toBe(DEPLOY);
    expect(pinned.steps[1]!.status).toBe('measurement_error');
    expect(pinned.steps[1]!.sampleProblems[0]!.problem).toBe('wrong_deploy');
    expect(pinned.decision).toBeUndefined();
  });

  it('holds while only metrics fail, aborts past the limit, and calls the service down when health fails too', () => {
    const broken = (minute: number, healthProbe: Measurement["health"] = healthy): Measurement => ({
      atSeconds: minute * 60,
      samples: [{ status: 500, body: { error: 'boom' } }],
      health: healthProbe,
      config,
    });
    const holding = analyze(policy, { deployId: DEPLOY, measurements: [at(2, payload(totals(100, 1))), ...[4, 6, 8, 10, 12].map((m) => broken(m))] });
    expect(holding.decision).toBeUndefined();
    expect(holding.steps.at(-1)!.consecutiveErrors).toBe(5);

    const aborted = analyze(policy, { deployId: DEPLOY, measurements: [at(2, payload(totals(100, 1))), ...[4, 6, 8, 10, 12, 14].map((m) => broken(m))] });
    expect(aborted.decision).toMatchObject({ kind: 'abort', trigger: 'measurement_errors', atSeconds: 14 * 60 });

    const down = { status: null, error: 'network' as const, message: 'ECONNREFUSED' };
    const serviceDown = analyze(policy, { deployId: DEPLOY, measurements: [at(2, payload(totals(100, 1))), broken(4, down), broken(6, down)] });
    expect(serviceDown.decision).toMatchObject({ kind: 'rollback', trigger: 'service_down', atSeconds: 360 });
  });

  it('carries an inconclusive metric over and holds at the end unless the policy says otherwise', () => {
    // 20 calls per measurement window, no errors: too few for a window, enough cumulatively for some metrics.
    const measurements = [2, 15, 30, 60].map((m) => at(m, payload(totals(m * 1, 0))));
    const result = analyze(policy, { deployId: DEPLOY, measurements });
    const fifteen = result.checkpoints.find((c) => c.name === '15-minute check')!;
    expect(fifteen.outcome).toBe('inconclusive');
    const thirty = result.checkpoints.find((c) => c.name === '30-minute check')!;
    expect(thirty.judgements.find((j) => j.metric === 'avgLatencyMs')!.verdict).toBe('pass');
    expect(result.decision).toMatchObject({ kind: 'hold', trigger: 'end' });

    const promoteAnyway = analyze({ ...policy, onInconclusiveAtEnd: 'promote' }, { deployId: DEPLOY, measurements });
    expect(promoteAnyway.decision!.kind).toBe('promote');
  });

  it('promotes only when every success criterion and health pass at the end', () => {
    const measurements = [2, 15, 30, 45, 60].map((m) => at(m, payload(totals(m * 100, m))));
    expect(analyze(policy, { deployId: DEPLOY, measurements }).decision).toMatchObject({ kind: 'promote', atSeconds: 3600 });

    const unavailable = measurements.map((m, i) => (i === measurements.length - 1 ? { ...m, health: { status: 200, body: { available: false, reason: 'Context7 unreachable' } } } : m));
    expect(analyze(policy, { deployId: DEPLOY, measurements: unavailable }).decision).toMatchObject({ kind: 'rollback', trigger: 'end' });
    expect(analyze({ ...policy, onFailAtEnd: 'hold' }, { deployId: DEPLOY, measurements: unavailable }).decision!.kind).toBe('hold');
  });

  it('rolls back when the immediate checks never pass within their minutes', () => {
    const unavailable = { status: 200, body: { available: false, reason: 'Context7 unreachable' } };
    const measurements = [2, 4, 6].map((m) => ({ ...at(m, payload(totals(m, 0))), health: unavailable }));
    expect(analyze(policy, { deployId: DEPLOY, measurements }).decision).toMatchObject({ kind: 'rollback', trigger: 'immediate_checks', atSeconds: 360 });
  });

  it('is a pure function: the same input gives the same result', () => {
    const measurements = [2, 4, 6].map((m) => at(m, payload(totals(m * 50, m))));
    expect(analyze(policy, { deployId: DEPLOY, measurements })).toEqual(analyze(policy, { deployId: DEPLOY, measurements: structuredClone(measurements) }));
  });
});
