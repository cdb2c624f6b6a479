/** Issue 13: the tenant-isolation property (test/support/tenant-isolation-property.ts) on a real PostgreSQL store. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryService, type MemoryService } from '../../service/compose';
import { loadConfig } from '../../service/config';
import { checkTenantIsolation, isolationKeys, isolationKeysEnv } from '../support/tenant-isolation-property';
import { createTestDatabase, type TestDatabase } from './support/postgres';

const ADMIN_TOKEN = 'pg-isolation-admin-token-0123';
const keys = isolationKeys('pg');
let db: TestDatabase;
let service: MemoryService;
let url: string;

beforeAll(async () => {
  db = await createTestDatabase('pgisolation');
  const config = loadConfig({
    DATABASE_URL: db.url,
    ADMIN_TOKEN,
    ENABLE_CONTEXT7_MEMORY: 'true',
    LOG_LEVEL: 'silent',
    RENDER_INSTANCE_ID: 'pg-isolation',
    MEMORY_API_KEYS: isolationKeysEnv(keys),
  });
  service = createMemoryService(config, { enableSchedule: false });
  url = (await service.start(0, '127.0.0.1')).url;
});

afterAll(async () => {
  await service?.stop();
  await db?.drop();
});

describe('tenant isolation property (PostgreSQL)', () => {
  it('for arbitrary keys, scopes and requests, no key reads or writes outside its locations', async () => {
    const tally = await checkTenantIsolation({ url, adminToken: ADMIN_TOKEN, keys }, { numRuns: 40, seed: 5313, prompt: 'isolation' });
    expect(tally.allowed).toBeGreaterThan(20);
    expect(tally.refused).toBeGreaterThan(20);
  });
});
