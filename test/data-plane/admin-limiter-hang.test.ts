/**
 * The reproduction of a locked kill switch (issue 22 §3): while PostgreSQL hangs, an operator sends
 * `PUT /api/admin/exposure {"percent":0}` with the correct token ten times, each abandoned by the client after 1 s;
 * once PostgreSQL is back, the next one must be applied, not refused with 429 for up to 15 minutes. A request that
 * presented the correct token never counts as a failed authentication.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryService, type MemoryService } from '../../service/compose';
import { loadConfig } from '../../service/config';
import { PostgresMemoryStore } from '../../service/data-access/postgres-store';
import { createDataPlane } from '../../service/fleet/data-plane';
import { loadDataPlaneConfig } from '../../service/fleet/data-plane-config';
import { createServiceLogger } from '../../service/logging';
import { TEST_ADMIN_TOKEN, waitFor } from '../service/support/harness';
import { startStallProxy, type StallProxy } from '../support/stall-proxy';
import { createTestDatabase, type TestDatabase } from './support/postgres';

let db: TestDatabase;
let proxy: StallProxy;
let service: MemoryService;
let url: string;

beforeAll(async () => {
  db = await createTestDatabase('adminhang');
  const seed = new PostgresMemoryStore({ connectionString: db.url, maxConnections: 1 });
  await seed.migrate();
  await seed.close();
  proxy = await startStallProxy({ host: '127.0.0.1', port: 5432 });
  const env = {
    DATABASE_URL: proxy.url(db.url),
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    MEMORY_AUTH: 'open',
    LOG_LEVEL: 'silent',
    RENDER_INSTANCE_ID: 'admin-hang',
    OUTBOX_DRAIN_INTERVAL_MS: '3600000',
    // The store answers no sooner than these deadlines: every request below is abandoned by its client first.
    DATABASE_CONNECT_TIMEOUT_MS: '3000',
    DATABASE_QUERY_TIMEOUT_MS: '3000',
    DATABASE_STATEMENT_TIMEOUT_MS: '2500',
    DATABASE_POOL_MAX: '2',
  };
  const config = loadConfig(env);
  const logger = createServiceLogger({ level: 'silent', secrets: [] });
  service = createMemoryService(config, { logger, dataPlane: createDataPlane({ config, dataPlane: loadDataPlaneConfig(env), logger }), enableSchedule: false, healthCacheMs: 0, shutdownGraceMs: 1_000 });
  url = (await service.start(0, '127.0.0.1')).url;
}, 60_000);

afterAll(async () => {
  await service?.stop();
  await proxy?.close();
  await db?.drop();
});

const killSwitch = (signal?: AbortSignal) =>
  fetch(`${url}/api/admin/exposure`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ percent: 0, actor: 'on-call', reason: 'incident' }),
    ...(signal ? { signal } : {}),
  });

describe('the kill switch during a PostgreSQL hang', () => {
  it('ten abandoned kill-switch requests with the correct token, then PostgreSQL recovers: the next one is applied, not 429', async () => {
    proxy.pause();
    const abandoned = await Promise.all(
      Array.from({ length: 10 }, () => killSwitch(AbortSignal.timeout(1_000)).then((r) => `answered ${r.status}`, () => 'abandoned')),
    );
    expect(abandoned).toEqual(Array(10).fill('abandoned'));
    proxy.resume();
    // The first requests after the hang may still meet a broken pooled connection (503): never a 429.
    const applied = await waitFor('the kill switch to be applied', async () => {
      const answer = await killSwitch();
      expect(answer.status).not.toBe(429);
      return answer.status === 200 ? ((await answer.json()) as { percent: number }) : undefined;
    }, 30_000);
    expect(applied.percent).toBe(0);
  }, 90_000);
});
