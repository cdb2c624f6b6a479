/**
 * Adoption, drift and the pinned first deploy, against the Render emulator: services and datastores made through
 * the Render API (as a team's existing ones are), then adopted by the providers; a deploy made outside Pulumi seen
 * by a refresh; a service created with a pinned commit never running another commit with the flag on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RenderClient } from '../../render/client';
import { type RenderEmulator, startRenderEmulator } from '../../render/emulator';
import { createKeyValueProvider, createPostgresProvider, type KeyValueInputs, type KeyValueOutputs, type PostgresInputs, type PostgresOutputs } from '../../infra/providers/datastores';
import { digestValue } from '../../infra/providers/render-access';
import { createWebServiceProvider, type WebServiceInputs, type WebServiceOutputs } from '../../infra/providers/web-service';

const API_KEY = 'rnd_adoption_key_9f8e7d';
const PINNED = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const OUTSIDE = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
let emulator: RenderEmulator;
let client: RenderClient;
const lines: string[] = [];
const options = { pollIntervalMs: 10, progress: (line: string) => lines.push(line) };

async function configured<P extends { configure?: (req: never) => Promise<void> }>(provider: P): Promise<P> {
  const values: Record<string, string> = { 'memory-rollout:renderApiKey': API_KEY, 'memory-rollout:renderApiUrl': emulator.url };
  await provider.configure?.({ config: { get: (key: string) => values[key], require: (key: string) => values[key] ?? '' } } as never);
  return provider;
}

let counter = 0;
function webInputs(name: string, overrides: Partial<WebServiceInputs> = {}): WebServiceInputs {
  return {
    name, region: 'oregon', plan: 'standard', instances: 2, runtime: 'node', repo: 'https://github.com/acme/memory', branch: 'main',
    autoDeploy: false, buildCommand: 'npm ci && npm run build', startCommand: 'npm start', healthCheckPath: '/readyz',
    preDeployCommand: 'npm run migrate', maxShutdownDelaySeconds: 30,
    envVars: { ENABLE_CONTEXT7_MEMORY: 'false', CONTEXT7_EXPOSURE_PERCENT: '5', NODE_ENV: 'production' },
    waitForLive: true, deployTimeoutMinutes: 1, stack: 'production',
    ...overrides,
  };
}

/** A service made the way a team made theirs: through the API (or the dashboard), not through Pulumi. */
async function existingService(overrides: Record<string, unknown> = {}): Promise<{ id: string; name: string; ownerId: string }> {
  counter += 1;
  const [owner] = await client.listOwners();
  const name = `team-memory-${counter}`;
  const created = await client.createService({
    type: 'web_service', name, ownerId: owner!.id, repo: 'https://github.com/acme/memory.git', branch: 'main', autoDeploy: 'yes',
    envVars: [{ key: 'TEAM_SENTRY_DSN', value: 'https://sentry.example/1' }, { key: 'ENABLE_CONTEXT7_MEMORY', value: 'false' }],
    serviceDetails: {
      runtime: 'node', plan: 'starter', region: 'oregon', numInstances: 1, healthCheckPath: '/healthz',
      envSpecificDetails: { buildCommand: 'yarn build', startCommand: 'yarn start' },
    },
    ...overrides,
  } as never);
  await client.waitForDeploy(created.service!.id, created.deployId!, { pollIntervalMs: 10, timeoutMs: 30_000 });
  return { id: created.service!.id, name, ownerId: owner!.id };
}

function emulated(id: string) {
  const found = emulator.state().services.find((s) => s.id === id);
  if (!found) throw new Error(`no service ${id} in the emulator`);
  return found;
}

beforeAll(async () => {
  emulator = await startRenderEmulator({ port: 0, apiKey: API_KEY, deployStepMs: 5 });
  client = new RenderClient({ apiKey: API_KEY, baseUrl: emulator.url });
});
afterAll(async () => {
  await emulator?.close();
});

