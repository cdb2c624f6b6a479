/**
 * Per-cohort counters and rates (service/domain/cohort-metrics.ts), their place in the instance's snapshot, the
 * exposure percentage from config, and the Prometheus exposition with a `cohort` label.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig, ConfigError } from '../../service/config';
import { cohortFiguresSchema, memoryMetricsSchema } from '../../service/contracts/http';
import type { Context7CallOutcome } from '../../service/context7/port';
import {
  CohortCounters,
  cohortOfRequest,
  currentCohort,
  deriveCohortFigures,
  emptyCohortCounts,
  withinCohort,
} from '../../service/domain/cohort-metrics';
import { cohortOf } from '../../service/domain/exposure';
import { latencyBin, latencyBinUpperMs } from '../../service/domain/latency-bins';
import { countedApartAsProbe, InstanceMetrics } from '../../service/domain/metrics';
import { COHORT_LATENCY_BUCKETS_MS, createPrometheusExporter } from '../../service/domain/prometheus';
import { PROBE_LOCATION_PREFIX } from '../../service/domain/scope-id';
import { scope } from './support/harness';

const CACHE = { hits: 0, misses: 0, size: 0, ttlMs: 300_000 };
const call = (ok: boolean, operation: Context7CallOutcome['operation'] = 'searchSnippets'): Context7CallOutcome => ({
  operation,
  ok,
  latencyMs: 12,
  attempts: 1,
  ...(ok ? {} : { errorType: 'timeout' as const }),
});

/** A scope in the wanted cohort at `percent`, found by walking prompt texts (the hash decides, not the test). */
function scopeIn(cohort: 'treatment' | 'control', percent: number, label: string): string {
  for (let i = 0; ; i += 1) {
    const candidate = scope(`loc-${label}`, 'agent', `prompt ${i}`);
    if (cohortOf(candidate, percent) === cohort) return candidate;
  }
}

describe('cohort counters', () => {
  it('count requests, reads, 5xx and latency per cohort; rates and percentiles derive from them', () => {
    const counters = new CohortCounters();
    for (const latencyMs of [10, 20, 30, 40]) counters.recordRequest('treatment', { read: true, status: 200, latencyMs });
    counters.recordRequest('treatment', { read: false, status: 503, latencyMs: 1_000 });
    counters.recordRequest('control', { read: true, status: 500, latencyMs: 5 });

    const figures = counters.figures();
    expect(cohortFiguresSchema.parse(figures.treatment)).toBeTruthy();
    expect(figures.treatment.totals).toEqual({
      requests: 5,
      reads: 4,
      fallbacks: 0,
      serverErrors: 1,
      latencyMsSum: 1_100,
      latencyCount: 5,
      context7Requests: 0,
      context7Errors: 0,
    });
    expect(figures.treatment.serverErrorRate).toBeCloseTo(1 / 5);
    // Nearest rank over the 5 % bins: p50 is the 3rd of 5 (30 ms), p95 the 5th (1,000 ms), each reported as its bin's upper edge.
    expect(figures.treatment.p50LatencyMs).toBeCloseTo(latencyBinUpperMs(latencyBin(30)), 1);
    expect(figures.treatment.p50LatencyMs).toBeGreaterThanOrEqual(30);
    expect(figures.treatment.p50LatencyMs).toBeLessThanOrEqual(30 * 1.05 + 1);
    expect(figures.treatment.p95LatencyMs).toBeGreaterThanOrEqual(1_000);
    expect(figures.treatment.p95LatencyMs).toBeLessThanOrEqual(1_050);
    const binCounts = Object.values(figures.treatment.latencyBins).reduce((sum, n) => sum + n, 0);
    expect(binCounts).toBe(5);
    expect(figures.treatment.latencyBins[String(latencyBin(1_000))]).toBe(1);
    expect(figures.control.totals).toMatchObject({ requests: 1, reads: 1, serverErrors: 1 });
    expect(figures.control.serverErrorRate).toBe(1);
  });

  it('every rate is 0 when its denominator is 0', () => {
    const figures = deriveCohortFigures(emptyCohortCounts().control);
    expect(figures).toMatchObject({ fallbackRate: 0, serverErrorRate: 0, errorRate: 0, p50LatencyMs: 0, p95LatencyMs: 0, latencyBins: {} });
  });

  it('fallbacks count for the treatment only, and Context7 calls for the cohort whose request makes them', async () => {
    const counters = new CohortCounters();
    await withinCohort('treatment', async () => {
      await Promise.resolve();
      counters.recordFallback();
      counters.recordContext7Call(call(false));
      counters.recordContext7Call(call(true, 'upsertPatterns'));
      counters.recordContext7Call(call(true, 'health')); // health probes are no logical call
    });
    await withinCohort('control', async () => {
      counters.recordFallback(); // a control read from the store is by design, never a fallback
      counters.recordContext7Call(call(true, 'upsertPatterns'));
    });
    counters.recordFallback(); // outside any request (drainer, backfill): no cohort
    counters.recordContext7Call(call(false));

    const figures = counters.figures();
    expect(figures.treatment.totals).toMatchObject({ fallbacks: 1, context7Requests: 2, context7Errors: 1 });
    expect(figures.treatment.errorRate).toBeCloseTo(1 / 2);
    expect(figures.control.totals).toMatchObject({ fallbacks: 0, context7Requests: 1, context7Errors: 0 });
    expect(currentCohort()).toBeNull();
  });

  it('the fallback rate is fallbacks over reads', () => {
    const counts = emptyCohortCounts();
    Object.assign(counts.treatment.totals, { requests: 10, reads: 8, fallbacks: 2 });
    expect(deriveCohortFigures(counts.treatment).fallbackRate).toBeCloseTo(2 / 8);
  });
});

