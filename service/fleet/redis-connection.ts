/**
 * Redis (Render Key Value) connections for the data plane. Commands fail fast while Redis is unreachable
 * (no offline queue, a command timeout) so a Redis outage degrades the cache and fleet metrics instead of
 * stalling requests; ioredis keeps reconnecting in the background.
 *
 * A Redis that hangs (the connection stays up, nothing comes back) is the harder case: every command would wait
 * out its timeout, one after another. So a connection that stays silent for a command timeout while replies are
 * due is dropped (ioredis `socketTimeout`), which fails every command still on it at once
 * (`maxRetriesPerRequest: 0`); until a reconnect is answered, commands fail at once. A request therefore waits at
 * most one command timeout for Redis, however many commands it sends.
 */
import type Redis from 'ioredis';

/** ioredis is required when a connection is made, not on import: the canary and a service without REDIS_URL never load it. */
function loadRedis(): typeof Redis {
  return (require('ioredis') as typeof import('ioredis')).default;
}

/** The most one Redis command may add to a request (REDIS_COMMAND_TIMEOUT_MS). */
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 250;

/**
 * How often the subscriber connection proves it is alive (it otherwise only listens, and a hang is silent), and
 * how long a PING may go unanswered. No request waits on it, so it can be lenient: a hang is noticed within 2 s.
 */
const SUBSCRIBER_HEARTBEAT_MS = 1_000;

export interface RedisConnectionOptions {
  /** Shows in CLIENT LIST, e.g. "memory-cache". */
  name: string;
  /** Per command (ioredis `commandTimeout`), and the silence after which the connection is dropped. Not for subscribers. */
  commandTimeoutMs?: number;
  /** Connection errors; ioredis's messages name host and port, never the URL's password. */
  onError?: (error: Error) => void;
}

const reconnectDelayMs = (attempt: number) => Math.min(attempt * 200, 2_000);

/** Connects in the background; commands fail at once until it is ready. */
export function createRedisClient(url: string, options: RedisConnectionOptions): Redis {
  const commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_REDIS_COMMAND_TIMEOUT_MS;
  const redis = new (loadRedis())(url, {
    connectionName: options.name,
    enableOfflineQueue: false,
    commandTimeout: commandTimeoutMs,
    // No byte back for as long as a command may take, while one is due: the connection is hung. Dropping it
    // fails the commands on it now rather than after a reconnect (no retry: a stale rate-limit hit or metrics
    // write is worth nothing later), including one a caller sent just as its previous command timed out.
    socketTimeout: commandTimeoutMs,
    maxRetriesPerRequest: 0,
    connectTimeout: 5_000,
    retryStrategy: reconnectDelayMs,
  });
  // Without a listener ioredis prints every reconnect failure to stderr.
  redis.on('error', (error: Error) => options.onError?.(error));
  return redis;
}

/**
 * A connection for SUBSCRIBE only (a subscribed connection cannot send other commands). Its commands queue
 * while disconnected, so ioredis can re-subscribe on its own after a reconnect. It PINGs every second so that a
 * hang drops it (and the cache tier stops trusting its local copy) just as a refused connection does.
 */
export function createSubscriberClient(url: string, options: RedisConnectionOptions): Redis {
  const subscriber = new (loadRedis())(url, {
    connectionName: options.name,
    enableOfflineQueue: true,
    maxRetriesPerRequest: null,
    socketTimeout: SUBSCRIBER_HEARTBEAT_MS,
    connectTimeout: 5_000,
    retryStrategy: reconnectDelayMs,
  });
  subscriber.on('error', (error: Error) => options.onError?.(error));
  keepProvingAlive(subscriber);
  return subscriber;
}

/** PING while ready (never queued offline); a PING left unanswered trips the socket timeout. */
function keepProvingAlive(redis: Redis): void {
  const heartbeat = setInterval(() => {
    if (redis.status === 'ready') redis.ping().catch(() => undefined);
  }, SUBSCRIBER_HEARTBEAT_MS);
  heartbeat.unref();
  redis.once('end', () => clearInterval(heartbeat));
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
    socketTimeout: SUBSCRIBER_HEARTBEAT_MS,
    autoResendUnfulfilledCommands: true,
  });
  subscriber.on('error', (error: Error) => options.onError?.(error));
  keepProvingAlive(subscriber);
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

/** What `withinBudget` rejects with when the budget runs out first. */
export class BudgetExceededError extends Error {
  constructor(what: string, budgetMs: number) {
    super(`${what} did not finish within ${budgetMs}ms`);
    this.name = 'BudgetExceededError';
  }
}

/**
 * For work of several Redis round trips that must answer within one budget as a whole (each command alone is
 * bounded by the command timeout). `work` gets a signal that aborts when the budget is spent, to skip its
 * remaining steps; what is already sent finishes (or times out) in the background.
 */
export async function withinBudget<T>(what: string, budgetMs: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const budget = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      budget.abort();
      reject(new BudgetExceededError(what, budgetMs));
    }, budgetMs);
  });
  const running = work(budget.signal);
  running.catch(() => undefined); // settles after the budget: nobody is waiting any more
  try {
    return await Promise.race([running, expired]);
  } finally {
    clearTimeout(timer);
  }
}
