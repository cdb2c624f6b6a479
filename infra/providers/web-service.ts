/**
 * WebService: a Render web service as a Pulumi dynamic resource.
 * - region change = replace (Render cannot move a service);
 * - env-var change = replace the env vars, then deploy, then wait for `live` (unless waitForLive is false);
 * - an env var edited outside Pulumi shows up as drift: `read` digests the live values, `diff` compares.
 * Env var values never land in the outputs: only their sha256 digests do.
 */
import type * as pulumi from '@pulumi/pulumi';
import type { Deploy, Service, ServiceCreateBody, ServicePatch } from '../../render/types';
import {
  digestEnvVars,
  digestValue,
  errorMessage,
  isUnknown,
  openRenderAccess,
  type ProviderConfig,
  type ProviderOptions,
  type RenderAccess,
  ResourceInitError,
  resolveOwnerId,
} from './render-access';

export interface WebServiceInputs {
  name: string;
  region: string;
  plan: string;
  instances: number;
  runtime: string;
  repo: string;
  branch: string;
  autoDeploy: boolean;
  buildCommand: string;
  startCommand: string;
  healthCheckPath: string;
  preDeployCommand: string;
  maxShutdownDelaySeconds: number;
  envVars: Record<string, string>;
  /** Deploy exactly this commit (production's pinned commit); otherwise the branch head. */
  deployCommit?: string;
  waitForLive: boolean;
  deployTimeoutMinutes: number;
}

export interface WebServiceOutputs extends Omit<WebServiceInputs, 'envVars'> {
  serviceId: string;
  ownerId: string;
  url: string;
  dashboardUrl: string;
  envVarDigests: Record<string, string>;
  lastDeployId: string;
  lastDeployStatus: string;
}

/** Fields that Render cannot change in place. */
export const WEB_SERVICE_REPLACE_FIELDS = ['region'] as const;
/** Fields applied with PATCH /services/{id}. */
const PATCHED_FIELDS = [
  'name', 'plan', 'repo', 'branch', 'autoDeploy', 'buildCommand', 'startCommand', 'healthCheckPath',
  'preDeployCommand', 'maxShutdownDelaySeconds', 'runtime',
] as const;

export interface WebServiceChanges {
  replaces: string[];
  patched: string[];
  instances: boolean;
  /** Env var keys added, removed or changed (by digest), or ['*'] when the new values are not known yet. */
  envVarKeys: string[];
  deployCommit: boolean;
}

/** Pure: what differs between the recorded outputs and the desired inputs. */
export function webServiceChanges(olds: WebServiceOutputs, news: WebServiceInputs): WebServiceChanges {
  const differs = (key: keyof WebServiceInputs) =>
    isUnknown(news[key]) || JSON.stringify(olds[key as keyof WebServiceOutputs]) !== JSON.stringify(news[key]);
  return {
    replaces: WEB_SERVICE_REPLACE_FIELDS.filter((key) => differs(key)),
    patched: PATCHED_FIELDS.filter((key) => differs(key)),
    instances: differs('instances'),
    envVarKeys: changedEnvVarKeys(olds.envVarDigests ?? {}, news.envVars),
    deployCommit: news.deployCommit !== undefined && differs('deployCommit'),
  };
}

export function changedEnvVarKeys(oldDigests: Readonly<Record<string, string>>, desired: unknown): string[] {
  if (isUnknown(desired) || desired === null || typeof desired !== 'object') return ['*'];
  const wanted = desired as Record<string, unknown>;
  const keys = new Set([...Object.keys(oldDigests), ...Object.keys(wanted)]);
  const changed: string[] = [];
  for (const key of [...keys].sort()) {
    const value = wanted[key];
    if (value === undefined || isUnknown(value) || typeof value !== 'string' || oldDigests[key] !== digestValue(value)) {
      changed.push(key);
    }
  }
  return changed;
}

export function hasChanges(changes: WebServiceChanges): boolean {
  return (
    changes.replaces.length > 0 ||
    changes.patched.length > 0 ||
    changes.instances ||
    changes.envVarKeys.length > 0 ||
    changes.deployCommit
  );
}

