/**
 * Composition root: builds the memory service from a config. Tests, benches and the data plane swap
 * parts through `overrides` (store, cache, metrics, Context7 client, logger, clock).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type pino from 'pino';
import type { SnippetCache } from './cache/cache-port';
import { createLruSnippetCache } from './cache/snippet-cache';
import type { ServiceConfig } from './config';
import { configSecrets } from './config';
import { createContext7Client, type Context7ClientOptions } from './context7/client';
import type { Context7CallObserver, Context7Port } from './context7/port';
import type { MemoryStore } from './data-access/memory-store';
import { createSqliteStore } from './data-access/sqlite-store';
import { createBackfillJob, type BackfillJob } from './domain/backfill';
import { createHealthReporter } from './domain/health';
import { createMemoryDomain, type MemoryDomain } from './domain/memory';
import { InstanceMetrics, type MetricsRecorder } from './domain/metrics';
import { createOutboxDrainer, type OutboxDrainer } from './domain/outbox-drainer';
import { createPrometheusExporter } from './domain/prometheus';
import { scheduleWeeklySync, type SyncSchedule } from './domain/sync-schedule';
import { createHttpApp, type LifecycleState } from './http/app';
import { createServiceLogger, describeError, type ServiceLogger } from './logging';

export interface MemoryServiceOverrides {
  store?: MemoryStore;
  cache?: SnippetCache;
  metrics?: MetricsRecorder;
  /** Builds the Context7 port; must report each logical call to `observer` (metrics). */
  createContext7?: (observer: Context7CallObserver) => Context7Port & { close?: () => void };
  /** Tuning of the real client (breaker, retries) for tests and benches. */
  context7ClientOptions?: Partial<Context7ClientOptions>;
  logger?: ServiceLogger;
  /** Where the default logger writes (tests capture lines here). */
  logDestination?: pino.DestinationStream;
  clock?: () => Date;
  sleep?: (ms: number) => Promise<void>;
  healthCacheMs?: number;
  /** The weekly cron; on by default when Context7 is on. */
  enableSchedule?: boolean;
  /** Backfill tuning (batch size, concurrency) for tests and benches. */
  backfillOptions?: { batchSize?: number; concurrency?: number; progressLogEveryMs?: number };
  /** Max time stop() waits for open connections before cutting them. */
  shutdownGraceMs?: number;
}

export interface MemoryService {
  readonly app: http.RequestListener;
  readonly config: ServiceConfig;
  readonly store: MemoryStore;
  readonly cache: SnippetCache;
  readonly metrics: MetricsRecorder;
  readonly memory: MemoryDomain;
  readonly logger: ServiceLogger;
  /** null when Context7 is off or has no key. */
  readonly context7: Context7Port | null;
  readonly backfill: BackfillJob | null;
  readonly drainer: OutboxDrainer | null;
  state(): LifecycleState;
  /** Listens (host default 127.0.0.1), migrates the store, then turns ready. */
  start(port?: number, host?: string): Promise<{ port: number; url: string }>;
  /** Graceful: not ready, stop accepting, finish in-flight requests, persist job state, close everything. */
  stop(): Promise<void>;
}

/**
 * The store seam. DATABASE_URL selects PostgreSQL once the data-plane adapter is wired in here;
 * until then the embedded SQLite store in DATA_DIR is used.
 */
function selectStore(config: ServiceConfig, logger: ServiceLogger): MemoryStore {
  if (config.databaseUrl) {
    logger.memoryError.warn('DATABASE_URL is set but no PostgreSQL store is wired in yet: using SQLite in DATA_DIR');
  }
  return createSqliteStore({ dataDir: config.dataDir });
}

/** The cache seam. REDIS_URL adds the shared tier once the data plane wires it in here. */
function selectCache(config: ServiceConfig): SnippetCache {
  return createLruSnippetCache({ ttlMs: config.memoryCacheTtlMs, maxEntries: config.memoryCacheMaxEntries });
}

