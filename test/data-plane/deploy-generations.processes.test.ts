/**
 * The figures at the top of /api/metrics/memory cover the current deploy's processes only, across the lifecycle
 * production actually has: real compiled service processes on PostgreSQL and Redis, two instances per deploy,
 * the same commit deployed three times (a rollout whose Context7 fails, the flag-off rollback, the retry once the
 * incident is fixed), deploys that overlap like Render's, and a crash-restart within a deploy.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Redis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContext7Emulator, type Context7Emulator } from '../../service/context7/emulator';
import { generateScopeIdSync } from '../../service/domain/scope-id';
import { createTestDatabase, type TestDatabase } from './support/postgres';
import { TEST_REDIS_URL, connectRedis, deleteKeys, randomPrefix } from './support/redis';
import { killAll, startServiceInstance, waitFor, type ServiceInstance } from './support/service-process';

const API_KEY = 'c7-generations-key-0123456789';
const COMMIT = '3f9e2c1ab4d5e6f708192a3b4c5d6e7f80912a3b';
const CALLER_KEY = 'generations-caller-key-0123456789abcdef';
let db: TestDatabase;
let emulator: Context7Emulator;
let admin: Redis;
let prefix: string;
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'deploy-gen-'));

interface Instance extends ServiceInstance {
  id: string;
}

/** One instance of a deploy, as Render starts it: the commit and instance id in its environment. */
async function startInstance(id: string, flag: boolean, extra: Record<string, string> = {}): Promise<Instance> {
  const env = {
    PATH: process.env.PATH ?? '',
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'info',
    DATA_DIR: dataDir,
    DATABASE_URL: db.url,
    REDIS_URL: TEST_REDIS_URL,
    REDIS_KEY_PREFIX: prefix.replace(/:$/, ''),
    ENABLE_CONTEXT7_MEMORY: String(flag),
    CONTEXT7_API_KEY: API_KEY,
    CONTEXT7_BASE_URL: emulator.url,
    RENDER_GIT_COMMIT: COMMIT,
    RENDER_INSTANCE_ID: id,
    MEMORY_API_KEYS: `tests:${CALLER_KEY}`,
    OUTBOX_DRAIN_INTERVAL_MS: '3600000',
    FLEET_METRICS_FLUSH_MS: '100',
    FLEET_METRICS_TIMEOUT_MS: '2000',
    ...extra,
  };
  return { id, ...(await startServiceInstance(id, env)) };
}

async function stop(...instances: Instance[]): Promise<void> {
  for (const instance of instances) instance.child.kill('SIGTERM');
  await Promise.all(instances.map((instance) => instance.exited));
}

async function metrics(instance: Instance): Promise<any> {
  const response = await fetch(`${instance.url}/api/metrics/memory`);
  expect(response.status).toBe(200);
  return response.json();
}

/** The fleet view once every instance of the deploy has flushed at least once (each flushes every 100 ms). */
async function fleetOf(instance: Instance, ids: string[]): Promise<any> {
  let last: any;
  await waitFor(`the fleet view of ${ids.join(' and ')}`, async () => {
    last = await metrics(instance);
    return JSON.stringify(last.instancesSeen) === JSON.stringify(ids);
  }, 10_000);
  return last;
}

