/**
 * Service configuration: every environment variable parsed and validated once at start.
 * A bad value fails fast with a message that names the variable; secrets are never echoed.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { CallerKeysError, parseCallerKeys, type CallerKey } from './domain/caller-keys';
import { isValidExposurePercent } from './domain/exposure';
import { CONTEXT7_HTTP_CLIENTS, DEFAULT_CONTEXT7_HTTP_CLIENT, type Context7HttpClient } from './context7/client';

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
  /** CONTEXT7_HTTP_CLIENT */
  context7HttpClient: Context7HttpClient;
  memoryCacheTtlMs: number;
  memoryCacheMaxEntries: number;
  dataDir: string;
  /** Secret. Undefined disables the admin endpoints. */
  adminToken: string | undefined;
  /** Secret. Requests carrying it (X-Load-Test-Token) to load-test scopes skip the rate limit; undefined: none do. */
  loadTestToken: string | undefined;
  deployId: string;
  instanceId: string;
  syncScheduleTz: string;
  outboxDrainIntervalMs: number;
  /** SIGTERM: how long in-flight requests and keep-alive connections may take before they are cut. */
  shutdownGraceMs: number;
  /** How often each instance records its counters in the store's time series (metrics_history). */
  metricsHistoryIntervalMs: number;
  /** Time-series rows older than this are deleted (pruned hourly by every instance). */
  metricsHistoryRetentionDays: number;
  /** Reserved for the data plane: PostgreSQL store instead of SQLite. */
  databaseUrl: string | undefined;
  /** Reserved for the data plane: Redis cache tier and fleet metrics. */
  redisUrl: string | undefined;
  /** Secrets (MEMORY_API_KEYS): the credentials callers of /api/memory/snippets and /patterns present. */
  callerKeys: CallerKey[];
  /**
   * MEMORY_AUTH: 'keys' (default) requires a caller key; 'open' is the local-development escape hatch (no keys,
   * every caller accepted, a warning at start). Production stacks refuse 'open' at preview (infra/guards.ts).
   */
  memoryAuth: MemoryAuthMode;
  /**
   * CONTEXT7_EXPOSURE_PERCENT: the stack's ceiling on progressive exposure (domain/exposure.ts), and the value a
   * fresh deploy (no runtime value stored yet) starts from. Default 100: with the flag on, every scope is exposed.
   */
  exposureCeilingPercent: number;
  /** EXPOSURE_POLL_INTERVAL_MS: how often each instance re-reads the runtime percentage from the store. */
  exposurePollIntervalMs: number;
  /**
   * TRUST_PROXY_HOPS: how many proxies in front of the service append to X-Forwarded-For and are trusted (Express
   * `trust proxy`); the client is the address the outermost trusted one saw. Default 1 on Render (RENDER=true: its
   * proxy appends the client's address), 0 anywhere else: a client that reaches the service directly must not
   * choose its own address, which keys the failure and rate limiters. See "Who is the client" in service/README.md.
   */
  trustProxyHops: number;
}

export type MemoryAuthMode = 'keys' | 'open';

