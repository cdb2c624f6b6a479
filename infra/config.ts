/**
 * The stack's configuration, read once from Pulumi config and validated with zod.
 * Pure: it works on a plain snapshot of the config map (plus which keys are secret), so the rules
 * are tested without a Pulumi engine. infra/index.ts builds the snapshot from the running stack.
 */
import { inspect } from 'node:util';
import { z } from 'zod';
import { isValidExposurePercent } from '../service/domain/exposure';

export const PROJECT = 'memory-rollout';
export const ENVIRONMENTS = ['staging', 'production'] as const;
export type Environment = (typeof ENVIRONMENTS)[number];

/** Regions, web-service plans and Key Value plans as Render's OpenAPI spec enumerates them. */
export const RENDER_REGIONS = ['frankfurt', 'oregon', 'ohio', 'singapore', 'virginia'] as const;
export const WEB_SERVICE_PLANS = ['starter', 'standard', 'pro', 'pro_plus', 'pro_max', 'pro_ultra'] as const;
export const KEY_VALUE_PLANS = ['free', 'starter', 'standard', 'pro', 'pro_plus'] as const;
export const POSTGRES_VERSIONS = ['13', '14', '15', '16', '17', '18'] as const;
export const POSTGRES_PLANS = [
  'free', 'basic_256mb', 'basic_1gb', 'basic_4gb', 'pro_4gb', 'pro_8gb', 'pro_16gb', 'pro_32gb', 'pro_64gb', 'pro_128gb',
  'accelerated_16gb', 'accelerated_32gb', 'accelerated_64gb', 'accelerated_128gb',
] as const;
export const MAXMEMORY_POLICIES = [
  'noeviction', 'allkeys_lfu', 'allkeys_lru', 'allkeys_random', 'volatile_lfu', 'volatile_lru', 'volatile_random', 'volatile_ttl',
] as const;

export const DEFAULT_CONTEXT7_BASE_URL = 'https://context7.com/api';
export const DEFAULT_STAGING_CANARY_REPORT = 'reports/staging/report.json';

/** Keys that carry credentials: they must be set with `pulumi config set --secret`. */
export const SECRET_KEYS = ['context7ApiKey', 'adminToken', 'loadTestToken'] as const;
export type SecretKey = (typeof SECRET_KEYS)[number];
/**
 * Keys only the Render dynamic providers read (in `configure`); the program checks that the key is a
 * secret but never reads the values. RENDER_API_KEY / RENDER_API_URL / RENDER_OWNER_ID work instead.
 */
export const PROVIDER_SECRET_KEYS = ['renderApiKey'] as const;
export const PROVIDER_PLAIN_KEYS = ['renderApiUrl', 'renderOwnerId'] as const;

/** A secret the offline check sees only as ciphertext: set, but its value is not readable there. */
export const ENCRYPTED_VALUE = '[encrypted]';

/**
 * A credential read from config. It prints as `[secret]` everywhere (logs, errors, JSON), so it can
 * travel through the config object without leaking; `reveal()` is called only where it becomes a
 * Pulumi secret.
 */
export class SecretString {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '[secret]';
  }
  toJSON(): string {
    return '[secret]';
  }
  [inspect.custom](): string {
    return '[secret]';
  }
}

/** What infra/index.ts reads from the running stack: raw strings, as Pulumi stores them. */
export interface RawStackConfig {
  stack: string;
  /** Keys without the `memory-rollout:` namespace, e.g. `instances`. */
  values: Readonly<Record<string, string | undefined>>;
  /** Keys (without namespace) whose values are stored encrypted. */
  secretKeys: ReadonlySet<string>;
}

