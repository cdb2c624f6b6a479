/**
 * The Render resources as Pulumi dynamic resources. Each ships a serialized shim provider (see
 * providers/shipped.ts); tests under pulumi.runtime.setMocks pass inert providers instead.
 */
import * as pulumi from '@pulumi/pulumi';
import type { KeyValueInputs, KeyValueOutputs, PostgresInputs, PostgresOutputs } from './providers/datastores';
import { shippedProvider } from './providers/shipped';
import { CALLER_KEYS_SECRET_OUTPUTS, callerKeysProvider, type CallerKeysInputs, type CallerKeysOutputs } from './providers/caller-keys';
import type { WebServiceInputs, WebServiceOutputs } from './providers/web-service';

/** Outputs Pulumi must store encrypted (they carry database passwords). */
export const CONNECTION_SECRET_OUTPUTS = ['internalConnectionString', 'externalConnectionString'];
/** Unsalted sha256 digests of the env vars (credentials among them): encrypted, so a weak value cannot be guessed offline from the state. */
export const WEB_SERVICE_SECRET_OUTPUTS = ['envVarDigests'];

export const webServiceProvider: pulumi.dynamic.ResourceProvider<WebServiceInputs, WebServiceOutputs> = shippedProvider('webService');
export const postgresProvider: pulumi.dynamic.ResourceProvider<PostgresInputs, PostgresOutputs> = shippedProvider('postgres');
export const keyValueProvider: pulumi.dynamic.ResourceProvider<KeyValueInputs, KeyValueOutputs> = shippedProvider('keyValue');

export type WebServiceArgs = { [K in keyof Omit<WebServiceInputs, 'envVars'>]: pulumi.Input<WebServiceInputs[K]> } & {
  envVars: pulumi.Input<Record<string, pulumi.Input<string>>>;
};

export class WebService extends pulumi.dynamic.Resource {
  declare readonly serviceId: pulumi.Output<string>;
  declare readonly url: pulumi.Output<string>;
  declare readonly dashboardUrl: pulumi.Output<string>;
  declare readonly envVarDigests: pulumi.Output<Record<string, string>>;
  declare readonly lastDeployId: pulumi.Output<string>;
  declare readonly lastDeployStatus: pulumi.Output<string>;
  /** The commit of the live deploy, as Render reported it on the last create, update or refresh. */
  declare readonly liveCommit: pulumi.Output<string>;
  /** The service existed before the stack (memory-rollout:existingServiceId): never deleted or replaced by it. */
  declare readonly adopted: pulumi.Output<boolean>;

  constructor(
    name: string,
    args: WebServiceArgs,
    opts?: pulumi.CustomResourceOptions,
    provider: pulumi.dynamic.ResourceProvider<WebServiceInputs, WebServiceOutputs> = webServiceProvider,
  ) {
    super(
      provider,
      name,
      {
        ...args,
        serviceId: undefined,
        ownerId: undefined,
        url: undefined,
        dashboardUrl: undefined,
        envVarDigests: undefined,
        lastDeployId: undefined,
        lastDeployStatus: undefined,
        liveCommit: undefined,
        adopted: undefined,
      },
      { ...opts, additionalSecretOutputs: [...(opts?.additionalSecretOutputs ?? []), ...WEB_SERVICE_SECRET_OUTPUTS] },
      'render',
      'WebService',
    );
  }
}

export type PostgresArgs = { [K in keyof PostgresInputs]: pulumi.Input<PostgresInputs[K]> };

export class Postgres extends pulumi.dynamic.Resource {
  declare readonly postgresId: pulumi.Output<string>;
  declare readonly dashboardUrl: pulumi.Output<string>;
  declare readonly internalConnectionString: pulumi.Output<string>;
  declare readonly externalConnectionString: pulumi.Output<string>;

  constructor(
    name: string,
    args: PostgresArgs,
    opts: pulumi.CustomResourceOptions = {},
    provider: pulumi.dynamic.ResourceProvider<PostgresInputs, PostgresOutputs> = postgresProvider,
  ) {
    super(
      provider,
      name,
      { ...args, postgresId: undefined, dashboardUrl: undefined, status: undefined, internalConnectionString: undefined, externalConnectionString: undefined },
      { ...opts, additionalSecretOutputs: [...(opts.additionalSecretOutputs ?? []), ...CONNECTION_SECRET_OUTPUTS] },
      'render',
      'Postgres',
    );
  }
}


export type KeyValueArgs = { [K in keyof KeyValueInputs]: pulumi.Input<KeyValueInputs[K]> };

export class KeyValue extends pulumi.dynamic.Resource {
  declare readonly keyValueId: pulumi.Output<string>;
  declare readonly internalConnectionString: pulumi.Output<string>;
  declare readonly externalConnectionString: pulumi.Output<string>;

  constructor(
    name: string,
    args: KeyValueArgs,
    opts: pulumi.CustomResourceOptions = {},
    provider: pulumi.dynamic.ResourceProvider<KeyValueInputs, KeyValueOutputs> = keyValueProvider,
  ) {
    super(
      provider,
      name,
      { ...args, keyValueId: undefined, status: undefined, internalConnectionString: undefined, externalConnectionString: undefined },
      { ...opts, additionalSecretOutputs: [...(opts.additionalSecretOutputs ?? []), ...CONNECTION_SECRET_OUTPUTS] },
      'render',
      'KeyValue',
    );
  }
}

export type CallerKeysArgs = { keys: pulumi.Input<CallerKeysInputs['keys']> };

/** The memory routes' caller keys (issue 13): generated once per stack, secret in the state, kept across updates. */
export class CallerKeys extends pulumi.dynamic.Resource {
  declare readonly secrets: pulumi.Output<Record<string, string>>;
  declare readonly memoryApiKeys: pulumi.Output<string>;

  constructor(
    name: string,
    args: CallerKeysArgs,
    opts: pulumi.CustomResourceOptions = {},
    provider: pulumi.dynamic.ResourceProvider<CallerKeysInputs, CallerKeysOutputs> = callerKeysProvider,
  ) {
    super(
      provider,
      name,
      { ...args, secrets: undefined, memoryApiKeys: undefined },
      { ...opts, additionalSecretOutputs: [...(opts.additionalSecretOutputs ?? []), ...CALLER_KEYS_SECRET_OUTPUTS] },
      'memory',
      'CallerKeys',
    );
  }
}
