import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildScopePool, DEFAULT_SCOPE_POOL, isLoadTestScope, LOAD_TEST_LOCATION_PREFIX } from '../../load/lib/scope';
import {
  createRng,
  createTrafficGenerator,
  DEFAULT_MIX,
  DEFAULT_PATTERN_TTL_MS,
  ENDPOINTS,
  endpointPicker,
  newRunNonce,
  zipfPicker,
  type RequestPlan,
} from '../../load/lib/traffic-mix';
import { patternsRequestSchema, snippetsRequestSchema } from '../../service/contracts/http';

const sha = (t: string) => createHash('sha256').update(t, 'utf8').digest('hex');
const scopeIds = buildScopePool(DEFAULT_SCOPE_POOL, sha).map((s) => s.scopeId);
const NOW = Date.UTC(2026, 10, 24, 12, 0, 0);

function sample(n: number, seed = 42): RequestPlan[] {
  const traffic = createTrafficGenerator({ scopeIds, random: createRng(seed), runNonce: 'testnonce1', now: () => NOW });
  return Array.from({ length: n }, () => traffic.next());
}

describe('traffic mix', () => {
  const plans = sample(20_000);

  it('sends each endpoint in its configured proportion', () => {
    const total = Object.values(DEFAULT_MIX).reduce((a, b) => a + b, 0);
    for (const endpoint of ENDPOINTS) {
      const share = plans.filter((p) => p.endpoint === endpoint).length / plans.length;
      const expected = DEFAULT_MIX[endpoint] / total;
      // 20k draws: the standard error is below 0.3 points; 1 point is a wide, non-flaky band
      expect(Math.abs(share - expected), endpoint).toBeLessThan(0.01);
    }
  });

  it('is mostly snippet reads, some learning writes, a few health/config polls', () => {
    const count = (e: string) => plans.filter((p) => p.endpoint === e).length;
    expect(count('snippets') / plans.length).toBeGreaterThan(0.8);
    expect(count('patterns')).toBeGreaterThan(count('health'));
    expect(count('health') + count('config') + count('metrics')).toBeLessThan(count('patterns') * 2);
  });

  it('reuses scopes and queries so a cache can hit, while spreading over many scopes', () => {
    const reads = plans.filter((p) => p.endpoint === 'snippets');
    const distinctScopes = new Set(reads.map((p) => p.scopeId));
    const distinctBodies = new Set(reads.map((p) => p.body));
    expect(distinctScopes.size).toBeGreaterThan(scopeIds.length * 0.8); // the long tail is visited
    expect(1 - distinctBodies.size / reads.length).toBeGreaterThan(0.7); // most reads repeat an earlier one
    const perScope = new Map<string, number>();
    for (const r of reads) perScope.set(r.scopeId as string, (perScope.get(r.scopeId as string) ?? 0) + 1);
    const top = [...perScope.values()].sort((a, b) => b - a).slice(0, Math.ceil(scopeIds.length / 10));
    expect(top.reduce((a, b) => a + b, 0) / reads.length).toBeGreaterThan(0.4); // Zipf: the top 10% are busy
  });

  it('builds request bodies the service contract accepts', () => {
    for (const plan of plans.slice(0, 2_000)) {
      if (plan.endpoint === 'snippets') {
        const body = snippetsRequestSchema.parse(JSON.parse(plan.body as string));
        expect(body.scopeId).toBe(plan.scopeId);
        expect(plan).toMatchObject({ method: 'POST', path: '/api/memory/snippets' });
      } else if (plan.endpoint === 'patterns') {
        const body = patternsRequestSchema.parse(JSON.parse(plan.body as string));
        expect(body.scopeId).toBe(plan.scopeId);
        expect(plan).toMatchObject({ method: 'POST', path: '/api/memory/patterns' });
      } else {
        expect(plan.method).toBe('GET');
        expect(plan.body).toBeUndefined();
      }
    }
  });

  it('is deterministic per seed and differs across seeds', () => {
    expect(sample(200, 7)).toEqual(sample(200, 7));
    expect(sample(200, 7)).not.toEqual(sample(200, 8));
  });

  it('gives learning writes distinct contents', () => {
    const writes = plans.filter((p) => p.endpoint === 'patterns').map((p) => p.body);
    expect(new Set(writes).size).toBe(writes.length);
  });

  it('rejects bad mixes and honours custom weights', () => {
    expect(() => endpointPicker({ ...DEFAULT_MIX, bogus: 1 } as never)).toThrow(/unknown endpoint/);
    expect(() => endpointPicker({ snippets: 0, patterns: 0, health: 0, config: 0, metrics: 0 })).toThrow(/positive/);
    expect(() => endpointPicker({ ...DEFAULT_MIX, health: -1 })).toThrow();
    const onlyHealth = endpointPicker({ snippets: 0, patterns: 0, health: 1, config: 0, metrics: 0 });
    const rng = createRng(1);
    for (let i = 0; i < 100; i++) expect(onlyHealth(rng())).toBe('health');
  });

  it('samples Zipf ranks in decreasing frequency', () => {
    const pick = zipfPicker(50, 1.1);
    const rng = createRng(3);
    const counts = new Array<number>(50).fill(0);
    for (let i = 0; i < 20_000; i++) counts[pick(rng())] += 1;
    expect(counts[0]).toBeGreaterThan(counts[4]);
    expect(counts[4]).toBeGreaterThan(counts[40]);
    expect(counts.every((c) => c > 0)).toBe(true);
    expect(() => zipfPicker(0, 1)).toThrow();
  });
});

describe('repeat runs against a store that persists', () => {
  const run = (runNonce: string) => {
    const traffic = createTrafficGenerator({ scopeIds, random: createRng(7), runNonce, now: () => NOW });
    return Array.from({ length: 2_000 }, () => traffic.next());
  };
  const first = run(newRunNonce());
  const second = run(newRunNonce());

  it('send the same reads (reproducible from the seed) but new learning writes (the run nonce)', () => {
    expect(second.map((p) => p.endpoint)).toEqual(first.map((p) => p.endpoint));
    const reads = (plans: RequestPlan[]) => plans.filter((p) => p.endpoint !== 'patterns').map((p) => `${p.path} ${p.body ?? ''}`);
    expect(reads(second)).toEqual(reads(first));
    const contents = (plans: RequestPlan[]) =>
      new Set(plans.filter((p) => p.endpoint === 'patterns').map((p) => JSON.parse(p.body!).patterns[0].content as string));
    const overlap = [...contents(second)].filter((content) => contents(first).has(content));
    expect(contents(first).size).toBeGreaterThan(100);
    expect(overlap).toEqual([]);
  });

  it('write only to reserved load-test scopes, with an expiry', () => {
    expect(scopeIds.every((id) => isLoadTestScope(id) && id.startsWith(`scope:${LOAD_TEST_LOCATION_PREFIX}`))).toBe(true);
    expect(isLoadTestScope('scope:clinic-7:agent-1:0123456789abcdef')).toBe(false);
    for (const plan of first.filter((p) => p.endpoint === 'patterns')) {
      const body = JSON.parse(plan.body!);
      expect(isLoadTestScope(body.scopeId)).toBe(true);
      expect(body.patterns[0].expiresAt).toBe(new Date(NOW + DEFAULT_PATTERN_TTL_MS).toISOString());
      expect(body.patterns[0].metadata).toEqual({ source: 'load-test', run: expect.stringMatching(/^[0-9a-z]{10}$/) });
    }
  });
});
