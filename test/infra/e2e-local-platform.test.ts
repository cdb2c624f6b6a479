/**
 * End to end on loopback: the providers bring up the real memory service the way the stacks declare it
 * (start command, pre-deploy migration, /readyz health check, env vars wired from the Postgres and
 * Key Value resources) on the Render emulator's local platform, against the real PostgreSQL and Redis;
 * then the flag change a rollback makes redeploys it with Context7 off.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RenderEmulator, startRenderEmulator } from '../../render/emulator';
import { SERVICE_RUNTIME } from '../../infra/service-runtime';
import type { KeyValueOutputs, PostgresOutputs } from '../../infra/providers/datastores';
import { createProvider } from '../../infra/providers/index';
import type { WebServiceInputs, WebServiceOutputs } from '../../infra/providers/web-service';
import { testDatabaseName } from '../data-plane/support/postgres';
import { connectRedis, deleteKeys, keysUnder, randomPrefix } from '../data-plane/support/redis';

const REPO = resolve(__dirname, '..', '..');
const API_KEY = 'rnd_e2e_key_7c6b5a';
const ADMIN = 'postgresql://postgres@127.0.0.1:5432/postgres';
const database = testDatabaseName('infra_e2e');
// The service's own Redis prefix (it would write memsvc:* with a 7-day TTL otherwise), removed afterwards.
const redisPrefix = randomPrefix('infra_e2e');
const options = { pollIntervalMs: 200, progress: () => undefined };

let emulator: RenderEmulator;
let dataDir: string;

async function admin<T>(work: (client: Client) => Promise<T>, url = ADMIN): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function configured(kind: 'webService' | 'postgres' | 'keyValue') {
  const provider = createProvider(kind, options);
  const values: Record<string, string> = { 'memory-rollout:renderApiKey': API_KEY, 'memory-rollout:renderApiUrl': emulator.url };
  await provider.configure!({ config: { get: (k: string) => values[k], require: (k: string) => values[k] ?? '' } });
  return provider;
}

async function getJson(url: string): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  expect(res.status, url).toBe(200);
  return res.json();
}

beforeAll(async () => {
  await admin((c) => c.query(`CREATE DATABASE ${database}`));
  dataDir = mkdtempSync(join(tmpdir(), 'infra-e2e-'));
  emulator = await startRenderEmulator({
    port: 0,
    apiKey: API_KEY,
    deployStepMs: 50,
    localPlatform: { source: 'working-tree', cwd: REPO, env: { DATA_DIR: dataDir }, readyTimeoutMs: 90_000 },
    databases: { postgresUrl: `postgresql://postgres@127.0.0.1:5432/${database}`, keyValueUrl: 'redis://127.0.0.1:6379' },
  });
}, 60_000);

afterAll(async () => {
  await emulator?.close();
  await admin(async (c) => {
    await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [database]);
    await c.query(`DROP DATABASE IF EXISTS ${database}`);
  });
  const redis = connectRedis();
  try {
    await deleteKeys(redis, redisPrefix);
  } finally {
    redis.disconnect();
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}, 60_000);

describe('the stack on the emulator local platform', () => {
  it('deploys the real service live, wired to its datastores, and a flag change redeploys it', async () => {
    const postgres = await configured('postgres');
    const keyValue = await configured('keyValue');
    const web = await configured('webService');

    const pg = await postgres.create({
      name: 'memory-rollout-e2e-db', region: 'oregon', plan: 'basic_256mb', version: '16',
      databaseName: 'memory', databaseUser: 'memory', highAvailability: false, availableTimeoutMinutes: 1,
    });
    const kv = await keyValue.create({ name: 'memory-rollout-e2e-kv', region: 'oregon', plan: 'starter', maxmemoryPolicy: 'noeviction', availableTimeoutMinutes: 1 });

    const inputs: WebServiceInputs = {
      name: 'memory-rollout-e2e',
      region: 'oregon',
      plan: 'starter',
      instances: 1,
      runtime: SERVICE_RUNTIME.runtime,
      repo: 'https://github.com/acme/memory',
      branch: 'main',
      autoDeploy: true,
      buildCommand: SERVICE_RUNTIME.buildCommand, // the local platform runs it, as Render does: dist/ is built
      startCommand: SERVICE_RUNTIME.startCommand,
      healthCheckPath: SERVICE_RUNTIME.healthCheckPath,
      preDeployCommand: SERVICE_RUNTIME.preDeployCommand,
      maxShutdownDelaySeconds: 30,
      envVars: {
        NODE_ENV: 'production',
        PORT: SERVICE_RUNTIME.port,
        ENABLE_CONTEXT7_MEMORY: 'true',
        CONTEXT7_BASE_URL: 'http://127.0.0.1:9/api',
        CONTEXT7_API_KEY: 'c7-e2e-key',
        ADMIN_TOKEN: 'admin-e2e-token',
        DATABASE_URL: (pg.outs as PostgresOutputs).internalConnectionString,
        REDIS_URL: (kv.outs as KeyValueOutputs).internalConnectionString,
        REDIS_KEY_PREFIX: redisPrefix,
      },
      waitForLive: true,
      deployTimeoutMinutes: 3,
    };
    const created = await web.create(inputs);
    const service = created.outs as WebServiceOutputs;
    expect(service.lastDeployStatus).toBe('live');
    expect(service.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    // The pre-deploy migration ran against the database the Postgres resource handed over.
    const tables = await admin(
      (c) => c.query<{ count: string }>("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"),
      `postgresql://postgres@127.0.0.1:5432/${database}`,
    );
    expect(Number(tables.rows[0]!.count)).toBeGreaterThan(0);
    expect(await getJson(`${service.url}/api/config`)).toMatchObject({ enableContext7Memory: true });
    // Its fleet metrics land under this test's prefix (removed in afterAll), not the shared memsvc:*.
    const redis = connectRedis();
    try {
      const deadline = Date.now() + 60_000;
      while ((await keysUnder(redis, redisPrefix)).length === 0) {
        if (Date.now() > deadline) throw new Error(`the service wrote no key under ${redisPrefix} within 60 s`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    } finally {
      redis.disconnect();
    }

    // The rollback's flag change, applied the way `pulumi up` applies the latched stack file.
    const flagOff = { ...inputs, envVars: { ...inputs.envVars, ENABLE_CONTEXT7_MEMORY: 'false' } };
    expect(await web.diff!(created.id, service, flagOff)).toMatchObject({ changes: true, replaces: [] });
    const { outs } = await web.update!(created.id, service, flagOff);
    expect(outs).toMatchObject({ lastDeployStatus: 'live', url: service.url });
    expect(await getJson(`${service.url}/api/config`)).toMatchObject({ enableContext7Memory: false });
    expect(await getJson(`${service.url}/api/memory/health`)).toEqual({ available: false, reason: 'Context7 disabled in environment' });

    await web.delete!(created.id, outs as WebServiceOutputs);
    await postgres.delete!(pg.id, pg.outs as PostgresOutputs);
    await keyValue.delete!(kv.id, kv.outs as KeyValueOutputs);
    expect(emulator.state().services).toEqual([]);
  }, 240_000);
});
