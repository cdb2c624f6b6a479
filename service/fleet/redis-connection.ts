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
  /** Connection errors; ioredis's messages name host and port, never the URL's password. */
  onError?: (error: Error) => void;
}

/** Connects in the background; commands fail at once until it is ready. */
export function createRedisClient(url: string, options: RedisConnectionOptions): Redis {
  const redis = new Redis(url, {
    connectionName: options.name,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: options.commandTimeoutMs ?? 1_000,
    connectTimeout: 5_000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  });
  // Without a listener ioredis prints every reconnect failure to stderr.
  redis.on('error', (error: Error) => options.onError?.(error));
  return redis;
}

/**
 * A connection for SUBSCRIBE only (a subscribed connection cannot send other commands). Its commands queue
 * while disconnected, so ioredis can re-subscribe on its own after a reconnect.
 */
export function createSubscriberClient(url: string, options: RedisConnectionOptions): Redis {
  const subscriber = new Redis(url, {
    connectionName: options.name,
    enableOfflineQueue: true,
    maxRetriesPerRequest: null,
    connectTimeout: 5_000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  });
  subscriber.on('error', (error: Error) => options.onError?.(error));
  return subscriber;
}

/** Resolves when the client is ready, or rejects after `timeoutMs`; the client keeps trying either way. */
export function whenRedisReady(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      reject(new Error(`Redis not ready after ${timeoutMs}ms (status ${redis.status})`));
    }, timeoutMs);
    timer.unref();
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    redis.once('ready', onReady);
  });
}

/** A ready command connection, or an error naming the connection (for the CLI and tests). */
export async function connectRedis(url: string, options: RedisConnectionOptions): Promise<Redis> {
  const redis = createRedisClient(url, options);
  try {
    await whenRedisReady(redis, 5_000);
  } catch (error) {
    redis.disconnect();
    throw new Error(`Redis unreachable (${options.name}): ${(error as Error).message}`);
  }
  return redis;
}

/** A second connection to the same server, for subscribing. */
export async function duplicateForSubscribe(redis: Redis, options: RedisConnectionOptions): Promise<Redis> {
  const subscriber = redis.duplicate({
    connectionName: options.name,
    lazyConnect: true,
    enableOfflineQueue: true,
    maxRetriesPerRequest: null,
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
