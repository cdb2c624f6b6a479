/**
 * WebService: a Render web service as a Pulumi dynamic resource.
 * - region change = replace (Render cannot move a service);
 * - env-var change = replace the env vars, then deploy, then wait for `live` (unless waitForLive is false);
 * - an env var edited outside Pulumi shows up as drift: `read` digests the live values, `diff` compares;
 *   `read` also reports the live commit, plan and instance count, so a deploy made outside Pulumi is drift too;
 * - a change that would replace the service fails the preview (in `diff`) unless `allowReplace` is set;
 * - adoption (`adoptServiceId`): `create` reads and verifies an existing service instead of creating one, and
 *   changes nothing; later updates touch only the settings the stack manages; `delete` leaves it standing.
 * Env var values never land in the outputs: only their sha256 digests do.
 */
import type * as pulumi from '@pulumi/pulumi';
import type { Deploy, Service, ServiceCreateBody, ServicePatch } from '../../render/types';
import { adoptedDeleteNotice, adoptedReplaceRefusal, adoptionRefusal, identityMismatches, normalizeRepo } from './adoption';
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
  /** Adopt this existing service (memory-rollout:existingServiceId) instead of creating one. */
  adoptServiceId?: string;
  /** A change that replaces the service is refused at preview unless this is true (memory-rollout:allowServiceReplacement). */
  allowReplace?: boolean;
  /**
   * Env vars that override `envVars` until `deployCommit` is live, when the provider creates the service: Render
   * deploys the branch head on creation (POST /services takes no commit), so that deploy runs with these (the flag off).
   */
  envVarsUntilPinnedLive?: Record<string, string>;
  /** The stack's name, for the `pulumi config set ... -s <stack>` lines in refusals. */
  stack?: string;
}

export interface WebServiceOutputs extends Omit<WebServiceInputs, 'envVars'> {
  serviceId: string;
  ownerId: string;
  url: string;
  dashboardUrl: string;
  envVarDigests: Record<string, string>;
  lastDeployId: string;
  lastDeployStatus: string;
  /** The service existed before the stack: the stack adopted it, and never deletes or replaces it. */
  adopted?: boolean;
  /** The commit of the service's live deploy, as Render reports it on the last create/update/refresh ('' if none). */
  liveCommit?: string;
}

/** Fields that Render cannot change in place. */
export const WEB_SERVICE_REPLACE_FIELDS = ['region'] as const;
/** Fields applied with PATCH /services/{id}. */
const PATCHED_FIELDS = [
  'name', 'plan', 'repo', 'branch', 'autoDeploy', 'buildCommand', 'startCommand', 'healthCheckPath',
  'preDeployCommand', 'maxShutdownDelaySeconds', 'runtime',
] as const;
/**
 * What the stack manages on an adopted service (besides its declared env vars, the instance count and the deployed
 * commit). Its build and start commands, health check and the env vars the stack does not declare stay the team's.
 */
export const ADOPTED_PATCHED_FIELDS = ['plan', 'autoDeploy'] as const;

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
  const adopted = olds.adopted === true;
  return {
    replaces: WEB_SERVICE_REPLACE_FIELDS.filter((key) => differs(key)),
    patched: (adopted ? ADOPTED_PATCHED_FIELDS : PATCHED_FIELDS).filter((key) => differs(key)),
    instances: differs('instances'),
    // An adopted service keeps the env vars the stack does not declare: only the declared ones are compared.
    envVarKeys: changedEnvVarKeys(olds.envVarDigests ?? {}, news.envVars, adopted),
    deployCommit: news.deployCommit !== undefined && differs('deployCommit'),
  };
}

export function changedEnvVarKeys(oldDigests: Readonly<Record<string, string>>, desired: unknown, declaredOnly = false): string[] {
  if (isUnknown(desired) || desired === null || typeof desired !== 'object') return ['*'];
  const wanted = desired as Record<string, unknown>;
  const keys = new Set([...(declaredOnly ? [] : Object.keys(oldDigests)), ...Object.keys(wanted)]);
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

export function servicePatchBody(inputs: WebServiceInputs, adopted = false): ServicePatch {
  if (adopted) {
    return { autoDeploy: inputs.autoDeploy ? 'yes' : 'no', serviceDetails: { plan: inputs.plan as 'starter' } };
  }
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
    Partial<Pick<WebServiceOutputs, 'deployCommit' | 'adopted' | 'liveCommit' | 'allowReplace' | 'stack'>>,
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
    adopted: base.adopted === true,
    liveCommit: base.liveCommit ?? '',
    ...(base.allowReplace !== undefined ? { allowReplace: base.allowReplace } : {}),
    ...(base.stack !== undefined ? { stack: base.stack } : {}),
  };
}