describe('adopting an existing web service', () => {
  it('create reads and records it, changing nothing; the next update touches only what the stack manages; delete leaves it standing', async () => {
    const team = await existingService();
    const before = emulated(team.id);
    const provider = await configured(createWebServiceProvider(options));
    const inputs = webInputs(team.name, { adoptServiceId: team.id });

    const { id, outs } = await provider.create(inputs);
    expect(id).toBe(team.id);
    const adopted = outs as WebServiceOutputs;
    const liveCommit = before.deploys[0]!.commit!.id;
    // Recorded as Render has it: nothing on Render changed.
    expect(adopted).toMatchObject({ adopted: true, liveCommit, instances: 1, plan: 'starter', autoDeploy: true, buildCommand: 'yarn build' });
    expect(emulated(team.id).deploys).toHaveLength(before.deploys.length);
    expect(emulated(team.id).envVars).toEqual(before.envVars);
    expect(lines.join('\n')).toMatch(new RegExp(`adopted ${team.id} as it is \\(nothing changed on Render\\); the next pulumi up changes: plan; autoDeploy; instances 1 -> 2; env vars CONTEXT7_EXPOSURE_PERCENT, NODE_ENV`));

    // The preview's diff: the managed settings differ; the team's own build command and env var are not the stack's business.
    expect(await provider.diff!(id, adopted, inputs)).toEqual({ changes: true, replaces: [], deleteBeforeReplace: false });
    const { outs: updated } = await provider.update!(id, adopted, inputs);
    const after = emulated(team.id);
    expect(after.envVars).toEqual({ ...before.envVars, ...inputs.envVars }); // TEAM_SENTRY_DSN kept
    const service = await client.getService(id);
    expect(service).toMatchObject({ autoDeploy: 'no', serviceDetails: { plan: 'standard', numInstances: 2, healthCheckPath: '/healthz' } });
    expect((service.serviceDetails as { envSpecificDetails: { buildCommand: string } }).envSpecificDetails.buildCommand).toBe('yarn build');
    // No pinned commit, auto-deploy off: the settings change redeploys the commit it ran, never the branch head.
    expect(after.deploys[0]).toMatchObject({ status: 'live', commit: { id: liveCommit } });
    expect(updated).toMatchObject({ adopted: true, liveCommit, lastDeployStatus: 'live' });
    expect(await provider.diff!(id, updated as WebServiceOutputs, inputs)).toMatchObject({ changes: false });

    // A region change on an adopted service is refused even when replacement is allowed.
    await expect(provider.diff!(id, updated as WebServiceOutputs, { ...inputs, region: 'ohio', allowReplace: true })).rejects.toThrow(
      /was adopted by this stack, and a change of region would replace it/,
    );

    lines.length = 0;
    await provider.delete!(id, updated as WebServiceOutputs);
    expect(emulated(team.id).name).toBe(team.name);
    expect(lines).toEqual([`Web service ${team.id} was adopted by this stack (not created by it): not deleting it; it stays on Render. Delete it in the Render dashboard if you mean to`]);
  });

  it('refuses a service that is not the one the stack describes, listing every difference and how to fix it', async () => {
    const team = await existingService({ branch: 'release' });
    const provider = await configured(createWebServiceProvider(options));
    const inputs = webInputs(`${team.name}-x`, { adoptServiceId: team.id, region: 'frankfurt', repo: 'https://github.com/acme/other' });
    const error = await provider.create(inputs).then(() => undefined, (err: Error) => err);
    expect(error?.message).toBe(
      `Refusing to adopt the web service ${team.id}: it is not the resource this stack describes (4 differences):\n` +
        `  - name: Render has "${team.name}", the stack says "${team.name}-x"; to make the stack match: pulumi config set memory-rollout:serviceName ${team.name} -s production\n` +
        '  - region: Render has "oregon", the stack says "frankfurt"; to make the stack match: pulumi config set memory-rollout:region oregon -s production\n' +
        '  - repo: Render has "https://github.com/acme/memory.git", the stack says "https://github.com/acme/other"; to make the stack match: pulumi config set memory-rollout:repo https://github.com/acme/memory.git -s production\n' +
        '  - branch: Render has "release", the stack says "main"; to make the stack match: pulumi config set memory-rollout:branch release -s production',
    );
    const missing = await provider.create(webInputs('x', { adoptServiceId: 'srv-doesnotexist' })).then(() => undefined, (err: Error) => err);
    expect(missing?.message).toMatch(/existingServiceId is srv-doesnotexist, but the Render API key sees no such service.*npm run infra:adopt -- --stack production/);
  });

  it('without adoption, a name that exists is refused with the line that adopts it', async () => {
    const team = await existingService();
    const provider = await configured(createWebServiceProvider(options));
    await expect(provider.create(webInputs(team.name))).rejects.toThrow(
      `pulumi config set memory-rollout:existingServiceId ${team.id} -s production`,
    );
  });
});

