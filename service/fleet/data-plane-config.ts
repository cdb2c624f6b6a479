/**
 * The data plane's own settings, parsed once at start like the rest of the configuration (errors name the
 * variable). DATABASE_URL and REDIS_URL themselves are parsed by service/config.ts.
 */
import { ConfigError } from '../config';
import { POSTGRES_DEADLINE_DEFAULTS, type PostgresDeadlines } from '../data-access/postgres-store';
import { DEFAULT_FLEET_METRICS_TIMEOUT_MS } from './fleet-metrics';
import { DEFAULT_REDIS_COMMAND_TIMEOUT_MS } from './redis-connection';

export interface DataPlaneConfig {
  /** Set per deploy by a deployer that wants two deploys of the same commit and configuration told apart. */
  deployNonce: string | undefined;
  /** Prefix of every Redis key, so several services or environments can share one Key Value instance. */
  redisKeyPrefix: string;
  databasePoolMax: number;
  /** Every wait on PostgreSQL has one (DATABASE_*_MS); see PostgresDeadlines. */
  databaseDeadlines: PostgresDeadlines;
  /** How long a start keeps trying to reach and migrate PostgreSQL before it gives up (exit 1). */
  databaseStartTimeoutMs: number;
  /**
   * With Context7 on, how long a snippet read waits for the local store's unsynced patterns before it answers
   * from Context7 alone (counted as a store error).
   */
  databaseHybridReadTimeoutMs: number;
  /** Requests per client IP per window on /api/memory/*; 0 turns rate limiting off. */
  rateLimitMax: number;
  rateLimitWindowMs: number;
  fleetMetricsFlushMs: number;
  /** Most one Redis command may add to a request (ioredis commandTimeout), and the silence that drops a connection. */
  redisCommandTimeoutMs: number;
  /** Budget for /api/metrics/memory's fleet write and read together; past it the instance answers alone. */
  fleetMetricsTimeoutMs: number;
  /** How often an instance checks for an interrupted or abandoned full sync to resume. */
  backfillWatchdogMs: number;
}

type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `expected a whole number, got ${JSON.stringify(raw.slice(0, 40))}`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `expected a number between ${min} and ${max}, got ${value}`);
  return value;
}

export function loadDataPlaneConfig(env: Env = process.env): DataPlaneConfig {
  const prefix = env.REDIS_KEY_PREFIX?.trim() || 'memsvc:';
  if (!/^[\w:.-]{1,64}$/.test(prefix)) {
    throw new ConfigError('REDIS_KEY_PREFIX', 'expected 1-64 characters from [A-Za-z0-9_:.-]');
  }
  const d = POSTGRES_DEADLINE_DEFAULTS;
  const ms = (name: string, fallback: number, min = 10, max = 600_000) => integer(env, name, fallback, min, max);
  const databaseDeadlines: PostgresDeadlines = {
    connectTimeoutMs: ms('DATABASE_CONNECT_TIMEOUT_MS', d.connectTimeoutMs),
    queryTimeoutMs: ms('DATABASE_QUERY_TIMEOUT_MS', d.queryTimeoutMs),
    statementTimeoutMs: ms('DATABASE_STATEMENT_TIMEOUT_MS', d.statementTimeoutMs),
    idleInTransactionTimeoutMs: ms('DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS', d.idleInTransactionTimeoutMs),
    migrationTimeoutMs: ms('DATABASE_MIGRATION_TIMEOUT_MS', d.migrationTimeoutMs),
    migrationBuildTimeoutMs: ms('DATABASE_MIGRATION_BUILD_TIMEOUT_MS', d.migrationBuildTimeoutMs, 1_000, 86_400_000),
    closeTimeoutMs: ms('DATABASE_CLOSE_TIMEOUT_MS', d.closeTimeoutMs),
    poolWedgedAfterMs: ms('DATABASE_POOL_WEDGED_AFTER_MS', d.poolWedgedAfterMs),
  };
  if (databaseDeadlines.statementTimeoutMs > databaseDeadlines.queryTimeoutMs) {
    throw new ConfigError(
      'DATABASE_STATEMENT_TIMEOUT_MS',
      `must not exceed DATABASE_QUERY_TIMEOUT_MS (${databaseDeadlines.queryTimeoutMs}): the server must cancel before the client gives up`,
    );
  }
  return {
    deployNonce: env.DEPLOY_NONCE?.trim() || undefined,
    redisKeyPrefix: prefix,
    databasePoolMax: integer(env, 'DATABASE_POOL_MAX', 10, 1, 200),
    databaseDeadlines,
    databaseStartTimeoutMs: ms('DATABASE_START_TIMEOUT_MS', 60_000, 100, 3_600_000),
    databaseHybridReadTimeoutMs: ms('DATABASE_HYBRID_READ_TIMEOUT_MS', 1_500),
    rateLimitMax: integer(env, 'RATE_LIMIT_MAX', 3_000, 0, 10_000_000),
    rateLimitWindowMs: integer(env, 'RATE_LIMIT_WINDOW_MS', 60_000, 1_000, 86_400_000),
    fleetMetricsFlushMs: integer(env, 'FLEET_METRICS_FLUSH_MS', 1_000, 100, 60_000),
    // Ceilings far below the canary's 10 s measurement timeout: Redis must never be why it is hit.
    redisCommandTimeoutMs: integer(env, 'REDIS_COMMAND_TIMEOUT_MS', DEFAULT_REDIS_COMMAND_TIMEOUT_MS, 10, 5_000),
    fleetMetricsTimeoutMs: integer(env, 'FLEET_METRICS_TIMEOUT_MS', DEFAULT_FLEET_METRICS_TIMEOUT_MS, 10, 5_000),
    backfillWatchdogMs: integer(env, 'BACKFILL_WATCHDOG_MS', 30_000, 100, 3_600_000),
  };
}
