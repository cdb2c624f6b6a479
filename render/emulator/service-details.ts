// Turns the serviceDetails of a create/patch request into the serviceDetails Render answers with.
// Render's responses differ from its requests (e.g. preDeployCommand moves into envSpecificDetails), and
// only fields of the response schema for the service's type are kept.

export type Details = Record<string, unknown> & { envSpecificDetails?: Record<string, unknown> };

/** Property names of a response schema, e.g. from RenderSpecValidator.schemaProperties. */
export type PropertiesOf = (schemaName: string) => readonly string[];

export const RESPONSE_DETAILS_SCHEMA: Record<string, string> = {
  static_site: 'staticSiteDetails',
  web_service: 'webServiceDetails',
  private_service: 'privateServiceDetails',
  background_worker: 'backgroundWorkerDetails',
  cron_job: 'cronJobDetails',
};

function pick(source: Record<string, unknown>, keys: readonly string[]): Details {
  const out: Details = {};
  for (const key of keys) if (source[key] !== undefined) out[key] = source[key];
  return out;
}

function envSpecific(runtime: string, given: Record<string, unknown>, propertiesOf: PropertiesOf): Record<string, unknown> {
  const docker = runtime === 'docker' || runtime === 'image';
  const base = docker
    ? { dockerCommand: '', dockerContext: '.', dockerfilePath: './Dockerfile', ...given }
    : { buildCommand: '', startCommand: '', ...given };
  return pick(base, propertiesOf(docker ? 'dockerDetails' : 'nativeEnvironmentDetails'));
}

/** serviceDetails of a newly created service, as Render returns it. */
export function createdDetails(
  type: string,
  posted: Details,
  slug: string,
  url: string | undefined,
  propertiesOf: PropertiesOf,
  newId: (prefix: string) => string,
): Details {
  const schema = RESPONSE_DETAILS_SCHEMA[type];
  if (!schema) return {};
  const runtime = typeof posted.runtime === 'string' ? posted.runtime : 'node';
  const preDeploy = typeof posted.preDeployCommand === 'string' ? { preDeployCommand: posted.preDeployCommand } : {};
  const disk = posted.disk && typeof posted.disk === 'object' ? { ...(posted.disk as object), id: newId('dsk') } : undefined;
  const candidate: Details = {
    ...posted,
    env: runtime,
    runtime,
    envSpecificDetails: envSpecific(runtime, { ...(posted.envSpecificDetails ?? {}), ...preDeploy }, propertiesOf),
    plan: posted.plan ?? 'starter',
    region: posted.region ?? 'oregon',
    numInstances: posted.numInstances ?? 1,
    buildPlan: 'starter',
    pullRequestPreviewsEnabled: posted.pullRequestPreviewsEnabled ?? 'no',
    previews: posted.previews ?? { generation: 'off' },
    maxShutdownDelaySeconds: posted.maxShutdownDelaySeconds ?? 30,
    healthCheckPath: posted.healthCheckPath ?? '',
    openPorts: [],
    url: url ?? (type === 'private_service' ? `${slug}:10000` : `https://${slug}.onrender.com`),
    buildCommand: posted.buildCommand ?? '',
    publishPath: posted.publishPath ?? 'public',
    ...(disk ? { disk } : {}),
  };
  return pick(candidate, propertiesOf(schema));
}

/** serviceDetails after a PATCH, as Render returns it. */
export function patchedDetails(type: string, current: Details, patch: Details, propertiesOf: PropertiesOf): Details {
  const schema = RESPONSE_DETAILS_SCHEMA[type];
  if (!schema) return current;
  const { preDeployCommand, envSpecificDetails, ...rest } = patch;
  const merged: Details = { ...current, ...rest };
  if (typeof rest.runtime === 'string') merged.env = rest.runtime;
  if (current.envSpecificDetails !== undefined || envSpecificDetails !== undefined || preDeployCommand !== undefined) {
    const runtime = typeof merged.runtime === 'string' ? merged.runtime : 'node';
    merged.envSpecificDetails = envSpecific(
      runtime,
      {
        ...(current.envSpecificDetails ?? {}),
        ...(envSpecificDetails ?? {}),
        ...(typeof preDeployCommand === 'string' ? { preDeployCommand } : {}),
      },
      propertiesOf,
    );
  }
  return pick(merged, propertiesOf(schema));
}
