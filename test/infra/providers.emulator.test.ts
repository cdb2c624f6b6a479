/**
 * Every provider method (check, diff, create, read, update, delete) of WebService, Postgres and KeyValue
 * against the Render API emulator, including 429, 5xx, 202-empty deploys, failed builds and drift.
 * Providers are called in-process here; test/infra/serialization.test.ts ships them the way Pulumi does.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RenderClient } from '../../render/client';
import { type RenderEmulator, startRenderEmulator } from '../../render/emulator';
import { createKeyValueProvider, createPostgresProvider, type KeyValueInputs, type PostgresInputs } from '../../infra/providers/datastores';
import { digestValue, resolveRenderCredentials, ResourceInitError } from '../../infra/providers/render-access';
import { createWebServiceProvider, type WebServiceInputs, type WebServiceOutputs } from '../../infra/providers/web-service';

const API_KEY = 'rnd_infra_test_key_9f8e7d';
const CONTEXT7_KEY = 'c7-very-secret-value';

let emulator: RenderEmulator;
let client: RenderClient;
const progress: string[] = [];
const options = { pollIntervalMs: 25, progress: (line: string) => progress.push(line) };

/** What `pulumi.dynamic` hands to configure: the stack config (credentials never reach resource inputs). */
function stackConfig(values: Record<string, string>) {
  return { config: { get: (key: string) => values[key], require: (key: string) => values[key] ?? '' } };
}

async function configured<P extends { configure?: (req: ReturnType<typeof stackConfig>) => Promise<void> }>(provider: P): Promise<P> {
  await provider.configure?.(stackConfig({ 'memory-rollout:renderApiKey': API_KEY, 'memory-rollout:renderApiUrl': emulator.url }));
  return provider;
}

let counter = 0;
function webInputs(overrides: Partial<WebServiceInputs> = {}): WebServiceInputs {
  counter += 1;
  return {
    name: `memory-rollout-test-${counter}`,
    region: 'oregon',
    plan: 'starter',
    instances: 1,
    runtime: 'node',
    repo: 'https://github.com/acme/memory',
    branch: 'main',
    autoDeploy: true,
    buildCommand: 'npm ci',
    startCommand: 'npm start',
    healthCheckPath: '/readyz',
    preDeployCommand: 'npm run migrate',
    maxShutdownDelaySeconds: 30,
    envVars: { ENABLE_CONTEXT7_MEMORY: 'true', CONTEXT7_API_KEY: CONTEXT7_KEY, NODE_ENV: 'production', PORT: '3000' },
    waitForLive: true,
    deployTimeoutMinutes: 1,
    ...overrides,
  };
}

function liveEnv(serviceId: string): Record<string, string> | undefined {
  return emulator.state().services.find((s) => s.id === serviceId)?.envVars;
}

beforeAll(async () => {
  emulator = await startRenderEmulator({ port: 0, apiKey: API_KEY, deployStepMs: 20 });
  client = new RenderClient({ apiKey: API_KEY, baseUrl: emulator.url });
});
afterEach(() => emulator.resetFaults());
afterAll(async () => {
  await emulator.close();
  // Nothing a provider printed may carry a credential.
  const printed = progress.join('\n');
  expect(printed).not.toContain(API_KEY);
  expect(printed).not.toContain(CONTEXT7_KEY);
});

