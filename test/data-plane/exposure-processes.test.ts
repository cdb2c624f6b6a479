/**
 * Runtime exposure across two real compiled service processes sharing PostgreSQL: a change taken by instance A
 * (PUT /api/admin/exposure) is measured until instance B's GET shows it, for a step to 25% and for the kill
 * switch (0%), once with Redis pub/sub and once with polling only (no REDIS_URL).
 *
 * The assertion is the stated bound only (GET's propagation.boundMs: EXPOSURE_POLL_INTERVAL_MS plus one store
 * call's deadlines), a contract that holds on a loaded machine; the measured times are printed, not asserted.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Redis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContext7Emulator, type Context7Emulator } from '../../service/context7/emulator';
import { exposureStateSchema, type ExposureState } from '../../service/contracts/http';
import { exposureBucket } from '../../service/domain/exposure';
import { generateScopeIdSync } from '../../service/domain/scope-id';
import { createTestDatabase, type TestDatabase } from './support/postgres';
import { TEST_REDIS_URL, connectRedis, deleteKeys, randomPrefix } from './support/redis';
import { killAll, startServiceInstance, waitFor, type ServiceInstance } from './support/service-process';

const API_KEY = 'c7-exposure-proc-key-0123456789';
const ADMIN_TOKEN = 'exposure-admin-token-0123456789';
const CALLER_KEY = 'exposure-caller-key-0123456789abcdef';
// Short, so the polling test waits a fraction of a second per change (the bound asserted scales with it).
const POLL_INTERVAL_MS = 250;
/**
 * Each test starts compiled service processes one after another (two in the first, four in the polling test), each
 * taking seconds to start and migrate on a loaded 2-core machine, up to 30 s and more at load 30: the tests took 26 s
 * and over 30 s at load 20, while the propagation measured took under a second. The bounds under test are asserted
 * on their own; this only frames them.
 */
const PROCESS_TEST_TIMEOUT_MS = 300_000;
let emulator: Context7Emulator;
let admin: Redis;
let prefix: string;
const databases: TestDatabase[] = [];
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'exposure-proc-'));

function env(db: TestDatabase, withRedis: boolean, instanceId: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'info',
    DATA_DIR: dataDir,
    DATABASE_URL: db.url,
    ...(withRedis ? { REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix } : {}),
    ENABLE_CONTEXT7_MEMORY: 'true',
    CONTEXT7_API_KEY: API_KEY,
    CONTEXT7_BASE_URL: emulator.url,
    ADMIN_TOKEN,
    MEMORY_API_KEYS: `exposure-test:${CALLER_KEY}`,
    DEPLOY_ID: 'deploy-exposure',
    RENDER_INSTANCE_ID: instanceId,
    OUTBOX_DRAIN_INTERVAL_MS: '3600000',
    EXPOSURE_POLL_INTERVAL_MS: String(POLL_INTERVAL_MS),
  };
}

async function adminRequest(url: string, method: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${url}/api/admin/exposure`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, body: await response.json() };
}

async function stateOf(url: string): Promise<ExposureState> {
  const response = await adminRequest(url, 'GET');
  expect(response.status).toBe(200);
  return exposureStateSchema.parse(response.body);
}

/** PUTs on A, then polls B's GET as fast as it answers: ms from A's answer until B applies that version. */
async function measurePropagation(a: ServiceInstance, b: ServiceInstance, percent: number, reason: string): Promise<{ ms: number; boundMs: number }> {
  const put = await adminRequest(a.url, 'PUT', { percent, actor: 'exposure-test', reason });
  expect(put.status).toBe(200);
  const version = exposureStateSchema.parse(put.body).version;
  const appliedOnA = Date.now();
  let boundMs = 0;
  await waitFor(
    `instance B to apply version ${version}`,
    async () => {
      const state = await stateOf(b.url);
      boundMs = state.propagation.boundMs;
      return state.version >= version && state.percent === percent;
    },
    60_000,
  );
  return { ms: Date.now() - appliedOnA, boundMs };
}

async function readSnippets(url: string, scopeId: string): Promise<{ source: string }> {
  const response = await fetch(`${url}/api/memory/snippets`, {
    method: 'POST',
    headers: { authorization: `Bearer ${CALLER_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ scopeId }),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as { source: string };
}

function exposedScopeAt25(): string {
  for (let i = 0; ; i += 1) {
    const scopeId = generateScopeIdSync({ locationId: 'loc-exposure-proc', agentId: `agent-${i}`, promptText: 'prompt' });
    if (exposureBucket(scopeId) < 2_500) return scopeId;
  }
}

beforeAll(async () => {
  emulator = await startContext7Emulator({ apiKey: API_KEY, seed: 11 });
  admin = connectRedis();
  prefix = randomPrefix('exposureproc');
});

afterAll(async () => {
  killAll();
  await emulator?.close();
  await deleteKeys(admin, prefix);
  admin.disconnect();
  await Promise.all(databases.map((db) => db.drop()));
  fs.rmSync(dataDir, { recursive: true, force: true });
});

