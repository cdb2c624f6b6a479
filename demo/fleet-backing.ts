/**
 * The fleet rehearsal's data plane: per environment a PostgreSQL database and a Redis key prefix on the machine's
 * servers (loopback only), each named with a random suffix so parallel runs never share, and removed afterwards.
 */
import { randomBytes } from 'node:crypto';
// ioredis and pg are required on use, not on import: only --fleet needs them (~0.2 s CPU of every demo start).
import type Redis from 'ioredis';
import type { Client } from 'pg';

export const FLEET_PG_ADMIN_URL = process.env.DEMO_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const FLEET_REDIS_URL = process.env.DEMO_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface FleetBacking {
  stack: string;
  databaseName: string;
  databaseUrl: string;
  redisUrl: string;
  /** ends with ':'; every key the services write starts with it */
  redisKeyPrefix: string;
  /** Drops the database and deletes the prefix's keys; safe to call twice. */
  remove(): Promise<void>;
}

const CONNECT_TIMEOUT_MS = 5_000;

async function withPostgres<T>(url: string, work: (client: Client) => Promise<T>): Promise<T> {
  const { Client } = require('pg') as typeof import('pg');
  const client = new Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, statement_timeout: 30_000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function connectRedis(): Redis {
  const { default: Redis } = require('ioredis') as typeof import('ioredis');
  return new Redis(FLEET_REDIS_URL, { connectTimeout: CONNECT_TIMEOUT_MS, maxRetriesPerRequest: 2, lazyConnect: false });
}

/** Creates the environment's database and chooses its key prefix. */
export async function provisionFleetBacking(stack: string, runSuffix: string): Promise<FleetBacking> {
  // Generated from [a-z0-9_] only, so interpolating it into SQL is safe.
  const databaseName = `demo_fleet_${stack}_${runSuffix}`.replace(/[^a-z0-9_]/g, '_');
  await withPostgres(FLEET_PG_ADMIN_URL, (c) => c.query(`CREATE DATABASE ${databaseName}`)).catch((error: Error) => {
    throw new Error(`--fleet needs PostgreSQL on ${new URL(FLEET_PG_ADMIN_URL).host} (user postgres; ./scripts/test starts one): ${error.message}`);
  });
  // Fail before anything starts, not at the first service's Redis connection.
  await pingRedis().catch(async (error: Error) => {
    await withPostgres(FLEET_PG_ADMIN_URL, (c) => c.query(`DROP DATABASE IF EXISTS ${databaseName} WITH (FORCE)`)).catch(() => undefined);
    throw new Error(`--fleet needs Redis on ${FLEET_REDIS_URL} (./scripts/test starts one): ${error.message}`);
  });
  const url = new URL(FLEET_PG_ADMIN_URL);
  url.pathname = `/${databaseName}`;
  const redisKeyPrefix = `demo:fleet:${runSuffix}:${stack}:`;
  let removed: Promise<void> | undefined;
  return {
    stack,
    databaseName,
    databaseUrl: url.toString(),
    redisUrl: FLEET_REDIS_URL,
    redisKeyPrefix,
    remove() {
      removed ??= (async () => {
        const failures: string[] = [];
        await withPostgres(FLEET_PG_ADMIN_URL, (c) => c.query(`DROP DATABASE IF EXISTS ${databaseName} WITH (FORCE)`)).catch((e: Error) =>
          failures.push(`database ${databaseName}: ${e.message}`),
        );
        await deleteRedisKeys(redisKeyPrefix).catch((e: Error) => failures.push(`Redis keys ${redisKeyPrefix}*: ${e.message}`));
        if (failures.length > 0) throw new Error(failures.join('; '));
      })();
      return removed;
    },
  };
}

export function randomRunSuffix(): string {
  return randomBytes(4).toString('hex');
}

async function pingRedis(): Promise<void> {
  const redis = connectRedis();
  try {
    await redis.ping();
  } finally {
    redis.disconnect();
  }
}

export async function deleteRedisKeys(prefix: string): Promise<number> {
  const redis = connectRedis();
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) deleted += await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return deleted;
}

/** How many Redis keys start with `prefix` (after cleanup: 0). */
export async function countRedisKeys(prefix: string): Promise<number> {
  const redis = connectRedis();
  let count = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      count += keys.length;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return count;
}

/** Which of `ids` the environment's `patterns` table holds: read straight from PostgreSQL, not via the service. */
export async function patternIdsInDatabase(databaseUrl: string, ids: readonly string[]): Promise<Set<string>> {
  return withPostgres(databaseUrl, async (c) => {
    const { rows } = await c.query<{ id: string }>('SELECT id FROM patterns WHERE id = ANY($1::text[])', [ids]);
    return new Set(rows.map((r) => r.id));
  });
}

/** Whether a database of that name exists (after cleanup: false). */
export async function databaseExists(name: string): Promise<boolean> {
  return withPostgres(FLEET_PG_ADMIN_URL, async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1);
}