describe('credentials', () => {
  it('come from the stack config first, then the environment, and are required', () => {
    const env = { RENDER_API_KEY: 'env-key', RENDER_API_URL: 'http://127.0.0.1:1/v1', RENDER_OWNER_ID: 'tea-env' };
    expect(resolveRenderCredentials(undefined, env)).toEqual({ apiKey: 'env-key', baseUrl: 'http://127.0.0.1:1/v1', ownerId: 'tea-env' });
    const config = { get: (k: string) => ({ 'memory-rollout:renderApiKey': 'cfg-key' })[k] };
    expect(resolveRenderCredentials(config, env).apiKey).toBe('cfg-key');
    expect(() => resolveRenderCredentials(undefined, {})).toThrow(/export RENDER_API_KEY, or run `pulumi config set --secret memory-rollout:renderApiKey/);
  });

  it('a wrong key fails with the operation named and without echoing the key', async () => {
    const provider = createWebServiceProvider(options);
    await provider.configure!(stackConfig({ 'memory-rollout:renderApiKey': 'rnd_wrong_key', 'memory-rollout:renderApiUrl': emulator.url }));
    const error = await provider.create(webInputs()).catch((err: Error) => err);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/listOwners failed \(HTTP 401\)/);
    expect((error as Error).message).not.toContain('rnd_wrong_key');
  });
});

describe('WebService provider', () => {
  it('creates the service with its env vars and waits until the deploy is live', async () => {
    const provider = await configured(createWebServiceProvider(options));
    const inputs = webInputs();
    expect(await provider.check!({} as WebServiceInputs, inputs)).toEqual({ inputs });
    const { id, outs } = await provider.create(inputs);
    const out = outs as WebServiceOutputs;
    expect(out).toMatchObject({
      serviceId: id,
      name: inputs.name,
      region: 'oregon',
      plan: 'starter',
      instances: 1,
      healthCheckPath: '/readyz',
      preDeployCommand: 'npm run migrate',
      maxShutdownDelaySeconds: 30,
      url: `https://${inputs.name}.onrender.com`,
      dashboardUrl: `https://dashboard.render.com/web/${id}`,
      lastDeployStatus: 'live',
    });
    expect(liveEnv(id)).toEqual(inputs.envVars);
    // Outputs carry digests, never the values.
    expect(out.envVarDigests.CONTEXT7_API_KEY).toBe(digestValue(CONTEXT7_KEY));
    expect(JSON.stringify(outs)).not.toContain(CONTEXT7_KEY);
    expect(await provider.diff!(id, out, inputs)).toMatchObject({ changes: false, replaces: [] });
  });

  it('an env var change is an update that replaces the env vars, deploys and waits for live', async () => {
    const provider = await configured(createWebServiceProvider(options));
    const inputs = webInputs();
    const { id, outs } = await provider.create(inputs);
    const deploysBefore = (await client.listDeploys(id)).length;
    const flagOff = { ...inputs, envVars: { ...inputs.envVars, ENABLE_CONTEXT7_MEMORY: 'false' } };
    expect(await provider.diff!(id, outs as WebServiceOutputs, flagOff)).toMatchObject({ changes: true, replaces: [] });
    const { outs: updated } = await provider.update!(id, outs as WebServiceOutputs, flagOff);
    expect(liveEnv(id)?.ENABLE_CONTEXT7_MEMORY).toBe('false');
    const deploys = await client.listDeploys(id);
    expect(deploys.length).toBe(deploysBefore + 1);
    expect(deploys[0]?.status).toBe('live');
    expect(updated).toMatchObject({ lastDeployId: deploys[0]?.id, lastDeployStatus: 'live' });
    expect(await provider.diff!(id, updated as WebServiceOutputs, flagOff)).toMatchObject({ changes: false });
  });

  it('with waitForLive false, the update returns once the deploy is triggered', async () => {
    const provider = await configured(createWebServiceProvider(options));
    const inputs = webInputs({ waitForLive: false });
    const { id, outs } = await provider.create(inputs);
    const changed = { ...inputs, envVars: { ...inputs.envVars, PORT: '3001' } };
    const { outs: updated } = await provider.update!(id, outs as WebServiceOutputs, changed);
    expect((updated as WebServiceOutputs).lastDeployStatus).not.toBe('live');
    await client.waitForDeploy(id, (updated as WebServiceOutputs).lastDeployId, { timeoutMs: 10_000, pollIntervalMs: 20 });
  });

  it('a pinned commit is deployed on create and a new pin triggers a deploy of that commit', async () => {
    const provider = await configured(createWebServiceProvider(options));
    const inputs = webInputs({ autoDeploy: false, deployCommit: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' });
    const { id, outs } = await provider.create(inputs);
    expect((await client.getDeploy(id, (outs as WebServiceOutputs).lastDeployId)).commit?.id).toBe(inputs.deployCommit);
    const repinned = { ...inputs, deployCommit: 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' };
    expect(await provider.diff!(id, outs as WebServiceOutputs, repinned)).toMatchObject({ changes: true, replaces: [] });
    const { outs: updated } = await provider.update!(id, outs as WebServiceOutputs, repinned);
    const deploy = await client.getDeploy(id, (updated as WebServiceOutputs).lastDeployId);
    expect(deploy).toMatchObject({ status: 'live', commit: { id: repinned.deployCommit } });
  });

  it('settings changes are PATCHed and redeployed', async () => {
    const provider = await configured(createWebServiceProvider(options));
    const inputs = webInputs();
    const { id, outs } = await provider.create(inputs);
    const bigger = { ...inputs, plan: 'standard', maxShutdownDelaySeconds: 60 };
    const { outs: updated } = await provider.update!(id, outs as WebServiceOutputs, bigger);
    expect(updated).toMatchObject({ plan: 'standard', maxShutdownDelaySeconds: 60, lastDeployStatus: 'live' });
    const service = await client.getService(id);
    expect(service.serviceDetails).toMatchObject({ plan: 'standard', maxShutdownDelaySeconds: 60 });
  });

  it('a region change fails the preview (diff) with why and how; allowed on purpose it means replace; an instances change scales in place', async () => {
    const provider = await configured(createWebServiceProvider(options));
    const inputs = webInputs({ stack: 'production' });
    const { id, outs } = await provider.create(inputs);
    await expect(provider.diff!(id, outs as WebServiceOutputs, { ...inputs, region: 'frankfurt' })).rejects.toThrow(
      new RegExp(
        `Refusing to replace the web service ${inputs.name} \\(${id}\\): region oregon -> frankfurt cannot change in place.*delete the service first.*` +
          'pulumi config set memory-rollout:region oregon -s production.*pulumi config set memory-rollout:allowServiceReplacement true -s production.*pulumi state unprotect',
      ),
    );
    expect(await provider.diff!(id, outs as WebServiceOutputs, { ...inputs, region: 'frankfurt', allowReplace: true })).toMatchObject({
      changes: true,
      replaces: ['region'],
      deleteBeforeReplace: true,
    });
    const scaled = { ...inputs, instances: 3 };
    expect(await provider.diff!(id, outs as WebServiceOutputs, scaled)).toMatchObject({ changes: true, replaces: [] });
    const { outs: after } = await provider.update!(id, outs as WebServiceOutputs, scaled);
    expect(after).toMatchObject({ instances: 3 });
    expect((await client.getService(id)).serviceDetails).toMatchObject({ numInstances: 3 });
    expect(await provider.diff!(id, after as WebServiceOutputs, scaled)).toMatchObject({ changes: false });
  });

  it('an env var edited outside Pulumi shows up as drift after read, and the update puts it back', async () => {
    const provider = await configured(createWebServiceProvider(options));
    const inputs = webInputs();
    const { id, outs } = await provider.create(inputs);
    // Someone flips the flag in the dashboard (or a canary rolls back without latching the stack file).
    await client.setEnvVar(id, 'ENABLE_CONTEXT7_MEMORY', 'false');
    await client.setEnvVar(id, 'DEBUG', '1');
    const read = await provider.read!(id, outs as WebServiceOutputs);
    expect(read.id).toBe(id);
    const refreshed = read.props as WebServiceOutputs;
    expect(refreshed.envVarDigests.ENABLE_CONTEXT7_MEMORY).toBe(digestValue('false'));
    expect(Object.keys(refreshed.envVarDigests)).toContain('DEBUG');
    expect(await provider.diff!(id, refreshed, inputs)).toMatchObject({ changes: true, replaces: [] });
    await provider.update!(id, refreshed, inputs);
    expect(liveEnv(id)).toEqual(inputs.envVars);
    // Latched in step (the desired value matches the live one): no drift.
    const latched = { ...inputs, envVars: { ...inputs.envVars, ENABLE_CONTEXT7_MEMORY: 'false' } };
    await client.setEnvVar(id, 'ENABLE_CONTEXT7_MEMORY', 'false');
    const again = (await provider.read!(id, outs as WebServiceOutputs)).props as WebServiceOutputs;
    expect(await provider.diff!(id, again, latched)).toMatchObject({ changes: false });
  });

  it('values unknown at preview count as changes', async () => {
    const provider = await configured(createWebServiceProvider(options));
    const inputs = webInputs();
    const { id, outs } = await provider.create(inputs);
    const unknown = '04da6b54-80e4-46f7-96ec-b56ff0331ba9';
    const pending = { ...inputs, envVars: { ...inputs.envVars, DATABASE_URL: unknown } };
    expect(await provider.diff!(id, outs as WebServiceOutputs, pending)).toMatchObject({ changes: true, replaces: [] });
    expect(await provider.diff!(id, outs as WebServiceOutputs, { ...inputs, region: unknown, allowReplace: true })).toMatchObject({ replaces: ['region'] });
    // Not known to be safe: refused like a known region change.
    await expect(provider.diff!(id, outs as WebServiceOutputs, { ...inputs, region: unknown })).rejects.toThrow(/Refusing to replace/);
  });

  it('rides out 429s (with Retry-After) and 5xx responses', async () => {
    const provider = await configured(createWebServiceProvider(options));
    const inputs = webInputs();
    emulator.setFaults({
      rateLimit: { count: 2, retryAfterSeconds: 0, match: 'GET /owners' },
      serverErrors: { count: 2, status: 503, match: 'GET /services' },
    });
    const before = emulator.state().responses;
    const { id } = await provider.create(inputs);
    const after = emulator.state().responses;
    expect((after['429'] ?? 0) - (before['429'] ?? 0)).toBe(2);
    expect((after['503'] ?? 0) - (before['503'] ?? 0)).toBe(2);
    expect(liveEnv(id)).toEqual(inputs.envVars);
  });

  it('a 5xx on a non-repeatable create fails cleanly, leaving nothing behind', async () => {
    const provider = await configured(createWebServiceProvider(options));
    const inputs = webInputs();
    emulator.setFaults({ serverErrors: { count: 1, status: 500, match: 'POST /services' } });
    await expect(provider.create(inputs)).rejects.toThrow(/createService failed \(HTTP 500\)/);
    expect(emulator.state().services.some((s) => s.name === inputs.name)).toBe(false);
  });

  it('finds the deploy when POST /deploys answers 202 with an empty body', async () => {
    const provider = await configured(createWebServiceProvider(options));
    const inputs = webInputs();
    const { id, outs } = await provider.create(inputs);
    emulator.setFaults({ emptyDeployResponses: 1 });
    const changed = { ...inputs, envVars: { ...inputs.envVars, ENABLE_CONTEXT7_MEMORY: 'false' } };
    const { outs: updated } = await provider.update!(id, outs as WebServiceOutputs, changed);
    expect(updated).toMatchObject({ lastDeployStatus: 'live' });
    expect((updated as WebServiceOutputs).lastDeployId).toBe((await client.listDeploys(id, { limit: 1 }))[0]?.id);
  });

  it('a failed build still records the resource (id, state, provider) so nothing is orphaned', async () => {
    const provider = await configured(createWebServiceProvider(options));
    const inputs = webInputs();
    const { id, outs } = await provider.create(inputs);
    emulator.setFaults({ failBuilds: 1 });
    const changed = { ...inputs, envVars: { ...inputs.envVars, ENABLE_CONTEXT7_MEMORY: 'false' }, __provider: 'serialized-provider-text' };
    const error = await provider.update!(id, outs as WebServiceOutputs, changed).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ResourceInitError);
    const init = error as ResourceInitError;
    expect(init.id).toBe(id);
    expect(init.message).toMatch(/deploy did not go live: .*build_failed/);
    expect(init.properties).toMatchObject({ lastDeployStatus: 'build_failed', __provider: 'serialized-provider-text', serviceId: id });
    // The next `pulumi up` sees the failed deploy's state and tries again.
    expect(await provider.diff!(id, init.properties as unknown as WebServiceOutputs, changed)).toMatchObject({ changes: false });
    await expect(provider.create({ ...inputs })).rejects.toThrow(/already exists/);
  });

  it('check refuses bad inputs at preview', async () => {
    const provider = createWebServiceProvider(options);
    const result = await provider.check!({} as WebServiceInputs, webInputs({ instances: 0, healthCheckPath: 'readyz', maxShutdownDelaySeconds: 900, envVars: { 'BAD-NAME': 'x' } }));
    expect(result.failures?.map((f) => f.property).sort()).toEqual(['envVars.BAD-NAME', 'healthCheckPath', 'instances', 'maxShutdownDelaySeconds']);
  });

  it('delete removes the service, and a service already gone is not an error', async () => {
    const provider = await configured(createWebServiceProvider(options));
    const { id, outs } = await provider.create(webInputs());
    await provider.delete!(id, outs as WebServiceOutputs);
    expect(emulator.state().services.some((s) => s.id === id)).toBe(false);
    await provider.delete!(id, outs as WebServiceOutputs);
    expect(await provider.read!(id, outs as WebServiceOutputs)).toMatchObject({ id: '' });
  });
});

describe('Postgres provider', () => {
  const inputs = (name: string): PostgresInputs => ({
    name,
    region: 'oregon',
    plan: 'basic_256mb',
    version: '16',
    databaseName: 'memory',
    databaseUser: 'memory',
    highAvailability: false,
    availableTimeoutMinutes: 1,
  });

  it('creates, waits until available, exposes connection strings, reads, diffs and deletes', async () => {
    const provider = await configured(createPostgresProvider(options));
    const want = inputs('memory-rollout-test-db');
    const { id, outs } = await provider.create(want);
    expect(outs).toMatchObject({ postgresId: id, status: 'available', plan: 'basic_256mb', version: '16', region: 'oregon' });
    expect(outs?.internalConnectionString).toMatch(/^postgres(ql)?:\/\//);
    expect(outs?.externalConnectionString).toMatch(/^postgres(ql)?:\/\//);
    const read = await provider.read!(id, outs!);
    expect(read.props).toEqual(outs);
    expect(await provider.diff!(id, outs!, want)).toMatchObject({ changes: false, replaces: [] });
    expect(await provider.diff!(id, outs!, { ...want, region: 'frankfurt', version: '17' })).toMatchObject({
      changes: true,
      replaces: ['region', 'version'],
    });
    const refused = await provider.check!(want, { ...want, plan: 'pro_4gb' });
    expect(refused.failures?.[0]).toMatchObject({ property: 'plan' });
    expect(refused.failures?.[0]?.reason).toMatch(/would lose its data/);
    expect((await provider.check!({} as PostgresInputs, want)).failures).toBeUndefined();
    await provider.delete!(id, outs!);
    expect(emulator.state().postgres.some((p) => p.id === id)).toBe(false);
    await provider.delete!(id, outs!);
    expect(await provider.read!(id, outs!)).toMatchObject({ id: '' });
  });
});

describe('KeyValue provider', () => {
  it('creates, waits until available, exposes connection strings, reads, diffs and deletes', async () => {
    const provider = await configured(createKeyValueProvider(options));
    const want: KeyValueInputs = { name: 'memory-rollout-test-kv', region: 'oregon', plan: 'starter', maxmemoryPolicy: 'noeviction', availableTimeoutMinutes: 1 };
    emulator.setFaults({ rateLimit: { count: 1, retryAfterSeconds: 0, match: '/key-value' } });
    const { id, outs } = await provider.create(want);
    expect(outs).toMatchObject({ keyValueId: id, status: 'available', plan: 'starter', region: 'oregon', maxmemoryPolicy: 'noeviction' });
    expect(outs?.internalConnectionString).toMatch(/^rediss?:\/\//);
    expect((await provider.read!(id, outs!)).props).toEqual(outs);
    expect(await provider.diff!(id, outs!, { ...want, region: 'ohio' })).toMatchObject({ replaces: ['region'] });
    expect((await provider.check!(want, { ...want, maxmemoryPolicy: 'allkeys_lru' })).failures?.[0]).toMatchObject({ property: 'maxmemoryPolicy' });
    await provider.delete!(id, outs!);
    expect(emulator.state().keyValue.some((k) => k.id === id)).toBe(false);
  });
});
