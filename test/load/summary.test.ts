import { describe, expect, it } from 'vitest';
import { loadSummarySchema } from '../../load/cli/summary-schema';
import { k6DataFromSummaryExport, latencyStatsFromSamples, renderMarkdownReport, summaryFromK6, type K6SummaryData } from '../../load/lib/summary';

/** The shape k6 hands to handleSummary (trend stats as the script requests them). */
const trend = (avg: number, p95: number, count: number) => ({
  type: 'trend',
  values: { avg, min: 1, med: avg * 0.9, max: p95 * 2, 'p(90)': p95 * 0.9, 'p(95)': p95, 'p(99)': p95 * 1.5, count },
});
const k6Data: K6SummaryData = {
  state: { testRunDurationMs: 60_000 },
  metrics: {
    http_reqs: { type: 'counter', values: { count: 1200, rate: 20 } },
    http_req_duration: { ...trend(12, 40, 1200), thresholds: { 'avg<200': { ok: true }, 'p(95)<500': { ok: true } } },
    http_req_failed: { type: 'rate', values: { rate: 0.01, passes: 12, fails: 1188 }, thresholds: { 'rate<0.05': { ok: true } } },
    checks: { type: 'rate', values: { rate: 0.995, passes: 4776, fails: 24 }, thresholds: { 'rate>0.99': { ok: true } } },
    'http_req_duration{endpoint:snippets}': { ...trend(10, 30, 1000), thresholds: { 'avg<200': { ok: true }, 'p(95)<500': { ok: true } } },
    'http_req_failed{endpoint:snippets}': { type: 'rate', values: { rate: 0 }, thresholds: { 'rate<0.05': { ok: true } } },
    'http_req_duration{endpoint:patterns}': { ...trend(40, 600, 200), thresholds: { 'avg<200': { ok: true }, 'p(95)<500': { ok: false } } },
    'http_req_failed{endpoint:patterns}': { type: 'rate', values: { rate: 0.06 }, thresholds: { 'rate<0.05': { ok: false } } },
    'http_req_duration{endpoint:health}': { ...trend(0, 0, 0) },
  },
};

describe('load summary', () => {
  const summary = summaryFromK6(k6Data, {
    scenario: 'baseline',
    target: 'https://staging.example.com',
    startedAt: '2026-11-23T00:00:00.000Z',
    endpoints: ['snippets', 'patterns', 'health'],
    thresholdsSource: 'canary/policy.yaml (rollout)',
  });

  it('maps k6 summary data to the shared shape, with each endpoint apart', () => {
    expect(summary).toMatchObject({ tool: 'k6', requests: 1200, throughputRps: 20, errorRate: 0.01, checksPassRate: 0.995, durationSeconds: 60 });
    expect(summary.latencyMs).toEqual({ avg: 12, min: 1, p50: 10.8, p90: 36, p95: 40, p99: 60, max: 80 });
    expect(Object.keys(summary.endpoints)).toEqual(['snippets', 'patterns']); // no traffic, no row
    expect(summary.endpoints.patterns?.errorRate).toBe(0.06);
    expect(loadSummarySchema.safeParse(summary).success).toBe(true);
  });

  it('takes threshold verdicts from k6, with the measured value', () => {
    expect(summary.thresholdsOk).toBe(false);
    const failed = summary.thresholds.filter((t) => !t.ok);
    expect(failed).toEqual([
      { metric: 'http_req_duration{endpoint:patterns}', expression: 'p(95)<500', ok: false, actual: 600 },
      { metric: 'http_req_failed{endpoint:patterns}', expression: 'rate<0.05', ok: false, actual: 0.06 },
    ]);
  });

  it('renders a readable report naming the failures', () => {
    const md = renderMarkdownReport(summary);
    expect(md).toContain('# Load report: baseline (k6)');
    expect(md).toContain('**FAIL**');
    expect(md).toMatch(/\| patterns \| 200 \| 6\.00% \|/);
    expect(md).toContain('`http_req_failed{endpoint:patterns}`');
  });

  it('computes exact latency statistics from samples, interpolating like k6', () => {
    const samples = Array.from({ length: 101 }, (_, i) => 100 - i); // 0..100, unsorted
    expect(latencyStatsFromSamples(samples)).toEqual({ avg: 50, min: 0, p50: 50, p90: 90, p95: 95, p99: 99, max: 100 });
    expect(latencyStatsFromSamples([1, 2]).p50).toBe(1.5);
    expect(latencyStatsFromSamples([]).p95).toBe(0);
  });

  it('reads k6 --summary-export back into handleSummary data (real k6 v1.3 output, interrupted after 2 s with 65 drops)', () => {
    // Written by `k6 run --summary-export` (k6 v1.3.0): a 50/s arrival rate on 2 VUs, Ctrl-C after ~2 s.
    const exported = {
      root_group: { name: '', path: '', id: 'd41d8cd98f00b204e9800998ecf8427e', groups: {}, checks: {} },
      setup_data: { nonce: 'abc' },
      metrics: {
        dropped_iterations: { count: 65, rate: 32.98982532222973 },
        iterations: { count: 32, rate: 16.24114477402079 },
        vus: { value: 2, min: 2, max: 2 },
        iteration_duration: { 'p(90)': 101.0569039, 'p(95)': 101.11392285, avg: 100.82640987500002, min: 100.139391, med: 100.74509950000001, max: 102.483995, thresholds: { 'avg<1000': false } },
        checks: { passes: 30, fails: 2, value: 0.9375, thresholds: { 'rate>0.99': true } },
      },
    };
    const data = k6DataFromSummaryExport(exported, 99);
    expect(data.state?.testRunDurationMs).toBeCloseTo(1970.3, 0); // count / rate, not the fallback
    expect(data.metrics.dropped_iterations).toEqual({ type: 'counter', values: { count: 65, rate: 32.98982532222973 } });
    expect(data.metrics.checks).toEqual({ type: 'rate', values: { passes: 30, fails: 2, rate: 0.9375 }, thresholds: { 'rate>0.99': { ok: false } } });
    expect(data.metrics.iteration_duration?.type).toBe('trend');
    expect(data.metrics.iteration_duration?.thresholds).toEqual({ 'avg<1000': { ok: true } });
    expect(data.setup_data).toEqual({ nonce: 'abc' });
    expect(k6DataFromSummaryExport({ metrics: {} }, 12.5).state?.testRunDurationMs).toBe(12_500);
    expect(() => k6DataFromSummaryExport({ nope: 1 }, 1)).toThrow(/not a k6 summary export/);
  });
});
