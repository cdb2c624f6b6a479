/**
 * The production path end to end: the compiled migration (dist/service/cli/migrate.js) as Render's pre-deploy
 * command, then two real compiled service processes (dist/service/main.js) configured only by DATABASE_URL /
 * REDIS_URL, sharing PostgreSQL and Redis.
 * One is sent SIGTERM mid-backfill (what a deploy does) and the other finishes the job from its checkpoint.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Redis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContext7Emulator, type Context7Emulator } from '../../service/context7/emulator';
import { PG_MIGRATIONS } from '../../service/data-access/postgres-migrations';
import { PostgresMemoryStore } from '../../service/data-access/postgres-store';
import { scopeKeyOf, toNewPattern } from '../../service/domain/patterns';
import { generateScopeIdSync } from '../../service/domain/scope-id';
import { createTestDatabase, type TestDatabase } from './support/postgres';
import { TEST_REDIS_URL, connectRedis, deleteKeys, randomPrefix } from './support/redis';
import { killAll, runCompiled, startServiceInstance, waitFor } from './support/service-process';

const API_KEY = 'c7-process-test-key-0123456789';
const ADMIN_TOKEN = 'process-admin-token-0123456789';
let db: TestDatabase;
let emulator: Context7Emulator;
let admin: Redis;
let prefix: string;
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-proc-'));

function baseEnv(): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'info',
    DATA_DIR: dataDir,
    DATABASE_URL: db.url,
    REDIS_URL: TEST_REDIS_URL,
    REDIS_KEY_PREFIX: prefix.replace(/:$/, ''),
    ENABLE_CONTEXT7_MEMORY: 'true',
    CONTEXT7_API_KEY: API_KEY,
    CONTEXT7_BASE_URL: emulator.url,
    ADMIN_TOKEN,
    DEPLOY_ID: 'deploy-proc',
    OUTBOX_DRAIN_INTERVAL_MS: '3600000',
    BACKFILL_WATCHDOG_MS: '200',
    FLEET_METRICS_FLUSH_MS: '100',
    // This file checks what the fleet view holds, once, right after a backfill on a loaded machine: not how fast.
    FLEET_METRICS_TIMEOUT_MS: '2000',
    // Nor the Context7 deadline: with the emulator's 1 s latency the service's 2 s let upserts expire at load 30
    // ("errors": 90 of 1,600), and the job then ends with errors instead of showing the hand-over it is about.
    CONTEXT7_TIMEOUT_MS: '20000',
  };
}

async function startService(instanceId: string) {
  return startServiceInstance(instanceId, { ...baseEnv(), RENDER_INSTANCE_ID: instanceId });
}

async function adminGet(url: string, route: string): Promise<any> {
  const response = await fetch(`${url}${route}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  return response.json();
}

beforeAll(async () => {
  db = await createTestDatabase('fleetproc');
  emulator = await startContext7Emulator({ apiKey: API_KEY, seed: 5 });
  admin = connectRedis();
  prefix = randomPrefix('fleetproc');
});

afterAll(async () => {
  killAll();
  await emulator?.close();
  await deleteKeys(admin, prefix);
  admin.disconnect();
  await db?.drop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('service processes on PostgreSQL and Redis', () => {
  it('migrate as pre-deploy, then two instances finish a backfill across a SIGTERM', async () => {
    const migrate = runCompiled('dist/service/cli/migrate.js', baseEnv());
    expect(await migrate.exited).toBe(0);
    expect(migrate.output()).toContain(`PostgreSQL schema up to date: ${PG_MIGRATIONS.length} applied`);
    expect(migrate.output()).not.toContain(db.url);

    // Seeding is setup, not what this test is about: a transaction of 400 patterns can outlast the 5 s request
    // deadline on a loaded machine (it did, failing the run with "transaction timed out after 5000 ms").
    const seed = new PostgresMemoryStore({
      connectionString: db.url,
      maxConnections: 2,
      deadlines: { queryTimeoutMs: 60_000, statementTimeoutMs: 55_000, idleInTransactionTimeoutMs: 60_000 },
    });
    const scopes = [0, 1, 2, 3].map((n) => generateScopeIdSync({ locationId: 'proc', agentId: `agent-${n}`, promptText: `p${n}` }));
    try {
      for (const scopeId of scopes) {
        const patterns = Array.from({ length: 400 }, (_, i) => toNewPattern(scopeId, `process pattern ${i} of ${scopeId}`));
        await seed.savePatterns(scopeKeyOf(scopeId), patterns, new Date());
      }
    } finally {
      await seed.close();
    }

    const a = await startService('proc-a');
    const b = await startService('proc-b');
    const startLine = a.output().split('\n').find((line) => line.includes('Memory service listening'))!;
    expect(JSON.parse(startLine).dataPlane).toMatchObject({ store: 'postgres', cache: 'redis+lru', metrics: 'fleet' });

    // Slow Context7 down so the run is still going when A is told to stop: with the default batches
    // (4 upserts of 100 in flight) each page of 400 patterns then takes about 1 s, so after the first
    // progress A has some 3 s to act on SIGTERM, ample on a loaded CI machine.
    emulator.setFaults({ latencyMs: 1_000 });
    const started = await fetch(`${a.url}/api/admin/sync-context7`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(started.status).toBe(202);
    await waitFor('progress', async () => (await adminGet(b.url, '/api/admin/sync-context7/status')).job?.synced >= 20, 60_000);

    a.child.kill('SIGTERM');
    expect(await a.exited).toBe(0);
    expect(a.output()).toMatch(/Interrupted at cursor/);
    emulator.setFaults({ latencyMs: 0 });

    const done = await waitFor('completion on B', async () => {
      const status = await adminGet(b.url, '/api/admin/sync-context7/status');
      return status.job?.status === 'completed' ? status : null;
    }, 180_000);
    // On failure, the batches that failed and why (the service logs each one).
    const failedBatches = (a.output() + b.output()).split('\n').filter((line) => line.includes('Full sync batch failed')).slice(0, 5).join('\n');
    expect(done.job, failedBatches).toMatchObject({ owner: 'proc-b', synced: 1600, errors: 0 });
    expect(b.output()).toMatch(/Resuming full sync left interrupted by proc-a/);
    expect(b.output()).toMatch(/\[SYNC\] Complete: 1600 synced, 0 errors in \d+ms/);
    for (const scopeId of scopes) expect(emulator.patterns(scopeId)).toHaveLength(400);

    // Either instance reports the fleet; A's counts survive its exit (it flushed them on the way out).
    const metrics = (await (await fetch(`${b.url}/api/metrics/memory`)).json()) as { scope: string; instancesSeen: string[] };
    expect(metrics.scope).toBe('fleet');
    expect(metrics.instancesSeen).toEqual(['proc-a', 'proc-b']);
    expect(a.output() + b.output()).not.toContain(db.url);

    b.child.kill('SIGTERM');
    expect(await b.exited).toBe(0);
    // Three service processes and 1,600 seeded patterns: generous on a loaded CI machine (over 120 s at load 30).
  }, 300_000);
});
