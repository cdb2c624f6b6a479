/**
 * Secrets never appear in logs or responses: the Context7 key and the admin token are exercised on every
 * path that could echo them (auth failures, Context7 errors, config, metrics), then searched for.
 * Logs are scrubbed by value; responses are never rewritten (stored content reads back byte for byte): they carry
 * no secret because a write containing one is refused and error messages echo input only truncated.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServiceLogger, REDACTED, redactSecretKeys } from '../../service/logging';
import { LogCapture, TEST_ADMIN_TOKEN, TEST_API_KEY, scope, startHarness, type Harness } from './support/harness';

describe('log redaction, and responses that carry no secret without being rewritten', () => {
  let h: Harness;
  const responses: string[] = [];
  beforeAll(async () => {
    h = await startHarness({ emulator: {}, env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN, LOG_LEVEL: 'trace' } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('no line and no response contains the API key or the admin token', async () => {
    const scopeId = scope('red', 'a', 'p');
    const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
    const calls: [string, string, unknown?, Record<string, string>?][] = [
      ['GET', '/api/config'],
      ['GET', '/api/memory/health'],
      ['POST', '/api/memory/patterns', { scopeId, patterns: ['p1'] }],
      ['POST', '/api/memory/snippets', { scopeId }],
      ['POST', '/api/memory/snippets', { scopeId: TEST_API_KEY }],
      ['POST', '/api/memory/snippets', { scopeId: `scope:${TEST_ADMIN_TOKEN}` }],
      ['POST', '/api/memory/patterns', { scopeId, patterns: [TEST_API_KEY] }, { authorization: `Bearer ${TEST_API_KEY}` }],
      ['POST', '/api/admin/sync-context7', {}, { authorization: `Bearer ${TEST_API_KEY}` }],
      ['POST', '/api/admin/sync-context7', {}, admin],
      ['GET', '/api/admin/sync-context7/status', undefined, admin],
      ['GET', '/api/metrics/memory'],
      ['GET', '/metrics'],
    ];
    for (const faults of [{}, { wrongKey: true }, { errorRate: 1 }, { outage: true }]) {
      h.emulator!.setFaults(faults);
      for (const [method, route, body, headers] of calls) {
        const res = await h.request(method, route, body, headers);
        responses.push(res.text);
      }
    }
    h.emulator!.resetFaults();
    const logText = h.logs.text();
    expect(h.logs.raw.length).toBeGreaterThan(20);
    expect(logText).toContain('[MEMORY_ERROR]');
    for (const secret of [TEST_API_KEY, TEST_ADMIN_TOKEN]) {
      expect(logText).not.toContain(secret);
      for (const text of responses) expect(text).not.toContain(secret);
    }
    // Nothing was scrubbed out of a response: a [REDACTED] there would confirm that the input held a secret.
    for (const text of responses) expect(text).not.toContain(REDACTED);
  });

  it('the logger scrubs secrets by value and by key, even inside messages and nested headers', () => {
    const capture = new LogCapture();
    const logger = createServiceLogger({ level: 'debug', secrets: [TEST_API_KEY, TEST_ADMIN_TOKEN], destination: capture });
    logger.memoryError.error(`request failed with key ${TEST_API_KEY}`, {
      config: { headers: { authorization: 'Bearer some-unknown-token', Authorization: `Bearer ${TEST_ADMIN_TOKEN}` } },
      apiKey: 'an-unlisted-key',
      nested: { token: 'another-unlisted' },
    });
    const line = capture.lines()[0];
    expect(capture.text()).not.toContain(TEST_API_KEY);
    expect(capture.text()).not.toContain(TEST_ADMIN_TOKEN);
    expect(capture.text()).not.toContain('some-unknown-token');
    expect(capture.text()).not.toContain('an-unlisted-key');
    expect(capture.text()).not.toContain('another-unlisted');
    expect(line.msg).toBe(`[MEMORY_ERROR] request failed with key ${REDACTED}`);
    expect(line.tag).toBe('[MEMORY_ERROR]');
  });

  it('redacts secret keys at the top level, one level down and under a nested headers object, copying only what it changes', () => {
    const untouched = { scopeId: 'scope:a:b:0123456789abcdef', origin: 'context7', nested: { fine: 1 } };
    expect(redactSecretKeys(untouched)).toBe(untouched);
    const fields = {
      token: 't1',
      context7ApiKey: 'k1',
      adminToken: 'a1',
      Authorization: 'Bearer x',
      config: { apiKey: 'k2', headers: { authorization: 'Bearer y', Authorization: 'Bearer z', accept: 'json' }, timeout: 5 },
      request: { Authorization: 'Bearer w' },
      list: [{ token: 'in-an-array' }],
      deep: { a: { token: 'three-down-not-headers' } },
    };
    const out = redactSecretKeys(fields) as typeof fields;
    expect(out).toEqual({
      token: REDACTED,
      context7ApiKey: REDACTED,
      adminToken: REDACTED,
      Authorization: REDACTED,
      config: { apiKey: REDACTED, headers: { authorization: REDACTED, Authorization: REDACTED, accept: 'json' }, timeout: 5 },
      request: { Authorization: REDACTED },
      // pino's paths (`*.token`, `*.headers.authorization`) never reached into arrays or below the second level
      // except under headers: neither does this (the by-value scrub still removes known secrets anywhere).
      list: [{ token: 'in-an-array' }],
      deep: { a: { token: 'three-down-not-headers' } },
    });
    // The caller's object is not modified.
    expect(fields.token).toBe('t1');
    expect(fields.config.headers.authorization).toBe('Bearer y');
  });
});
