/**
 * The pure guards behind hostile-input and secrets handling: how errors echo input, which metadata is refused,
 * and where a credential is found in a request.
 */
import { describe, expect, it } from 'vitest';
import { ECHO_WHOLE_MAX_CHARS, echoText, echoValue } from '../../service/domain/error-echo';
import { credentialsInPatternsRequest, credentialsInSnippetsRequest, jsonContainsCredential } from '../../service/domain/own-credentials';
import { jsonValueProblems } from '../../service/domain/storable-input';
import { ADMIN_TOKEN_MIN_LENGTH } from '../../service/config';

describe('error echo', () => {
  it('shows short values whole and long ones as a prefix and a length, never enough to confirm an admin token', () => {
    expect(ECHO_WHOLE_MAX_CHARS).toBeLessThan(ADMIN_TOKEN_MIN_LENGTH);
    expect(echoText('scope:...')).toBe('"scope:..."');
    expect(echoText('0123456789')).toBe('"0123456789"');
    expect(echoText('0123456789a')).toBe('"012345…" (11 chars)');
    expect(echoText('a"b\\c\nd')).toBe('"a\\"b\\\\c\\nd"');
  });

  it('names non-strings by type and never runs their code', () => {
    const trap = { toString: () => { throw new Error('coerced'); }, valueOf: () => { throw new Error('coerced'); }, toJSON: () => { throw new Error('coerced'); } };
    expect(echoValue(trap)).toBe('an object');
    expect(echoValue(Object.create(null))).toBe('an object');
    expect(echoValue([1])).toBe('an array');
    expect(echoValue(42)).toBe('"42"');
    expect(echoValue(123456789012345)).toBe('"123456…" (15 chars)');
    expect(echoValue(null)).toBe('"null"');
    expect(echoValue(undefined)).toBe('"undefined"');
    expect(echoValue(true)).toBe('"true"');
  });
});

describe('metadata problems', () => {
  it('refuse an own __proto__ key at any depth and numbers that overflowed; keep other prototype-ish keys', () => {
    const parsed = JSON.parse('{"a":[{"__proto__":{"x":1}}],"constructor":{"prototype":1},"n":1e400}');
    expect(jsonValueProblems(parsed, ['m'])).toEqual(
      expect.arrayContaining([
        { path: ['m', 'a', 0], message: expect.stringContaining('key "__proto__" is not allowed') },
        { path: ['m', 'n'], message: expect.stringContaining('finite') },
      ]),
    );
    expect(jsonValueProblems(parsed, ['m'])).toHaveLength(2);
    expect(jsonValueProblems(JSON.parse('{"constructor":1,"toString":"x","valueOf":[],"prototype":null}'), [])).toEqual([]);
  });
});

describe('credentials in a request', () => {
  const secret = 'the-secret-token-123';
  it('are found in strings, keys and numbers at any depth, only when whole', () => {
    expect(jsonContainsCredential({ a: [{ b: `x${secret}y` }] }, [secret])).toBe(true);
    expect(jsonContainsCredential({ [secret]: 1 }, [secret])).toBe(true);
    expect(jsonContainsCredential({ n: 1234567890123 }, ['4567890'])).toBe(true);
    expect(jsonContainsCredential({ a: secret.slice(0, -1) }, [secret])).toBe(false);
    expect(jsonContainsCredential({ a: secret }, [])).toBe(false);
    const deep = JSON.parse(`${'['.repeat(10_000)}"${secret}"${']'.repeat(10_000)}`);
    expect(jsonContainsCredential(deep, [secret])).toBe(true);
  });

  it('are reported by field, never by value', () => {
    const findings = credentialsInPatternsRequest(
      { scopeId: 'scope:a:b:0123456789abcdef', patterns: ['fine', secret, { content: 'ok', metadata: { k: secret } }, { content: `${secret}!` }] },
      [secret],
    );
    expect(findings.map((f) => f.path.join('.'))).toEqual(['patterns.1', 'patterns.2.metadata', 'patterns.3.content']);
    expect(JSON.stringify(findings)).not.toContain(secret);
    expect(credentialsInSnippetsRequest({ scopeId: `scope:${secret}:b:0123456789abcdef`, query: secret }, [secret]).map((f) => f.path.join('.'))).toEqual(['scopeId', 'query']);
  });
});
