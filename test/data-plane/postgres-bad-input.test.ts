/**
 * Bad input on the production backend: PostgreSQL refuses values SQLite keeps (NUL, lone surrogates, year 0), so
 * the memory service on PostgreSQL is fuzzed with arbitrary code points: every answer is a 2xx or a 4xx, never a
 * 5xx, and whatever it accepted reads back exactly as sent.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryService, type MemoryService } from '../../service/compose';
import { loadConfig } from '../../service/config';
import { CALLER_AUTH, TEST_CALLER_KEYS } from '../service/support/harness';
import { generateScopeIdSync } from '../../service/domain/scope-id';
import { createServiceLogger } from '../../service/logging';
import { createTestDatabase, type TestDatabase } from './support/postgres';

const ADMIN_TOKEN = 'pg-bad-input-admin-token-0123';
let db: TestDatabase;
let service: MemoryService;
let url: string;

beforeAll(async () => {
  db = await createTestDatabase('pgbadinput');
  // Flag on without a key: fallback mode, so reads search PostgreSQL and writes stay local (no Context7 needed).
  const config = loadConfig({ DATABASE_URL: db.url, ADMIN_TOKEN, ENABLE_CONTEXT7_MEMORY: 'true', LOG_LEVEL: 'silent', RENDER_INSTANCE_ID: 'pg-bad-input',
    MEMORY_API_KEYS: TEST_CALLER_KEYS,
  });
  service = createMemoryService(config, { logger: createServiceLogger({ level: 'silent', secrets: [] }), enableSchedule: false });
  url = (await service.start(0, '127.0.0.1')).url;
});

afterAll(async () => {
  await service?.stop();
  await db?.drop();
});

async function post(route: string, body: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json', ...CALLER_AUTH }, body: JSON.stringify(body) });
  return { status: response.status, body: await response.json() };
}

describe('the service on PostgreSQL, fuzzed with arbitrary code points', () => {
  const anyText = fc.string({ unit: 'binary', minLength: 1, maxLength: 40 });
  const metadata = fc.dictionary(anyText, fc.oneof(anyText, fc.integer(), fc.constant(null)), { maxKeys: 3 });

  it('learning writes: never a 5xx, and accepted patterns read back exactly', async () => {
    let accepted = 0;
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(anyText, fc.record({ content: anyText, metadata }, { requiredKeys: ['content'] })), { minLength: 1, maxLength: 3 }), async (patterns) => {
        n += 1;
        const scopeId = generateScopeIdSync({ locationId: 'pgfuzz', agentId: `agent-${n}`, promptText: 'fuzz' });
        const res = await post('/api/memory/patterns', { scopeId, patterns });
        expect(res.status, JSON.stringify(res.body)).toBeLessThan(500);
        if (res.status !== 200) {
          expect(res.status).toBe(400);
          return;
        }
        accepted += 1;
        const exported = await fetch(`${url}/api/admin/export?scopeId=${encodeURIComponent(scopeId)}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
        const stored = ((await exported.json()) as { patterns: { content: string; metadata: unknown }[] }).patterns;
        const sent = patterns.map((p) => (typeof p === 'string' ? { content: p, metadata: null } : { content: p.content, metadata: p.metadata ?? null }));
        const key = (p: { content: string }) => p.content;
        // One pattern per content: the first of duplicates is the one kept.
        const firsts = new Map<string, (typeof sent)[number]>();
        for (const p of sent) if (!firsts.has(p.content)) firsts.set(p.content, p);
        const unique = [...firsts.values()];
        expect(stored.map((p) => ({ content: p.content, metadata: p.metadata })).sort((x, y) => (key(x) < key(y) ? -1 : 1))).toEqual(
          unique.sort((x, y) => (key(x) < key(y) ? -1 : 1)),
        );
      }),
      { numRuns: 150, seed: 5150 },
    );
    // The property must have exercised both sides.
    expect(accepted).toBeGreaterThan(10);
    expect(accepted).toBeLessThan(150);
  });

  it('snippet reads: never a 5xx for any query text', async () => {
    const scopeId = generateScopeIdSync({ locationId: 'pgfuzz', agentId: 'reader', promptText: 'fuzz' });
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 60 }), async (query) => {
        const res = await post('/api/memory/snippets', { scopeId, query });
        expect(res.status, JSON.stringify(res.body)).toBeLessThan(500);
        if (res.status === 200) expect(res.body.source).toBe('database');
      }),
      { numRuns: 100, seed: 5151 },
    );
  });

  it('an expiry in year 0 is a 400, the last representable year is kept', async () => {
    const scopeId = generateScopeIdSync({ locationId: 'pgfuzz', agentId: 'expiry', promptText: 'fuzz' });
    expect((await post('/api/memory/patterns', { scopeId, patterns: [{ content: 'x', expiresAt: '0000-06-01T00:00:00Z' }] })).status).toBe(400);
    expect((await post('/api/memory/patterns', { scopeId, patterns: [{ content: 'x', expiresAt: '9999-12-31T23:59:59Z' }] })).status).toBe(200);
  });
});
