/**
 * Postgres and KeyValue: Render's managed datastores as Pulumi dynamic resources. Their connection
 * strings are outputs Pulumi stores as secrets (additionalSecretOutputs). Region, version and database
 * identity cannot change in place (replace); plan changes are refused at preview, because the Render
 * client has no resize operation and replacing a database would lose its data.
 */
import type * as pulumi from '@pulumi/pulumi';
import type { KeyValueDetail, PostgresDetail } from '../../render/types';
import {
  isUnknown,
  openRenderAccess,
  type ProviderConfig,
  type ProviderOptions,
  type RenderAccess,
  resolveOwnerId,
} from './render-access';

type Failure = { property: string; reason: string };

/** Pure: which recorded fields differ from the desired ones. Unknown (preview) values count as different. */
export function changedFields<T extends object>(olds: Partial<T>, news: T, fields: readonly (keyof T & string)[]): string[] {
  return fields.filter((key) => isUnknown(news[key]) || JSON.stringify(olds[key]) !== JSON.stringify(news[key]));
}

function refuseInPlaceChanges(kind: string, olds: object | undefined, news: object, fields: readonly string[]): Failure[] {
  if (!olds || Object.keys(olds).length === 0) return [];
  const changed = changedFields(olds as Record<string, unknown>, news as Record<string, unknown>, fields);
  return changed.map((property) => ({
    property,
    reason:
      `changing a ${kind}'s ${property} in place is not supported by the Render client (and replacing it would lose ` +
      'its data): change it in the Render dashboard, then set the config to match',
  }));
}

/**
 * check and diff for a datastore: `replaceFields` force a replacement; `fixedFields` are refused at preview,
 * because Render cannot change them in place and replacing the datastore would lose its data.
 */
function datastoreFieldRules<T extends object>(kind: string, replaceFields: readonly (keyof T & string)[], fixedFields: readonly (keyof T & string)[]) {
  return {
    async check(olds: Partial<T> | undefined, news: T): Promise<pulumi.dynamic.CheckResult<T>> {
      const failures = refuseInPlaceChanges(kind, olds, news, fixedFields);
      return failures.length > 0 ? { inputs: news, failures } : { inputs: news };
    },
    async diff(_id: string, olds: T, news: T): Promise<pulumi.dynamic.DiffResult> {
      const replaces = changedFields(olds, news, replaceFields);
      const fixed = changedFields(olds, news, fixedFields);
      return { changes: replaces.length > 0 || fixed.length > 0, replaces, deleteBeforeReplace: replaces.length > 0 };
    },
  };
}

function isNotFound(err: unknown): boolean {
  return (err as { status?: number }).status === 404;
}