describe('the instance snapshot', () => {
  it('carries both cohorts beside the unchanged totals; the instance records fallbacks and Context7 calls into them', async () => {
    const metrics = new InstanceMetrics({ instanceId: 'i-1', deployId: 'd-1', startedAt: new Date('2026-01-05T09:00:00Z') });
    await withinCohort('treatment', async () => {
      metrics.recordRead({ source: 'database', fallback: true, cache: 'miss' });
      metrics.recordContext7Call(call(false));
    });
    await withinCohort('control', async () => {
      metrics.recordRead({ source: 'database', fallback: false, cache: 'bypass' });
    });
    // Probe traffic reaches no counter but probeRequests (and is never given a cohort by the edge).
    await countedApartAsProbe(async () => metrics.recordContext7Call(call(true)));
    metrics.recordCohortRequest('treatment', { read: true, status: 200, latencyMs: 50 });
    metrics.recordCohortRequest('control', { read: true, status: 200, latencyMs: 20 });

    const snapshot = memoryMetricsSchema.parse(await metrics.snapshot(CACHE));
    expect(snapshot.totals).toMatchObject({ requests: 2, fallbacks: 1, context7Requests: 1, context7Errors: 1 });
    expect(snapshot.cohorts!.treatment.totals).toMatchObject({ requests: 1, reads: 1, fallbacks: 1, context7Requests: 1, context7Errors: 1 });
    expect(snapshot.cohorts!.treatment.fallbackRate).toBe(1);
    expect(snapshot.cohorts!.control.totals).toMatchObject({ requests: 1, reads: 1, fallbacks: 0, context7Requests: 0 });
    expect(snapshot.cohorts!.control.fallbackRate).toBe(0);
  });
});

describe('which cohort a request counts in', () => {
  it('the hash decides under the flag; probe scopes and flag-off requests count in none', () => {
    const half = { percent: () => 50 };
    const treated = scopeIn('treatment', 50, 'split');
    const untreated = scopeIn('control', 50, 'split');
    expect(cohortOfRequest(treated, true, half)).toBe('treatment');
    expect(cohortOfRequest(untreated, true, half)).toBe('control');
    expect(cohortOfRequest(scope(`${PROBE_LOCATION_PREFIX}canary`, 'probe', 'p'), true, half)).toBeNull();
    expect(cohortOfRequest(treated, false, half)).toBeNull();
  });

  it('CONTEXT7_EXPOSURE_PERCENT is 0..100 in steps of 0.01, default 100; anything else is refused by name', () => {
    expect(loadConfig({}).exposureCeilingPercent).toBe(100);
    expect(loadConfig({ CONTEXT7_EXPOSURE_PERCENT: '' }).exposureCeilingPercent).toBe(100);
    expect(loadConfig({ CONTEXT7_EXPOSURE_PERCENT: '5' }).exposureCeilingPercent).toBe(5);
    expect(loadConfig({ CONTEXT7_EXPOSURE_PERCENT: '12.5' }).exposureCeilingPercent).toBe(12.5);
    expect(loadConfig({ CONTEXT7_EXPOSURE_PERCENT: '0' }).exposureCeilingPercent).toBe(0);
    for (const bad of ['101', '-1', '12.345', 'half', '1e2', '0x10']) {
      expect(() => loadConfig({ CONTEXT7_EXPOSURE_PERCENT: bad })).toThrow(ConfigError);
      expect(() => loadConfig({ CONTEXT7_EXPOSURE_PERCENT: bad })).toThrow(/CONTEXT7_EXPOSURE_PERCENT/);
    }
  });
});

