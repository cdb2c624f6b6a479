/**
 * What every Render dynamic provider needs at run time: credentials (read from the stack config the
 * engine hands to `configure`, or from the environment, never from resource inputs), a RenderClient,
 * the owner id, progress lines, and the error shape Pulumi records as "created but failed to initialize".
 *
 * Everything here is captured into the providers' serialized closures, so it holds no module-level
 * mutable state and pulls in nothing that Pulumi cannot serialize (no zod schemas, no loggers).
 */
import { createHash } from 'node:crypto';
import { RenderClient } from '../../render/client';

/** The subset of a dynamic provider's config the providers read (pulumi.dynamic.Config). */
export interface ProviderConfig {
  get(key: string): string | undefined;
}

export interface RenderCredentials {
  apiKey: string;
  baseUrl?: string;
  ownerId?: string;
}

/** Config keys (namespace memory-rollout:) and env vars, in that order of precedence. */
export const CREDENTIAL_SOURCES = {
  apiKey: { configKey: 'memory-rollout:renderApiKey', envVar: 'RENDER_API_KEY' },
  baseUrl: { configKey: 'memory-rollout:renderApiUrl', envVar: 'RENDER_API_URL' },
  ownerId: { configKey: 'memory-rollout:renderOwnerId', envVar: 'RENDER_OWNER_ID' },
} as const;

export function resolveRenderCredentials(
  config: ProviderConfig | undefined,
  env: Readonly<Record<string, string | undefined>>,
): RenderCredentials {
  const pick = (source: { configKey: string; envVar: string }): string | undefined => {
    const fromConfig = config?.get(source.configKey);
    if (fromConfig !== undefined && fromConfig !== '') return fromConfig;
    const fromEnv = env[source.envVar];
    return fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined;
  };
  const apiKey = pick(CREDENTIAL_SOURCES.apiKey);
  if (apiKey === undefined) {
    throw new Error(
      'No Render API key: export RENDER_API_KEY, or run `pulumi config set --secret memory-rollout:renderApiKey <key>`',
    );
  }
  const baseUrl = pick(CREDENTIAL_SOURCES.baseUrl);
  const ownerId = pick(CREDENTIAL_SOURCES.ownerId);
  return { apiKey, ...(baseUrl ? { baseUrl } : {}), ...(ownerId ? { ownerId } : {}) };
}

/** Options fixed when a provider is built (and serialized with it). */
export interface ProviderOptions {
  /** How often deploy/database status is polled. Render's dashboard polls every few seconds. */
  pollIntervalMs?: number;
  /** Progress lines; the default writes to stderr, which the Pulumi engine shows. */
  progress?: (line: string) => void;
}

export const DEFAULT_POLL_INTERVAL_MS = 5_000;

/** Per-call context: one client per provider method, as the Render client recommends. */
export interface RenderAccess {
  client: RenderClient;
  credentials: RenderCredentials;
  pollIntervalMs: number;
  progress: (line: string) => void;
}

export function openRenderAccess(config: ProviderConfig | undefined, options: ProviderOptions): RenderAccess {
  const credentials = resolveRenderCredentials(config, process.env);
  const client = new RenderClient({
    apiKey: credentials.apiKey,
    ...(credentials.baseUrl ? { baseUrl: credentials.baseUrl } : {}),
  });
  return {
    client,
    credentials,
    pollIntervalMs: options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS,
    progress: options.progress ?? ((line: string) => process.stderr.write(`[render] ${line}\n`)),
  };
}

/** The configured owner, or the only owner the key can see. */
export async function resolveOwnerId(access: RenderAccess): Promise<string> {
  if (access.credentials.ownerId) return access.credentials.ownerId;
  const owners = await access.client.listOwners();
  const only = owners.length === 1 ? owners[0] : undefined;
  if (only) return only.id;
  const names = owners.map((o) => `${o.id} (${o.name})`).join(', ');
  throw new Error(
    owners.length === 0
      ? 'The Render API key sees no workspace (owner)'
      : `The Render API key sees several workspaces: ${names}. Choose one: ` +
        '`pulumi config set memory-rollout:renderOwnerId <id>` or export RENDER_OWNER_ID',
  );
}

/**
 * Thrown when the Render resource exists but did not come up (e.g. its deploy failed). Pulumi records
 * the id and properties, so the next `pulumi up` updates the resource instead of orphaning it.
 */
export class ResourceInitError extends Error {
  constructor(
    message: string,
    readonly id: string,
    readonly properties: Record<string, unknown>,
    readonly reasons: string[],
  ) {
    super(message);
    this.name = 'ResourceInitError';
  }
}

/** Pulumi's marker for a value not known during preview (rpc.unknownValue). */
export const UNKNOWN_VALUE = '04da6b54-80e4-46f7-96ec-b56ff0331ba9';

export function isUnknown(value: unknown): boolean {
  return value === UNKNOWN_VALUE;
}

/** A one-way digest of an env var's value: state can show drift without holding the value. */
export function digestValue(value: string): string {
  return `sha256:${createHash('sha256').update(value, 'utf8').digest('hex')}`;
}

export function digestEnvVars(vars: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(vars).sort()) out[key] = digestValue(vars[key] as string);
  return out;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
