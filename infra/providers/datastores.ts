/**
 * Postgres and KeyValue: Render's managed datastores as Pulumi dynamic resources. Their connection
 * strings are outputs Pulumi stores as secrets (additionalSecretOutputs). Region, version and database
 * identity cannot change in place (replace); plan changes are refused at preview, because the Render
 * client has no resize operation and replacing a database would lose its data.
 */
import type * as pulumi from '@pulumi/pulumi';
import type { KeyValueDetail, PostgresDetail } from '../../render/types';
import { adoptedDeleteNotice, adoptedReplaceRefusal, adoptionRefusal, identityMismatches } from './adoption';
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
    async diff(id: string, olds: T, news: T): Promise<pulumi.dynamic.DiffResult> {
      const replaces = changedFields(olds, news, replaceFields);
      const fixed = changedFields(olds, news, fixedFields);
      // Replacing an adopted datastore would delete the team's data (and delete does nothing for it): refused.
      if (replaces.length > 0 && (olds as { adopted?: boolean }).adopted) throw new Error(adoptedReplaceRefusal(kind, id, replaces));
      return { changes: replaces.length > 0 || fixed.length > 0, replaces, deleteBeforeReplace: replaces.length > 0 };
    },
  };
}

function isNotFound(err: unknown): boolean {
  return (err as { status?: number }).status === 404;
}

/** What every datastore input may carry for adoption (memory-rollout:existingPostgresId / existingKeyValueId). */
export interface AdoptionInputs {
  /** Adopt this existing instance instead of creating one. */
  adoptId?: string;
  /** The stack's name, for the fixes in refusals. */
  stack?: string;
}

/** Reads an instance named by an adoption setting; a 404 says which setting and how to find the right id. */
async function readForAdoption<T>(what: string, key: string, id: string, stack: string | undefined, fetch: () => Promise<T>): Promise<T> {
  try {
    return await fetch();
  } catch (err) {
    if (isNotFound(err)) {
      throw new Error(
        `memory-rollout:${key} is ${id}, but the Render API key sees no such ${what}. ` +
          `\`npm run infra:adopt -- --stack ${stack ?? '<stack>'}\` finds it by name and prints its id`,
      );
    }
    throw err;
  }
}

async function deleteUnlessAdopted(access: RenderAccess, what: string, id: string, props: unknown, remove: () => Promise<void>): Promise<void> {
  if ((props as { adopted?: boolean } | undefined)?.adopted) {
    access.progress(adoptedDeleteNotice(what, id));
    return;
  }
  try {
    await remove();
    access.progress(`deleted ${what} ${id}`);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
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

export interface PostgresInputs extends AdoptionInputs {
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
  /** The instance existed before the stack: never deleted or replaced by it. */
  adopted?: boolean;
  postgresId: string;
  dashboardUrl: string;
  status: string;
  internalConnectionString: string;
  externalConnectionString: string;
}

export const POSTGRES_REPLACE_FIELDS = ['region', 'version', 'databaseName', 'databaseUser'] as const;
export const POSTGRES_FIXED_FIELDS = ['name', 'plan', 'highAvailability'] as const;

async function postgresOutputs(access: RenderAccess, detail: PostgresDetail, inputs: PostgresInputs, adopted = false): Promise<PostgresOutputs> {
  const info = await access.client.getPostgresConnectionInfo(detail.id);
  return {
    ...(inputs.adoptId !== undefined ? { adoptId: inputs.adoptId } : {}),
    ...(inputs.stack !== undefined ? { stack: inputs.stack } : {}),
    adopted,
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
      if (inputs.adoptId) {
        const id = inputs.adoptId;
        const detail = await readForAdoption('Postgres instance', 'existingPostgresId', id, inputs.stack, () => access.client.getPostgres(id));
        const mismatches = postgresAdoptionMismatches(detail, inputs, ownerId);
        if (mismatches.length > 0) throw new Error(adoptionRefusal('the Postgres instance', id, mismatches));
        access.progress(`${detail.name}: adopted Postgres ${id} as it is (nothing changed on Render)`);
        return { id, outs: await postgresOutputs(access, detail, inputs, true) };
      }
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
        return { id, props: await postgresOutputs(access, detail, props as PostgresInputs, (props as PostgresOutputs).adopted === true) };
      } catch (err) {
        if (isNotFound(err)) return { id: '', props: {} as PostgresOutputs };
        throw err;
      }
    },
    async update(id, _olds, news) {
      // Every real change replaces or is refused in check: an update only re-reads the live database.
      const access = openRenderAccess(configured.config, options);
      return { outs: await postgresOutputs(access, await access.client.getPostgres(id), news, (_olds as PostgresOutputs).adopted === true) };
    },
    async delete(id, props) {
      const access = openRenderAccess(configured.config, options);
      await deleteUnlessAdopted(access, 'Postgres', id, props, () => access.client.deletePostgres(id));
    },
  };
}

