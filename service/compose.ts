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
import { configSecrets, learningForbiddenSecrets } from './config';
import { createContext7Client, type Context7ClientOptions } from './context7/client';
import type { Context7CallObserver, Context7Port } from './context7/port';
import type { MemoryStore } from './data-access/memory-store';
import { createSqliteStore } from './data-access/sqlite-store';
import { migrateWhenReachable } from './data-access/store-start';
import { createBackfillJob, type BackfillJob } from './domain/backfill';
import { createHealthReporter } from './domain/health';
import { createMemoryDomain, type MemoryDomain } from './domain/memory';
import { eraseMemory } from './domain/erasure';
import { InstanceMetrics, type MetricsRecorder } from './domain/metrics';
import type { ExposurePercentSource } from './domain/cohort-metrics';
import { createOutboxDrainer, type OutboxDrainer } from './domain/outbox-drainer';
import { createMetricsHistoryReader, createMetricsHistoryWriter, type MetricsHistoryWriter } from './domain/metrics-history';
import { createPrometheusExporter } from './domain/prometheus';
import { scheduleWeeklySync, type SyncSchedule } from './domain/sync-schedule';
import { createBackfillWatchdog } from './fleet/backfill-watchdog';
import { createDataPlane, type DataPlane } from './fleet/data-plane';
import { createExposureController, type ExposureController } from './fleet/exposure-control';
import { PostgresMemoryStore } from './data-access/postgres-store';
import { SQLITE_BUSY_TIMEOUT_MS } from './data-access/sqlite-store';
import { loadDataPlaneConfig } from './fleet/data-plane-config';
import { createLeaderGate, createLocalCoordination, singleFire } from './fleet/single-fire';
import type { AdminAuthLimit } from './http/admin-auth';
import type { AuthFailureLimit } from './http/auth-failure-limiter';
import { createHttpApp, type LifecycleState } from './http/app';
import { createCohortEdge } from './http/cohort-edge';
import { createDrainableServer, type DrainableServer } from './http/drain';
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
  /**
   * The N-instance data plane (PostgreSQL store, Redis cache tier and fleet metrics, shared rate limits, fleet
   * job gates). Built from DATABASE_URL / REDIS_URL when not given; null keeps the embedded single-instance path.
   */
  dataPlane?: DataPlane | null;
  /** Max time stop() waits for open connections before cutting them (default: SHUTDOWN_GRACE_MS). */
  shutdownGraceMs?: number;
  /** How long a keep-alive socket must be quiet before the drain closes it (tests). */
  drainQuietMs?: number;
  /** Failed admin authentications per client per window (default 10 per 15 min); tests shorten or widen it. */
  adminAuthLimit?: AdminAuthLimit;
  /** Failed caller-key authentications per client per window (default 20 per 15 min); tests shorten or widen it. */
  callerAuthLimit?: AuthFailureLimit;
  /** Tests: the exposure percentage in force, for read gating and the cohorts alike; default: the exposure runtime. */
  exposure?: ExposurePercentSource;
}

/**
 * SIGTERM budget (service/main.ts exits by then whatever is still waiting), under Render's default
 * maxShutdownDelaySeconds of 30. stop() itself needs at most: the HTTP drain (shutdownGraceMs, 10 s; requests
 * stuck on the store end sooner, at their store deadline) alongside the drainer's and backfill's current step
 * (each bounded by the store deadlines), then the store's close (DATABASE_CLOSE_TIMEOUT_MS, 5 s).
 */
export const SHUTDOWN_DEADLINE_MS = 25_000;

/** How long a start waits for the store when no data plane says otherwise (DATABASE_START_TIMEOUT_MS). */
export const DEFAULT_STORE_START_TIMEOUT_MS = 60_000;

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
  /** Records this instance's counters into the store's time series (background, never fails a request). */
  readonly metricsHistory: MetricsHistoryWriter;
  /**
   * Progressive exposure's runtime control: `exposure.percent()` is the percentage in force on this instance
   * (0 with the flag off), read without I/O; cohortOf(scopeId, exposure.percent()) names a request's cohort.
   */
  readonly exposure: ExposureController;
  state(): LifecycleState;
  /** Listens (host default 127.0.0.1), migrates the store, then turns ready. */
  start(port?: number, host?: string): Promise<{ port: number; url: string }>;
  /** Graceful: not ready, stop accepting, finish in-flight requests, persist job state, close everything. */
  stop(): Promise<void>;
  /**
   * What the Monday 02:05 cron runs: claims the run slot of `scheduledAt` (default now) for the fleet and
   * starts the full sync only if this instance won it. Resolves to whether it did.
   */
  runScheduledSync(scheduledAt?: Date): Promise<boolean>;
}

