/**
 * Metrics arithmetic: every rate equals its counters' ratio, and /metrics (Prometheus) shows the same figures.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryMetricsSchema, type MemoryMetrics } from '../../service/contracts/http';
import { InstanceMetrics, LatencyWindow } from '../../service/domain/metrics';
import { scope, startHarness, type Harness } from './support/harness';

function expectConsistent(m: MemoryMetrics): void {
  const t = m.totals;
  const ratio = (a: number, b: number) => (b === 0 ? 0 : a / b);
  expect(m.errorRate).toBeCloseTo(ratio(t.context7Errors, t.context7Requests), 10);
  expect(m.errorRatePercent).toBeCloseTo(m.errorRate * 100, 1);
  expect(m.fallbackRate).toBeCloseTo(ratio(t.fallbacks, t.requests), 10);
  expect(m.fallbackRatePercent).toBeCloseTo(m.fallbackRate * 100, 1);
  expect(m.cacheHitRate).toBeCloseTo(ratio(t.cacheHits, t.cacheHits + t.cacheMisses), 10);
  expect(m.cacheHitRatePercent).toBeCloseTo(m.cacheHitRate * 100, 1);
  expect(m.avgLatency).toBeCloseTo(ratio(t.latencyMsSum, t.latencyCount), 1);
  expect(m.context7Requests).toBe(t.context7Requests);
  expect(Object.values(m.errorsByType).reduce((a, b) => a + b, 0)).toBe(t.context7Errors);
  expect(m.cache.hits).toBe(t.cacheHits);
  expect(m.cache.misses).toBe(t.cacheMisses);
}

function promValue(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name} `)));
  if (!line) throw new Error(`metric ${name}${labels} not found`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('InstanceMetrics (pure)', () => {
  it('rates are 0 with no denominator and health probes never count', async () => {
    const metrics = new InstanceMetrics({ instanceId: 'i', deployId: 'd', startedAt: new Date(0) });
    metrics.recordContext7Call({ operation: 'health', ok: true, latencyMs: 5, attempts: 1 });
    metrics.recordContext7Call({ operation: 'health', ok: false, latencyMs: 5, attempts: 1, errorType: 'network' });
    const m = await metrics.snapshot({ hits: 0, misses: 0, size: 0, ttlMs: 1 });
    expect(m).toMatchObject({ errorRate: 0, fallbackRate: 0, cacheHitRate: 0, avgLatency: 0, p95Latency: 0, context7Requests: 0 });
    expectConsistent(memoryMetricsSchema.parse(m));
  });

  it('computes rates, mean and p95 from the counters', async () => {
    const metrics = new InstanceMetrics({ instanceId: 'i', deployId: 'd', startedAt: new Date(0) });
    for (let i = 1; i <= 20; i += 1) {
      metrics.recordContext7Call({ operation: 'searchSnippets', ok: i % 5 !== 0, latencyMs: i * 10, attempts: 1, errorType: i % 5 === 0 ? 'timeout' : undefined });
    }
    metrics.recordRead({ source: 'context7', fallback: false, cache: 'miss' });
    metrics.recordRead({ source: 'cache', fallback: false, cache: 'hit' });
    metrics.recordRead({ source: 'cache', fallback: false, cache: 'hit' });
    metrics.recordRead({ source: 'database', fallback: true, cache: 'miss' });
    const m = memoryMetricsSchema.parse(await metrics.snapshot({ hits: 0, misses: 0, size: 3, ttlMs: 300_000 }));
    expect(m.errorRate).toBe(0.2);
    expect(m.errorRatePercent).toBe(20);
    expect(m.errorsByType.timeout).toBe(4);
    expect(m.fallbackRate).toBe(0.25);
    expect(m.cacheHitRate).toBe(0.5);
    expect(m.avgLatency).toBe(105);
    expect(m.p95Latency).toBe(190);
    expect(m.cache).toEqual({ hits: 2, misses: 2, size: 3, ttlMs: 300_000 });
    expectConsistent(m);
  });

  it('the latency window is bounded and keeps the most recent values', () => {
    const window = new LatencyWindow(4);
    for (const v of [1000, 1000, 1000, 1000, 1, 2, 3, 4]) window.add(v);
    expect(window.percentile(95)).toBe(4);
    expect(window.percentile(50)).toBe(2);
  });
});

describe('metrics over HTTP', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ emulator: {}, overrides: { context7ClientOptions: { timeoutMs: 5_000, maxRetries: 0, breakerThreshold: 1_000 } } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('a mixed workload keeps every rate equal to its counters, and Prometheus agrees', async () => {
    const scopes = [scope('m', 'a', '1'), scope('m', 'b', '2'), scope('m', 'c', '3')];
    await h.request('POST', '/api/memory/patterns', { scopeId: scopes[0], patterns: ['alpha', 'beta'] });
    for (const scopeId of scopes) {
      for (let i = 0; i < 3; i += 1) await h.request('POST', '/api/memory/snippets', { scopeId, query: 'alpha' });
    }
    h.emulator!.setFaults({ errorRate: 1 });
    for (let i = 0; i < 4; i += 1) await h.request('POST', '/api/memory/snippets', { scopeId: scopes[1], query: `fresh ${i}` });
    h.emulator!.setFaults({ errorRate: 0, outage: true });
    await h.request('POST', '/api/memory/snippets', { scopeId: scopes[2], query: 'new' });
    h.emulator!.resetFaults();

    const m = memoryMetricsSchema.parse((await h.request('GET', '/api/metrics/memory')).body);
    expect(m.totals).toMatchObject({ requests: 14, cacheHits: 6, cacheMisses: 8, fallbacks: 5 });
    // 1 upsert + 3 search misses + 5 failed searches
    expect(m.totals.context7Requests).toBe(9);
    expect(m.totals.context7Errors).toBe(5);
    expect(m.errorsByType).toEqual({ network: 1, timeout: 0, api_error: 4, rate_limited: 0 });
    expectConsistent(m);

    const prom = await h.request('GET', '/metrics');
    expect(prom.status).toBe(200);
    expect(prom.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = prom.text;
    expect(promValue(text, 'memory_requests_total')).toBe(m.totals.requests);
    expect(promValue(text, 'memory_fallbacks_total')).toBe(m.totals.fallbacks);
    expect(promValue(text, 'memory_context7_requests_total')).toBe(m.totals.context7Requests);
    expect(promValue(text, 'memory_context7_errors_total')).toBe(m.totals.context7Errors);
    expect(promValue(text, 'memory_cache_hits_total')).toBe(m.totals.cacheHits);
    expect(promValue(text, 'memory_cache_misses_total')).toBe(m.totals.cacheMisses);
    expect(promValue(text, 'memory_context7_latency_ms_count')).toBe(m.totals.latencyCount);
    expect(promValue(text, 'memory_context7_latency_ms_sum')).toBeCloseTo(m.totals.latencyMsSum, 6);
    expect(promValue(text, 'memory_context7_errors_by_type_total', '{type="api_error"}')).toBe(4);
    expect(promValue(text, 'memory_context7_errors_by_type_total', '{type="network"}')).toBe(1);
    expect(promValue(text, 'memory_context7_errors_by_type_total', '{type="timeout"}')).toBe(0);
    expect(promValue(text, 'memory_error_rate')).toBeCloseTo(m.errorRate, 10);
    expect(promValue(text, 'memory_fallback_rate')).toBeCloseTo(m.fallbackRate, 10);
    expect(promValue(text, 'memory_cache_hit_rate')).toBeCloseTo(m.cacheHitRate, 10);
    expect(promValue(text, 'memory_cache_ttl_ms')).toBe(m.cache.ttlMs);
    expect(promValue(text, 'memory_outbox_depth')).toBe(0);
    expect(text).toContain('memory_service_info{instance_id="test-instance",deploy_id="local"');
  });

  it('health probes do not move context7Requests', async () => {
    const before = memoryMetricsSchema.parse((await h.request('GET', '/api/metrics/memory')).body);
    for (let i = 0; i < 3; i += 1) await h.request('GET', '/api/memory/health');
    await h.request('GET', '/api/config');
    const after = memoryMetricsSchema.parse((await h.request('GET', '/api/metrics/memory')).body);
    expect(after.context7Requests).toBe(before.context7Requests);
    expect(h.emulator!.stats().requests.health).toBeGreaterThan(0);
  });
});
