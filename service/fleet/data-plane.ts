/**
 * The data plane for N instances, assembled from the environment: PostgreSQL store and fleet coordination when
 * DATABASE_URL is set; shared cache tier, fleet metrics and shared rate limits when REDIS_URL is set. Without
 * either, the service keeps its embedded defaults (SQLite, in-process LRU, per-instance metrics).
 * Construction never waits on the network: Redis connects in the background, and until it is ready every
 * Redis-backed part degrades (cache bypasses its shared tier, metrics answer per instance) instead of failing.
 */
import type Redis from 'ioredis';
import type { RequestHandler } from 'express';
import type { SnippetCache } from '../cache/cache-port';
import { RedisTieredSnippetCache } from '../cache/redis-snippet-cache';
import type { ServiceConfig } from '../config';
import { PostgresMemoryStore } from '../data-access/postgres-store';
import type { InstanceMetrics, MetricsRecorder } from '../domain/metrics';
import { describeError, type ServiceLogger } from '../logging';
import type { DataPlaneConfig } from './data-plane-config';
import { deployFingerprint, DeployGenerationRegistry } from './deploy-generation';
import { RedisFleetMetrics } from './fleet-metrics';
import { createPublicRateLimiter } from './rate-limit';
import { closeRedis, createRedisClient, createSubscriberClient, whenRedisReady } from './redis-connection';
import type { ExposureRedis } from './exposure-control';
import { createLocalCoordination, type LeaseCoordinator, type RunSlotClaimer } from './single-fire';

export interface DataPlane {
  /** PostgreSQL when DATABASE_URL is set; null means "use the embedded SQLite store". */
  readonly store: PostgresMemoryStore | null;
  /** Shared across instances with PostgreSQL; this process only otherwise. */
  readonly coordination: RunSlotClaimer & LeaseCoordinator;
  /** The in-process cache from `createLocal`, with the Redis tier behind it when REDIS_URL is set. */
  wrapCache(createLocal: () => SnippetCache): SnippetCache;
  /** Fleet-wide metrics over the instance's counters (unchanged without Redis). */
  wrapMetrics(instance: InstanceMetrics): MetricsRecorder;
  /** For /api/memory/*: shared counts with Redis, per instance without; null when RATE_LIMIT_MAX=0. */
  readonly publicRateLimiter: RequestHandler | null;
  readonly backfillWatchdogMs: number;
  /** Store deadlines at the service level (start, hybrid read): see DataPlaneConfig. */
  readonly databaseStartTimeoutMs: number;
  readonly databaseHybridReadTimeoutMs: number;
  /** Progressive exposure's propagation channel and instance list; null without REDIS_URL (polling only). */
  readonly exposureRedis: ExposureRedis | null;
  /** What runs where, for the startup log line. */
  describe(): { store: 'postgres' | 'sqlite'; cache: 'redis+lru' | 'lru'; metrics: 'fleet' | 'instance'; rateLimit: string };
  /** Waits (bounded) for Redis; logs and carries on degraded if it is not there. */
  ready(timeoutMs?: number): Promise<void>;
  /** Writes the last metrics and closes Redis. The store is closed by its owner (the service). */
  close(): Promise<void>;
}

export interface DataPlaneDeps {
  config: ServiceConfig;
  dataPlane: DataPlaneConfig;
  logger: ServiceLogger;
}

