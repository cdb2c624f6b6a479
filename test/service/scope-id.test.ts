import { describe, expect, it } from 'vitest';
import { generateScopeId, isValidScopeId, parseScopeId, InvalidScopeIdError } from '../../service/domain/scope-id';

describe('generateScopeId', () => {
  it('matches the runbook format scope:<location>:<agent>:<16-char-hex>', async () => {
    const id = await generateScopeId({ locationId: 'test', agentId: 'agent-1', promptText: 'You are a helpful assistant' });
    expect(id).toMatch(/^scope:test:agent-1:[0-9a-f]{16}$/);
    // printf %s "You are a helpful assistant" | sha256sum | cut -c1-16
    expect(id).toBe('scope:test:agent-1:11ec99cfa6e6f58a');
  });

  it('is stable for the same prompt and differs for another prompt', async () => {
    const a = await generateScopeId({ locationId: 'l', agentId: 'a', promptText: 'p1' });
    const b = await generateScopeId({ locationId: 'l', agentId: 'a', promptText: 'p1' });
    const c = await generateScopeId({ locationId: 'l', agentId: 'a', promptText: 'p2' });
    expect(a).toBe(b);
    expect(a).not.toBe(c);
  });

  it('refuses separators and placeholders in the id parts', async () => {
    await expect(generateScopeId({ locationId: 'a:b', agentId: 'x', promptText: 'p' })).rejects.toThrow(/locationId/);
    await expect(generateScopeId({ locationId: 'l', agentId: '*', promptText: 'p' })).rejects.toThrow(/agentId/);
    await expect(generateScopeId({ locationId: 'l', agentId: 'a', promptText: '' })).rejects.toThrow(/promptText/);
  });
});

describe('parseScopeId', () => {
  it('rejects prefixes, wildcards and look-alikes with the runbook message', () => {
    for (const bad of ['scope:test:agent-1:', 'scope:test:*:0123456789abcdef', 'scope:test:agent-1:0123456789ABCDEF', 'scope:tеst:agent-1:0123456789abcdef', 'x'.repeat(10_000), "scope:t%:a:0123456789abcdef"]) {
      expect(isValidScopeId(bad)).toBe(false);
      expect(() => parseScopeId(bad)).toThrow(InvalidScopeIdError);
      expect(() => parseScopeId(bad)).toThrow(/^Invalid scopeId format: /);
    }
    expect(parseScopeId('scope:test:agent-1:0123456789abcdef')).toBe('scope:test:agent-1:0123456789abcdef');
  });
});
