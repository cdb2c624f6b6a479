/**
 * Admin endpoints: Bearer ADMIN_TOKEN compared in constant time; disabled without a token.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN_DISABLED_MESSAGE, bearerToken, tokenMatches } from '../../service/http/admin-auth';
import { TEST_ADMIN_TOKEN, scope, startHarness, type Harness } from './support/harness';

const harnesses: Harness[] = [];
afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
});
async function harness(env: Record<string, string>): Promise<Harness> {
  const h = await startHarness({ emulator: {}, env });
  harnesses.push(h);
  return h;
}

const ROUTES: [string, string, unknown][] = [
  ['POST', '/api/admin/sync-context7', {}],
  ['GET', '/api/admin/sync-context7/status', undefined],
  ['GET', '/api/admin/export?scopeId=scope:a:b:0123456789abcdef', undefined],
];

describe('admin auth', () => {
  it('rejects a missing, malformed or wrong token with 401 and accepts the right one', async () => {
    const h = await harness({ ADMIN_TOKEN: TEST_ADMIN_TOKEN });
    for (const [method, route, body] of ROUTES) {
      const missing = await h.request(method, route, body);
      expect(missing.status).toBe(401);
      expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(missing.body.error).toMatch(/Missing bearer token/);
      for (const authorization of [`Bearer ${TEST_ADMIN_TOKEN}x`, `Bearer ${TEST_ADMIN_TOKEN.slice(0, -1)}`, 'Bearer x', `Basic ${TEST_ADMIN_TOKEN}`, TEST_ADMIN_TOKEN]) {
        const wrong = await h.request(method, route, body, { authorization });
        expect(wrong.status).toBe(401);
        expect(wrong.text).not.toContain(TEST_ADMIN_TOKEN);
      }
      const right = await h.request(method, route, body, { authorization: `Bearer ${TEST_ADMIN_TOKEN}` });
      expect([200, 202]).toContain(right.status);
    }
  });

  it('is disabled with a clear message when ADMIN_TOKEN is not configured', async () => {
    const h = await harness({});
    for (const [method, route, body] of ROUTES) {
      const res = await h.request(method, route, body, { authorization: 'Bearer anything-at-all' });
      expect(res.status).toBe(403);
      expect(res.body).toEqual({ error: ADMIN_DISABLED_MESSAGE });
    }
  });

  it('refuses a backfill when Context7 is off (nothing to sync to) with a 409, not a crash', async () => {
    const h = await startHarness({ env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN } });
    harnesses.push(h);
    const res = await h.request('POST', '/api/admin/sync-context7', {}, { authorization: `Bearer ${TEST_ADMIN_TOKEN}` });
    expect(res.status).toBe(409);
    expect(res.body.error).toMatch(/Context7 disabled in environment/);
  });

  it('the scope export returns exactly the requested scope, with its history', async () => {
    const h = await harness({ ADMIN_TOKEN: TEST_ADMIN_TOKEN });
    const mine = scope('export', 'a', 'mine');
    const other = scope('export', 'a', 'other');
    await h.request('POST', '/api/memory/patterns', { scopeId: mine, patterns: ['kept one', { content: 'kept two', metadata: { n: 2 } }] });
    await h.request('POST', '/api/memory/patterns', { scopeId: other, patterns: ['not mine'] });
    const res = await h.request('GET', `/api/admin/export?scopeId=${encodeURIComponent(mine)}`, undefined, { authorization: `Bearer ${TEST_ADMIN_TOKEN}` });
    expect(res.status).toBe(200);
    expect(res.body.scopeId).toBe(mine);
    expect(res.body.patterns.map((p: { content: string }) => p.content).sort()).toEqual(['kept one', 'kept two']);
    expect(res.body.patterns.every((p: { scopeId: string }) => p.scopeId === mine)).toBe(true);
    expect(res.body.history.length).toBeGreaterThanOrEqual(2);
    expect(res.body.history.every((e: { scopeId: string }) => e.scopeId === mine)).toBe(true);
    expect(res.text).not.toContain('not mine');
  });

  it('rejects a non-empty backfill body (strict schema)', async () => {
    const h = await harness({ ADMIN_TOKEN: TEST_ADMIN_TOKEN });
    const res = await h.request('POST', '/api/admin/sync-context7', { full: true }, { authorization: `Bearer ${TEST_ADMIN_TOKEN}` });
    expect(res.status).toBe(400);
  });

  it('token helpers: constant-time comparison of digests and strict Bearer parsing', () => {
    expect(tokenMatches('secret-token-1', 'secret-token-1')).toBe(true);
    expect(tokenMatches('secret-token-1', 'secret-token-2')).toBe(false);
    expect(tokenMatches('secret-token-1', 'short')).toBe(false);
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer abc')).toBe('abc');
    expect(bearerToken('Bearer a b')).toBeNull();
    expect(bearerToken('Basic abc')).toBeNull();
    expect(bearerToken(undefined)).toBeNull();
  });
});
