/**
 * Redis (Render Key Value) connections for the data plane. Commands fail fast while Redis is unreachable
 * (no offline queue, a command timeout) so a Redis outage degrades the cache and fleet metrics instead of
 * stalling requests; ioredis keeps reconnecting in the background.
 */
import Redis from 'ioredis';

export interface RedisConnectionOptions {
  /** Shows in CLIENT LIST, e.g. "memory-cache". */
  name: string;
  commandTimeoutMs?: number;
  /** Connection errors; never includes the URL's password. */
  onError?: (error: Error) => void;
}

export async function connectRedis(url: string, options: RedisConnectionOptions): Promise<Redis> {
  const redis = new Redis(url, {
    connectionName: options.name,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: options.commandTimeoutMs ?? 1_000,
    connectTimeout: 5_000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  });
  // Without a listener ioredis prints every reconnect failure to stderr.
  redis.on('error', (error: Error) => options.onError?.(error));
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new Error(`Redis unreachable (${options.name}): ${(error as Error).message}`);
  }
  return redis;
}

/** A subscriber needs its own connection: a subscribed connection cannot send other commands. */
export async function duplicateForSubscribe(redis: Redis, options: RedisConnectionOptions): Promise<Redis> {
  const subscriber = redis.duplicate({
    connectionName: options.name,
    lazyConnect: true,
    // Subscribing must queue while reconnecting so ioredis can re-subscribe on its own.
    enableOfflineQueue: true,
    commandTimeout: undefined,
  });
  subscriber.on('error', (error: Error) => options.onError?.(error));
  await subscriber.connect();
  return subscriber;
}

/** QUIT, or drop the socket if Redis does not answer in time. */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'end') return;
  try {
    await Promise.race([redis.quit(), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
  } catch {
    // already closing or unreachable
  } finally {
    redis.disconnect();
  }
}