// ------------------------------------------------------------------------------------------ KeyValue

export interface KeyValueInputs extends AdoptionInputs {
  name: string;
  region: string;
  plan: string;
  maxmemoryPolicy: string;
  availableTimeoutMinutes: number;
}

export interface KeyValueOutputs extends KeyValueInputs {
  /** The instance existed before the stack: never deleted or replaced by it. */
  adopted?: boolean;
  keyValueId: string;
  status: string;
  internalConnectionString: string;
  externalConnectionString: string;
}

export const KEY_VALUE_REPLACE_FIELDS = ['region'] as const;
export const KEY_VALUE_FIXED_FIELDS = ['name', 'plan', 'maxmemoryPolicy'] as const;

async function keyValueOutputs(access: RenderAccess, detail: KeyValueDetail, inputs: KeyValueInputs, adopted = false): Promise<KeyValueOutputs> {
  const info = await access.client.getKeyValueConnectionInfo(detail.id);
  return {
    ...(inputs.adoptId !== undefined ? { adoptId: inputs.adoptId } : {}),
    ...(inputs.stack !== undefined ? { stack: inputs.stack } : {}),
    adopted,
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
      if (inputs.adoptId) {
        const id = inputs.adoptId;
        const detail = await readForAdoption('Key Value instance', 'existingKeyValueId', id, inputs.stack, () => access.client.getKeyValue(id));
        const mismatches = keyValueAdoptionMismatches(detail, inputs, ownerId);
        if (mismatches.length > 0) throw new Error(adoptionRefusal('the Key Value instance', id, mismatches));
        access.progress(`${detail.name}: adopted Key Value ${id} as it is (nothing changed on Render)`);
        return { id, outs: await keyValueOutputs(access, detail, inputs, true) };
      }
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
        return { id, props: await keyValueOutputs(access, detail, props as KeyValueInputs, (props as KeyValueOutputs).adopted === true) };
      } catch (err) {
        if (isNotFound(err)) return { id: '', props: {} as KeyValueOutputs };
        throw err;
      }
    },
    async update(id, _olds, news) {
      const access = openRenderAccess(configured.config, options);
      return { outs: await keyValueOutputs(access, await access.client.getKeyValue(id), news, (_olds as KeyValueOutputs).adopted === true) };
    },
    async delete(id, props) {
      const access = openRenderAccess(configured.config, options);
      await deleteUnlessAdopted(access, 'Key Value', id, props, () => access.client.deleteKeyValue(id));
    },
  };
}

/** Pure: how an existing Postgres instance differs from the one the stack describes. */
export function postgresAdoptionMismatches(detail: PostgresDetail, inputs: PostgresInputs, ownerId: string) {
  return identityMismatches(
    {
      name: detail.name, ownerId: detail.owner?.id, region: detail.region, version: detail.version, plan: detail.plan,
      databaseName: detail.databaseName, databaseUser: detail.databaseUser, highAvailability: detail.highAvailabilityEnabled,
    },
    {
      name: inputs.name, ownerId, region: inputs.region, version: inputs.version, plan: inputs.plan,
      databaseName: inputs.databaseName, databaseUser: inputs.databaseUser, highAvailability: inputs.highAvailability,
    },
    {
      name: 'postgresName', ownerId: 'renderOwnerId', region: 'region', version: 'postgresVersion', plan: 'postgresPlan',
      databaseName: 'postgresDatabaseName', databaseUser: 'postgresDatabaseUser', highAvailability: 'postgresHighAvailability',
    },
    inputs.stack ?? '<stack>',
  );
}

/** Pure: how an existing Key Value instance differs from the one the stack describes. */
export function keyValueAdoptionMismatches(detail: KeyValueDetail, inputs: KeyValueInputs, ownerId: string) {
  return identityMismatches(
    { name: detail.name, ownerId: detail.owner?.id, region: detail.region, plan: detail.plan, maxmemoryPolicy: detail.options?.maxmemoryPolicy ?? inputs.maxmemoryPolicy },
    { name: inputs.name, ownerId, region: inputs.region, plan: inputs.plan, maxmemoryPolicy: inputs.maxmemoryPolicy },
    { name: 'keyValueName', ownerId: 'renderOwnerId', region: 'region', plan: 'keyValuePlan', maxmemoryPolicy: 'keyValueMaxmemoryPolicy' },
    inputs.stack ?? '<stack>',
  );
}