async function twoInstances(label: string, withRedis: boolean): Promise<[ServiceInstance, ServiceInstance]> {
  const db = await createTestDatabase(label);
  databases.push(db);
  // One after the other: the first migrates, the second finds the schema ready.
  const a = await startServiceInstance(`${label}-a`, env(db, withRedis, `${label}-a`));
  const b = await startServiceInstance(`${label}-b`, env(db, withRedis, `${label}-b`));
  return [a, b];
}

async function stop(instance: ServiceInstance): Promise<void> {
  instance.child.kill('SIGTERM');
  expect(await instance.exited).toBe(0);
}

describe('exposure propagation between two service processes', () => {
  it('with Redis pub/sub: a step to 25% and the kill switch reach the other instance within the stated bound', async () => {
    const [a, b] = await twoInstances('exposure_redis', true);
    expect((await stateOf(b.url)).propagation.via).toBe('redis');

    const step = await measurePropagation(a, b, 25, 'step to 25');
    const scopeId = exposedScopeAt25();
    expect(['context7', 'hybrid']).toContain((await readSnippets(b.url, scopeId)).source);
    const kill = await measurePropagation(a, b, 0, 'kill switch');
    console.log(`exposure propagation via Redis pub/sub: 25% in ${step.ms} ms, kill switch in ${kill.ms} ms (stated bound ${kill.boundMs} ms)`);
    expect(step.ms).toBeLessThanOrEqual(step.boundMs);
    expect(kill.ms).toBeLessThanOrEqual(kill.boundMs);

    // The kill switch acts on B: the exposed scope's read stays local, Context7 is not asked.
    const searchesBefore = emulator.stats().requests.searchSnippets;
    expect((await readSnippets(b.url, scopeId)).source).toBe('database');
    expect(emulator.stats().requests.searchSnippets).toBe(searchesBefore);

    // Each live instance lists what it applied: the kill switch is done when all show version 2 at 0%.
    const instances = await waitFor('both instances listed at the kill switch', async () => {
      const listed = (await stateOf(a.url)).instances ?? [];
      return listed.length === 2 && listed.every((entry) => entry.version === 2 && entry.percent === 0) ? listed : null;
    });
    expect(instances.map((entry) => entry.instanceId)).toEqual(['exposure_redis-a', 'exposure_redis-b']);
    await Promise.all([stop(a), stop(b)]);
  }, PROCESS_TEST_TIMEOUT_MS);

  it('polling only (PostgreSQL, no Redis): the same changes reach the other instance within the poll interval plus the store deadline; restarts and a lower ceiling', async () => {
    const [a, b] = await twoInstances('exposure_poll', false);
    const state = await stateOf(b.url);
    expect(state.propagation.via).toBe('polling');
    expect(state.instances).toBeUndefined();

    const step = await measurePropagation(a, b, 25, 'step to 25');
    const kill = await measurePropagation(a, b, 0, 'kill switch');
    console.log(`exposure propagation by polling every ${POLL_INTERVAL_MS} ms: 25% in ${step.ms} ms, kill switch in ${kill.ms} ms (stated bound ${kill.boundMs} ms)`);
    expect(step.boundMs).toBe(POLL_INTERVAL_MS + 2_000 + 5_000);
    expect(step.ms).toBeLessThanOrEqual(step.boundMs);
    expect(kill.ms).toBeLessThanOrEqual(kill.boundMs);

    // Restart: the value survives in the store; B comes back at 0% with the same version.
    await stop(b);
    const db = databases[databases.length - 1]!;
    const restarted = await startServiceInstance('exposure_poll-b2', env(db, false, 'exposure_poll-b2'));
    expect(await stateOf(restarted.url)).toMatchObject({ percent: 0, runtimePercent: 0, version: 2, updatedBy: 'exposure-test' });
    await stop(restarted);

    // Redeploy with a lower ceiling: the stored 25% is stored clamped to 20% by `deploy` (audited), and the
    // instance still running the old ceiling applies the clamped value too.
    expect((await adminRequest(a.url, 'PUT', { percent: 25, actor: 'exposure-test' })).status).toBe(200);
    const lowered = await startServiceInstance('exposure_poll-c', { ...env(db, false, 'exposure_poll-c'), CONTEXT7_EXPOSURE_PERCENT: '20' });
    expect(await stateOf(lowered.url)).toMatchObject({ percent: 20, runtimePercent: 20, ceiling: 20, version: 4, updatedBy: 'deploy' });
    const audit = await fetch(`${lowered.url}/api/admin/exposure/audit?limit=2`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(((await audit.json()) as { entries: unknown[] }).entries).toEqual([
      expect.objectContaining({ version: 4, actor: 'deploy', fromPercent: 25, toPercent: 20, ceiling: 20, instanceId: 'exposure_poll-c' }),
      expect.objectContaining({ version: 3, actor: 'exposure-test', fromPercent: 0, toPercent: 25, ceiling: 100, instanceId: 'exposure_poll-a' }),
    ]);
    await waitFor('A applies the clamped value', async () => (await stateOf(a.url)).version === 4);
    expect(await stateOf(a.url)).toMatchObject({ percent: 20, ceiling: 100 });
    await Promise.all([stop(a), stop(lowered)]);
  }, PROCESS_TEST_TIMEOUT_MS);
});
