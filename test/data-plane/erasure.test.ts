/**
 * Issue 13, erasure on the production data plane: two instances sharing a real PostgreSQL (a database created
 * for this file) and Redis (a random key prefix, deleted after), with the Context7 emulator behind both.
 * An erasure requested on one instance during a Context7 outage, then recovery: nothing of the scope remains in
 * PostgreSQL (rows, history content, outboxes), in either instance's cache or Redis, or in the emulator, and the
 * history shows only the tombstones.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Redis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryService, type MemoryService } from '../../service/compose';
import { loadConfig } from '../../service/config';
import { startContext7Emulator, type Context7Emulator } from '../../service/context7/emulator';
import type { PostgresMemoryStore } from '../../service/data-access/postgres-store';
import { generateScopeIdSync } from '../../service/domain/scope-id';
import { createServiceLogger } from '../../service/logging';
import { FAST_CLIENT, TEST_CALLER_KEY, TEST_CALLER_KEYS, waitFor } from '../service/support/harness';
import { createTestDatabase, type TestDatabase } from './support/postgres';
import { createDataPlane } from '../../service/fleet/data-plane';
import { loadDataPlaneConfig } from '../../service/fleet/data-plane-config';
import { TEST_REDIS_URL, connectRedis, deleteKeys, randomPrefix } from './support/redis';

const API_KEY = 'c7-erasure-test-key-0123456789';
const ADMIN_TOKEN = 'erasure-admin-token-0123456789';
let db: TestDatabase;
let emulator: Context7Emulator;
let redis: Redis;
let prefix: string;
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'erasure-'));
const services: MemoryService[] = [];
const urls: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase('erasure');
  emulator = await startContext7Emulator({ apiKey: API_KEY, seed: 13 });
  redis = connectRedis();
  prefix = randomPrefix('erasure');
  for (const id of ['erase-a', 'erase-b']) {
    const env = {
      ENABLE_CONTEXT7_MEMORY: 'true',
      CONTEXT7_API_KEY: API_KEY,
      CONTEXT7_BASE_URL: emulator.url,
      ADMIN_TOKEN,
      DATABASE_URL: db.url,
      REDIS_URL: TEST_REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      RENDER_INSTANCE_ID: id,
      DEPLOY_ID: 'erasure-deploy',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'silent',
      OUTBOX_DRAIN_INTERVAL_MS: '3600000',
      RATE_LIMIT_MAX: '0',
      MEMORY_API_KEYS: TEST_CALLER_KEYS,
    };
    const config = loadConfig(env);
    const logger = createServiceLogger({ level: 'silent', secrets: [] });
    const service = createMemoryService(config, {
      logger,
      // The data plane's own settings (key prefix, rate limit) from this env, not the test process's.
      dataPlane: createDataPlane({ config, dataPlane: loadDataPlaneConfig(env), logger }),
      enableSchedule: false,
      context7ClientOptions: { timeoutMs: 500, ...FAST_CLIENT },
    });
    services.push(service);
    urls.push((await service.start(0, '127.0.0.1')).url);
  }
});

afterAll(async () => {
  await Promise.all(services.map((service) => service.stop()));
  await emulator?.close();
  if (redis) {
    await deleteKeys(redis, prefix);
    redis.disconnect();
  }
  await db?.drop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

async function call(url: string, route: string, body: unknown, token = TEST_CALLER_KEY): Promise<{ status: number; body: any; text: string }> {
  const response = await fetch(`${url}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: JSON.parse(text), text };
}

describe('erasure on PostgreSQL + Redis, two instances', () => {
  it('an erasure during a Context7 outage leaves nothing of the scope anywhere once Context7 is back', async () => {
    const [a, b] = urls as [string, string];
    const store = services[0]!.store as PostgresMemoryStore;
    const victim = generateScopeIdSync({ locationId: 'erasure', agentId: 'victim', promptText: 'p' });
    const bystander = generateScopeIdSync({ locationId: 'erasure', agentId: 'bystander', promptText: 'p' });
    const secrets = ['Carol lives at 7 Elm Road', 'Carol takes insulin', 'Carol called about a refund'];
    expect((await call(a, '/api/memory/patterns', { scopeId: victim, patterns: secrets.slice(0, 2) })).body.destinations).toEqual(['database', 'context7']);
    await call(a, '/api/memory/patterns', { scopeId: bystander, patterns: ['Dan likes mornings'] });
    // Cached on instance B (local LRU and the shared Redis tier).
    expect((await call(b, '/api/memory/snippets', { scopeId: victim })).body.source).toBe('context7');
    expect((await call(b, '/api/memory/snippets', { scopeId: victim })).body.source).toBe('cache');

    emulator.setFaults({ outage: true });
    expect((await call(a, '/api/memory/patterns', { scopeId: victim, patterns: [secrets[2]] })).body.destinations).toEqual(['database']);
    const erased = await call(a, '/api/admin/erase', { scopeId: victim, requestedBy: 'dpr-77' }, ADMIN_TOKEN);
    expect(erased.body).toMatchObject({ erased: 3, context7: 'queued' });

    // Instance B's cache was dropped through Redis: its next read is not served from the cache.
    const onB = await waitFor('B to stop serving the erased scope from its cache', async () => {
      const read = await call(b, '/api/memory/snippets', { scopeId: victim });
      return read.body.source !== 'cache' ? read : null;
    });
    expect(onB.body).toMatchObject({ snippets: [], source: 'database' });

    emulator.resetFaults();
    await waitFor('the erasure to reach Context7', async () => (await services[0]!.drainer!.drainOnce()).erased);
    expect(emulator.patterns(victim)).toEqual([]);
    expect(emulator.patterns(bystander)).toHaveLength(1);
    for (const url of urls) expect((await call(url, '/api/memory/snippets', { scopeId: victim })).body).toMatchObject({ snippets: [] });

    // PostgreSQL: no row of the scope but the tombstones, and none of its content in any table.
    const dump = await store.pool.query<{ t: string }>(
      `SELECT concat_ws('|', (SELECT string_agg(p::text, '') FROM patterns p), (SELECT string_agg(h::text, '') FROM pattern_history h),
         (SELECT string_agg(o::text, '') FROM outbox o), (SELECT string_agg(e::text, '') FROM erasure_outbox e)) AS t`,
    );
    for (const secret of secrets) expect(dump.rows[0]!.t ?? '').not.toContain(secret);
    const history = await store.pool.query<{ event: string; detail: string }>(`SELECT event, detail FROM pattern_history WHERE scope_id = $1`, [victim]);
    expect(history.rows).toEqual(Array.from({ length: 3 }, () => ({ event: 'erased', detail: 'admin:dpr-77' })));
    expect(await store.erasureOutboxDepth()).toBe(0);
    // Redis: no cached entry of the scope is left under this test's prefix.
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      keys.push(...found);
    } while (cursor !== '0');
    for (const key of keys) {
      const type = await redis.type(key);
      const value = type === 'string' ? await redis.get(key) : type === 'hash' ? JSON.stringify(await redis.hgetall(key)) : '';
      for (const secret of secrets) expect(`${key}${value ?? ''}`).not.toContain(secret);
    }
  });
});