/** The data-plane seam: only when DATABASE_URL or REDIS_URL is set (production on Render with N instances). */
function selectDataPlane(config: ServiceConfig, logger: ServiceLogger): DataPlane | null {
  if (!config.databaseUrl && !config.redisUrl) return null;
  return createDataPlane({ config, dataPlane: loadDataPlaneConfig(process.env), logger });
}

/** The store seam: PostgreSQL when DATABASE_URL is set, else the embedded SQLite store in DATA_DIR. */
function selectStore(config: ServiceConfig, dataPlane: DataPlane | null): MemoryStore {
  return dataPlane?.store ?? createSqliteStore({ dataDir: config.dataDir });
}

/** The cache seam: the in-process LRU, with the shared Redis tier behind it when REDIS_URL is set. */
function selectCache(config: ServiceConfig, dataPlane: DataPlane | null): SnippetCache {
  const createLocal = () => createLruSnippetCache({ ttlMs: config.memoryCacheTtlMs, maxEntries: config.memoryCacheMaxEntries });
  return dataPlane ? dataPlane.wrapCache(createLocal) : createLocal();
}

/** The fleet recorder (fleet/fleet-metrics.ts) writes its counters to Redis; an instance's own counters need no flush. */
function hasFlush(metrics: MetricsRecorder): metrics is MetricsRecorder & { flush(): Promise<void> } {
  return typeof (metrics as { flush?: unknown }).flush === 'function';
}

/** The longest one store call may take: PostgreSQL's checkout plus query deadlines, SQLite's busy wait. */
function storeCallDeadlineMs(store: MemoryStore): number {
  if (store instanceof PostgresMemoryStore) return store.deadlines.connectTimeoutMs + store.deadlines.queryTimeoutMs;
  return SQLITE_BUSY_TIMEOUT_MS;
}

