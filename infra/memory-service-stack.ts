/**
 * MemoryServiceStack: one environment of the memory service on Render: its Postgres, its Key Value and
 * the web service wired to both. It receives the already-validated StackConfig; it reads no config itself.
 */
import * as pulumi from '@pulumi/pulumi';
import type { StackConfig } from './config';
import { SERVICE_RUNTIME } from './service-runtime';
import type { KeyValueInputs, KeyValueOutputs, PostgresInputs, PostgresOutputs } from './providers/datastores';
import type { WebServiceInputs, WebServiceOutputs } from './providers/web-service';
import { CallerKeys, KeyValue, keyValueProvider, Postgres, postgresProvider, WebService, webServiceProvider } from './resources';
import { callerKeysProvider, type CallerKeysInputs, type CallerKeysOutputs } from './providers/caller-keys';

/**
 * The dynamic providers the resources ship with. Tests under pulumi.runtime.setMocks pass inert ones:
 * vitest rewrites imports, so nothing it loads can be serialized faithfully (the round-trip test
 * serializes the shipped ones the way `pulumi up` does, in plain Node processes).
 */
export interface RenderProviders {
  webService: pulumi.dynamic.ResourceProvider<WebServiceInputs, WebServiceOutputs>;
  postgres: pulumi.dynamic.ResourceProvider<PostgresInputs, PostgresOutputs>;
  keyValue: pulumi.dynamic.ResourceProvider<KeyValueInputs, KeyValueOutputs>;
  /** The caller keys' generator (not a Render resource); tests under mocks may pass an inert one. */
  callerKeys?: pulumi.dynamic.ResourceProvider<CallerKeysInputs, CallerKeysOutputs>;
}

export const DEFAULT_PROVIDERS: RenderProviders = {
  webService: webServiceProvider,
  postgres: postgresProvider,
  keyValue: keyValueProvider,
};


export type MemoryServiceConfig = Pick<
  StackConfig,
  | 'environment'
  | 'serviceName'
  | 'plan'
  | 'instances'
  | 'region'
  | 'enableContext7Memory'
  | 'context7ExposurePercent'
  | 'context7BaseUrl'
  | 'repo'
  | 'branch'
  | 'pinnedCommit'
  | 'postgresPlan'
  | 'postgresVersion'
  | 'postgresHighAvailability'
  | 'keyValuePlan'
  | 'keyValueMaxmemoryPolicy'
  | 'waitForLive'
  | 'deployTimeoutMinutes'
  | 'maxShutdownDelaySeconds'
  | 'context7ApiKey'
  | 'adminToken'
  | 'callerKeys'
  | 'memoryAuth'
  | 'loadTestToken'
  | 'rateLimitMax'
  | 'rateLimitWindowMs'
  | 'existingServiceId'
  | 'existingPostgresId'
  | 'existingKeyValueId'
  | 'postgresName'
  | 'keyValueName'
  | 'postgresDatabaseName'
  | 'postgresDatabaseUser'
  | 'allowServiceReplacement'
> & { stack?: string };

/** What the web service runs with until a pinned commit is live, when the stack creates it: the flag off. */
export const ENV_VARS_UNTIL_PINNED_LIVE: Readonly<Record<string, string>> = { ENABLE_CONTEXT7_MEMORY: 'false' };

export class MemoryServiceStack extends pulumi.ComponentResource {
  readonly postgres: Postgres;
  readonly keyValue: KeyValue;
  readonly webService: WebService;
  /** The memory routes' caller keys; undefined with memoryAuth 'open' (never in production: the guards refuse it). */
  readonly callerKeys: CallerKeys | undefined;
  /** The service's env vars as handed to Render: credentials and connection strings are secret Outputs. */
  readonly envVars: Record<string, pulumi.Input<string>>;
  readonly serviceUrl: pulumi.Output<string>;
  readonly serviceId: pulumi.Output<string>;
  readonly dashboardUrl: pulumi.Output<string>;

