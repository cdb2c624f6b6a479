/**
 * This service's own credentials never become memory, and memory is never rewritten on the way out: a learning
 * write (or a query bound for Context7) containing the admin token or the Context7 key is refused without echoing
 * it, nothing is stored or sent; everything that is stored reads back byte for byte; no error message echoes a
 * value long enough to confirm a guess.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSecrets, learningForbiddenSecrets, loadConfig } from '../../service/config';
import { REDACTED } from '../../service/logging';
import { TEST_ADMIN_TOKEN, TEST_API_KEY, scope, startHarness, type Harness } from './support/harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ emulator: {}, env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN } });
});
afterAll(async () => {
  await h?.close();
});

const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
const CREDENTIALS = [TEST_ADMIN_TOKEN, TEST_API_KEY];

async function exported(scopeId: string): Promise<{ content: string; metadata: unknown }[]> {
  const res = await h.request('GET', `/api/admin/export?scopeId=${encodeURIComponent(scopeId)}`, undefined, admin);
  expect(res.status).toBe(200);
  return res.body.patterns;
}

describe('learningForbiddenSecrets: one list of the credentials no write may carry', () => {
  it('holds the admin token and the Context7 key, not connection URLs or their passwords', () => {
    const config = loadConfig({
      ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      CONTEXT7_API_KEY: TEST_API_KEY,
      DATABASE_URL: 'postgres://postgres:postgres@db.internal:5432/memory',
      REDIS_URL: 'redis://:hunter22@cache.internal:6379',
    });
    expect(learningForbiddenSecrets(config)).toEqual([TEST_ADMIN_TOKEN, TEST_API_KEY]);
    // Connection secrets are still scrubbed from logs.
    expect(configSecrets(config)).toEqual(expect.arrayContaining([TEST_ADMIN_TOKEN, TEST_API_KEY, 'postgres', 'hunter22']));
    expect(learningForbiddenSecrets(loadConfig({}))).toEqual([]);
    // A placeholder key is not a credential: it must not make every text containing it unwritable.
    expect(learningForbiddenSecrets(loadConfig({ CONTEXT7_API_KEY: 'x' }))).toEqual([]);
  });
});

describe('a write or query carrying a credential is refused whole: nothing stored, nothing sent, nothing echoed', () => {
  const cases: [string, (secret: string) => unknown, string[]][] = [
    ['content (string pattern)', (s) => ['fine', `the token is ${s}.`], ['patterns.1']],
    ['content (object pattern)', (s) => [{ content: `Bearer ${s}` }], ['patterns.0.content']],
    ['a metadata value', (s) => [{ content: 'c', metadata: { note: { deep: [`x${s}x`] } } }], ['patterns.0.metadata']],
    ['a metadata key', (s) => [{ content: 'c', metadata: { [s]: true } }], ['patterns.0.metadata']],
  ];
  for (const secret of CREDENTIALS) {
    it.each(cases)(`${secret === TEST_ADMIN_TOKEN ? 'admin token' : 'Context7 key'} in %s`, async (_name, patterns, paths) => {
      const scopeId = scope('secrets', 'writer', `${secret}${_name}`);
      const upsertsBefore = h.emulator!.stats().requests.upsertPatterns;
      const res = await h.request('POST', '/api/memory/patterns', { scopeId, patterns: patterns(secret) });
      expect(res.status).toBe(400);
      expect(res.body.error).toMatch(/credential of this service/);
      expect(res.body.details.map((d: { path: string }) => d.path)).toEqual(paths);
      for (const credential of CREDENTIALS) expect(res.text).not.toContain(credential);
      expect(res.text).not.toContain(REDACTED);
      expect(await exported(scopeId)).toEqual([]);
      expect(h.emulator!.patterns(scopeId)).toEqual([]);
      expect(h.emulator!.stats().requests.upsertPatterns).toBe(upsertsBefore);
    });
  }

  it('a snippet query carrying a credential is not sent to Context7 either', async () => {
    const searchesBefore = h.emulator!.stats().requests.searchSnippets;
    const res = await h.request('POST', '/api/memory/snippets', { scopeId: scope('secrets', 'reader'), query: `find ${TEST_API_KEY}` });
    expect(res.status).toBe(400);
    expect(res.body.details).toEqual([{ path: 'query', message: 'contains a credential of this service' }]);
    expect(res.text).not.toContain(TEST_API_KEY);
    expect(h.emulator!.stats().requests.searchSnippets).toBe(searchesBefore);
  });

  it('the refusal is logged as a [MEMORY_ERROR] naming the fields, never the value', async () => {
    await h.request('POST', '/api/memory/patterns', { scopeId: scope('secrets', 'logged'), patterns: [TEST_ADMIN_TOKEN] });
    const line = h.logs.lines().filter((l) => String(l.msg).includes('Refused learning write')).at(-1);
    expect(line).toMatchObject({ tag: '[MEMORY_ERROR]', fields: ['patterns.0'] });
    for (const credential of CREDENTIALS) expect(h.logs.text()).not.toContain(credential);
  });

  it('a part of a credential, or text around it, is ordinary text', async () => {
    const scopeId = scope('secrets', 'partial');
    const near = [TEST_ADMIN_TOKEN.slice(0, -1), TEST_API_KEY.slice(1), 'postgres', REDACTED];
    const res = await h.request('POST', '/api/memory/patterns', { scopeId, patterns: near });
    expect(res.status).toBe(200);
    expect((await exported(scopeId)).map((p) => p.content).sort()).toEqual([...near].sort());
  });
});

describe('stored content is returned byte for byte, never rewritten', () => {
  it('export and snippets return exactly what was stored, including text that looks like a redaction', async () => {
    const scopeId = scope('secrets', 'bytes');
    const content = `keep ${REDACTED} and "quotes" \\ and ${TEST_ADMIN_TOKEN.slice(0, 12)} and 🚀`;
    const metadata = { [REDACTED]: `${TEST_API_KEY.slice(0, 10)}`, escaped: '\u2028\u00e9' };
    expect((await h.request('POST', '/api/memory/patterns', { scopeId, patterns: [{ content, metadata }] })).status).toBe(200);
    expect(await exported(scopeId)).toMatchObject([{ content, metadata }]);
    const read = await h.request('POST', '/api/memory/snippets', { scopeId });
    expect(read.body.snippets).toMatchObject([{ content, metadata }]);
  });
});

describe('error messages never echo a value long enough to confirm a secret', () => {
  it.each([
    ['a scope id', () => h.request('POST', '/api/memory/snippets', { scopeId: TEST_ADMIN_TOKEN })],
    ['a scope id shaped around the token', () => h.request('POST', '/api/memory/snippets', { scopeId: `scope:${TEST_ADMIN_TOKEN}` })],
    ['an export query', () => h.request('GET', `/api/admin/export?scopeId=${TEST_ADMIN_TOKEN}`, undefined, admin)],
    ['an unknown field', () => h.request('POST', '/api/memory/snippets', { scopeId: scope(), [TEST_ADMIN_TOKEN]: 1 })],
    ['an unknown admin body field', () => h.request('POST', '/api/admin/sync-context7', { [TEST_API_KEY]: 1 }, admin)],
    ['a metadata key with a bad value', () => h.request('POST', '/api/memory/patterns', { scopeId: scope(), patterns: [{ content: 'c', metadata: { [`${TEST_ADMIN_TOKEN}x`]: 'nul\u0000' } }] })],
    ['an unknown path', () => h.request('GET', `/api/${TEST_ADMIN_TOKEN}`)],
  ])('%s', async (_name, send) => {
    const res = await send();
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    for (const credential of CREDENTIALS) {
      expect(res.text).not.toContain(credential);
      // No run of the credential longer than the echo prefix (6 chars) appears.
      expect(res.text).not.toContain(credential.slice(0, 7));
    }
    expect(res.text).not.toContain(REDACTED);
  });
});