/** Says at start who may call the memory routes: key names only, never secrets. */
function logCallerAuth(config: ServiceConfig, logger: ServiceLogger): void {
  if (config.memoryAuth === 'open') {
    logger.memoryError.warn('MEMORY_AUTH=open: /api/memory/snippets and /patterns accept every caller without a credential (local development only)');
  } else if (config.callerKeys.length === 0) {
    logger.memoryError.error('MEMORY_API_KEYS is not set: /api/memory/snippets and /patterns refuse every caller (401)');
  } else {
    logger.memory.info('Memory API caller keys active', {
      callerKeys: config.callerKeys.map((key) => ({ name: key.name, locations: key.locations ? [...key.locations] : 'all' })),
    });
  }
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
  const dataPlane = overrides.dataPlane === undefined ? selectDataPlane(config, logger) : overrides.dataPlane;
  const store = overrides.store ?? selectStore(config, dataPlane);
  const cache = overrides.cache ?? selectCache(config, dataPlane);
  const instanceMetrics = new InstanceMetrics({ instanceId: config.instanceId, deployId: config.deployId, startedAt: clock() });
  const metrics = overrides.metrics ?? (dataPlane ? dataPlane.wrapMetrics(instanceMetrics) : instanceMetrics);
  const prometheusSource: MetricsRecorder = overrides.metrics ?? instanceMetrics;
  // Fleet-wide "only one instance" gates: shared through PostgreSQL, trivially this process's without it.
  const coordination = dataPlane?.coordination ?? createLocalCoordination();
  const drainerLease = createLeaderGate({
    coordinator: coordination,
    name: 'outbox-drainer',
    owner: config.instanceId,
    ttlMs: Math.max(30_000, config.outboxDrainIntervalMs * 3),
    clock,
  });

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
            httpClient: config.context7HttpClient,
            ...overrides.context7ClientOptions,
          },
          observer,
        );
  }

  const exposure = createExposureController({
    store,
    flagOn: config.enableContext7Memory,
    ceiling: config.exposureCeilingPercent,
    instanceId: config.instanceId,
    deployId: config.deployId,
    pollIntervalMs: config.exposurePollIntervalMs,
    storeDeadlineMs: storeCallDeadlineMs(store),
    sharedStore: store.kind === 'postgres',
    redis: dataPlane?.exposureRedis ?? null,
    log: logger,
    clock,
    // With fleet metrics, sightings at the old percentage reach Redis before the change is reported applied.
    ...(hasFlush(metrics) ? { beforeReportingApplied: () => metrics.flush() } : {}),
  });

  // One source for the read gate and the cohort measurement, so a request is gated and counted alike.
  const exposurePercent: ExposurePercentSource = overrides.exposure ?? exposure;
  const memory = createMemoryDomain({
    enabled: config.enableContext7Memory,
    context7,
    store,
    cache,
    metrics,
    log: logger,
    clock,
    workerId: config.instanceId,
    // Only a networked store can hang; SQLite answers synchronously (or fails fast with SQLITE_BUSY).
    hybridStoreReadTimeoutMs: store.kind === 'postgres' ? dataPlane?.databaseHybridReadTimeoutMs : undefined,
    exposure: exposurePercent,
  });
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
        gate: drainerLease.tryLead,
        cache,
      })
    : null;
  const prometheus = createPrometheusExporter();
  const metricsHistory = createMetricsHistoryWriter({
    store,
    // This instance's own counters (as Prometheus gets them): every instance writes its own series.
    readTotals: async () => (await prometheusSource.snapshot(cache.stats())).totals,
    readCohorts: async () => {
      const cohorts = (await prometheusSource.snapshot(cache.stats())).cohorts;
      return cohorts ? { treatment: cohorts.treatment.totals, control: cohorts.control.totals } : undefined;
    },
    // Per-cluster tables with the same flush (one row per day, rewritten only when a count moved); sketches left out.
    readClusters: () => {
      if (prometheusSource !== instanceMetrics) return undefined;
      const clusters = instanceMetrics.cohorts.clusters;
      return { version: clusters.version, tables: () => clusters.tables({ sketch: false }) };
    },
    identity: instanceMetrics.identity,
    intervalMs: config.metricsHistoryIntervalMs,
    retentionDays: config.metricsHistoryRetentionDays,
    clock,
    log: logger,
  });

  let lifecycle: LifecycleState = 'starting';
  let server: DrainableServer | null = null;
  let schedule: SyncSchedule | null = null;
  let stopping: Promise<void> | null = null;

  const app = createHttpApp({
    enableContext7Memory: config.enableContext7Memory,
    adminToken: config.adminToken,
    memory,
    health,
    metrics: async () => ({ ...(await metrics.snapshot(cache.stats())), exposure: exposure.summary() }),
    prometheus: async () => {
      // Prometheus scrapes every instance and sums by itself: it gets this instance's own counters, never the
      // fleet view (exporting fleet totals from N instances would count everything N times).
      // A store that cannot answer leaves the outbox gauge unknown (NaN) rather than failing the whole scrape.
      const [snapshot, outboxDepth] = await Promise.all([
        prometheusSource.snapshot(cache.stats()),
        store.outboxDepth().catch(() => Number.NaN),
      ]);
      const body = await prometheus.render({ ...snapshot, exposure: exposure.summary() }, { outboxDepth, metricsHistory: metricsHistory.stats() });
      return { contentType: prometheus.contentType, body };
    },
    metricsHistory: createMetricsHistoryReader({
      store,
      intervalMs: config.metricsHistoryIntervalMs,
      retentionDays: config.metricsHistoryRetentionDays,
      clock,
    }),
    backfill,
    store,
    lifecycle: () => lifecycle,
    log: logger,
    clock,
    ownCredentials: learningForbiddenSecrets(config),
    adminAuthLimit: overrides.adminAuthLimit,
    ...(overrides.callerAuthLimit ? { callerAuthLimit: overrides.callerAuthLimit } : {}),
    callerAuth: { mode: config.memoryAuth, keys: config.callerKeys },
    cohorts: createCohortEdge({
      flagOn: config.enableContext7Memory,
      exposure: exposurePercent,
      record: (cohort, outcome) => metrics.recordCohortRequest(cohort, outcome),
    }),
    // Context7 only when the flag is on: with it off the deletion waits in the erasure outbox for a drainer.
    erase: (request) =>
      eraseMemory({ store, cache, context7: config.enableContext7Memory ? context7 : null, log: logger, clock, workerId: config.instanceId }, request),
    trustProxyHops: config.trustProxyHops,
    publicRateLimiter: dataPlane?.publicRateLimiter ?? null,
    loadTestToken: config.loadTestToken,
    readinessFault: store.readinessFault ? () => store.readinessFault!() : undefined,
    exposure,
  });

  const runScheduledSync = singleFire(
    { claimer: coordination, jobName: 'weekly-full-sync', owner: config.instanceId, clock },
    async () => {
      if (!backfill) return;
      const { started, state } = await backfill.start('schedule');
      if (!started) logger.sync.info('Weekly full sync skipped: a run is already in progress', { owner: state.owner });
    },
  );
  const watchdog =
    backfill && dataPlane
      ? createBackfillWatchdog({ backfill, intervalMs: dataPlane.backfillWatchdogMs, staleAfterMs: 60_000, clock, log: logger })
      : null;

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
        if (!(await runScheduledSync())) logger.sync.info('Weekly full sync: another instance runs this slot');
      });
      logger.sync.info('✅ Context7 sync job initialized', {
        schedule: 'Monday 02:05',
        timezone: config.syncScheduleTz,
        nextRun: schedule.nextRun()?.toISOString() ?? null,
      });
    }
    drainer.start();
    watchdog?.start();
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
    metricsHistory,
    exposure,
    state: () => lifecycle,
    runScheduledSync,

    async start(port = config.port, host = '127.0.0.1') {
      if (server) throw new Error('memory service already started');
      server = createDrainableServer(app, { quietMs: overrides.drainQuietMs });
      const listening = server.server;
      // Slow or stalled clients cannot hold a connection forever.
      listening.requestTimeout = 30_000;
      listening.headersTimeout = 15_000;
      // Idle keep-alive sockets outlive the client's/proxy's own idle timeout, so a client never reuses a
      // socket the server has just closed (Node's 5 s default races proxies and undici under load).
      listening.keepAliveTimeout = 65_000;
      await new Promise<void>((resolve, reject) => {
        listening.once('error', reject);
        listening.listen(port, host, () => {
          listening.off('error', reject);
          resolve();
        });
      });
      await migrateWhenReachable({
        store,
        timeoutMs: dataPlane?.databaseStartTimeoutMs ?? DEFAULT_STORE_START_TIMEOUT_MS,
        log: logger.memoryError,
      });
      await dataPlane?.ready();
      // Before ready: no request is served at a percentage the store has not confirmed.
      await exposure.start();
      logCallerAuth(config, logger);
      lifecycle = 'ready';
      metricsHistory.start();
      await startBackgroundWork().catch((error) => {
        logger.memoryError.error('Background work failed to start', describeError(error));
      });
      const address = listening.address() as AddressInfo;
      // Log the address actually bound (0.0.0.0 accepts other machines too), plus the URL to use from this one.
      const boundToAllInterfaces = address.address === '0.0.0.0' || address.address === '::';
      const shownHost = boundToAllInterfaces ? '127.0.0.1' : address.address;
      const boundHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      const localHint = boundToAllInterfaces ? ` (http://${shownHost}:${address.port} from this machine)` : '';
      logger.memory.info(`Memory service listening on ${boundHost}:${address.port}${localHint}`, {
        port: address.port,
        store: store.kind,
        context7: config.enableContext7Memory ? (context7 ? 'enabled' : 'fallback (no key)') : 'disabled',
        dataPlane: dataPlane?.describe() ?? null,
      });
      return { port: address.port, url: `http://${shownHost}:${address.port}` };
    },

    stop() {
      if (stopping) return stopping;
      stopping = (async () => {
        lifecycle = 'shutting_down';
        schedule?.stop();
        // Keep-alive clients are answered with Connection: close and their sockets closed without a reset.
        const graceMs = overrides.shutdownGraceMs ?? config.shutdownGraceMs;
        const closing = server
          ? server.drain(graceMs).then(({ destroyedAtCutoff }) => {
              // Said either way: a cut-off drain is where a client may have seen a reset.
              if (destroyedAtCutoff > 0) logger.memoryError.warn(`HTTP drain cut off ${destroyedAtCutoff} connection(s) still open after ${graceMs} ms`);
              else logger.memory.info('HTTP drain finished: every connection closed gracefully');
            })
          : Promise.resolve();
        await Promise.all([closing, drainer?.stop(), backfill?.stop(), watchdog?.stop()]);
        // After the drain, so the last requests are in it; bounded (2 s), and a failure is only logged.
        await metricsHistory.stop();
        await exposure.stop();
        await drainerLease.release().catch(() => undefined);
        await cache.close().catch((error) => logger.memoryError.warn('Cache close failed', describeError(error)));
        await dataPlane?.close().catch((error) => logger.memoryError.warn('Data plane close failed', describeError(error)));
        context7?.close?.();
        // Bounded (DATABASE_CLOSE_TIMEOUT_MS): a hung database cannot hold the shutdown.
        await store.close().catch((error) => logger.memoryError.warn('Store close did not finish cleanly', describeError(error)));
        logger.memory.info('Memory service stopped');
        logger.flush();
      })();
      return stopping;
    },
  };
}
