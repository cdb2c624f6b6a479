/** A random key prefix per test file on the machine's Redis, removed afterwards. */
import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { testRunId } from '../../support/run-id';

export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** `t:<run id>:<label>:<random>:`: the run id (test/support/run-id.ts) lets the suite's end check find leftovers of its own run only. */
export function randomPrefix(label: string, runId = testRunId()): string {
  return `t:${runId}:${label}:${randomBytes(6).toString('hex')}:`;
}

export function connectRedis(): Redis {
  return new Redis(TEST_REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 2 });
}

export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  // Without the trailing colon too: several tests give services the prefix without it (REDIS_KEY_PREFIX=t:...:<hex>,
  // keys <hex>fleet:...), and the random part still makes it this test's own.
  const glob = `${prefix.replace(/:$/, '')}*`;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', glob, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

export async function keysUnder(redis: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}