describe('Prometheus', () => {
  it('exposes both cohorts with a cohort label and a cumulative latency histogram; the old metric names stay', async () => {
    const metrics = new InstanceMetrics({ instanceId: 'i-1', deployId: 'd-1', startedAt: new Date('2026-01-05T09:00:00Z') });
    for (const latencyMs of [3, 40, 40, 700]) metrics.recordCohortRequest('treatment', { read: true, status: 200, latencyMs });
    metrics.recordCohortRequest('treatment', { read: false, status: 503, latencyMs: 40_000 });
    metrics.recordCohortRequest('control', { read: true, status: 200, latencyMs: 8 });
    await withinCohort('treatment', async () => metrics.recordRead({ source: 'database', fallback: true, cache: 'miss' }));

    const text = await createPrometheusExporter({ defaultMetrics: false }).render(await metrics.snapshot(CACHE), { outboxDepth: 0 });
    expect(text).toMatch(/^memory_cohort_requests_total\{cohort="treatment"\} 5$/m);
    expect(text).toMatch(/^memory_cohort_requests_total\{cohort="control"\} 1$/m);
    expect(text).toMatch(/^memory_cohort_reads_total\{cohort="treatment"\} 4$/m);
    expect(text).toMatch(/^memory_cohort_fallbacks_total\{cohort="treatment"\} 1$/m);
    expect(text).toMatch(/^memory_cohort_fallbacks_total\{cohort="control"\} 0$/m);
    expect(text).toMatch(/^memory_cohort_server_errors_total\{cohort="treatment"\} 1$/m);
    expect(text).toMatch(/^memory_cohort_context7_requests_total\{cohort="control"\} 0$/m);
    expect(text).toMatch(/^# TYPE memory_cohort_request_latency_ms histogram$/m);

    const bucket = (cohort: string, le: string) => {
      const line = new RegExp(`^memory_cohort_request_latency_ms_bucket\\{cohort="${cohort}",le="${le.replace('+', '\\+')}"\\} (\\d+)$`, 'm').exec(text);
      expect(line, `${cohort} le=${le}`).not.toBeNull();
      return Number(line![1]);
    };
    const le = (ms: number) => COHORT_LATENCY_BUCKETS_MS.find((b) => b.bin === latencyBin(ms))!.le;
    expect(Number(le(5))).toBeGreaterThanOrEqual(5);
    expect(bucket('treatment', le(5))).toBe(1);
    expect(bucket('treatment', le(50))).toBe(3);
    expect(bucket('treatment', le(1_000))).toBe(4);
    expect(bucket('treatment', le(30_000))).toBe(4); // 40 s is above the last bound
    expect(bucket('treatment', '+Inf')).toBe(5);
    expect(bucket('control', le(10))).toBe(1);
    expect(text).toMatch(/^memory_cohort_request_latency_ms_sum\{cohort="treatment"\} 40783$/m);
    expect(text).toMatch(/^memory_cohort_request_latency_ms_count\{cohort="control"\} 1$/m);

    // The metrics that existed before exposure keep their names (dashboards and alerts query them).
    for (const name of ['memory_requests_total', 'memory_fallbacks_total', 'memory_context7_requests_total', 'memory_fallback_rate']) {
      expect(text).toMatch(new RegExp(`^${name} `, 'm'));
    }
    expect(text).toMatch(/^memory_fallbacks_total 1$/m);
  });
});