export function createMemoryService(config: ServiceConfig, overrides: MemoryServiceOverrides = {}): MemoryService {
  const clock = overrides.clock ?? (() => new Date());
  const sleep = overrides.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const logger =
    overrides.logger ??
    createServiceLogger({
      level: config.logLevel,
      secrets: configSecrets(config),
      destination: overrides.logDestination,
      base: { service: 'memory', instanceId: config.instanceId, deployId: config.deployId },
    });
  const store = overrides.store ?? selectStore(config, logger);
  const cache = overrides.cache ?? selectCache(config);
  const metrics =
    overrides.metrics ?? new InstanceMetrics({ instanceId: config.instanceId, deployId: config.deployId, startedAt: clock() });

  const observer: Context7CallObserver = (outcome) => metrics.recordContext7Call(outcome);
  const hasKey = config.context7ApiKey !== undefined;
  let context7: (Context7Port & { close?: () => void }) | null = null;
  if (config.enableContext7Memory && hasKey) {
    context7 = overrides.createContext7
      ? overrides.createContext7(observer)
      : createContext7Client(
          {
            baseUrl: config.context7BaseUrl,
            apiKey: config.context7ApiKey,
            timeoutMs: config.context7TimeoutMs,
            ...overrides.context7ClientOptions,
          },
          observer,
        );
  }

  const memory = createMemoryDomain({ enabled: config.enableContext7Memory, context7, store, cache, metrics, log: logger, clock });
  const health = createHealthReporter({
    enabled: config.enableContext7Memory,
    hasKey,
    context7,
    cacheMs: overrides.healthCacheMs,
  });
  const backfill = context7
    ? createBackfillJob({ store, context7, log: logger, owner: config.instanceId, clock, sleep, ...overrides.backfillOptions })
    : null;
  const drainer = context7
    ? createOutboxDrainer({
        store,
        context7,
        log: logger,
        workerId: config.instanceId,
        intervalMs: config.outboxDrainIntervalMs,
        clock,
      })
    : null;
  const prometheus = createPrometheusExporter();

  let lifecycle: LifecycleState = 'starting';
  let server: http.Server | null = null;
  let schedule: SyncSchedule | null = null;
  let stopping: Promise<void> | null = null;

  const app = createHttpApp({
    enableContext7Memory: config.enableContext7Memory,
    adminToken: config.adminToken,
    memory,
    health,
    metrics: () => metrics.snapshot(cache.stats()),
    prometheus: async () => {
      const [snapshot, outboxDepth] = await Promise.all([metrics.snapshot(cache.stats()), store.outboxDepth()]);
      return { contentType: prometheus.contentType, body: await prometheus.render(snapshot, { outboxDepth }) };
    },
    backfill,
    store,
    lifecycle: () => lifecycle,
    log: logger,
    clock,
    secrets: configSecrets(config),
  });

  async function startBackgroundWork(): Promise<void> {
    if (!config.enableContext7Memory) {
      logger.memory.info('Context7 memory disabled in environment: snippets answer "disabled", learning writes go to the database');
      return;
    }
    if (!context7 || !drainer || !backfill) {
      logger.memoryError.warn(
        'ENABLE_CONTEXT7_MEMORY=true but CONTEXT7_API_KEY is not set: running in fallback mode (local database only)',
      );
      return;
    }
    logger.memory.info('✅ Memory API routes enabled (Context7 integration)', { context7BaseUrl: config.context7BaseUrl });
    if (overrides.enableSchedule ?? true) {
      schedule = scheduleWeeklySync(config.syncScheduleTz, async () => {
        const { started, state } = await backfill.start('schedule');
        if (!started) logger.sync.info('Weekly full sync skipped: a run is already in progress', { owner: state.owner });
      });
      logger.sync.info('✅ Context7 sync job initialized', {
        schedule: 'Monday 02:05',
        timezone: config.syncScheduleTz,
        nextRun: schedule.nextRun()?.toISOString() ?? null,
      });
    }
    drainer.start();
    const previous = await backfill.status();
    if (previous?.status === 'interrupted') await backfill.start('resume');
  }

  return {
    app,
    config,
    store,
    cache,
    metrics,
    memory,
    logger,
    context7,
    backfill,
    drainer,
    state: () => lifecycle,

    async start(port = config.port, host = '127.0.0.1') {
      if (server) throw new Error('memory service already started');
      const listening = http.createServer(app);
      server = listening;
      // Slow or stalled clients cannot hold a connection forever.
      listening.requestTimeout = 30_000;
      listening.headersTimeout = 15_000;
      await new Promise<void>((resolve, reject) => {
        listening.once('error', reject);
        listening.listen(port, host, () => {
          listening.off('error', reject);
          resolve();
        });
      });
      await store.migrate();
      lifecycle = 'ready';
      await startBackgroundWork().catch((error) => {
        logger.memoryError.error('Background work failed to start', describeError(error));
      });
      const address = listening.address() as AddressInfo;
      const shownHost = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address;
      logger.memory.info(`Memory service listening on ${shownHost}:${address.port}`, {
        port: address.port,
        store: store.kind,
        context7: config.enableContext7Memory ? (context7 ? 'enabled' : 'fallback (no key)') : 'disabled',
      });
      return { port: address.port, url: `http://${shownHost}:${address.port}` };
    },

    stop() {
      if (stopping) return stopping;
      stopping = (async () => {
        lifecycle = 'shutting_down';
        schedule?.stop();
        const closing = server
          ? new Promise<void>((resolve) => {
              const current = server as http.Server;
              const cutoff = setTimeout(() => current.closeAllConnections(), overrides.shutdownGraceMs ?? 10_000);
              cutoff.unref();
              current.close(() => {
                clearTimeout(cutoff);
                resolve();
              });
              current.closeIdleConnections();
            })
          : Promise.resolve();
        await Promise.all([closing, drainer?.stop(), backfill?.stop()]);
        await cache.close().catch((error) => logger.memoryError.warn('Cache close failed', describeError(error)));
        context7?.close?.();
        await store.close();
        logger.memory.info('Memory service stopped');
        logger.flush();
      })();
      return stopping;
    },
  };
}