/** Pure: input validation, so a bad value fails at preview rather than half-way through an update. */
export function checkWebServiceInputs(news: WebServiceInputs): Array<{ property: string; reason: string }> {
  const failures: Array<{ property: string; reason: string }> = [];
  const known = (value: unknown) => value !== undefined && !isUnknown(value);
  if (known(news.instances) && (!Number.isInteger(news.instances) || news.instances < 1)) {
    failures.push({ property: 'instances', reason: 'must be a whole number of at least 1' });
  }
  if (known(news.maxShutdownDelaySeconds) && (news.maxShutdownDelaySeconds < 1 || news.maxShutdownDelaySeconds > 300)) {
    failures.push({ property: 'maxShutdownDelaySeconds', reason: 'must be between 1 and 300 (Render limit)' });
  }
  if (known(news.healthCheckPath) && !String(news.healthCheckPath).startsWith('/')) {
    failures.push({ property: 'healthCheckPath', reason: 'must start with /' });
  }
  if (known(news.envVars) && typeof news.envVars === 'object') {
    for (const key of Object.keys(news.envVars)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) failures.push({ property: `envVars.${key}`, reason: 'is not a valid env var name' });
    }
  }
  return failures;
}

export function createServiceBody(inputs: WebServiceInputs, ownerId: string): ServiceCreateBody {
  return {
    type: 'web_service',
    name: inputs.name,
    ownerId,
    repo: inputs.repo,
    branch: inputs.branch,
    autoDeploy: inputs.autoDeploy ? 'yes' : 'no',
    envVars: Object.entries(inputs.envVars).map(([key, value]) => ({ key, value })),
    serviceDetails: {
      runtime: inputs.runtime as 'node',
      plan: inputs.plan as 'starter',
      region: inputs.region as 'oregon',
      numInstances: inputs.instances,
      healthCheckPath: inputs.healthCheckPath,
      preDeployCommand: inputs.preDeployCommand,
      maxShutdownDelaySeconds: inputs.maxShutdownDelaySeconds,
      envSpecificDetails: { buildCommand: inputs.buildCommand, startCommand: inputs.startCommand },
    },
  };
}

export function servicePatchBody(inputs: WebServiceInputs): ServicePatch {
  return {
    name: inputs.name,
    repo: inputs.repo,
    branch: inputs.branch,
    autoDeploy: inputs.autoDeploy ? 'yes' : 'no',
    serviceDetails: {
      runtime: inputs.runtime as 'node',
      plan: inputs.plan as 'starter',
      healthCheckPath: inputs.healthCheckPath,
      preDeployCommand: inputs.preDeployCommand,
      maxShutdownDelaySeconds: inputs.maxShutdownDelaySeconds,
      envSpecificDetails: { buildCommand: inputs.buildCommand, startCommand: inputs.startCommand },
    },
  };
}

interface WebDetails {
  region?: string;
  plan?: string;
  numInstances?: number;
  runtime?: string;
  healthCheckPath?: string;
  preDeployCommand?: string;
  maxShutdownDelaySeconds?: number;
  url?: string;
  envSpecificDetails?: { buildCommand?: string; startCommand?: string; preDeployCommand?: string };
}

/** Pure: the outputs as Render reports them (live values), keeping the behavioural inputs from `base`. */
export function outputsFromService(
  service: Service,
  envVars: Readonly<Record<string, string>>,
  base: Pick<WebServiceOutputs, 'waitForLive' | 'deployTimeoutMinutes' | 'lastDeployId' | 'lastDeployStatus'> &
    Partial<Pick<WebServiceOutputs, 'deployCommit'>>,
): WebServiceOutputs {
  const details = service.serviceDetails as WebDetails;
  return {
    name: service.name,
    region: details.region ?? '',
    plan: details.plan ?? '',
    instances: details.numInstances ?? 1,
    runtime: details.runtime ?? '',
    repo: service.repo ?? '',
    branch: service.branch ?? '',
    autoDeploy: service.autoDeploy === 'yes',
    buildCommand: details.envSpecificDetails?.buildCommand ?? '',
    startCommand: details.envSpecificDetails?.startCommand ?? '',
    healthCheckPath: details.healthCheckPath ?? '',
    preDeployCommand: details.preDeployCommand ?? details.envSpecificDetails?.preDeployCommand ?? '',
    maxShutdownDelaySeconds: details.maxShutdownDelaySeconds ?? 30,
    ...(base.deployCommit !== undefined ? { deployCommit: base.deployCommit } : {}),
    waitForLive: base.waitForLive,
    deployTimeoutMinutes: base.deployTimeoutMinutes,
    serviceId: service.id,
    ownerId: service.ownerId,
    url: details.url ?? '',
    dashboardUrl: service.dashboardUrl,
    envVarDigests: digestEnvVars(envVars),
    lastDeployId: base.lastDeployId,
    lastDeployStatus: base.lastDeployStatus,
  };
}

