/**
 * Hostile input on the production backend: the same property-based attack on every route as on SQLite
 * (test/support/hostile-input-fuzz.ts), against a real PostgreSQL, plus what only PostgreSQL can show: jsonb keeps
 * keys (and reorders them) differently from SQLite's text, and DATABASE_URL carries a password that is scrubbed
 * from logs but must never make stored content read back differently.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryService, type MemoryService } from '../../service/compose';
import { loadConfig } from '../../service/config';
import { generateScopeIdSync } from '../../service/domain/scope-id';
import { createServiceLogger } from '../../service/logging';
import { LogCapture } from '../service/support/harness';
import { TENANT_LOCATION, fuzzEveryRoute, seedScopes, type FuzzTarget } from '../support/hostile-input-fuzz';
import { createTestDatabase, type TestDatabase } from './support/postgres';

const ADMIN_TOKEN = 'pg-hostile-admin-token-0123';
/** Caller keys (issue 13): one for every location, one restricted to the fuzz's tenant location. */
const CALLER_KEY = 'pg-hostile-caller-key-0123456789';
const RESTRICTED_CALLER_KEY = 'pg-hostile-restricted-key-0123456789';
/** The test server trusts loopback, so this password is sent nowhere; it only has to be in DATABASE_URL. */
const DB_PASSWORD = 'pg-password-in-content';
let db: TestDatabase;
let service: MemoryService;
let url: string;
const logs = new LogCapture();

beforeAll(async () => {
  db = await createTestDatabase('pghostile');
  const databaseUrl = new URL(db.url);
  databaseUrl.password = DB_PASSWORD;
  // Flag on without a key: fallback mode, so reads search PostgreSQL and writes stay local (no Context7 needed).
  const config = loadConfig({ DATABASE_URL: databaseUrl.toString(), ADMIN_TOKEN, ENABLE_CONTEXT7_MEMORY: 'true', RENDER_INSTANCE_ID: 'pg-hostile',
    MEMORY_API_KEYS: `all:${CALLER_KEY};tenant:${RESTRICTED_CALLER_KEY}:${TENANT_LOCATION}`,
  });
  service = createMemoryService(config, {
    logger: createServiceLogger({ level: 'warn', secrets: [ADMIN_TOKEN, CALLER_KEY, RESTRICTED_CALLER_KEY, DB_PASSWORD, databaseUrl.toString()], destination: logs }),
    enableSchedule: false,
    adminAuthLimit: { maxFailures: 1_000_000, windowMs: 60_000 },
  });
  url = (await service.start(0, '127.0.0.1')).url;
});

afterAll(async () => {
  await service?.stop();
  await db?.drop();
});

async function post(route: string, body: string): Promise<{ status: number; body: any; text: string }> {
  const response = await fetch(`${url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${CALLER_KEY}` }, body });
  const text = await response.text();
  return { status: response.status, body: JSON.parse(text), text };
}

async function exportText(scopeId: string): Promise<{ patterns: { content: string; metadata: unknown }[] }> {
  const response = await fetch(`${url}/api/admin/export?scopeId=${encodeURIComponent(scopeId)}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  expect(response.status).toBe(200);
  return (await response.json()) as { patterns: { content: string; metadata: unknown }[] };
}

describe('hostile input on PostgreSQL', () => {
  it('every route, arbitrary JSON: no 5xx, no hang, no cross-scope answer, accepted content reads back exactly', async () => {
    const target: FuzzTarget = {
      url,
      adminToken: ADMIN_TOKEN,
      callerKey: CALLER_KEY,
      restrictedCallerKey: RESTRICTED_CALLER_KEY,
      credentials: [ADMIN_TOKEN, CALLER_KEY, RESTRICTED_CALLER_KEY],
    };
    await seedScopes(target);
    const tally = await fuzzEveryRoute(target, { numRuns: 400, seed: 5410 });
    if (process.env.FUZZ_TALLY) console.log(JSON.stringify(tally));
    expect(tally.acceptedWrites).toBeGreaterThan(20);
    expect(tally.writesReadBack).toBeGreaterThan(10);
    expect(tally.metadataReadBack).toBeGreaterThan(3);
    expect(tally.credentialsRefused).toBeGreaterThan(5);
    expect(tally.callersUnauthenticated).toBeGreaterThan(5);
    expect(tally.restrictedRefused).toBeGreaterThan(5);
    expect(tally.restrictedAccepted).toBeGreaterThan(0);
    expect(tally.byStatus[400]).toBeGreaterThan(50);
    for (const line of logs.lines()) expect(String(line.msg)).not.toMatch(/Unhandled error/);
  });

  it('metadata: own __proto__ refused as on SQLite; constructor and friends kept exactly by jsonb', async () => {
    const scopeId = generateScopeIdSync({ locationId: 'pghostile', agentId: 'proto', promptText: 'p' });
    const refused = await post('/api/memory/patterns', `{"scopeId":"${scopeId}","patterns":[{"content":"c","metadata":{"__proto__":{"x":1}}}]}`);
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('key \\"__proto__\\" is not allowed');
    const metadata = '{"constructor":{"prototype":1},"toString":"s","valueOf":[1],"hasOwnProperty":null}';
    expect((await post('/api/memory/patterns', `{"scopeId":"${scopeId}","patterns":[{"content":"c","metadata":${metadata}}]}`)).status).toBe(200);
    expect((await exportText(scopeId)).patterns.map((p) => p.metadata)).toEqual([JSON.parse(metadata)]);
  });

  it('content holding the database password (a log-only secret) is writable and reads back byte for byte', async () => {
    const scopeId = generateScopeIdSync({ locationId: 'pghostile', agentId: 'password', promptText: 'p' });
    const content = `the word ${DB_PASSWORD} and "postgres" are ordinary text`;
    const metadata = { note: DB_PASSWORD };
    const write = await post('/api/memory/patterns', JSON.stringify({ scopeId, patterns: [{ content, metadata }] }));
    expect(write.status).toBe(200);
    expect((await exportText(scopeId)).patterns).toMatchObject([{ content, metadata }]);
    const read = await post('/api/memory/snippets', JSON.stringify({ scopeId, query: 'ordinary' }));
    expect(read.body.snippets).toMatchObject([{ content, metadata }]);
    expect(read.text).not.toContain('[REDACTED]');
  });
});
