/**
 * Admin endpoints: Bearer ADMIN_TOKEN compared in constant time; disabled without a token; repeated failures
 * from one client rate limited.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpApp, type HttpAppDeps } from '../../service/http/app';
import { createServiceLogger } from '../../service/logging';
import { ADMIN_AUTH_MAX_FAILURES, ADMIN_AUTH_WINDOW_MS, ADMIN_DISABLED_MESSAGE, bearerToken, tokenMatches, type AdminAuthLimit } from '../../service/http/admin-auth';
import { TEST_ADMIN_TOKEN, scope, startHarness, type Harness } from './support/harness';

const harnesses: Harness[] = [];
afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
});
async function harness(env: Record<string, string>, adminAuthLimit?: AdminAuthLimit): Promise<Harness> {
  const h = await startHarness({ emulator: {}, env, overrides: adminAuthLimit ? { adminAuthLimit } : {} });
  harnesses.push(h);
  return h;
}

const ROUTES: [string, string, unknown][] = [
  ['POST', '/api/admin/sync-context7', {}],
  ['GET', '/api/admin/sync-context7/status', undefined],
  ['GET', '/api/admin/export?scopeId=scope:a:b:0123456789abcdef', undefined],
  ['GET', '/api/admin/exposure', undefined],
  ['PUT', '/api/admin/exposure', { percent: 100, actor: 'auth-test' }],
  ['GET', '/api/admin/exposure/audit?limit=5', undefined],
];

describe('admin auth', () => {
  it('rejects a missing, malformed or wrong token with 401 and accepts the right one', async () => {
    // 36 failures in a row: more than the failure limit allows, which is tested on its own below.
    const h = await harness({ ADMIN_TOKEN: TEST_ADMIN_TOKEN }, { maxFailures: 100, windowMs: 60_000 });
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

describe('admin auth failures are rate limited per client', () => {
  const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
  const wrong = { authorization: `Bearer ${TEST_ADMIN_TOKEN}-guess` };
  const status = '/api/admin/sync-context7/status';

  it(`after ${ADMIN_AUTH_MAX_FAILURES} failures every admin request, a correct token included, gets 429 with Retry-After`, async () => {
    const h = await harness({ ADMIN_TOKEN: TEST_ADMIN_TOKEN });
    for (let n = 0; n < ADMIN_AUTH_MAX_FAILURES; n++) {
      // Missing and wrong tokens both count.
      expect((await h.request('GET', status, undefined, n % 2 === 0 ? wrong : {})).status).toBe(401);
    }
    for (const headers of [wrong, admin, {}]) {
      const limited = await h.request('GET', status, undefined, headers);
      expect(limited.status).toBe(429);
      const retryAfter = Number(limited.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(ADMIN_AUTH_WINDOW_MS / 1000);
      expect(limited.body.error).toMatch(/Too many failed admin authentications/);
      expect(limited.text).not.toContain(TEST_ADMIN_TOKEN);
    }
    // Only the admin routes are limited.
    expect((await h.request('GET', '/api/config')).status).toBe(200);
    // Operators hear of it once per client and window, not once per refused request.
    const limitedLines = h.logs.lines().filter((line) => String(line.msg).includes('used up its failed authentications'));
    expect(limitedLines).toHaveLength(1);
    expect(limitedLines[0]).toMatchObject({ tag: '[MEMORY_ERROR]', client: expect.any(String), until: expect.any(String) });
  });

  it('only failed authentications count: successes and other 4xx answers do not', async () => {
    const h = await harness({ ADMIN_TOKEN: TEST_ADMIN_TOKEN });
    for (let n = 0; n < ADMIN_AUTH_MAX_FAILURES - 1; n++) {
      expect((await h.request('GET', status, undefined, wrong)).status).toBe(401);
      expect((await h.request('GET', status, undefined, admin)).status).toBe(200);
      // A bad request with the right token is the caller's mistake, not a guess.
      expect((await h.request('GET', '/api/admin/export?scopeId=nope', undefined, admin)).status).toBe(400);
    }
    expect((await h.request('GET', status, undefined, admin)).status).toBe(200);
    expect((await h.request('GET', status, undefined, wrong)).status).toBe(401);
    expect((await h.request('GET', status, undefined, admin)).status).toBe(429);
  });

  it('the limit lifts when the window passes', async () => {
    const h = await harness({ ADMIN_TOKEN: TEST_ADMIN_TOKEN }, { maxFailures: 2, windowMs: 400 });
    expect((await h.request('GET', status, undefined, wrong)).status).toBe(401);
    expect((await h.request('GET', status, undefined, wrong)).status).toBe(401);
    expect((await h.request('GET', status, undefined, admin)).status).toBe(429);
    await new Promise((resolve) => setTimeout(resolve, 450));
    expect((await h.request('GET', status, undefined, admin)).status).toBe(200);
  });

  it('403s while admin is disabled are not counted (there is no token to guess)', async () => {
    const h = await harness({});
    for (let n = 0; n < ADMIN_AUTH_MAX_FAILURES + 2; n++) expect((await h.request('GET', status, undefined, wrong)).status).toBe(403);
  });

  it('counts per client: behind a trusted proxy, one client over its limit does not lock out another', async () => {
    // The HTTP app alone, with the store stubbed: only the admin status route is called.
    const deps = {
      enableContext7Memory: false,
      adminToken: TEST_ADMIN_TOKEN,
      store: { loadJobState: async () => null },
      lifecycle: () => 'ready',
      log: createServiceLogger({ level: 'silent', secrets: [] }),
      clock: () => new Date(),
      ownCredentials: [],
      trustProxyHops: 1,
      adminAuthLimit: { maxFailures: 2, windowMs: 60_000 },
    } as unknown as HttpAppDeps;
    const server = http.createServer(createHttpApp(deps));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const get = async (client: string, headers: Record<string, string>) =>
      (await fetch(`${base}${status}`, { headers: { 'x-forwarded-for': client, ...headers } })).status;
    try {
      expect(await get('203.0.113.1', wrong)).toBe(401);
      expect(await get('203.0.113.1', wrong)).toBe(401);
      expect(await get('203.0.113.1', admin)).toBe(429);
      expect(await get('203.0.113.2', admin)).toBe(200);
      expect(await get('203.0.113.2', wrong)).toBe(401);
      expect(await get('203.0.113.2', admin)).toBe(200);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