async function liveEnvVars(access: RenderAccess, serviceId: string): Promise<Record<string, string>> {
  const vars = await access.client.listEnvVars(serviceId);
  return Object.fromEntries(vars.map((v) => [v.key, v.value]));
}

/** Deploys (a pinned commit or the branch head) and, unless told not to, waits for `live`. */
async function deployAndWait(
  access: RenderAccess,
  serviceId: string,
  inputs: WebServiceInputs,
  existing: Deploy | undefined,
): Promise<Deploy> {
  const deploy = existing ?? (await access.client.triggerDeploy(serviceId, inputs.deployCommit ? { commitId: inputs.deployCommit } : {}));
  access.progress(`${inputs.name}: deploy ${deploy.id} ${deploy.status ?? 'created'}${inputs.deployCommit ? ` (commit ${inputs.deployCommit})` : ''}`);
  if (!inputs.waitForLive) return deploy;
  return access.client.waitForDeploy(serviceId, deploy.id, {
    timeoutMs: inputs.deployTimeoutMinutes * 60_000,
    pollIntervalMs: access.pollIntervalMs,
    onProgress: (d) => access.progress(`${inputs.name}: deploy ${d.id} ${d.status ?? 'unknown'}`),
  });
}

/** Runs a deploy; a failure still records the resource (with the failed deploy) so nothing is orphaned. */
async function deployRecordingFailure(
  access: RenderAccess,
  service: Service,
  inputs: WebServiceInputs & { __provider?: unknown },
  existing: Deploy | undefined,
  verb: string,
): Promise<WebServiceOutputs> {
  const base = {
    waitForLive: inputs.waitForLive,
    deployTimeoutMinutes: inputs.deployTimeoutMinutes,
    ...(inputs.deployCommit !== undefined ? { deployCommit: inputs.deployCommit } : {}),
  };
  try {
    const deploy = await deployAndWait(access, service.id, inputs, existing);
    return outputsFromService(service, inputs.envVars, { ...base, lastDeployId: deploy.id, lastDeployStatus: deploy.status ?? 'created' });
  } catch (err) {
    const failedDeployId = (err as { deployId?: string }).deployId ?? existing?.id ?? '';
    // DeployFailedError carries the deploy's final status, RenderWaitTimeoutError the last one seen.
    const { status, lastStatus } = err as { status?: unknown; lastStatus?: unknown };
    const outs = outputsFromService(service, inputs.envVars, {
      ...base,
      lastDeployId: failedDeployId,
      lastDeployStatus: typeof status === 'string' ? status : typeof lastStatus === 'string' ? lastStatus : 'unknown',
    });
    throw new ResourceInitError(
      `${verb} ${inputs.name}: the service is configured but its deploy did not go live: ${errorMessage(err)}`,
      service.id,
      { ...outs, __provider: inputs.__provider },
      [errorMessage(err)],
    );
  }
}