describe('adopting existing datastores', () => {
  it('Postgres and Key Value: verified, recorded as they are, never deleted; a mismatch lists its fixes', async () => {
    const [owner] = await client.listOwners();
    const pgLive = await client.createPostgres({ name: 'team-db', ownerId: owner!.id, plan: 'basic_1gb', version: '16', region: 'oregon', databaseName: 'team', databaseUser: 'team_user' } as never);
    const kvLive = await client.createKeyValue({ name: 'team-kv', ownerId: owner!.id, plan: 'standard', region: 'oregon', maxmemoryPolicy: 'noeviction' } as never);
    const postgres = await configured(createPostgresProvider(options));
    const keyValue = await configured(createKeyValueProvider(options));
    const pgInputs: PostgresInputs = {
      name: 'team-db', region: 'oregon', plan: 'basic_1gb', version: '16', databaseName: 'team', databaseUser: 'team_user',
      highAvailability: false, availableTimeoutMinutes: 1, adoptId: pgLive.id, stack: 'production',
    };
    const pg = await postgres.create(pgInputs);
    expect(pg.outs).toMatchObject({ adopted: true, postgresId: pgLive.id, internalConnectionString: expect.stringMatching(/^postgresql:\/\/team_user:/) });
    const wrong = await postgres.create({ ...pgInputs, version: '17', databaseName: 'memory' }).then(() => undefined, (err: Error) => err);
    expect(wrong?.message).toContain('  - version: Render has "16", the stack says "17"; to make the stack match: pulumi config set memory-rollout:postgresVersion 16 -s production');
    expect(wrong?.message).toContain('  - databaseName: Render has "team", the stack says "memory"; to make the stack match: pulumi config set memory-rollout:postgresDatabaseName team -s production');
    // An adopted database is never replaced.
    await expect(postgres.diff!(pg.id, pg.outs as PostgresOutputs, { ...pgInputs, region: 'ohio' })).rejects.toThrow(/adopted by this stack.*would replace it/);

    const kvInputs: KeyValueInputs = { name: 'team-kv', region: 'oregon', plan: 'standard', maxmemoryPolicy: 'noeviction', availableTimeoutMinutes: 1, adoptId: kvLive.id, stack: 'production' };
    const kv = await keyValue.create(kvInputs);
    expect(kv.outs).toMatchObject({ adopted: true, keyValueId: kvLive.id });

    await postgres.delete!(pg.id, pg.outs as PostgresOutputs);
    await keyValue.delete!(kv.id, kv.outs as KeyValueOutputs);
    expect(emulator.state().postgres.map((d) => d.id)).toContain(pgLive.id);
    expect(emulator.state().keyValue.map((d) => d.id)).toContain(kvLive.id);
  });
});

describe('drift and the pinned first deploy', () => {
  it('a deploy made outside Pulumi shows up in read as the live commit, and the next update puts the pinned commit back', async () => {
    const provider = await configured(createWebServiceProvider(options));
    counter += 1;
    const inputs = webInputs(`pinned-drift-${counter}`, { deployCommit: PINNED, instances: 1 });
    const { id, outs } = await provider.create(inputs);
    expect(outs).toMatchObject({ liveCommit: PINNED, deployCommit: PINNED });
    // Someone deploys another commit from the dashboard, and scales and re-plans the service there.
    const outside = await client.triggerDeploy(id, { commitId: OUTSIDE });
    await client.waitForDeploy(id, outside.id, { pollIntervalMs: 10, timeoutMs: 30_000 });
    await client.scaleService(id, 3);
    await client.updateService(id, { serviceDetails: { plan: 'pro' } });
    await client.setEnvVar(id, 'ENABLE_CONTEXT7_MEMORY', 'true');

    const refreshed = (await provider.read!(id, outs as WebServiceOutputs)).props as WebServiceOutputs;
    expect(refreshed).toMatchObject({ liveCommit: OUTSIDE, deployCommit: OUTSIDE, instances: 3, plan: 'pro' });
    expect(refreshed.envVarDigests.ENABLE_CONTEXT7_MEMORY).toBe(digestValue('true'));
    expect(await provider.diff!(id, refreshed, inputs)).toMatchObject({ changes: true, replaces: [] });
    const { outs: back } = await provider.update!(id, refreshed, inputs);
    expect(back).toMatchObject({ liveCommit: PINNED, instances: 1, plan: 'standard' });
    expect(emulated(id).deploys[0]).toMatchObject({ status: 'live', commit: { id: PINNED } });
    await provider.delete!(id, back as WebServiceOutputs);
  });

  it('created with a pinned commit and the flag on: nothing but the pinned commit ever runs with the flag on', async () => {
    const provider = await configured(createWebServiceProvider(options));
    counter += 1;
    const inputs = webInputs(`pinned-create-${counter}`, {
      deployCommit: PINNED,
      envVars: { ENABLE_CONTEXT7_MEMORY: 'true', NODE_ENV: 'production' },
      envVarsUntilPinnedLive: { ENABLE_CONTEXT7_MEMORY: 'false' },
    });
    const { id, outs } = await provider.create(inputs);
    expect(outs).toMatchObject({ liveCommit: PINNED, lastDeployStatus: 'live' });
    const service = emulated(id);
    const deploys = [...service.deploys].reverse(); // oldest first
    const flagOf = (deployId: string) => service.deployEnvVars[deployId]?.ENABLE_CONTEXT7_MEMORY;
    // Render's own first deploy (the branch head: POST /services takes no commit) ran with the flag off.
    expect(deploys[0]!.commit!.id).not.toBe(PINNED);
    expect(flagOf(deploys[0]!.id)).toBe('false');
    // Every deploy with the flag on is of the pinned commit, and comes after the pinned commit was live with it off.
    const flagOn = deploys.filter((d) => flagOf(d.id) === 'true');
    expect(flagOn.length).toBeGreaterThan(0);
    expect(flagOn.every((d) => d.commit!.id === PINNED)).toBe(true);
    const firstOn = deploys.indexOf(flagOn[0]!);
    expect(deploys.slice(0, firstOn).some((d) => d.commit!.id === PINNED && flagOf(d.id) === 'false' && d.status === 'deactivated')).toBe(true);
    expect(service.envVars.ENABLE_CONTEXT7_MEMORY).toBe('true');
    await provider.delete!(id, outs as WebServiceOutputs);
  });
});
