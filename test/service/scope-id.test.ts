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

describe('InvalidScopeIdError messages', () => {
  it('never coerce what they describe: an object whose toString throws or is not callable is named by type', () => {
    const hostile = [{ toString: 1 }, { valueOf: 1, toString: 1 }, { toString: () => { throw new Error('boom'); } }, Object.create(null)];
    for (const value of hostile) expect(() => parseScopeId(value)).toThrow(new InvalidScopeIdError(value));
    expect(new InvalidScopeIdError({ toString: 1 }).message).toBe('Invalid scopeId format: an object');
    expect(new InvalidScopeIdError(['scope:a:b:0123456789abcdef']).message).toBe('Invalid scopeId format: an array');
    expect(new InvalidScopeIdError(42).message).toBe('Invalid scopeId format: "42"');
    expect(new InvalidScopeIdError(undefined).message).toBe('Invalid scopeId format: "undefined"');
  });

  it('show a long value only as a short prefix and its length, so no message can confirm a guessed secret', () => {
    const guess = 'admin-test-token-fedcba9876543210';
    const message = new InvalidScopeIdError(guess).message;
    expect(message).toBe(`Invalid scopeId format: "admin-…" (${guess.length} chars)`);
    expect(message).not.toContain(guess.slice(0, 7));
    // Short values (shorter than any accepted admin token) are shown whole, as the runbook's example is.
    expect(new InvalidScopeIdError('scope:...').message).toBe('Invalid scopeId format: "scope:..."');
  });
});

describe('isValidScopeId after a valid id (it keeps the last valid id)', () => {
  it('still refuses every invalid id and accepts only equal strings without the pattern', () => {
    const valid = 'scope:loc-1:agent_1:0123456789abcdef';
    expect(isValidScopeId(valid)).toBe(true);
    // An equal string built apart (another object, as JSON.parse gives each request) is the same id.
    expect(isValidScopeId(['scope:loc-1', 'agent_1', '0123456789abcdef'].join(':'))).toBe(true);
    for (const invalid of [`${valid} `, `${valid}0`, valid.slice(0, -1), valid.toUpperCase(), `${valid}\n`, '', undefined, null, 42, { toString: () => valid }]) {
      expect(isValidScopeId(invalid)).toBe(false);
      expect(isValidScopeId(valid)).toBe(true);
    }
    expect(() => parseScopeId(`${valid}0`)).toThrow(InvalidScopeIdError);
  });
});
