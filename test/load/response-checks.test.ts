import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { evaluateResponse, isConfigResponse, isHealthResponse, isMetricsResponse, isPatternsResponse, isSnippetsResponse } from '../../load/lib/response-checks';
import type { RequestPlan } from '../../load/lib/traffic-mix';
import { configResponseSchema, healthResponseSchema, memoryMetricsSchema, patternsResponseSchema, snippetsResponseSchema } from '../../service/contracts/http';

const scopeId = 'scope:loc-01:agent-1:0123456789abcdef';
const snippets = {
  snippets: [{ id: 's1', content: 'Offer the earliest slot', score: 0.9 }],
  source: 'cache',
  attestation: { backend: 'cache', scopeId, snippetsApplied: 1 },
};
const metrics = {
  errorRate: 0.01, errorRatePercent: 1, fallbackRate: 0, fallbackRatePercent: 0, avgLatency: 12.5, p95Latency: 30,
  cacheHitRate: 0.5, cacheHitRatePercent: 50, context7Requests: 100,
  errorsByType: { network: 1, timeout: 0, api_error: 0, rate_limited: 0 },
  cache: { hits: 50, misses: 50, size: 10, ttlMs: 300000 },
  instanceId: 'i-1', deployId: 'abc', startedAt: '2026-11-23T00:00:00.000Z',
  totals: { requests: 100, fallbacks: 0, context7Requests: 100, context7Errors: 1, cacheHits: 50, cacheMisses: 50, latencyMsSum: 1250, latencyCount: 100 },
};

/** Valid bodies and near-misses: the k6 checks must agree with the service's zod contract on each. */
const corpus: Array<[string, (v: unknown) => boolean, { safeParse: (v: unknown) => { success: boolean } }, unknown[]]> = [
  ['snippets', isSnippetsResponse, snippetsResponseSchema, [
    snippets,
    { snippets: [], source: 'disabled' },
    { snippets: [{ id: 'x', content: 'y' }], source: 'disabled' },
    { ...snippets, source: 'localStorage' },
    { ...snippets, attestation: undefined },
    { ...snippets, attestation: { ...snippets.attestation, snippetsApplied: -1 } },
    { ...snippets, attestation: { ...snippets.attestation, backend: 'redis' } },
    { ...snippets, snippets: [{ id: 1, content: 'x' }] },
    { snippets: 'none', source: 'cache' },
    null, [], 'ok',
  ]],
  ['health', isHealthResponse, healthResponseSchema, [
    { available: true, provider: 'context7' },
    { available: false, reason: 'Context7 disabled in environment' },
    { available: false, reason: '' },
    { available: true, provider: 'other' },
    { available: 'yes' },
  ]],
  ['patterns', isPatternsResponse, patternsResponseSchema, [
    { saved: 1, inserted: 1, patternIds: ['p1'], destinations: ['database', 'context7'] },
    { saved: 1, inserted: 0, patternIds: ['p1'], destinations: ['database'] },
    { saved: 1, inserted: 1, patternIds: [1], destinations: ['database'] },
    { saved: 1, inserted: 1, patternIds: ['p1'], destinations: ['localStorage'] },
    { saved: -1, inserted: 1, patternIds: ['p1'], destinations: [] },
    { ok: true },
  ]],
  ['config', isConfigResponse, configResponseSchema, [
    { enableContext7Memory: true, context7Available: false },
    { enableContext7Memory: 'true', context7Available: false },
    { enableContext7Memory: true },
  ]],
  ['metrics', isMetricsResponse, memoryMetricsSchema, [
    metrics,
    { ...metrics, errorRate: 1.5 },
    { ...metrics, errorsByType: { network: 1 } },
    { ...metrics, cache: { ...metrics.cache, ttlMs: -1 } },
    { ...metrics, avgLatency: -3 },
  ]],
];

describe('response shape checks', () => {
  for (const [name, check, schema, samples] of corpus) {
    it(`${name}: agree with the service contract on valid and broken bodies`, () => {
      for (const sample of samples) expect(check(sample), JSON.stringify(sample)).toBe(schema.safeParse(sample).success);
    });
  }

  it('snippets: agree with the contract on generated bodies', () => {
    const backend = fc.constantFrom('context7', 'cache', 'database', 'hybrid', 'disabled', 'bogus');
    const body = fc.record({
      snippets: fc.array(fc.record({ id: fc.oneof(fc.string(), fc.integer()), content: fc.string() }), { maxLength: 3 }),
      source: backend,
      attestation: fc.option(fc.record({ backend, scopeId: fc.string(), snippetsApplied: fc.integer({ min: -2, max: 5 }) }), { nil: undefined }),
    });
    fc.assert(fc.property(body, (b) => isSnippetsResponse(b) === snippetsResponseSchema.safeParse(b).success), { numRuns: 500 });
  });

  const read: RequestPlan = { endpoint: 'snippets', method: 'POST', path: '/api/memory/snippets', scopeId, body: '{}' };

  it('passes a good snippets response on every check', () => {
    const results = evaluateResponse(read, 200, JSON.stringify(snippets));
    expect(results.length).toBeGreaterThanOrEqual(4);
    expect(results.filter((r) => !r.ok)).toEqual([]);
  });

  it('fails an attestation for another scope: that is training leakage', () => {
    const leaked = { ...snippets, attestation: { ...snippets.attestation, scopeId: 'scope:loc-02:agent-1:0123456789abcdef' } };
    const failed = evaluateResponse(read, 200, JSON.stringify(leaked)).filter((r) => !r.ok);
    expect(failed.map((r) => r.name)).toEqual(['snippets: attestation names the requested scope']);
  });

  it('fails on status, non-JSON and empty bodies', () => {
    expect(evaluateResponse(read, 500, JSON.stringify(snippets)).find((r) => r.name.includes('status'))?.ok).toBe(false);
    expect(evaluateResponse(read, 200, '<html>').filter((r) => !r.ok).length).toBeGreaterThanOrEqual(2);
    expect(evaluateResponse(read, 200, null).every((r) => r.name.includes('status') || !r.ok)).toBe(true);
  });

  it('requires a learning write to account for every pattern sent, and names checks per endpoint', () => {
    const write: RequestPlan = { endpoint: 'patterns', method: 'POST', path: '/api/memory/patterns', scopeId, body: '{}', patternCount: 1 };
    const ack = { saved: 1, inserted: 1, patternIds: ['p1'], destinations: ['database', 'context7'] };
    expect(evaluateResponse(write, 200, JSON.stringify(ack)).every((r) => r.ok)).toBe(true);
    const lost = evaluateResponse(write, 200, JSON.stringify({ ...ack, saved: 0, patternIds: [] })).filter((r) => !r.ok);
    expect(lost.map((r) => r.name)).toEqual(['patterns: every pattern saved to the database']);
    expect(evaluateResponse(write, 400, '{"error":"bad"}').some((r) => !r.ok)).toBe(true);
    const health: RequestPlan = { endpoint: 'health', method: 'GET', path: '/api/memory/health' };
    const results = evaluateResponse(health, 200, '{"available":true,"provider":"context7"}');
    expect(results.every((r) => r.ok && r.name.startsWith('health: '))).toBe(true);
  });
});
