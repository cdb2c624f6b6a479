/**
 * The canary's learning probe (scopes under PROBE_LOCATION_PREFIX) is counted apart: one probeRequests per
 * request, and nothing it causes (read, store use, cache, Context7 calls) reaches the counters the canary judges.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { memoryMetricsSchema, type MetricTotals } from '../../service/contracts/http';
import { PROBE_LOCATION_PREFIX, isProbeScopeId } from '../../service/domain/scope-id';
import { scope, startHarness, type Harness } from './support/harness';

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

async function totals(h: Harness): Promise<MetricTotals> {
  const answer = await h.request('GET', '/api/metrics/memory');
  expect(answer.status).toBe(200);
  return memoryMetricsSchema.parse(answer.body).totals;
}

describe('probe traffic is counted apart', () => {
  it('only probe scopes are probe scopes', () => {
    expect(isProbeScopeId(scope(`${PROBE_LOCATION_PREFIX}canary`, 'probe', 'p'))).toBe(true);
    expect(isProbeScopeId(scope('canaryprobe', 'probe', 'p'))).toBe(false);
    expect(isProbeScopeId(scope('loc-berlin', 'probe', 'p'))).toBe(false);
    expect(isProbeScopeId('scope:canaryprobe-x:probe:nothex')).toBe(false);
  });

  it('a probe save and read-back move probeRequests only; a customer read still counts as before', async () => {
    harness = await startHarness({ emulator: {} });
    const probeScope = scope(`${PROBE_LOCATION_PREFIX}canary`, 'probe', 'run-1');
    const before = await totals(harness);

    const saved = await harness.request('POST', '/api/memory/patterns', {
      scopeId: probeScope,
      patterns: [{ content: 'probe pattern zebra-41', expiresAt: new Date(Date.now() + 3_600_000).toISOString() }],
    });
    expect(saved.status).toBe(200);
    expect(saved.body.destinations).toContain('context7');
    const read = await harness.request('POST', '/api/memory/snippets', { scopeId: probeScope, query: 'zebra-41' });
    expect(read.status).toBe(200);
    expect(['context7', 'hybrid']).toContain(read.body.attestation.backend);
    expect(harness.emulator!.stats().requests.upsertPatterns + harness.emulator!.stats().requests.searchSnippets).toBeGreaterThanOrEqual(2);

    const afterProbe = await totals(harness);
    expect(afterProbe).toEqual({ ...before, probeRequests: before.probeRequests + 2 });
    expect((await harness.request('GET', '/metrics')).text).toMatch(/^memory_probe_requests_total 2$/m);

    const customer = await harness.request('POST', '/api/memory/snippets', { scopeId: scope('loc-berlin'), query: 'anything' });
    expect(customer.status).toBe(200);
    const afterCustomer = await totals(harness);
    expect(afterCustomer.requests).toBe(afterProbe.requests + 1);
    expect(afterCustomer.context7Requests).toBeGreaterThan(afterProbe.context7Requests);
    expect(afterCustomer.probeRequests).toBe(afterProbe.probeRequests);
  });

  it('a probe pattern left in the outbox is sent by the drainer without touching the judged counters', async () => {
    let offsetMs = 0;
    harness = await startHarness({ emulator: { faults: { errorRate: 1 } }, overrides: { clock: () => new Date(Date.now() + offsetMs) } });
    const probeScope = scope(`${PROBE_LOCATION_PREFIX}canary`, 'probe', 'run-2');
    const saved = await harness.request('POST', '/api/memory/patterns', { scopeId: probeScope, patterns: ['probe pattern waiting in the outbox'] });
    expect(saved.body.destinations).toEqual(['database']);
    const before = await totals(harness);
    harness.emulator!.resetFaults();
    offsetMs = 10 * 60_000; // past the entry's backoff
    expect(await harness.service.drainer!.drainOnce()).toMatchObject({ sent: 1, failed: 0 });
    expect(harness.emulator!.patterns(probeScope)).toHaveLength(1);
    expect(await totals(harness)).toEqual(before);
  });
});