export function createWebServiceProvider(options: ProviderOptions = {}): pulumi.dynamic.ResourceProvider<WebServiceInputs, WebServiceOutputs> {
  const configured: { config?: ProviderConfig } = {};
  return {
    async configure(req) {
      configured.config = req.config;
    },

    async check(_olds, news) {
      const failures = checkWebServiceInputs(news);
      return failures.length > 0 ? { inputs: news, failures } : { inputs: news };
    },

    async diff(_id, olds, news) {
      const changes = webServiceChanges(olds, news);
      return {
        changes: hasChanges(changes),
        replaces: changes.replaces,
        // Two services cannot share one name, so a replacement deletes the old one first.
        deleteBeforeReplace: changes.replaces.length > 0,
      };
    },

    async create(inputs) {
      const access = openRenderAccess(configured.config, options);
      const ownerId = await resolveOwnerId(access);
      const clash = await access.client.findServicesByName(inputs.name, { ownerId });
      if (clash.length > 0) {
        throw new Error(
          `A Render service named ${inputs.name} already exists (${clash.map((s) => s.id).join(', ')}); ` +
            'delete it or choose another memory-rollout:serviceName',
        );
      }
      const created = await access.client.createService(createServiceBody(inputs, ownerId));
      const service = created.service;
      if (!service) throw new Error(`Render created ${inputs.name} but returned no service`);
      access.progress(`${inputs.name}: created service ${service.id}`);
      // Render starts a deploy of the branch head on creation; a pinned commit supersedes it.
      let initial: Deploy | undefined;
      if (!inputs.deployCommit) {
        initial = created.deployId
          ? await access.client.getDeploy(service.id, created.deployId)
          : (await access.client.listDeploys(service.id, { limit: 1 }))[0];
      }
      const outs = await deployRecordingFailure(access, service, inputs as WebServiceInputs & { __provider?: unknown }, initial, 'Creating');
      return { id: service.id, outs };
    },

    async read(id, props) {
      const access = openRenderAccess(configured.config, options);
      let service: Service;
      try {
        service = await access.client.getService(id);
      } catch (err) {
        if ((err as { status?: number }).status === 404) return { id: '', props: {} as WebServiceOutputs };
        throw err;
      }
      const previous = props as WebServiceOutputs;
      return {
        id,
        props: outputsFromService(service, await liveEnvVars(access, id), {
          waitForLive: previous.waitForLive ?? true,
          deployTimeoutMinutes: previous.deployTimeoutMinutes ?? 20,
          ...(previous.deployCommit !== undefined ? { deployCommit: previous.deployCommit } : {}),
          lastDeployId: previous.lastDeployId ?? '',
          lastDeployStatus: previous.lastDeployStatus ?? '',
        }),
      };
    },

    async update(id, olds, news) {
      const access = openRenderAccess(configured.config, options);
      const changes = webServiceChanges(olds, news);
      if (changes.patched.length > 0) {
        await access.client.updateService(id, servicePatchBody(news));
        access.progress(`${news.name}: updated ${changes.patched.join(', ')}`);
      }
      // Scaling takes effect without a deploy.
      if (changes.instances) {
        await access.client.scaleService(id, news.instances);
        access.progress(`${news.name}: scaled ${olds.instances} -> ${news.instances} instances`);
      }
      let service = await access.client.getService(id);
      if (changes.envVarKeys.length > 0) {
        await access.client.replaceEnvVars(id, news.envVars);
        access.progress(`${news.name}: env vars replaced (changed: ${changes.envVarKeys.join(', ')})`);
      }
      // Render applies env-var and settings changes only with a new deploy.
      if (changes.envVarKeys.length > 0 || changes.deployCommit || changes.patched.length > 0) {
        service = await access.client.getService(id);
        const outs = await deployRecordingFailure(access, service, news as WebServiceInputs & { __provider?: unknown }, undefined, 'Updating');
        return { outs };
      }
      return {
        outs: outputsFromService(service, news.envVars, {
          waitForLive: news.waitForLive,
          deployTimeoutMinutes: news.deployTimeoutMinutes,
          ...(news.deployCommit !== undefined ? { deployCommit: news.deployCommit } : {}),
          lastDeployId: olds.lastDeployId,
          lastDeployStatus: olds.lastDeployStatus,
        }),
      };
    },

    async delete(id) {
      const access = openRenderAccess(configured.config, options);
      try {
        await access.client.deleteService(id);
        access.progress(`deleted service ${id}`);
      } catch (err) {
        if ((err as { status?: number }).status !== 404) throw err;
      }
    },
  };
}