export class StackConfigError extends Error {
  constructor(
    readonly stackName: string,
    readonly problems: readonly string[],
  ) {
    super(`Stack "${stackName}" has invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'StackConfigError';
  }
}

const booleanString = z
  .enum(['true', 'false'], { error: 'must be true or false' })
  .transform((value) => value === 'true');

const integerString = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, { error: 'must be a whole number' })
    .transform(Number)
    .pipe(z.number().int().min(min, { error: `must be at least ${min}` }).max(max, { error: `must be at most ${max}` }));

const httpsUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });
const commitSha = z.string().regex(/^[0-9a-f]{7,40}$/, { error: 'must be a git commit sha (7-40 lowercase hex characters)' });
/** Render resource ids: srv-… (services), dpg-… (Postgres), red-… (Key Value). */
const renderId = (prefix: string) =>
  z.string().regex(new RegExp(`^${prefix}-[a-z0-9-]{4,60}$`), { error: `must be a Render id starting with ${prefix}- (npm run infra:adopt prints it)` });
const renderName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{1,62}$/, { error: 'must be lowercase letters, digits and dashes (2-63 characters)' });

/** What the service accepts for RATE_LIMIT_MAX and RATE_LIMIT_WINDOW_MS (test/infra/config-guards.test.ts keeps them equal). */
export const RATE_LIMIT_MAX_BOUNDS = { min: 0, max: 10_000_000 } as const;
export const RATE_LIMIT_WINDOW_MS_BOUNDS = { min: 1_000, max: 86_400_000 } as const;

/** Today's behaviour: with the flag on, every scope reads from Context7. */
export const DEFAULT_EXPOSURE_PERCENT = 100;
export const EXPOSURE_OVERRIDE_REASON_MIN_LENGTH = 10;

/** 0..100 in steps of 0.01, written as Pulumi stores it (`25`, `12.5`, `0.01`); the rule is the service's own. */
const exposurePercentString = z
  .string()
  .regex(/^\d{1,3}(\.\d{1,2})?$/, { error: 'must be a percentage from 0 to 100 in steps of 0.01 (e.g. 5, 25, 12.5)' })
  .transform(Number)
  .refine(isValidExposurePercent, { error: 'must be a percentage from 0 to 100 in steps of 0.01 (e.g. 5, 25, 12.5)' });

/** The plain (non-secret) keys and how each is parsed. */
/**
 * The caller keys a stack draws unless told otherwise: the agents' key, the canary's verification key, the learning
 * probe's key (runbook Step 5; only it may use the canary's probe location) and the staging canary's synthetic
 * traffic key (only it may use its load-test location). The canary reads the last two from callerKeySecrets.
 */
export const DEFAULT_CALLER_KEYS = 'agents;canary;canary-probe:canaryprobe-canary;canary-loadtest:loadtest-canary';

const plainSchema = z.object({
  environment: z.enum(ENVIRONMENTS).optional(),
  serviceName: renderName.optional(),
  plan: z.enum(WEB_SERVICE_PLANS).default('starter'),
  instances: integerString(1, 100).default(1),
  region: z.enum(RENDER_REGIONS).default('oregon'),
  enableContext7Memory: booleanString.default(false),
  context7BaseUrl: httpsUrl.default(DEFAULT_CONTEXT7_BASE_URL),
  repo: z.url({ protocol: /^https$/, error: 'must be the https URL of the git repository' }),
  branch: z.string().min(1).default('main'),
  pinnedCommit: commitSha.optional(),
  stagingCanaryReport: z.string().min(1).default(DEFAULT_STAGING_CANARY_REPORT),
  postgresPlan: z.enum(POSTGRES_PLANS).default('basic_256mb'),
  postgresVersion: z.enum(POSTGRES_VERSIONS).default('16'),
  postgresHighAvailability: booleanString.default(false),
  keyValuePlan: z.enum(KEY_VALUE_PLANS).default('starter'),
  keyValueMaxmemoryPolicy: z.enum(MAXMEMORY_POLICIES).default('noeviction'),
  waitForLive: booleanString.default(true),
  deployTimeoutMinutes: integerString(1, 120).default(20),
  maxShutdownDelaySeconds: integerString(1, 300).default(30),
  /**
   * The caller keys the stack generates (issue 13): `name[:loc1,loc2]` entries joined by ';'. Names only; the
   * secrets are drawn by the CallerKeys resource and stored encrypted. Rotate by adding a name, then removing one.
   */
  callerKeys: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}(:[A-Za-z0-9_-]{1,64}(,[A-Za-z0-9_-]{1,64})*)?(;[A-Za-z0-9_.-]{1,64}(:[A-Za-z0-9_-]{1,64}(,[A-Za-z0-9_-]{1,64})*)?)*$/, {
      error: 'must be name[:location,location] entries joined by ; (e.g. agents;canary;tenant-eu:loc-berlin,loc-paris)',
    })
    .default(DEFAULT_CALLER_KEYS)
    .transform(parseCallerKeyNames)
    .refine((keys) => new Set(keys.map((key) => key.name)).size === keys.length, { error: 'names must be unique' }),
  /** MEMORY_AUTH: 'open' is the local-development escape hatch; the guards refuse it in production. */
  memoryAuth: z.enum(['keys', 'open'], { error: 'must be keys or open' }).default('keys'),
  // The service's RATE_LIMIT_MAX / RATE_LIMIT_WINDOW_MS, with the service's own bounds (service/fleet/data-plane-config.ts);
  // unset leaves the service's default (3000 per 60000 ms). 0 turns the limit off (the guards refuse that in production).
  rateLimitMax: integerString(RATE_LIMIT_MAX_BOUNDS.min, RATE_LIMIT_MAX_BOUNDS.max).optional(),
  rateLimitWindowMs: integerString(RATE_LIMIT_WINDOW_MS_BOUNDS.min, RATE_LIMIT_WINDOW_MS_BOUNDS.max).optional(),
  /**
   * Progressive exposure (issue 18): the service's CONTEXT7_EXPOSURE_PERCENT, the ceiling of the runtime percentage
   * and the value a fresh deploy starts from. In production the guards keep it at or below what the staging canary
   * judged for the pinned commit; the staging canary's promotion writes that percentage here.
   */
  context7ExposurePercent: exposurePercentString.default(DEFAULT_EXPOSURE_PERCENT),
  /**
   * The audited way past that guard: allows a ceiling up to this percentage without a canary's judgement, with a
   * reason. Both or neither; every preview reports it loudly.
   */
  context7ExposureOverridePercent: exposurePercentString.optional(),
  /**
   * Adoption (issue 26): the stack manages a resource that already exists instead of creating one. `create` reads it,
   * refuses unless it is what the stack describes, and changes nothing; `delete` leaves it on Render.
   * `npm run infra:adopt -- --stack <name>` finds them by name and prints these settings.
   */
  existingServiceId: renderId('srv').optional(),
  existingPostgresId: renderId('dpg').optional(),
  existingKeyValueId: renderId('red').optional(),
  /** The datastores' names and the database's name and user (defaults: <serviceName>-db, <serviceName>-kv, memory, memory). */
  postgresName: renderName.optional(),
  keyValueName: renderName.optional(),
  postgresDatabaseName: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, { error: 'must be a PostgreSQL identifier (lowercase)' }).default('memory'),
  postgresDatabaseUser: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, { error: 'must be a PostgreSQL identifier (lowercase)' }).default('memory'),
  /** A change that replaces the web service (a region change) fails the preview unless this is true. */
  allowServiceReplacement: booleanString.default(false),
  context7ExposureOverrideReason: z
    .string()
    .trim()
    .min(EXPOSURE_OVERRIDE_REASON_MIN_LENGTH, {
      error: `must say why and who approved it (at least ${EXPOSURE_OVERRIDE_REASON_MIN_LENGTH} characters)`,
    })
    .optional(),
});

/** `agents;tenant-eu:loc-berlin,loc-paris` -> [{ name: 'agents', locations: [] }, { name: 'tenant-eu', locations: [...] }] */
export function parseCallerKeyNames(value: string): { name: string; locations: string[] }[] {
  return value.split(';').map((entry) => {
    const [name, locations] = entry.split(':') as [string, string | undefined];
    return { name, locations: locations ? locations.split(',') : [] };
  });
}

export type StackConfig = z.infer<typeof plainSchema> & {
  stack: string;
  environment: Environment;
  serviceName: string;
  /** Undefined when not set; the guards decide whether that is allowed. */
  context7ApiKey?: SecretString;
  adminToken?: SecretString;
  /** Optional: requests carrying it to load-test scopes skip the service's rate limit (LOAD_TEST_TOKEN). */
  loadTestToken?: SecretString;
  /** Secret keys that were found stored in plaintext (the guards refuse them). */
  plaintextSecretKeys: string[];
  /** memory-rollout:renderApiUrl when set: which Render API the providers call (the guards tell Render from an emulator). */
  renderApiUrl?: string;
};

const CHECKED_ONLY_KEYS = new Set<string>([...PROVIDER_SECRET_KEYS, ...PROVIDER_PLAIN_KEYS]);
const KNOWN_KEYS = new Set<string>([...Object.keys(plainSchema.shape), ...SECRET_KEYS, ...CHECKED_ONLY_KEYS]);

/** Parses and validates the whole config, reporting every problem at once. */
export function parseStackConfig(raw: RawStackConfig): StackConfig {
  const problems: string[] = [];
  const plainInput: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw.values)) {
    if (value === undefined) continue;
    if (!KNOWN_KEYS.has(key)) {
      problems.push(`${PROJECT}:${key} is not a known setting (known: ${[...KNOWN_KEYS].sort().join(', ')})`);
      continue;
    }
    if (!(SECRET_KEYS as readonly string[]).includes(key) && !CHECKED_ONLY_KEYS.has(key)) plainInput[key] = value;
  }

  const parsed = plainSchema.safeParse(plainInput);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = issue.path.join('.');
      const hint = issue.code === 'invalid_type' && plainInput[key] === undefined ? 'is required' : issue.message;
      problems.push(`${PROJECT}:${key} ${hint}`);
    }
  }

  const environment = parsed.success ? (parsed.data.environment ?? environmentFromStackName(raw.stack)) : undefined;
  if (parsed.success && environment === undefined) {
    problems.push(
      `${PROJECT}:environment is required because the stack name "${raw.stack}" is neither staging nor production ` +
        `(run: pulumi config set ${PROJECT}:environment staging -s ${raw.stack})`,
    );
  }

  const secrets: Partial<Record<SecretKey, SecretString>> = {};
  const plaintextSecretKeys: string[] = [];
  for (const key of PROVIDER_SECRET_KEYS) {
    if (raw.values[key] !== undefined && !raw.secretKeys.has(key)) plaintextSecretKeys.push(key);
  }
  for (const key of SECRET_KEYS) {
    const value = raw.values[key];
    if (value === undefined) continue;
    if (value.trim() === '') {
      problems.push(`${PROJECT}:${key} is empty`);
      continue;
    }
    if (!raw.secretKeys.has(key)) plaintextSecretKeys.push(key);
    secrets[key] = new SecretString(value);
  }

  if (parsed.success && (parsed.data.context7ExposureOverridePercent === undefined) !== (parsed.data.context7ExposureOverrideReason === undefined)) {
    const [set, missing] =
      parsed.data.context7ExposureOverridePercent === undefined
        ? ['context7ExposureOverrideReason', 'context7ExposureOverridePercent']
        : ['context7ExposureOverridePercent', 'context7ExposureOverrideReason'];
    problems.push(
      `${PROJECT}:${set} is set without ${PROJECT}:${missing}: an exposure override needs both the percentage it allows ` +
        `and why (pulumi config set ${PROJECT}:${missing} <value> -s ${raw.stack}), or neither (pulumi config rm ${PROJECT}:${set} -s ${raw.stack})`,
    );
  }

  if (problems.length > 0 || !parsed.success || environment === undefined) throw new StackConfigError(raw.stack, problems);
  const data = parsed.data;
  return {
    ...data,
    stack: raw.stack,
    environment,
    serviceName: data.serviceName ?? `${PROJECT}-${stackBaseName(raw.stack)}`,
    ...secrets,
    plaintextSecretKeys,
    ...(raw.values.renderApiUrl ? { renderApiUrl: raw.values.renderApiUrl } : {}),
  };
}

/** Organisation-qualified names (org/project/stack) end with the stack name. */
function stackBaseName(stack: string): string {
  return stack.split('/').pop() ?? stack;
}

function environmentFromStackName(stack: string): Environment | undefined {
  const name = stackBaseName(stack);
  return (ENVIRONMENTS as readonly string[]).includes(name) ? (name as Environment) : undefined;
}