  constructor(
    name: string,
    config: MemoryServiceConfig,
    opts?: pulumi.ComponentResourceOptions,
    providers: RenderProviders = DEFAULT_PROVIDERS,
  ) {
    super('memory-rollout:index:MemoryServiceStack', name, {}, opts);
    const production = config.environment === 'production';
    // Production outlives any single `pulumi up`: a replace or destroy of its data or its service must be deliberate.
    // An adopted resource is also retained: Pulumi forgets it on delete, and the provider's delete does nothing for it.
    const adoptOpts = (adoptId: string | undefined): pulumi.CustomResourceOptions => ({
      parent: this,
      protect: production,
      ...(adoptId !== undefined ? { retainOnDelete: true } : {}),
    });
    const stack = config.stack !== undefined ? { stack: config.stack } : {};

    this.postgres = new Postgres(
      `${name}-db`,
      {
        name: config.postgresName ?? `${config.serviceName}-db`,
        region: config.region,
        plan: config.postgresPlan,
        version: config.postgresVersion,
        databaseName: config.postgresDatabaseName,
        databaseUser: config.postgresDatabaseUser,
        highAvailability: config.postgresHighAvailability,
        availableTimeoutMinutes: 20,
        ...(config.existingPostgresId !== undefined ? { adoptId: config.existingPostgresId } : {}),
        ...stack,
      },
      adoptOpts(config.existingPostgresId),
      providers.postgres,
    );

    this.keyValue = new KeyValue(
      `${name}-kv`,
      {
        name: config.keyValueName ?? `${config.serviceName}-kv`,
        region: config.region,
        plan: config.keyValuePlan,
        maxmemoryPolicy: config.keyValueMaxmemoryPolicy,
        availableTimeoutMinutes: 10,
        ...(config.existingKeyValueId !== undefined ? { adoptId: config.existingKeyValueId } : {}),
        ...stack,
      },
      adoptOpts(config.existingKeyValueId),
      providers.keyValue,
    );

    this.callerKeys =
      config.memoryAuth === 'keys'
        ? new CallerKeys(`${name}-caller-keys`, { keys: config.callerKeys }, { parent: this }, providers.callerKeys ?? callerKeysProvider)
        : undefined;
    this.envVars = serviceEnvVars(config, this.postgres.internalConnectionString, this.keyValue.internalConnectionString, this.callerKeys?.memoryApiKeys);
    this.webService = new WebService(
      `${name}-web`,
      {
        name: config.serviceName,
        region: config.region,
        plan: config.plan,
        instances: config.instances,
        runtime: SERVICE_RUNTIME.runtime,
        repo: config.repo,
        branch: config.branch,
        // Production runs only the pinned commit the staging canary passed; staging follows its branch.
        autoDeploy: !production,
        buildCommand: SERVICE_RUNTIME.buildCommand,
        startCommand: SERVICE_RUNTIME.startCommand,
        healthCheckPath: SERVICE_RUNTIME.healthCheckPath,
        preDeployCommand: SERVICE_RUNTIME.preDeployCommand,
        maxShutdownDelaySeconds: config.maxShutdownDelaySeconds,
        envVars: this.envVars,
        ...(config.pinnedCommit !== undefined ? { deployCommit: config.pinnedCommit } : {}),
        waitForLive: config.waitForLive,
        deployTimeoutMinutes: config.deployTimeoutMinutes,
        ...(config.existingServiceId !== undefined ? { adoptServiceId: config.existingServiceId } : {}),
        allowReplace: config.allowServiceReplacement,
        envVarsUntilPinnedLive: { ...ENV_VARS_UNTIL_PINNED_LIVE },
        ...stack,
      },
      { ...adoptOpts(config.existingServiceId), dependsOn: [this.postgres, this.keyValue] },
      providers.webService,
    );

    this.serviceUrl = this.webService.url;
    this.serviceId = this.webService.serviceId;
    this.dashboardUrl = this.webService.dashboardUrl;
    this.registerOutputs({ serviceUrl: this.serviceUrl, serviceId: this.serviceId, dashboardUrl: this.dashboardUrl });
  }
}

/**
 * The service's environment, as the runbook's appendix lists it, plus its datastores. Credentials and
 * connection strings are Pulumi secrets, so they are encrypted in the state and masked in previews.
 */
export function serviceEnvVars(
  config: MemoryServiceConfig,
  databaseUrl: pulumi.Input<string>,
  redisUrl: pulumi.Input<string>,
  memoryApiKeys?: pulumi.Input<string>,
): Record<string, pulumi.Input<string>> {
  const vars: Record<string, pulumi.Input<string>> = {
    NODE_ENV: 'production',
    // Render's own setting for the Node version (it outranks .node-version and engines.node).
    NODE_VERSION: SERVICE_RUNTIME.nodeVersion,
    PORT: SERVICE_RUNTIME.port,
    ENABLE_CONTEXT7_MEMORY: config.enableContext7Memory ? 'true' : 'false',
    // Always set, so the stack owns the ceiling (a dashboard edit is drift); the flag stays the ceiling of it all.
    CONTEXT7_EXPOSURE_PERCENT: String(config.context7ExposurePercent),
    CONTEXT7_BASE_URL: config.context7BaseUrl,
    DATABASE_URL: pulumi.secret(databaseUrl),
    REDIS_URL: pulumi.secret(redisUrl),
  };
  if (config.context7ApiKey) vars.CONTEXT7_API_KEY = pulumi.secret(config.context7ApiKey.reveal());
  if (config.adminToken) vars.ADMIN_TOKEN = pulumi.secret(config.adminToken.reveal());
  // Caller keys (issue 13): generated per stack by the CallerKeys resource, a secret like the other credentials.
  if (config.memoryAuth === 'open') vars.MEMORY_AUTH = 'open';
  else if (memoryApiKeys !== undefined) vars.MEMORY_API_KEYS = pulumi.secret(memoryApiKeys);
  if (config.loadTestToken) vars.LOAD_TEST_TOKEN = pulumi.secret(config.loadTestToken.reveal());
  // Unset keys leave the service's defaults; set ones are the stack's, so a dashboard edit is reverted by `pulumi up`.
  if (config.rateLimitMax !== undefined) vars.RATE_LIMIT_MAX = String(config.rateLimitMax);
  if (config.rateLimitWindowMs !== undefined) vars.RATE_LIMIT_WINDOW_MS = String(config.rateLimitWindowMs);
  // A plain map (not one Output) keeps secretness per variable: the flag stays readable in previews.
  return vars;
}
