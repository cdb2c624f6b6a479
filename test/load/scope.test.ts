import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildScopeId, buildScopePool, DEFAULT_SCOPE_POOL } from '../../load/lib/scope';
import { generateScopeIdSync, isValidScopeId } from '../../service/domain/scope-id';

const nodeSha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
const segment = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);

describe('load scope ids', () => {
  it('equal the service ids for the same inputs, unicode prompts included', () => {
    fc.assert(
      fc.property(segment, segment, fc.string({ minLength: 1, unit: 'grapheme' }), (locationId, agentId, promptText) => {
        const parts = { locationId, agentId, promptText };
        expect(buildScopeId(parts, nodeSha256)).toBe(generateScopeIdSync(parts));
      }),
      { numRuns: 300 },
    );
  });

  it('matches the runbook example format', () => {
    const id = buildScopeId({ locationId: 'test', agentId: 'agent-1', promptText: 'You are a helpful assistant' }, nodeSha256);
    expect(id).toMatch(/^scope:test:agent-1:[0-9a-f]{16}$/);
    expect(id).toBe(generateScopeIdSync({ locationId: 'test', agentId: 'agent-1', promptText: 'You are a helpful assistant' }));
  });

  it('rejects what the service rejects, so a run never sends ids it would 400', () => {
    for (const bad of [
      { locationId: 'a:b', agentId: 'x', promptText: 'p' },
      { locationId: 'a', agentId: '*', promptText: 'p' },
      { locationId: 'a', agentId: 'x'.repeat(65), promptText: 'p' },
      { locationId: 'a', agentId: 'x', promptText: '' },
    ]) {
      expect(() => buildScopeId(bad, nodeSha256)).toThrow();
      expect(() => generateScopeIdSync(bad)).toThrow();
    }
  });

  it('builds a pool of distinct, valid scopes shared by several agents and prompt versions', () => {
    const pool = buildScopePool(DEFAULT_SCOPE_POOL, nodeSha256);
    expect(pool).toHaveLength(DEFAULT_SCOPE_POOL.locations * DEFAULT_SCOPE_POOL.agentsPerLocation * DEFAULT_SCOPE_POOL.promptVariants);
    expect(new Set(pool.map((s) => s.scopeId)).size).toBe(pool.length);
    for (const scope of pool) {
      expect(isValidScopeId(scope.scopeId)).toBe(true);
      expect(scope.scopeId).toBe(generateScopeIdSync(scope));
    }
    expect(() => buildScopePool({ locations: 0, agentsPerLocation: 1, promptVariants: 1 }, nodeSha256)).toThrow(/locations/);
  });
});
