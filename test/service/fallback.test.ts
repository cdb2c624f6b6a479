/**
 * Fallback under every fault the Context7 emulator can inject: the read is answered from the local
 * store ("database"), counted as a fallback, and the failure is classified in errorsByType.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Context7FaultsPatch } from '../../service/context7/emulator';
import { memoryMetricsSchema, snippetsResponseSchema, type MemoryMetrics } from '../../service/contracts/http';
import { scope, startHarness, type Harness } from './support/harness';

let h: Harness;
beforeAll(async () => {
  // Retries off; a budget short enough that a hang costs 1 s, long enough that a healthy call on a loaded CI
  // machine never times out (the recovery read after each fault must reach Context7).
  h = await startHarness({ emulator: {}, overrides: { context7ClientOptions: { timeoutMs: 1_000, maxRetries: 0, breakerThreshold: 1_000 } } });
});
afterAll(async () => {
  await h?.close();
});
beforeEach(() => {
  h.emulator!.resetFaults();
});

async function metrics(): Promise<MemoryMetrics> {
  return memoryMetricsSchema.parse((await h.request('GET', '/api/metrics/memory')).body);
}

const cases: { name: string; faults: Context7FaultsPatch; type: 'network' | 'timeout' | 'api_error' | 'rate_limited' }[] = [
  { name: 'error rate 100% (HTTP 5xx)', faults: { errorRate: 1 }, type: 'api_error' },
  { name: 'latency past the timeout', faults: { latencyMs: 10_000 }, type: 'timeout' },
  { name: 'hang', faults: { hang: true }, type: 'timeout' },
  { name: '429 with Retry-After', faults: { rateLimit: { retryAfterSeconds: 30 } }, type: 'rate_limited' },
  { name: 'full outage', faults: { outage: true }, type: 'network' },
  { name: 'wrong key (401)', faults: { wrongKey: true }, type: 'api_error' },
];

describe.each(cases)('fault: $name', ({ faults, type }) => {
  it(`falls back to the database and counts a ${type} error`, async () => {
    const scopeId = scope('fault', type.replace('_', '-'), JSON.stringify(faults));
    // The pattern reaches the store whatever Context7 does.
    h.emulator!.setFaults(faults);
    const saved = await h.request('POST', '/api/memory/patterns', { scopeId, patterns: [`learned under ${JSON.stringify(faults)}`] });
    expect(saved.status).toBe(200);
    expect(saved.body.destinations).toEqual(['database']);

    const before = await metrics();
    const read = await h.request('POST', '/api/memory/snippets', { scopeId, query: 'learned' });
    expect(read.status).toBe(200);
    const body = snippetsResponseSchema.parse(read.body);
    expect(body.source).toBe('database');
    expect(read.body.attestation).toEqual({ backend: 'database', scopeId, snippetsApplied: 1 });
    expect(read.body.snippets[0].content).toBe(`learned under ${JSON.stringify(faults)}`);

    const after = await metrics();
    expect(after.totals.requests - before.totals.requests).toBe(1);
    expect(after.totals.fallbacks - before.totals.fallbacks).toBe(1);
    expect(after.totals.cacheMisses - before.totals.cacheMisses).toBe(1);
    expect(after.totals.context7Requests - before.totals.context7Requests).toBe(1);
    expect(after.totals.context7Errors - before.totals.context7Errors).toBe(1);
    expect(after.errorsByType[type] - before.errorsByType[type]).toBe(1);

    // Fallback answers are not cached: once Context7 recovers the next read goes to it.
    h.emulator!.resetFaults();
    const recovered = await h.request('POST', '/api/memory/snippets', { scopeId, query: 'learned' });
    expect(['context7', 'hybrid']).toContain(recovered.body.source);
  });
});

describe('breaker open', () => {
  it('a hung Context7 costs no network call once the breaker is open, and reads still fall back', async () => {
    const fast = await startHarness({
      emulator: {},
      overrides: { context7ClientOptions: { timeoutMs: 200, maxRetries: 0, breakerThreshold: 2, breakerHalfOpenAfterMs: 60_000 } },
    });
    try {
      const scopeId = scope('breaker', 'a', 'p');
      fast.emulator!.setFaults({ hang: true });
      for (let i = 0; i < 2; i += 1) {
        expect((await fast.request('POST', '/api/memory/snippets', { scopeId, query: `warm ${i}` })).body.source).toBe('database');
      }
      const reached = fast.emulator!.stats().requests.searchSnippets;
      for (let i = 0; i < 5; i += 1) {
        expect((await fast.request('POST', '/api/memory/snippets', { scopeId, query: `open ${i}` })).body.source).toBe('database');
      }
      expect(fast.emulator!.stats().requests.searchSnippets).toBe(reached);
      const m = memoryMetricsSchema.parse((await fast.request('GET', '/api/metrics/memory')).body);
      expect(m.totals.fallbacks).toBe(7);
      expect(m.fallbackRatePercent).toBe(100);
      expect(m.errorsByType.timeout).toBe(7);
      // Breaker-open fallbacks are logged once per interval, not once per read.
      const openLines = fast.logs.lines().filter((line) => line.tag === '[MEMORY_ERROR]' && line.circuitOpen === true);
      expect(openLines).toHaveLength(1);
      const health = await fast.request('GET', '/api/memory/health');
      expect(health.body.available).toBe(false);
      expect(health.body.reason).toMatch(/circuit breaker open/);
    } finally {
      await fast.close();
    }
  });
});