export class ConfigError extends Error {
  constructor(readonly variable: string, problem: string) {
    super(`Invalid environment variable ${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Echoes at most a short prefix of a bad value (never used for secrets). */
function shown(value: string, max = 60): string {
  return JSON.stringify(value.slice(0, max));
}

/** An optional variable: empty strings count as unset (Render and shells often leave `VAR=` behind). */
function optional<T extends z.ZodType>(schema: T) {
  return z.preprocess((value) => {
    if (typeof value !== 'string') return value;
    const trimmed = value.trim();
    return trimmed === '' ? undefined : trimmed;
  }, schema.optional());
}

const integer = (fallback: number, min: number, max: number) =>
  optional(
    z
      .string()
      .regex(/^\d+$/, { error: (issue) => `expected a whole number, got ${shown(String(issue.input), 40)}` })
      .transform(Number)
      .pipe(z.number().min(min, `expected a number between ${min} and ${max}`).max(max, `expected a number between ${min} and ${max}`)),
  ).transform((value) => value ?? fallback);

const boolean = (fallback: boolean) =>
  optional(
    z.string().transform((raw, ctx) => {
      const lowered = raw.toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(lowered)) return true;
      if (['false', '0', 'no', 'off'].includes(lowered)) return false;
      ctx.addIssue({ code: 'custom', message: `expected true or false, got ${shown(raw, 40)}` });
      return z.NEVER;
    }),
  ).transform((value) => value ?? fallback);

const httpUrl = (fallback: string) =>
  optional(z.string())
    .transform((value) => value ?? fallback)
    .superRefine((raw, ctx) => {
      let protocol = '';
      try {
        protocol = new URL(raw).protocol;
      } catch {
        // reported below
      }
      if (protocol !== 'http:' && protocol !== 'https:') ctx.addIssue({ code: 'custom', message: `expected an http(s) URL, got ${shown(raw, 80)}` });
    })
    .transform((raw) => raw.replace(/\/+$/, ''));

const timeZone = (fallback: string) =>
  optional(z.string())
    .transform((value) => value ?? fallback)
    .superRefine((raw, ctx) => {
      try {
        new Intl.DateTimeFormat('en-US', { timeZone: raw });
      } catch {
        ctx.addIssue({ code: 'custom', message: `unknown IANA time zone ${shown(raw)}` });
      }
    });

/** A percentage 0..100 in steps of 0.01 (`25`, `12.5`), the same rule the admin endpoint applies. */
const exposurePercent = (fallback: number) =>
  optional(
    z.string().transform((raw, ctx) => {
      const value = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : Number.NaN;
      if (isValidExposurePercent(value)) return value;
      ctx.addIssue({ code: 'custom', message: `expected a percentage from 0 to 100 in steps of 0.01, got ${shown(raw, 40)}` });
      return z.NEVER;
    }),
  ).transform((value) => value ?? fallback);

/** Secrets: validated for presence only, and never echoed in an error. */
const secret = optional(z.string());

/**
 * The admin token guards the backfill and every scope's export. A short one is guessable; since secrets are
 * scrubbed by value from logs and refused in learning writes, a 1-3 character token would also mangle every log
 * line and make ordinary text unwritable. Error messages echo at most 10 characters whole (domain/error-echo.ts).
 */
export const ADMIN_TOKEN_MIN_LENGTH = 12;
const adminToken = optional(
  z.string().min(ADMIN_TOKEN_MIN_LENGTH, `must be at least ${ADMIN_TOKEN_MIN_LENGTH} characters (e.g. openssl rand -hex 32)`),
);

/** LOAD_TEST_TOKEN follows the admin token's rule: it lifts a limit, and it is scrubbed and refused by value. */
export const LOAD_TEST_TOKEN_MIN_LENGTH = ADMIN_TOKEN_MIN_LENGTH;

const envSchema = z.object({
  PORT: integer(3000, 0, 65_535),
  HOST: optional(z.string().regex(/^[A-Za-z0-9.:_-]{1,253}$/, 'expected a host name or IP address')).transform((v) => v ?? '0.0.0.0'),
  NODE_ENV: optional(z.string()).transform((v) => v ?? 'development'),
  LOG_LEVEL: optional(z.string().transform((v) => v.toLowerCase()).pipe(z.enum(LOG_LEVELS, `expected one of ${LOG_LEVELS.join(', ')}`))).transform(
    (v) => v ?? 'info',
  ),
  ENABLE_CONTEXT7_MEMORY: boolean(false),
  CONTEXT7_API_KEY: secret,
  CONTEXT7_BASE_URL: httpUrl('https://context7.com/api'),
  CONTEXT7_TIMEOUT_MS: integer(2_000, 50, 60_000),
  // The HTTP library under the Context7 client (context7/client.ts): the same guards either way.
  CONTEXT7_HTTP_CLIENT: optional(z.string().transform((v) => v.toLowerCase()).pipe(z.enum(CONTEXT7_HTTP_CLIENTS, `expected one of ${CONTEXT7_HTTP_CLIENTS.join(', ')}`))).transform(
    (v) => v ?? DEFAULT_CONTEXT7_HTTP_CLIENT,
  ),
  MEMORY_CACHE_TTL_MS: integer(300_000, 1, 86_400_000),
  MEMORY_CACHE_MAX_ENTRIES: integer(10_000, 1, 10_000_000),
  DATA_DIR: optional(z.string()).transform((v) => path.resolve(v ?? './data')),
  ADMIN_TOKEN: adminToken,
  LOAD_TEST_TOKEN: adminToken,
  RENDER_GIT_COMMIT: optional(z.string()),
  DEPLOY_ID: optional(z.string()),
  RENDER_INSTANCE_ID: optional(z.string()),
  SYNC_SCHEDULE_TZ: timeZone('UTC'),
  OUTBOX_DRAIN_INTERVAL_MS: integer(5_000, 10, 3_600_000),
  // Render sends SIGKILL 30 s after SIGTERM (maxShutdownDelaySeconds): the HTTP drain must leave time to close the rest.
  SHUTDOWN_GRACE_MS: integer(10_000, 100, 25_000),
  METRICS_HISTORY_INTERVAL_MS: integer(60_000, 1_000, 3_600_000),
  // At least the 30-day review's period plus a margin for a late review.
  METRICS_HISTORY_RETENTION_DAYS: integer(35, 1, 3_650),
  DATABASE_URL: optional(z.string().regex(/^postgres(ql)?:\/\//, 'expected a postgres:// or postgresql:// URL')),
  REDIS_URL: optional(z.string().regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL')),
  MEMORY_API_KEYS: secret,
  MEMORY_AUTH: optional(z.string().transform((v) => v.toLowerCase()).pipe(z.enum(['keys', 'open'], 'expected keys or open'))).transform(
    (v) => v ?? 'keys',
  ),
  // The stack's ceiling on exposure; 100 keeps a deploy without it exactly as before (flag on = every scope).
  CONTEXT7_EXPOSURE_PERCENT: exposurePercent(100),
  // The backstop of runtime propagation (and the only path without Redis): a change reaches every instance
  // within this interval plus one store deadline.
  EXPOSURE_POLL_INTERVAL_MS: integer(2_000, 100, 600_000),
  // -1: unset, decided from RENDER below.
  TRUST_PROXY_HOPS: integer(-1, 0, 10),
  RENDER: boolean(false),
});

function defaultInstanceId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** Parses the environment once; the first problem is thrown as a ConfigError naming its variable. */
export function loadConfig(env: Env = process.env): ServiceConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const variable = String(issue.path[0] ?? 'environment');
    // zod's default messages may quote the input; a secret's never reaches the error.
    const secretVariables = ['CONTEXT7_API_KEY', 'ADMIN_TOKEN', 'LOAD_TEST_TOKEN', 'DATABASE_URL', 'REDIS_URL', 'MEMORY_API_KEYS'];
    // Format and length messages are ours and never quote the value.
    const message = secretVariables.includes(variable) && issue.code !== 'invalid_format' && issue.code !== 'too_small' ? 'is invalid' : issue.message;
    throw new ConfigError(variable, message);
  }
  const e = parsed.data;
  let callerKeys: CallerKey[];
  try {
    callerKeys = parseCallerKeys(e.MEMORY_API_KEYS);
  } catch (error) {
    // CallerKeysError messages name entries, never secrets; anything else could quote the value.
    throw new ConfigError('MEMORY_API_KEYS', error instanceof CallerKeysError ? error.message : 'is invalid');
  }
  if (e.MEMORY_AUTH === 'open' && callerKeys.length > 0) {
    throw new ConfigError('MEMORY_AUTH', 'is open but MEMORY_API_KEYS is set: unset one of them (open is for local development only)');
  }
  return {
    port: e.PORT,
    host: e.HOST,
    nodeEnv: e.NODE_ENV,
    logLevel: e.LOG_LEVEL,
    enableContext7Memory: e.ENABLE_CONTEXT7_MEMORY,
    context7ApiKey: e.CONTEXT7_API_KEY,
    context7BaseUrl: e.CONTEXT7_BASE_URL,
    context7TimeoutMs: e.CONTEXT7_TIMEOUT_MS,
    context7HttpClient: e.CONTEXT7_HTTP_CLIENT,
    memoryCacheTtlMs: e.MEMORY_CACHE_TTL_MS,
    memoryCacheMaxEntries: e.MEMORY_CACHE_MAX_ENTRIES,
    dataDir: e.DATA_DIR,
    adminToken: e.ADMIN_TOKEN,
    loadTestToken: e.LOAD_TEST_TOKEN,
    deployId: e.RENDER_GIT_COMMIT ?? e.DEPLOY_ID ?? 'local',
    instanceId: e.RENDER_INSTANCE_ID ?? defaultInstanceId(),
    syncScheduleTz: e.SYNC_SCHEDULE_TZ,
    outboxDrainIntervalMs: e.OUTBOX_DRAIN_INTERVAL_MS,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    metricsHistoryIntervalMs: e.METRICS_HISTORY_INTERVAL_MS,
    metricsHistoryRetentionDays: e.METRICS_HISTORY_RETENTION_DAYS,
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    callerKeys,
    memoryAuth: e.MEMORY_AUTH,
    exposureCeilingPercent: e.CONTEXT7_EXPOSURE_PERCENT,
    exposurePollIntervalMs: e.EXPOSURE_POLL_INTERVAL_MS,
    trustProxyHops: e.TRUST_PROXY_HOPS >= 0 ? e.TRUST_PROXY_HOPS : e.RENDER ? 1 : 0,
  };
}

/**
 * The credentials this service hands out or holds for callers and third parties: a learning write (or a query sent
 * to Context7) containing one is refused. Every token this project adds later (probe, load-test or caller keys)
 * joins this list. Connection URLs and their passwords stay off it: a password like `postgres` must not make
 * ordinary text unwritable; they are scrubbed from logs only (configSecrets).
 */
export function learningForbiddenSecrets(config: ServiceConfig): string[] {
  return [config.adminToken, config.context7ApiKey, config.loadTestToken, ...config.callerKeys.map((key) => key.secret)].filter(
    (value): value is string => typeof value === 'string' && value.length >= FORBIDDEN_SECRET_MIN_LENGTH,
  );
}

/**
 * Shorter values are placeholders (`CONTEXT7_API_KEY=x` in a dev shell), not credentials: refusing every text that
 * contains them would turn learning off. ADMIN_TOKEN is at least 12 characters anyway; real Context7 keys are long.
 */
export const FORBIDDEN_SECRET_MIN_LENGTH = 8;

/** The secrets of a config, scrubbed by value from every log line (responses are never rewritten). */
export function configSecrets(config: ServiceConfig): string[] {
  return [...learningForbiddenSecrets(config), ...secretsOfUrl(config.databaseUrl), ...secretsOfUrl(config.redisUrl)];
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