export function createDataPlane({ config, dataPlane, logger }: DataPlaneDeps): DataPlane {
  const onRedisError = (() => {
    // One line per outage, not one per reconnect attempt.
    let reported = false;
    return (connection: string) => (error: Error) => {
      if (reported) return;
      reported = true;
      logger.memoryError.warn(`Redis unreachable (${connection}): cache and metrics degrade to this instance`, describeError(error));
      setTimeout(() => (reported = false), 60_000).unref();
    };
  })();

  const store = config.databaseUrl
    ? new PostgresMemoryStore({
        connectionString: config.databaseUrl,
        maxConnections: dataPlane.databasePoolMax,
        deadlines: dataPlane.databaseDeadlines,
        onPoolError: (error) => logger.memoryError.warn('PostgreSQL connection lost (pool will reconnect)', describeError(error)),
      })
    : null;
  const coordination = store ?? createLocalCoordination();

  let redis: Redis | null = null;
  let subscriber: Redis | null = null;
  if (config.redisUrl) {
    const commandTimeoutMs = dataPlane.redisCommandTimeoutMs;
    redis = createRedisClient(config.redisUrl, { name: 'memory-service', commandTimeoutMs, onError: onRedisError('commands') });
    subscriber = createSubscriberClient(config.redisUrl, { name: 'memory-service-sub', onError: onRedisError('subscriber') });
  }
  const tiers: RedisTieredSnippetCache[] = [];
  const fleetMetrics: RedisFleetMetrics[] = [];

  const publicRateLimiter =
    dataPlane.rateLimitMax > 0
      ? createPublicRateLimiter({
          windowMs: dataPlane.rateLimitWindowMs,
          limit: dataPlane.rateLimitMax,
          redis: redis ?? undefined,
          keyPrefix: dataPlane.redisKeyPrefix,
          onProblem: (() => {
            let lastLoggedMs = 0;
            return (message: string, error: unknown) => {
              // During a Redis outage every request reports the same failure: one line a minute is enough.
              if (Date.now() - lastLoggedMs < 60_000) return;
              lastLoggedMs = Date.now();
              logger.memoryError.warn(`Rate limiter: ${message} (requests are let through)`, describeError(error));
            };
          })(),
        })
      : null;

  return {
    store,
    coordination,
    publicRateLimiter,
    backfillWatchdogMs: dataPlane.backfillWatchdogMs,
    databaseStartTimeoutMs: dataPlane.databaseStartTimeoutMs,
    databaseHybridReadTimeoutMs: dataPlane.databaseHybridReadTimeoutMs,
    exposureRedis: redis && subscriber ? { commands: redis, subscriber, keyPrefix: dataPlane.redisKeyPrefix } : null,

    wrapCache(createLocal) {
      if (!redis || !subscriber) return createLocal();
      const tier = new RedisTieredSnippetCache({
        createLocal,
        redis,
        subscriber,
        keyPrefix: dataPlane.redisKeyPrefix,
        ttlMs: config.memoryCacheTtlMs,
        instanceId: config.instanceId,
        onEvent: (event) => {
          if (event.type === 'subscription-lost') {
            logger.cache.warn('Redis invalidation channel lost: serving from the shared tier only until it returns');
          } else if (event.type === 'subscription-restored') {
            logger.cache.info('Redis invalidation channel restored', { droppedEntries: event.droppedEntries });
          }
        },
      });
      tiers.push(tier);
      return tier;
    },

    wrapMetrics(instance) {
      if (!redis) return instance;
      const fleet = new RedisFleetMetrics(instance, {
        redis,
        keyPrefix: dataPlane.redisKeyPrefix,
        flushIntervalMs: dataPlane.fleetMetricsFlushMs,
        timeoutMs: dataPlane.fleetMetricsTimeoutMs,
        generation: {
          registry: new DeployGenerationRegistry({
            redis,
            keyPrefix: dataPlane.redisKeyPrefix,
            // Peers heartbeat with every flush: several missed flushes mean the deploy is gone.
            liveWithinMs: Math.max(10_000, dataPlane.fleetMetricsFlushMs * 5),
          }),
          fingerprint: deployFingerprint({
            commit: config.deployId,
            enableContext7Memory: config.enableContext7Memory,
            context7BaseUrl: config.context7BaseUrl,
            context7TimeoutMs: config.context7TimeoutMs,
            context7HttpClient: config.context7HttpClient,
            hasContext7Key: config.context7ApiKey !== undefined,
            hasAdminToken: config.adminToken !== undefined,
            memoryCacheTtlMs: config.memoryCacheTtlMs,
            memoryCacheMaxEntries: config.memoryCacheMaxEntries,
            outboxDrainIntervalMs: config.outboxDrainIntervalMs,
            ...(dataPlane.deployNonce ? { deployNonce: dataPlane.deployNonce } : {}),
          }),
        },
      });
      fleetMetrics.push(fleet);
      return fleet;
    },

    describe() {
      return {
        store: store ? 'postgres' : 'sqlite',
        cache: redis ? 'redis+lru' : 'lru',
        metrics: redis ? 'fleet' : 'instance',
        rateLimit: publicRateLimiter
          ? `${dataPlane.rateLimitMax}/${dataPlane.rateLimitWindowMs}ms per client${redis ? ', shared' : ', per instance'}` +
            (config.loadTestToken ? ', load-test scopes exempt with LOAD_TEST_TOKEN' : '')
          : 'off',
      };
    },

    async ready(timeoutMs = 5_000) {
      if (!redis) return;
      try {
        await Promise.all([whenRedisReady(redis, timeoutMs), ...tiers.map((tier) => tier.ready())]);
        await Promise.all(fleetMetrics.map((fleet) => fleet.resolveGeneration()));
        for (const fleet of fleetMetrics) {
          const generation = fleet.deployGeneration;
          if (generation) logger.memory.info('Fleet metrics cover deploy generation', { deployGeneration: generation.id, deployStartedAt: generation.startedAt });
        }
      } catch (error) {
        logger.memoryError.warn('Redis not ready at start: continuing degraded until it connects', describeError(error));
      }
    },

    async close() {
      await Promise.all(fleetMetrics.map((fleet) => fleet.close()));
      if (subscriber) await closeRedis(subscriber);
      if (redis) await closeRedis(redis);
    },
  };
}
