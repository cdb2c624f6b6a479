/**
 * Service configuration: every environment variable parsed and validated once at start.
 * A bad value fails fast with a message that names the variable; secrets are never echoed.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import path from 'node:path';

export interface ServiceConfig {
  port: number;
  /** Interface to bind: 0.0.0.0 on Render; tests use 127.0.0.1. */
  host: string;
  nodeEnv: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  enableContext7Memory: boolean;
  /** Secret. Undefined when not set: with the flag on the service then runs in fallback mode. */
  context7ApiKey: string | undefined;
  context7BaseUrl: string;
  context7TimeoutMs: number;
  memoryCacheTtlMs: number;
  memoryCacheMaxEntries: number;
  dataDir: string;
  /** Secret. Undefined disables the admin endpoints. */
  adminToken: string | undefined;
  deployId: string;
  instanceId: string;
  syncScheduleTz: string;
  outboxDrainIntervalMs: number;
  /** Reserved for the data plane: PostgreSQL store instead of SQLite. */
  databaseUrl: string | undefined;
  /** Reserved for the data plane: Redis cache tier and fleet metrics. */
  redisUrl: string | undefined;
}

export class ConfigError extends Error {
  constructor(readonly variable: string, problem: string) {
    super(`Invalid environment variable ${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Empty strings count as unset: Render and shells often leave `VAR=` behind. */
function read(env: Env, name: string): string | undefined {
  const value = env[name];
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `expected a whole number, got ${JSON.stringify(raw.slice(0, 40))}`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `expected a number between ${min} and ${max}, got ${value}`);
  return value;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  const lowered = raw.toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(lowered)) return true;
  if (['false', '0', 'no', 'off'].includes(lowered)) return false;
  throw new ConfigError(name, `expected true or false, got ${JSON.stringify(raw.slice(0, 40))}`);
}

function url(env: Env, name: string, fallback: string): string {
  const raw = read(env, name) ?? fallback;
  let protocol = '';
  try {
    protocol = new URL(raw).protocol;
  } catch {
    // reported below
  }
  if (protocol !== 'http:' && protocol !== 'https:') throw new ConfigError(name, `expected an http(s) URL, got ${JSON.stringify(raw.slice(0, 80))}`);
  return raw.replace(/\/+$/, '');
}

function secret(env: Env, name: string): string | undefined {
  return read(env, name);
}

function timeZone(env: Env, name: string, fallback: string): string {
  const raw = read(env, name) ?? fallback;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: raw });
  } catch {
    throw new ConfigError(name, `unknown IANA time zone ${JSON.stringify(raw.slice(0, 60))}`);
  }
  return raw;
}

function host(env: Env, name: string, fallback: string): string {
  const raw = read(env, name) ?? fallback;
  if (!/^[A-Za-z0-9.:_-]{1,253}$/.test(raw)) throw new ConfigError(name, `expected a host name or IP address, got ${JSON.stringify(raw.slice(0, 60))}`);
  return raw;
}

function defaultInstanceId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export function loadConfig(env: Env = process.env): ServiceConfig {
  const logLevel = (read(env, 'LOG_LEVEL') ?? 'info').toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `expected one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel.slice(0, 20))}`);
  }
  const databaseUrl = read(env, 'DATABASE_URL');
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL', 'expected a postgres:// or postgresql:// URL');
  }
  const redisUrl = read(env, 'REDIS_URL');
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) {
    throw new ConfigError('REDIS_URL', 'expected a redis:// or rediss:// URL');
  }
  const deployId = read(env, 'RENDER_GIT_COMMIT') ?? read(env, 'DEPLOY_ID') ?? 'local';
  return {
    port: integer(env, 'PORT', 3000, 0, 65_535),
    host: host(env, 'HOST', '0.0.0.0'),
    nodeEnv: read(env, 'NODE_ENV') ?? 'development',
    logLevel: logLevel as ServiceConfig['logLevel'],
    enableContext7Memory: boolean(env, 'ENABLE_CONTEXT7_MEMORY', false),
    context7ApiKey: secret(env, 'CONTEXT7_API_KEY'),
    context7BaseUrl: url(env, 'CONTEXT7_BASE_URL', 'https://context7.com/api'),
    context7TimeoutMs: integer(env, 'CONTEXT7_TIMEOUT_MS', 2_000, 50, 60_000),
    memoryCacheTtlMs: integer(env, 'MEMORY_CACHE_TTL_MS', 300_000, 1, 86_400_000),
    memoryCacheMaxEntries: integer(env, 'MEMORY_CACHE_MAX_ENTRIES', 10_000, 1, 10_000_000),
    dataDir: path.resolve(read(env, 'DATA_DIR') ?? './data'),
    adminToken: secret(env, 'ADMIN_TOKEN'),
    deployId,
    instanceId: read(env, 'RENDER_INSTANCE_ID') ?? defaultInstanceId(),
    syncScheduleTz: timeZone(env, 'SYNC_SCHEDULE_TZ', 'UTC'),
    outboxDrainIntervalMs: integer(env, 'OUTBOX_DRAIN_INTERVAL_MS', 5_000, 10, 3_600_000),
    databaseUrl,
    redisUrl,
  };
}

/** The secrets of a config, for log/response scrubbing. */
export function configSecrets(config: ServiceConfig): string[] {
  return [
    ...[config.context7ApiKey, config.adminToken].filter((value): value is string => typeof value === 'string'),
    ...secretsOfUrl(config.databaseUrl),
    ...secretsOfUrl(config.redisUrl),
  ];
}

/** A connection URL and its password (raw and decoded): Render's DATABASE_URL / REDIS_URL carry credentials. */
export function secretsOfUrl(url: string | undefined): string[] {
  if (!url) return [];
  const secrets = [url];
  try {
    const parsed = new URL(url);
    if (parsed.password) secrets.push(parsed.password, decodeURIComponent(parsed.password));
  } catch {
    // not a URL: the whole value is still scrubbed
  }
  return [...new Set(secrets.filter((secret) => secret.length >= 4))];
}
