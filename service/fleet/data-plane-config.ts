/**
 * The data plane's own settings, parsed once at start like the rest of the configuration (errors name the
 * variable). DATABASE_URL and REDIS_URL themselves are parsed by service/config.ts.
 */
import { ConfigError } from '../config';
import { DEFAULT_FLEET_METRICS_TIMEOUT_MS } from './fleet-metrics';
import { DEFAULT_REDIS_COMMAND_TIMEOUT_MS } from './redis-connection';

export interface DataPlaneConfig {
  /** Prefix of every Redis key, so several services or environments can share one Key Value instance. */
  redisKeyPrefix: string;
  databasePoolMax: number;
  /** Requests per client IP per window on /api/memory/*; 0 turns rate limiting off. */
  rateLimitMax: number;
  rateLimitWindowMs: number;
  /** Proxies in front of the service whose X-Forwarded-For is trusted (Render: 1). */
  trustProxyHops: number;
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
  return {
    redisKeyPrefix: prefix,
    databasePoolMax: integer(env, 'DATABASE_POOL_MAX', 10, 1, 200),
    rateLimitMax: integer(env, 'RATE_LIMIT_MAX', 3_000, 0, 10_000_000),
    rateLimitWindowMs: integer(env, 'RATE_LIMIT_WINDOW_MS', 60_000, 1_000, 86_400_000),
    trustProxyHops: integer(env, 'TRUST_PROXY_HOPS', 1, 0, 10),
    fleetMetricsFlushMs: integer(env, 'FLEET_METRICS_FLUSH_MS', 1_000, 100, 60_000),
    // Ceilings far below the canary's 10 s measurement timeout: Redis must never be why it is hit.
    redisCommandTimeoutMs: integer(env, 'REDIS_COMMAND_TIMEOUT_MS', DEFAULT_REDIS_COMMAND_TIMEOUT_MS, 10, 5_000),
    fleetMetricsTimeoutMs: integer(env, 'FLEET_METRICS_TIMEOUT_MS', DEFAULT_FLEET_METRICS_TIMEOUT_MS, 10, 5_000),
    backfillWatchdogMs: integer(env, 'BACKFILL_WATCHDOG_MS', 30_000, 100, 3_600_000),
  };
}
