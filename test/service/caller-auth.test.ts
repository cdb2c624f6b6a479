/**
 * Issue 13, caller credentials and tenant isolation on SQLite: who may call /api/memory/snippets and /patterns,
 * with which key, for which locations. The PostgreSQL run of the isolation property is in test/data-plane.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, configSecrets, learningForbiddenSecrets, loadConfig } from '../../service/config';
import { formatCallerKeys, keyMayAccessScope, parseCallerKeys } from '../../service/domain/caller-keys';
import { generateScopeIdSync } from '../../service/domain/scope-id';
import { authenticateCaller } from '../../service/http/caller-auth';
import { tokenDigest } from '../../service/http/bearer';
import { checkTenantIsolation, isolationKeys, isolationKeysEnv } from '../support/tenant-isolation-property';
import { TEST_ADMIN_TOKEN, TEST_CALLER_KEY, scope, startHarness, type Harness } from './support/harness';

const OLD_KEY = 'rotation-old-key-0123456789abcdef';
const NEW_KEY = 'rotation-new-key-fedcba9876543210';
const TENANT_KEY = 'tenant-eu-key-00112233445566778899';

describe('MEMORY_API_KEYS parsing', () => {
  it('reads the text form and the JSON form alike, names and locations kept', () => {
    const text = parseCallerKeys(`agents:${OLD_KEY};eu:${TENANT_KEY}:loc-berlin,loc-paris\ncanary:${NEW_KEY}:*`);
    const json = parseCallerKeys(
      JSON.stringify([
        { name: 'agents', secret: OLD_KEY },
        { name: 'eu', secret: TENANT_KEY, locations: ['loc-berlin', 'loc-paris'] },
        { name: 'canary', secret: NEW_KEY, locations: '*' },
      ]),
    );
    expect(json).toEqual(text);
    expect(text.map((key) => [key.name, key.locations && [...key.locations]])).toEqual([
      ['agents', null],
      ['eu', ['loc-berlin', 'loc-paris']],
      ['canary', null],
    ]);
    expect(parseCallerKeys(formatCallerKeys([{ name: 'eu', secret: TENANT_KEY, locations: ['loc-berlin'] }]))).toEqual([
      { name: 'eu', secret: TENANT_KEY, locations: new Set(['loc-berlin']) },
    ]);
  });

  it.each([
    ['a short secret', 'agents:short-secret', /entry 1 \(agents\): secret must be at least 24/],
    ['a bad name', `a b:${OLD_KEY}`, /entry 1: name must match/],
    ['a duplicate name', `a:${OLD_KEY};a:${NEW_KEY}`, /key name a is used twice/],
    ['a shared secret', `a:${OLD_KEY};b:${OLD_KEY}`, /key b repeats another key's secret/],
    ['a bad location', `a:${OLD_KEY}:loc*`, /location ids must match/],
    ['no separator', OLD_KEY, /entry 1: expected name:secret/],
    ['broken JSON', `[{"name":"a","secret":"${OLD_KEY}"`, /is not valid JSON/],
  ])('refuses %s at start, naming the entry but never the secret', (_case, value, message) => {
    let error: unknown;
    try {
      loadConfig({ MEMORY_API_KEYS: value });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/^Invalid environment variable MEMORY_API_KEYS: /);
    expect((error as Error).message).toMatch(message);
    for (const secret of [OLD_KEY, NEW_KEY, 'short-secret']) expect((error as Error).message).not.toContain(secret);
  });

  it('MEMORY_AUTH=open refuses configured keys; keys join the forbidden-in-learning and log-scrub lists', () => {
    expect(() => loadConfig({ MEMORY_AUTH: 'open', MEMORY_API_KEYS: `a:${OLD_KEY}` })).toThrow(/MEMORY_AUTH: is open but MEMORY_API_KEYS is set/);
    expect(() => loadConfig({ MEMORY_AUTH: 'maybe' })).toThrow(/MEMORY_AUTH/);
    const config = loadConfig({ MEMORY_API_KEYS: `a:${OLD_KEY};b:${NEW_KEY}` });
    expect(config.memoryAuth).toBe('keys');
    expect(learningForbiddenSecrets(config)).toEqual(expect.arrayContaining([OLD_KEY, NEW_KEY]));
    expect(configSecrets(config)).toEqual(expect.arrayContaining([OLD_KEY, NEW_KEY]));
  });
});

describe('the isolation rule (pure)', () => {
  const segment = fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/);
  it('a key reaches a scope exactly when the scope location is one of its own', () => {
    fc.assert(
      fc.property(fc.option(fc.uniqueArray(segment, { minLength: 1, maxLength: 4 }), { nil: null }), segment, segment, (locations, location, agent) => {
        const scopeId = generateScopeIdSync({ locationId: location, agentId: agent, promptText: 'p' });
        const key = { locations: locations === null ? null : new Set(locations) };
        expect(keyMayAccessScope(key, scopeId)).toBe(locations === null || locations.includes(location));
        // A look-alike id (prefix, suffix, case) is not a scope: never allowed.
        expect(keyMayAccessScope({ locations: null }, `${scopeId}x`)).toBe(false);
      }),
    );
  });

  it('a presented key is matched against every configured key (rotation: several at once); others are refused', () => {
    const keys = parseCallerKeys(`old:${OLD_KEY};new:${NEW_KEY}`);
    const digests = keys.map((key) => tokenDigest(key.secret));
    const policy = { mode: 'keys' as const, keys };
    expect(authenticateCaller(policy, `Bearer ${OLD_KEY}`, digests)).toMatchObject({ ok: true, caller: { name: 'old' } });
    expect(authenticateCaller(policy, `bearer ${NEW_KEY}`, digests)).toMatchObject({ ok: true, caller: { name: 'new' } });
    for (const header of [undefined, '', `Basic ${OLD_KEY}`, `Bearer ${OLD_KEY}x`, `Bearer ${OLD_KEY.slice(0, -1)}`, 'Bearer ']) {
      expect(authenticateCaller(policy, header, digests)).toMatchObject({ ok: false, status: 401 });
    }
  });
});

describe('caller credentials over HTTP (SQLite)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      emulator: {},
      callerKey: null,
      env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN, MEMORY_API_KEYS: `old:${OLD_KEY};new:${NEW_KEY};eu:${TENANT_KEY}:loc-berlin` },
    });
  });
  afterAll(async () => {
    await h?.close();
  });
  const as = (key: string) => ({ authorization: `Bearer ${key}` });

  it('refuses a missing, malformed or wrong credential with 401 on both memory routes, before reading the body', async () => {
    for (const route of ['/api/memory/snippets', '/api/memory/patterns']) {
      for (const headers of [{}, { authorization: `Basic ${OLD_KEY}` }, as('not-a-key-of-this-service-00000'), as(TEST_ADMIN_TOKEN)]) {
        const res = await h.request('POST', route, { scopeId: scope(), patterns: ['x'] }, headers);
        expect(res.status).toBe(401);
        expect(res.headers.get('www-authenticate')).toBe('Bearer realm="memory"');
        expect(res.body.error).toMatch(/caller credential/);
      }
      // Even a body that is not JSON gets 401 first: an unauthenticated client learns nothing about parsing.
      expect((await h.request('POST', route, '{"scopeId":', {})).status).toBe(401);
    }
  });

  it('accepts every configured key at once (rotation) and keeps config, health and metrics public', async () => {
    const scopeId = scope('rotation', 'agent');
    expect((await h.request('POST', '/api/memory/patterns', { scopeId, patterns: ['learned under the old key'] }, as(OLD_KEY))).status).toBe(200);
    const read = await h.request('POST', '/api/memory/snippets', { scopeId }, as(NEW_KEY));
    expect(read.status).toBe(200);
    expect(read.body.snippets.map((s: { content: string }) => s.content)).toEqual(['learned under the old key']);
    for (const route of ['/api/config', '/api/memory/health', '/api/metrics/memory']) expect((await h.request('GET', route)).status).toBe(200);
  });

  it('a restricted key gets one 403 body for every scope outside its locations, existing or not', async () => {
    const existing = scope('loc-paris', 'agent', 'has memory');
    await h.request('POST', '/api/memory/patterns', { scopeId: existing, patterns: ['paris memory'] }, as(OLD_KEY));
    const missing = scope('loc-paris', 'agent', 'never written');
    const answers = [];
    for (const scopeId of [existing, missing]) {
      for (const route of ['/api/memory/snippets', '/api/memory/patterns']) {
        const body = route.endsWith('/patterns') ? { scopeId, patterns: ['tenant write'] } : { scopeId, query: 'paris' };
        const res = await h.request('POST', route, body, as(TENANT_KEY));
        answers.push({ status: res.status, text: res.text, type: res.headers.get('content-type') });
      }
    }
    expect(new Set(answers.map((answer) => JSON.stringify(answer))).size).toBe(1);
    expect(answers[0]).toMatchObject({ status: 403, text: '{"error":"Forbidden: this credential may not access this scope"}' });
    // Its own location works; nothing it tried elsewhere was stored.
    expect((await h.request('POST', '/api/memory/patterns', { scopeId: scope('loc-berlin', 'agent'), patterns: ['berlin'] }, as(TENANT_KEY))).status).toBe(200);
    const exported = await h.request('GET', `/api/admin/export?scopeId=${encodeURIComponent(missing)}`, undefined, as(TEST_ADMIN_TOKEN));
    expect(exported.body.patterns).toEqual([]);
    const refusal = h.logs.lines().find((line) => String(line.msg).includes('outside its locations'));
    expect(refusal).toMatchObject({ caller: 'eu' });
  });

  it('a caller key in content is refused like the other credentials; keys appear in no log line or answer', async () => {
    const res = await h.request('POST', '/api/memory/patterns', { scopeId: scope(), patterns: [`my key is ${NEW_KEY}`] }, as(OLD_KEY));
    expect(res.status).toBe(400);
    expect(res.text).not.toContain(NEW_KEY);
    for (const key of [OLD_KEY, NEW_KEY, TENANT_KEY]) expect(h.logs.text()).not.toContain(key);
    expect(h.logs.lines().find((line) => String(line.msg).includes('caller keys active'))).toMatchObject({
      callerKeys: [
        { name: 'old', locations: 'all' },
        { name: 'new', locations: 'all' },
        { name: 'eu', locations: ['loc-berlin'] },
      ],
    });
  });
});

describe('flag off, escape hatch, no keys', () => {
  it('flag off: snippets answers the runbook body to a valid caller, 401 to anyone else', async () => {
    const h = await startHarness({ env: { ENABLE_CONTEXT7_MEMORY: 'false' } });
    try {
      const valid = await h.request('POST', '/api/memory/snippets', { scopeId: scope() });
      expect(valid.status).toBe(200);
      expect(valid.text).toBe('{"snippets":[],"source":"disabled"}');
      expect((await h.request('POST', '/api/memory/snippets', { scopeId: scope() }, { authorization: 'Bearer nope-nope-nope-nope-nope-nope' })).status).toBe(401);
    } finally {
      await h.close();
    }
  });

  it('MEMORY_AUTH=open accepts callers without a credential and warns at start', async () => {
    const h = await startHarness({ env: { MEMORY_AUTH: 'open' }, callerKey: null });
    try {
      expect((await h.request('POST', '/api/memory/patterns', { scopeId: scope(), patterns: ['open'] })).status).toBe(200);
      expect(h.logs.lines().find((line) => String(line.msg).includes('MEMORY_AUTH=open'))).toMatchObject({ level: 'warn' });
    } finally {
      await h.close();
    }
  });

  it('no keys and no MEMORY_AUTH=open: every memory call is refused (closed by default) and the start log says why', async () => {
    const h = await startHarness({ env: { MEMORY_API_KEYS: '' }, callerKey: TEST_CALLER_KEY });
    try {
      const res = await h.request('POST', '/api/memory/snippets', { scopeId: scope() });
      expect(res.status).toBe(401);
      expect(res.body.error).toMatch(/MEMORY_API_KEYS/);
      expect(h.logs.messages().some((msg) => msg.includes('MEMORY_API_KEYS is not set'))).toBe(true);
    } finally {
      await h.close();
    }
  });
});

describe('tenant isolation property (SQLite)', () => {
  it('for arbitrary keys, scopes and requests, no key reads or writes outside its locations', async () => {
    const keys = isolationKeys('sqlite');
    const h = await startHarness({ env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN, LOG_LEVEL: 'warn', MEMORY_API_KEYS: isolationKeysEnv(keys) }, callerKey: null });
    try {
      const tally = await checkTenantIsolation({ url: h.url, adminToken: TEST_ADMIN_TOKEN, keys }, { numRuns: 40, seed: 1313, prompt: 'isolation' });
      expect(tally.allowed).toBeGreaterThan(20);
      expect(tally.refused).toBeGreaterThan(20);
    } finally {
      await h.close();
    }
  });
});