async function pollUntilAvailable<T extends { status: string }>(
  access: RenderAccess,
  what: string,
  fetch: () => Promise<T>,
  timeoutMs: number,
): Promise<T> {
  const startedAt = Date.now();
  let last = '';
  for (;;) {
    const current = await fetch();
    if (current.status !== last) access.progress(`${what}: ${current.status}`);
    last = current.status;
    if (current.status === 'available') return current;
    if (current.status === 'recovery_failed' || current.status === 'suspended') {
      throw new Error(`${what} is ${current.status}`);
    }
    if (Date.now() - startedAt >= timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last status: ${last})`);
    await new Promise((resolve) => setTimeout(resolve, access.pollIntervalMs));
  }
}

// ------------------------------------------------------------------------------------------ Postgres

export interface PostgresInputs {
  name: string;
  region: string;
  plan: string;
  version: string;
  databaseName: string;
  databaseUser: string;
  highAvailability: boolean;
  availableTimeoutMinutes: number;
}

export interface PostgresOutputs extends PostgresInputs {
  postgresId: string;
  dashboardUrl: string;
  status: string;
  internalConnectionString: string;
  externalConnectionString: string;
}

export const POSTGRES_REPLACE_FIELDS = ['region', 'version', 'databaseName', 'databaseUser'] as const;
export const POSTGRES_FIXED_FIELDS = ['name', 'plan', 'highAvailability'] as const;

async function postgresOutputs(access: RenderAccess, detail: PostgresDetail, inputs: PostgresInputs): Promise<PostgresOutputs> {
  const info = await access.client.getPostgresConnectionInfo(detail.id);
  return {
    name: detail.name,
    region: detail.region,
    plan: detail.plan,
    version: detail.version,
    databaseName: detail.databaseName,
    databaseUser: detail.databaseUser,
    highAvailability: detail.highAvailabilityEnabled,
    availableTimeoutMinutes: inputs.availableTimeoutMinutes,
    postgresId: detail.id,
    dashboardUrl: detail.dashboardUrl,
    status: detail.status,
    internalConnectionString: info.internalConnectionString,
    externalConnectionString: info.externalConnectionString,
  };
}

export function createPostgresProvider(options: ProviderOptions = {}): pulumi.dynamic.ResourceProvider<PostgresInputs, PostgresOutputs> {
  const configured: { config?: ProviderConfig } = {};
  return {
    async configure(req) {
      configured.config = req.config;
    },
    ...datastoreFieldRules<PostgresInputs>('Postgres', POSTGRES_REPLACE_FIELDS, POSTGRES_FIXED_FIELDS),
    async create(inputs) {
      const access = openRenderAccess(configured.config, options);
      const ownerId = await resolveOwnerId(access);
      const created = await access.client.createPostgres({
        name: inputs.name,
        ownerId,
        plan: inputs.plan as PostgresDetail['plan'],
        version: inputs.version as PostgresDetail['version'],
        region: inputs.region,
        databaseName: inputs.databaseName,
        databaseUser: inputs.databaseUser,
        enableHighAvailability: inputs.highAvailability,
        enableDiskAutoscaling: false,
      });
      access.progress(`${inputs.name}: created Postgres ${created.id}`);
      const ready = await pollUntilAvailable(access, `Postgres ${inputs.name}`, () => access.client.getPostgres(created.id), inputs.availableTimeoutMinutes * 60_000);
      return { id: created.id, outs: await postgresOutputs(access, ready, inputs) };
    },
    async read(id, props) {
      const access = openRenderAccess(configured.config, options);
      try {
        const detail = await access.client.getPostgres(id);
        return { id, props: await postgresOutputs(access, detail, props as PostgresInputs) };
      } catch (err) {
        if (isNotFound(err)) return { id: '', props: {} as PostgresOutputs };
        throw err;
      }
    },
    async update(id, _olds, news) {
      // Every real change replaces or is refused in check: an update only re-reads the live database.
      const access = openRenderAccess(configured.config, options);
      return { outs: await postgresOutputs(access, await access.client.getPostgres(id), news) };
    },
    async delete(id) {
      const access = openRenderAccess(configured.config, options);
      try {
        await access.client.deletePostgres(id);
        access.progress(`deleted Postgres ${id}`);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },
  };
}

// ------------------------------------------------------------------------------------------ KeyValue

export interface KeyValueInputs {
  name: string;
  region: string;
  plan: string;
  maxmemoryPolicy: string;
  availableTimeoutMinutes: number;
}

export interface KeyValueOutputs extends KeyValueInputs {
  keyValueId: string;
  status: string;
  internalConnectionString: string;
  externalConnectionString: string;
}

export const KEY_VALUE_REPLACE_FIELDS = ['region'] as const;
export const KEY_VALUE_FIXED_FIELDS = ['name', 'plan', 'maxmemoryPolicy'] as const;

async function keyValueOutputs(access: RenderAccess, detail: KeyValueDetail, inputs: KeyValueInputs): Promise<KeyValueOutputs> {
  const info = await access.client.getKeyValueConnectionInfo(detail.id);
  return {
    name: detail.name,
    region: detail.region,
    plan: detail.plan,
    maxmemoryPolicy: detail.options?.maxmemoryPolicy ?? inputs.maxmemoryPolicy,
    availableTimeoutMinutes: inputs.availableTimeoutMinutes,
    keyValueId: detail.id,
    status: detail.status,
    internalConnectionString: info.internalConnectionString,
    externalConnectionString: info.externalConnectionString,
  };
}

export function createKeyValueProvider(options: ProviderOptions = {}): pulumi.dynamic.ResourceProvider<KeyValueInputs, KeyValueOutputs> {
  const configured: { config?: ProviderConfig } = {};
  return {
    async configure(req) {
      configured.config = req.config;
    },
    ...datastoreFieldRules<KeyValueInputs>('Key Value instance', KEY_VALUE_REPLACE_FIELDS, KEY_VALUE_FIXED_FIELDS),
    async create(inputs) {
      const access = openRenderAccess(configured.config, options);
      const ownerId = await resolveOwnerId(access);
      const created = await access.client.createKeyValue({
        name: inputs.name,
        ownerId,
        plan: inputs.plan as KeyValueDetail['plan'],
        region: inputs.region,
        maxmemoryPolicy: inputs.maxmemoryPolicy as 'noeviction',
      });
      access.progress(`${inputs.name}: created Key Value ${created.id}`);
      const ready = await pollUntilAvailable(access, `Key Value ${inputs.name}`, () => access.client.getKeyValue(created.id), inputs.availableTimeoutMinutes * 60_000);
      return { id: created.id, outs: await keyValueOutputs(access, ready, inputs) };
    },
    async read(id, props) {
      const access = openRenderAccess(configured.config, options);
      try {
        const detail = await access.client.getKeyValue(id);
        return { id, props: await keyValueOutputs(access, detail, props as KeyValueInputs) };
      } catch (err) {
        if (isNotFound(err)) return { id: '', props: {} as KeyValueOutputs };
        throw err;
      }
    },
    async update(id, _olds, news) {
      const access = openRenderAccess(configured.config, options);
      return { outs: await keyValueOutputs(access, await access.client.getKeyValue(id), news) };
    },
    async delete(id) {
      const access = openRenderAccess(configured.config, options);
      try {
        await access.client.deleteKeyValue(id);
        access.progress(`deleted Key Value ${id}`);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },
  };
}
