/**
 * End to end: the real memory service (the demo's start command) on the local platform with 2 instances behind
 * the load balancer, redeployed twice under the load helper's traffic mix, on SQLite (as the demo) and on
 * PostgreSQL and Redis (the fleet's shape, with the pre-deploy migration). Nothing goes unanswered and nothing
 * answers 5xx across the overlapping deploys. The two rehearsals are separate services on separate stores, so they
 * run concurrently: much of each is waiting for instances to start and drain.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, type ExpectStatic, it } from 'vitest';
import { RenderClient } from '../../render/client';
import { type RenderEmulator, startRenderEmulator } from '../../render/emulator';
import { SERVICE_RUNTIME } from '../../infra/service-runtime';
import { DEMO_SCOPE_IDS } from '../../demo/traffic';
import { createRng, createTrafficGenerator, newRunNonce } from '../../load/lib/traffic-mix';
import { waitUntil } from './support/helpers';
import { startTraffic } from './support/traffic';
import { createTestDatabase, type TestDatabase } from '../data-plane/support/postgres';
import { TEST_REDIS_URL, connectRedis, deleteKeys, randomPrefix } from '../data-plane/support/redis';

const REPO = resolve(__dirname, '..', '..');
const API_KEY = 'rnd_lb_memory_service_KEY';
const WAIT = { timeoutMs: 90_000, pollIntervalMs: 200 };

let emulator: RenderEmulator;
let client: RenderClient;
let dir: string;
let db: TestDatabase | undefined;
let redisPrefix: string | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lb-memory-'));
  emulator = await startRenderEmulator({
    apiKey: API_KEY,
    deployStepMs: 20,
    localPlatform: { source: 'working-tree', cwd: REPO, readyTimeoutMs: 60_000, shutdownGraceMs: 10_000, logDir: dir },
  });
  client = new RenderClient({ apiKey: API_KEY, baseUrl: emulator.url });
}, 30_000);

afterAll(async () => {
  await emulator?.close();
  await db?.drop();
  if (redisPrefix) {
    const redis = connectRedis();
    await deleteKeys(redis, redisPrefix);
    redis.disconnect();
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

/** Creates the service with 2 instances, redeploys it twice under traffic, and returns what the clients saw. */
async function rehearseDeploys(expect: ExpectStatic, name: string, envVars: Array<{ key: string; value: string }>, preDeployCommand?: string) {
  const ownerId = (await client.listOwners())[0]!.id;
  const created = await client.createService({
    type: 'web_service',
    name,
    ownerId,
    serviceDetails: {
      runtime: SERVICE_RUNTIME.runtime,
      numInstances: 2,
      healthCheckPath: SERVICE_RUNTIME.healthCheckPath,
      maxShutdownDelaySeconds: 30,
      // As the demo runs it: the local platform runs the start command Render would.
      envSpecificDetails: { buildCommand: 'true', startCommand: SERVICE_RUNTIME.startCommand },
      // Posted at the top level; Render answers with it inside envSpecificDetails.
      ...(preDeployCommand ? { preDeployCommand } : {}),
    },
    envVars: [
      { key: 'ENABLE_CONTEXT7_MEMORY', value: 'false' },
      { key: 'ADMIN_TOKEN', value: 'admin-token-lb-e2e' },
      { key: 'NODE_ENV', value: 'production' },
      { key: 'LOG_LEVEL', value: 'warn' },
      { key: 'RATE_LIMIT_MAX', value: '0' },
      ...envVars,
    ],
  } as Parameters<RenderClient['createService']>[0]);
  const serviceId = created.service!.id;
  const url = (created.service!.serviceDetails as { url: string }).url;
  await client.waitForDeploy(serviceId, created.deployId!, WAIT);
  const platform = () => emulator.state().services.find((s) => s.id === serviceId)!.instance!;
  expect(platform().instances.filter((i) => i.routed)).toHaveLength(2);

  const generator = createTrafficGenerator({ scopeIds: DEMO_SCOPE_IDS, random: createRng(7), writerId: `lb-e2e-${name}`, runNonce: newRunNonce() });
  const requests = Array.from({ length: 60 }, () => {
    const plan = generator.next();
    return { method: plan.method, path: plan.path, ...(plan.body ? { body: plan.body } : {}) };
  });
  expect(requests.some((r) => r.method === 'POST')).toBe(true);
  const traffic = startTraffic(url, { requests, keepAliveWorkers: 3, freshWorkers: 1, pauseMs: 10, timeoutMs: 15_000 });
  await new Promise((r) => setTimeout(r, 500));
  for (const commitId of ['a'.repeat(40), 'b'.repeat(40)]) {
    const deploy = await client.triggerDeploy(serviceId, { commitId });
    expect((await client.waitForDeploy(serviceId, deploy.id, WAIT)).status).toBe('live');
    await new Promise((r) => setTimeout(r, 500));
  }
  await waitUntil(() => platform().instances.length === 2, 'the replaced instances to stop', 40_000);
  const report = await traffic.stop();
  const lb = platform().loadBalancer;
  console.log(`zero-downtime (memory service, ${name}): ${report.sent} requests through 2 deploys, ${report.withoutAnswer} without answer, ${report.serverErrors} 5xx`, report.statuses, lb);
  expect(report.failures).toEqual([]);
  expect(report.withoutAnswer).toBe(0);
  expect(report.serverErrors).toBe(0);
  expect(report.sent).toBeGreaterThan(50);
  expect(lb).toMatchObject({ unavailable: 0, badGateway: 0, truncated: 0 });
  expect(platform().instances.every((i) => i.commitId === 'b'.repeat(40) && i.routed)).toBe(true);
}

describe.concurrent('the memory service behind the local platform load balancer', () => {
  it('answers every request, none 5xx, through 2 overlapping deploys of 2 instances (SQLite, as the demo)', async ({ expect }) => {
    await rehearseDeploys(expect, 'memory-lb-sqlite', [{ key: 'DATA_DIR', value: join(dir, 'data') }]);
  }, 240_000);

  it('answers every request, none 5xx, through 2 overlapping deploys of 2 instances (PostgreSQL and Redis)', async ({ expect }) => {
    db = await createTestDatabase('lb_e2e');
    redisPrefix = randomPrefix('lb-e2e');
    await rehearseDeploys(
      expect,
      'memory-lb-postgres',
      [
        { key: 'DATABASE_URL', value: db.url },
        { key: 'REDIS_URL', value: TEST_REDIS_URL },
        { key: 'REDIS_KEY_PREFIX', value: redisPrefix.replace(/:$/, '') },
        { key: 'DATA_DIR', value: join(dir, 'data-pg') },
      ],
      SERVICE_RUNTIME.preDeployCommand,
    );
  }, 240_000);
});