/** The commit of the service's live deploy ('' when nothing is live). */
async function liveDeploy(access: RenderAccess, serviceId: string): Promise<Deploy | undefined> {
  return (await access.client.listDeploys(serviceId, { status: 'live', limit: 1 }))[0];
}

/** Pure: how an existing service differs from the one the stack describes (type, name, region, owner, repo, branch). */
export function webServiceAdoptionMismatches(service: Service, inputs: WebServiceInputs, ownerId: string) {
  const details = service.serviceDetails as WebDetails;
  return identityMismatches(
    { type: service.type, name: service.name, region: details.region, ownerId: service.ownerId, repo: service.repo, branch: service.branch },
    { type: 'web_service', name: inputs.name, region: inputs.region, ownerId, repo: inputs.repo, branch: inputs.branch },
    { name: 'serviceName', region: 'region', ownerId: 'renderOwnerId', repo: 'repo', branch: 'branch' },
    inputs.stack ?? '<stack>',
    (field, a, b) => (field === 'repo' ? normalizeRepo(a) === normalizeRepo(b) : a === b),
  );
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
  commit: string | undefined = inputs.deployCommit,
  wait: boolean = inputs.waitForLive,
): Promise<Deploy> {
  const deploy = existing ?? (await access.client.triggerDeploy(serviceId, commit ? { commitId: commit } : {}));
  access.progress(`${inputs.name}: deploy ${deploy.id} ${deploy.status ?? 'created'}${commit ? ` (commit ${commit})` : ''}`);
  if (!wait) return deploy;
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
  how: { commit?: string; wait?: boolean; envVars?: Record<string, string>; adopted?: boolean } = {},
): Promise<WebServiceOutputs> {
  const envVars = how.envVars ?? inputs.envVars;
  const commit = 'commit' in how ? how.commit : inputs.deployCommit;
  const base = {
    waitForLive: inputs.waitForLive,
    deployTimeoutMinutes: inputs.deployTimeoutMinutes,
    ...(inputs.deployCommit !== undefined ? { deployCommit: inputs.deployCommit } : {}),
    ...(inputs.allowReplace !== undefined ? { allowReplace: inputs.allowReplace } : {}),
    ...(inputs.stack !== undefined ? { stack: inputs.stack } : {}),
    adopted: how.adopted === true,
  };
  try {
    const deploy = await deployAndWait(access, service.id, inputs, existing, commit, how.wait ?? inputs.waitForLive);
    const live = deploy.status === 'live' ? (deploy.commit?.id ?? '') : undefined;
    return outputsFromService(service, envVars, {
      ...base,
      lastDeployId: deploy.id,
      lastDeployStatus: deploy.status ?? 'created',
      ...(live !== undefined ? { liveCommit: live } : {}),
    });
  } catch (err) {
    const failedDeployId = (err as { deployId?: string }).deployId ?? existing?.id ?? '';
    // DeployFailedError carries the deploy's final status, RenderWaitTimeoutError the last one seen.
    const { status, lastStatus } = err as { status?: unknown; lastStatus?: unknown };
    const outs = outputsFromService(service, envVars, {
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

/** Why a replace fails the preview, and how to do it on purpose. */
export function replaceRefusal(olds: WebServiceOutputs, news: WebServiceInputs, fields: readonly string[]): string {
  const stack = news.stack ?? '<stack>';
  const what = fields.map((f) => `${f} ${String(olds[f as keyof WebServiceOutputs])} -> ${String(news[f as keyof WebServiceInputs])}`).join(', ');
  return (
    `Refusing to replace the web service ${olds.name} (${olds.serviceId}): ${what} cannot change in place on Render, so ` +
    'Pulumi would delete the service first and create a new one (downtime, a new URL, the deploy history gone). ' +
    `Put it back (pulumi config set memory-rollout:${fields[0]} ${String(olds[fields[0] as keyof WebServiceOutputs])} -s ${stack}), or, on purpose: ` +
    `pulumi config set memory-rollout:allowServiceReplacement true -s ${stack} (production is also protected: ` +
    '`pulumi state unprotect <its urn>` first), run `pulumi up`, then remove the setting'
  );
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

    async diff(id, olds, news) {
      const changes = webServiceChanges(olds, news);
      if (news.adoptServiceId !== undefined && !isUnknown(news.adoptServiceId) && news.adoptServiceId !== id) {
        throw new Error(
          `memory-rollout:existingServiceId is ${news.adoptServiceId}, but this stack already manages ${olds.name} (${id}). ` +
            `Set it to ${id} (pulumi config set memory-rollout:existingServiceId ${id} -s ${news.stack ?? '<stack>'}), or remove it`,
        );
      }
      // The preview fails here, before anything is deleted: the stack-config guard cannot see the old region.
      if (changes.replaces.length > 0) {
        if (olds.adopted) throw new Error(adoptedReplaceRefusal('the web service', id, changes.replaces));
        if (news.allowReplace !== true) throw new Error(replaceRefusal(olds, news, changes.replaces));
      }
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
      if (inputs.adoptServiceId) return adoptWebService(access, inputs, ownerId);
      const clash = await access.client.findServicesByName(inputs.name, { ownerId });
      if (clash.length > 0) {
        throw new Error(
          `A Render service named ${inputs.name} already exists (${clash.map((s) => s.id).join(', ')}). To manage it with this ` +
            `stack, adopt it: pulumi config set memory-rollout:existingServiceId ${clash[0]!.id} -s ${inputs.stack ?? '<stack>'} ` +
            '(`npm run infra:adopt` finds it by name); or choose another memory-rollout:serviceName',
        );
      }
      // Render deploys the branch head on creation (POST /services takes no commit). With a pinned commit, that deploy
      // and the pinned one run with envVarsUntilPinnedLive (the flag off); the service gets its real env vars only
      // once the pinned commit is live.
      const hold = inputs.deployCommit && inputs.envVarsUntilPinnedLive && Object.keys(inputs.envVarsUntilPinnedLive).length > 0
        ? { ...inputs.envVars, ...inputs.envVarsUntilPinnedLive }
        : undefined;
      const created = await access.client.createService(createServiceBody(hold ? { ...inputs, envVars: hold } : inputs, ownerId));
      const service = created.service;
      if (!service) throw new Error(`Render created ${inputs.name} but returned no service`);
      access.progress(`${inputs.name}: created service ${service.id}${hold ? ` with ${Object.keys(inputs.envVarsUntilPinnedLive!).join(', ')} held until commit ${inputs.deployCommit} is live` : ''}`);
      let initial: Deploy | undefined;
      if (!inputs.deployCommit) {
        initial = created.deployId
          ? await access.client.getDeploy(service.id, created.deployId)
          : (await access.client.listDeploys(service.id, { limit: 1 }))[0];
      }
      const provider = inputs as WebServiceInputs & { __provider?: unknown };
      if (!hold) return { id: service.id, outs: await deployRecordingFailure(access, service, provider, initial, 'Creating') };
      // Step 1: the pinned commit, still with the held values; always waited for, since step 2 needs it live.
      await deployRecordingFailure(access, service, provider, undefined, 'Creating', { envVars: hold, wait: true });
      if (JSON.stringify(digestEnvVars(hold)) === JSON.stringify(digestEnvVars(inputs.envVars))) {
        return { id: service.id, outs: await outputsAfter(access, service.id, inputs, inputs.envVars) };
      }
      // Step 2: the pinned commit is live; now its real env vars (the flag as the stack says), deployed again.
      await access.client.replaceEnvVars(service.id, inputs.envVars);
      access.progress(`${inputs.name}: commit ${inputs.deployCommit} is live; env vars set as the stack declares them`);
      const outs = await deployRecordingFailure(access, await access.client.getService(service.id), provider, undefined, 'Creating');
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
      const live = await liveDeploy(access, id);
      const liveCommit = live?.commit?.id ?? '';
      return {
        id,
        props: outputsFromService(service, await liveEnvVars(access, id), {
          waitForLive: previous.waitForLive ?? true,
          deployTimeoutMinutes: previous.deployTimeoutMinutes ?? 20,
          // A pinned service's recorded commit is the live one: a deploy made outside Pulumi shows up as drift.
          ...(previous.deployCommit !== undefined ? { deployCommit: liveCommit || previous.deployCommit } : {}),
          lastDeployId: previous.lastDeployId ?? '',
          lastDeployStatus: previous.lastDeployStatus ?? '',
          adopted: previous.adopted === true,
          liveCommit,
          ...(previous.allowReplace !== undefined ? { allowReplace: previous.allowReplace } : {}),
          ...(previous.stack !== undefined ? { stack: previous.stack } : {}),
        }),
      };
    },

    async update(id, olds, news) {
      const access = openRenderAccess(configured.config, options);
      const changes = webServiceChanges(olds, news);
      const adopted = olds.adopted === true;
      if (changes.patched.length > 0) {
        await access.client.updateService(id, servicePatchBody(news, adopted));
        access.progress(`${news.name}: updated ${changes.patched.join(', ')}`);
      }
      // Scaling takes effect without a deploy.
      if (changes.instances) {
        await access.client.scaleService(id, news.instances);
        access.progress(`${news.name}: scaled ${olds.instances} -> ${news.instances} instances`);
      }
      let service = await access.client.getService(id);
      // An adopted service keeps the env vars the stack does not declare.
      const envVars = adopted ? { ...(await liveEnvVars(access, id)), ...news.envVars } : news.envVars;
      if (changes.envVarKeys.length > 0) {
        await access.client.replaceEnvVars(id, envVars);
        access.progress(`${news.name}: env vars replaced (changed: ${changes.envVarKeys.join(', ')})`);
      }
      // Render applies env-var and settings changes only with a new deploy. Without a pinned commit, a service that does
      // not follow its branch (auto-deploy off: production before its first promotion) redeploys the commit it runs.
      if (changes.envVarKeys.length > 0 || changes.deployCommit || changes.patched.length > 0) {
        service = await access.client.getService(id);
        const commit = news.deployCommit ?? (!news.autoDeploy ? (await liveDeploy(access, id))?.commit?.id : undefined);
        const outs = await deployRecordingFailure(access, service, news as WebServiceInputs & { __provider?: unknown }, undefined, 'Updating', {
          envVars,
          adopted,
          ...(commit !== undefined ? { commit } : {}),
        });
        return { outs };
      }
      return {
        outs: outputsFromService(service, envVars, {
          waitForLive: news.waitForLive,
          deployTimeoutMinutes: news.deployTimeoutMinutes,
          ...(news.deployCommit !== undefined ? { deployCommit: news.deployCommit } : {}),
          lastDeployId: olds.lastDeployId,
          lastDeployStatus: olds.lastDeployStatus,
          adopted,
          liveCommit: olds.liveCommit ?? '',
          ...(news.allowReplace !== undefined ? { allowReplace: news.allowReplace } : {}),
          ...(news.stack !== undefined ? { stack: news.stack } : {}),
        }),
      };
    },

    async delete(id, props) {
      const access = openRenderAccess(configured.config, options);
      if ((props as WebServiceOutputs | undefined)?.adopted) {
        access.progress(adoptedDeleteNotice('Web service', id));
        return;
      }
      try {
        await access.client.deleteService(id);
        access.progress(`deleted service ${id}`);
      } catch (err) {
        if ((err as { status?: number }).status !== 404) throw err;
      }
    },
  };
}

/** The outputs from what Render now reports (the service, its live deploy), after a create or update. */
async function outputsAfter(access: RenderAccess, serviceId: string, inputs: WebServiceInputs, envVars: Record<string, string>, adopted = false): Promise<WebServiceOutputs> {
  const service = await access.client.getService(serviceId);
  const live = await liveDeploy(access, serviceId);
  const liveCommit = live?.commit?.id ?? '';
  return outputsFromService(service, envVars, {
    waitForLive: inputs.waitForLive,
    deployTimeoutMinutes: inputs.deployTimeoutMinutes,
    ...(inputs.deployCommit !== undefined ? { deployCommit: adopted ? liveCommit : inputs.deployCommit } : {}),
    lastDeployId: live?.id ?? '',
    lastDeployStatus: live?.status ?? '',
    adopted,
    liveCommit,
    ...(inputs.allowReplace !== undefined ? { allowReplace: inputs.allowReplace } : {}),
    ...(inputs.stack !== undefined ? { stack: inputs.stack } : {}),
  });
}

/**
 * Adoption: reads the existing service, refuses unless it is the one the stack describes, and records it as it is.
 * Nothing changes on Render here: the settings the stack manages (its env vars, instances, plan, auto-deploy, the
 * pinned commit) differ from the recorded live values, so the next preview shows them as an update.
 */
async function adoptWebService(access: RenderAccess, inputs: WebServiceInputs, ownerId: string) {
  const id = inputs.adoptServiceId!;
  let service: Service;
  try {
    service = await access.client.getService(id);
  } catch (err) {
    if ((err as { status?: number }).status === 404) {
      throw new Error(
        `memory-rollout:existingServiceId is ${id}, but the Render API key sees no such service. ` +
          `\`npm run infra:adopt -- --stack ${inputs.stack ?? '<stack>'}\` finds the service by name and prints its id`,
      );
    }
    throw err;
  }
  const mismatches = webServiceAdoptionMismatches(service, inputs, ownerId);
  if (mismatches.length > 0) throw new Error(adoptionRefusal('the web service', id, mismatches));
  const envVars = await liveEnvVars(access, id);
  const outs = await outputsAfter(access, id, inputs, envVars, true);
  const pending = webServiceChanges(outs, inputs);
  const listed = [
    ...pending.patched,
    ...(pending.instances ? [`instances ${outs.instances} -> ${inputs.instances}`] : []),
    ...(pending.envVarKeys.length > 0 ? [`env vars ${pending.envVarKeys.join(', ')}`] : []),
    ...(pending.deployCommit ? [`commit ${outs.liveCommit || '(none live)'} -> ${inputs.deployCommit}`] : []),
  ];
  access.progress(
    `${inputs.name}: adopted ${id} as it is (nothing changed on Render)` +
      (listed.length > 0 ? `; the next pulumi up changes: ${listed.join('; ')}` : '; it already matches the stack'),
  );
  return { id, outs };
}