/** Snippet reads that miss every cache, so each is a Context7 call while the flag is on. */
async function reads(instance: Instance, count: number, label: string): Promise<void> {
  const scopeId = generateScopeIdSync({ locationId: 'gen', agentId: 'agent-1', promptText: 'You are a test agent' });
  for (let i = 0; i < count; i += 1) {
    const response = await fetch(`${instance.url}/api/memory/snippets`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${CALLER_KEY}` },
      body: JSON.stringify({ scopeId, query: `${label} question ${i}` }),
    });
    expect(response.status).toBe(200);
  }
}

beforeAll(async () => {
  db = await createTestDatabase('deploygen');
  emulator = await startContext7Emulator({ apiKey: API_KEY, seed: 3 });
  admin = connectRedis();
  prefix = randomPrefix('deploygen');
});

afterAll(async () => {
  killAll();
  await emulator?.close();
  await deleteKeys(admin, prefix);
  admin.disconnect();
  await db?.drop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('fleet figures per deploy, not per commit', () => {
  it('a rollback and a retry of the same commit start from zero; overlapping deploys keep apart; a crash-restart rejoins', async () => {
    // 1. The rollout: flag on, Context7 failing.
    emulator.setFaults({ errorRate: 1 });
    const rollout = [await startInstance('i-a1', true), await startInstance('i-a2', true)];
    await reads(rollout[0]!, 6, 'rollout-a1');
    await reads(rollout[1]!, 6, 'rollout-a2');
    const failing = await fleetOf(rollout[0]!, ['i-a1', 'i-a2']);
    expect(failing).toMatchObject({ scope: 'fleet', deployId: COMMIT, instancesSeen: ['i-a1', 'i-a2'] });
    expect(failing.totals.context7Errors).toBeGreaterThan(0);
    expect(failing.errorRate).toBe(1);

    // 2. The rollback: the same commit with the flag off, started while the failing deploy still runs (Render
    //    starts the new instances before it stops the old ones).
    const rollback = [await startInstance('i-b1', false), await startInstance('i-b2', false)];
    const afterRollback = await fleetOf(rollback[0]!, ['i-b1', 'i-b2']);
    expect(afterRollback).toMatchObject({ scope: 'fleet', deployId: COMMIT, errorRate: 0, context7Requests: 0, instancesSeen: ['i-b1', 'i-b2'] });
    expect(afterRollback.totals.context7Errors).toBe(0);
    expect(afterRollback.deployGeneration).not.toBe(failing.deployGeneration);
    // The old side, still running through the overlap, keeps its own figures.
    expect(await fleetOf(rollout[1]!, ['i-a1', 'i-a2'])).toMatchObject({ deployGeneration: failing.deployGeneration, instancesSeen: ['i-a1', 'i-a2'] });
    await stop(...rollout);

    // 3. The retry once the incident is fixed: flag on again, the same commit, the same configuration as step 1.
    emulator.resetFaults();
    const retry = [await startInstance('i-c1', true), await startInstance('i-c2', true)];
    const beforeTraffic = await fleetOf(retry[0]!, ['i-c1', 'i-c2']);
    expect(beforeTraffic).toMatchObject({ errorRate: 0, context7Requests: 0, instancesSeen: ['i-c1', 'i-c2'] });
    expect(beforeTraffic.totals.context7Errors).toBe(0);
    expect([failing.deployGeneration, afterRollback.deployGeneration]).not.toContain(beforeTraffic.deployGeneration);
    expect(Date.parse(beforeTraffic.deployStartedAt)).toBeGreaterThan(Date.parse(afterRollback.deployStartedAt));
    await stop(...rollback);
    await reads(retry[0]!, 5, 'retry-c1');
    await reads(retry[1]!, 5, 'retry-c2');
    // Each instance flushes its counters every 100 ms: the fleet view catches up with both instances' reads.
    let healthy: any;
    await waitFor('both instances\' reads in the fleet view', async () => {
      healthy = await metrics(retry[1]!);
      return healthy.context7Requests >= 10;
    }, 10_000);
    expect(healthy).toMatchObject({ errorRate: 0, deployGeneration: beforeTraffic.deployGeneration });

    // 4. A crash-restart of one instance within the deploy: it rejoins, and its peer's counts are kept.
    retry[1]!.child.kill('SIGKILL');
    await retry[1]!.exited;
    const restarted = await startInstance('i-c2', true);
    const afterCrash = await fleetOf(restarted, ['i-c1', 'i-c2']);
    expect(afterCrash.deployGeneration).toBe(beforeTraffic.deployGeneration);
    expect(afterCrash.context7Requests).toBeGreaterThanOrEqual(healthy.context7Requests);
    await stop(retry[0]!, restarted);
  }, 120_000);
});
