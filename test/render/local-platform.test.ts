import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RenderClient } from '../../render/client';
import { DeployFailedError } from '../../render/errors';
import { startRenderEmulator, type RenderEmulator } from '../../render/emulator';
import { isAlive, processGroupOf, waitUntil } from './support/helpers';

const API_KEY = 'rnd_local_platform_KEY_do_not_leak';
const FIXTURES = path.join(__dirname, 'fixtures');
// Polls every 100 ms: faster polling while a process starts on a loaded machine could use up the
// emulator's 1000-calls-a-minute window, and the client would then pause (for real) until it resets.
const WAIT = { timeoutMs: 25_000, pollIntervalMs: 100 };

interface EchoedEnv {
  env: Record<string, string | undefined>;
  pid: number;
  grandchildPid?: number;
}

let emulator: RenderEmulator;
let c: RenderClient;
let serviceId: string;
let serviceUrl: string;
const previousParentKey = process.env.RENDER_API_KEY;
const seenPids: number[] = [];

async function echo(): Promise<EchoedEnv> {
  const res = await fetch(`${serviceUrl}/env`);
  expect(res.status).toBe(200);
  const body = (await res.json()) as EchoedEnv;
  seenPids.push(body.pid);
  if (body.grandchildPid) seenPids.push(body.grandchildPid);
  return body;
}

async function deployAndWait(commitId?: string) {
  const deploy = await c.triggerDeploy(serviceId, commitId ? { commitId } : {});
  return c.waitForDeploy(serviceId, deploy.id, WAIT);
}

beforeAll(async () => {
  // The parent's own Render key must never reach a service process.
  process.env.RENDER_API_KEY = API_KEY;
  emulator = await startRenderEmulator({
    apiKey: API_KEY,
    deployStepMs: 5,
    // readyTimeoutMs is also how long the unhealthy-deploy test waits for a 200 that never comes; the echo server
    // starts in well under a second (local-platform-disk uses 3 s with the same fixtures).
    localPlatform: { source: 'working-tree', cwd: FIXTURES, readyTimeoutMs: 3_000, shutdownGraceMs: 1_000, env: { FROM_PLATFORM: 'yes' } },
  });
  c = new RenderClient({ apiKey: API_KEY, baseUrl: emulator.url });
  const ownerId = (await c.listOwners())[0]!.id;
  const created = await c.createService({
    type: 'web_service',
    name: 'echo',
    ownerId,
    serviceDetails: {
      runtime: 'node',
      healthCheckPath: '/healthz',
      maxShutdownDelaySeconds: 5,
      envSpecificDetails: { buildCommand: 'true', startCommand: 'node echo-env-server.js' },
    },
    envVars: [{ key: 'GREETING', value: 'hello' }],
  });
  serviceId = created.service!.id;
  serviceUrl = (created.service!.serviceDetails as { url: string }).url;
  await c.waitForDeploy(serviceId, created.deployId!, WAIT);
});

afterAll(async () => {
  await emulator?.close();
  if (previousParentKey === undefined) delete process.env.RENDER_API_KEY;
  else process.env.RENDER_API_KEY = previousParentKey;
});

describe('Render emulator local-platform mode', () => {
  it('runs the service as a child process on a loopback port with its env vars and Render variables', async () => {
    expect(serviceUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const first = await echo();
    const deploys = await c.listDeploys(serviceId, { status: 'live' });
    expect(first.env).toMatchObject({
      GREETING: 'hello',
      FROM_PLATFORM: 'yes',
      HOST: '127.0.0.1',
      RENDER_SERVICE_ID: serviceId,
      RENDER_GIT_COMMIT: deploys[0]!.commit!.id,
      // The service URL is the load balancer's; the public URL the process sees is that one too.
      RENDER_EXTERNAL_URL: serviceUrl,
    });
    expect(first.env.RENDER_INSTANCE_ID).toMatch(new RegExp(`^${serviceId}-`));
    expect(first.env.RENDER_API_KEY).toBeUndefined();
    const state = emulator.state().services.find((s) => s.id === serviceId)!;
    // The instance pid is the start command's shell: the service runs in its process group.
    expect(processGroupOf(first.pid)).toBe(state.instance?.pid);
    expect(state.url).toBe(serviceUrl);
    // The instance listens on its own port behind the service's load balancer.
    expect(state.instance?.instances).toHaveLength(1);
    expect(first.env.PORT).toBe(String(state.instance!.instances[0]!.port));
    expect(first.env.PORT).not.toBe(new URL(serviceUrl).port);
  });

  it('restarts on each deploy with the current env vars, behind the same service URL, stopping the old process', async () => {
    const before = await echo();
    await c.setEnvVar(serviceId, 'GREETING', 'bonjour');
    const commitId = 'c'.repeat(40);
    const live = await deployAndWait(commitId);
    expect(live.status).toBe('live');
    const after = await echo();
    expect(after.env.GREETING).toBe('bonjour');
    expect(after.env.RENDER_GIT_COMMIT).toBe(commitId);
    expect(after.pid).not.toBe(before.pid);
    // A new instance on a new port (the old one serves until traffic shifts); the service URL stays.
    expect(after.env.PORT).not.toBe(before.env.PORT);
    expect(after.env.RENDER_EXTERNAL_URL).toBe(serviceUrl);
    expect(after.env.RENDER_INSTANCE_ID).not.toBe(before.env.RENDER_INSTANCE_ID);
    await waitUntil(() => !isAlive(before.pid), 'the old process to exit');
  });

  it('rolls back by restarting the service at the target deploy\'s commit, with that deploy\'s env vars', async () => {
    const deploys = await c.listDeploys(serviceId);
    const creation = deploys.at(-1)!;
    const before = await echo();
    expect(before.env.GREETING).toBe('bonjour');
    const rollback = await c.rollbackDeploy(serviceId, creation.id);
    expect((await c.waitForDeploy(serviceId, rollback.id, WAIT)).status).toBe('live');
    const after = await echo();
    expect(after.env.RENDER_GIT_COMMIT).toBe(creation.commit!.id);
    expect(after.env.GREETING).toBe('hello');
    expect(after.pid).not.toBe(before.pid);
    // The service's own settings are untouched: the next ordinary deploy runs with them again.
    expect((await c.listEnvVars(serviceId)).find((v) => v.key === 'GREETING')?.value).toBe('bonjour');
  });

  it('fails the deploy (update_failed) when the health check does not answer 200, and keeps the old version serving', async () => {
    const before = await echo();
    await c.setEnvVar(serviceId, 'FIXTURE_UNHEALTHY', '1');
    const err = await deployAndWait().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeployFailedError);
    expect(err).toMatchObject({ status: 'update_failed' });
    const after = await echo();
    expect(after.env.FIXTURE_UNHEALTHY).toBeUndefined();
    expect(after.env.GREETING).toBe(before.env.GREETING);
    await c.deleteEnvVar(serviceId, 'FIXTURE_UNHEALTHY');
  });

  it('fails the deploy (pre_deploy_failed) when the pre-deploy command fails, and runs it when it succeeds', async () => {
    await c.updateService(serviceId, { serviceDetails: { preDeployCommand: 'echo "migrating for $RENDER_SERVICE_ID"; exit 3' } });
    const err = await deployAndWait().catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 'pre_deploy_failed' });
    await c.updateService(serviceId, { serviceDetails: { preDeployCommand: 'echo "migrated ok"' } });
    expect((await deployAndWait()).status).toBe('live');
    const log = readFileSync(emulator.state().services.find((s) => s.id === serviceId)!.instance!.logFile, 'utf8');
    expect(log).toContain(`migrating for ${serviceId}`);
    expect(log).toContain('migrated ok');
  });

  it('runs the build command before each deploy, with the service env, and fails the deploy (build_failed) when it fails', async () => {
    const logOf = () => readFileSync(emulator.state().services.find((s) => s.id === serviceId)!.instance!.logFile, 'utf8');
    const before = await echo();
    // npm ci never reinstalls the caller's checkout: with no node_modules in cwd (the fixtures) it fails and says so.
    await c.updateService(serviceId, { serviceDetails: { envSpecificDetails: { buildCommand: 'echo "building with GREETING=$GREETING" && npm ci --include=dev' } } });
    expect(await deployAndWait().catch((e: unknown) => e)).toMatchObject({ status: 'build_failed' });
    expect(logOf()).toContain(`building with GREETING=${before.env.GREETING}`);
    expect(logOf()).toMatch(/npm ci --include=dev: no node_modules in \S+fixtures: run npm ci there first/);
    expect((await echo()).pid).toBe(before.pid); // the old version keeps serving
    await c.updateService(serviceId, { serviceDetails: { envSpecificDetails: { buildCommand: 'echo "built for $RENDER_GIT_COMMIT"' } } });
    const live = await deployAndWait();
    expect(live.status).toBe('live');
    expect(logOf()).toContain(`built for ${live.commit?.id ?? ''}`);
    await c.updateService(serviceId, { serviceDetails: { envSpecificDetails: { buildCommand: 'true' } } });
  });

  it('runs `npm run NAME` in the build as the script itself when it has no pre/post script, and npm when it has', async () => {
    const logOf = () => readFileSync(emulator.state().services.find((s) => s.id === serviceId)!.instance!.logFile, 'utf8');
    const dir = mkdtempSync(path.join(tmpdir(), 'npm-shim-'));
    try {
      const scripts = { greet: 'echo "greet ran with GREETING=$GREETING"', prehooked: 'echo "the pre script ran"', hooked: 'echo "the hooked script ran"' };
      writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'npm-shim-fixture', version: '1.0.0', private: true, scripts }));
      await c.updateService(serviceId, { serviceDetails: { envSpecificDetails: { buildCommand: `cd '${dir}' && npm run greet && npm run hooked` } } });
      expect((await deployAndWait()).status).toBe('live');
      const log = logOf();
      expect(log).toContain(`[render-emulator] npm run greet: ${scripts.greet}`);
      expect(log).toMatch(/^greet ran with GREETING=\S+$/m);
      // A pre script: npm itself runs both, as on Render.
      expect(log).not.toContain('[render-emulator] npm run hooked');
      expect(log.indexOf('the pre script ran')).toBeGreaterThanOrEqual(0);
      expect(log.indexOf('the hooked script ran')).toBeGreaterThan(log.indexOf('the pre script ran'));
    } finally {
      await c.updateService(serviceId, { serviceDetails: { envSpecificDetails: { buildCommand: 'true' } } });
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('kills a process that ignores SIGTERM, and its whole process group, on the next deploy', async () => {
    await c.replaceEnvVars(serviceId, { GREETING: 'stubborn', FIXTURE_IGNORE_SIGTERM: '1', FIXTURE_GRANDCHILD: '1' });
    await deployAndWait();
    const stubborn = await echo();
    expect(stubborn.grandchildPid).toBeDefined();
    expect(isAlive(stubborn.grandchildPid)).toBe(true);
    await c.replaceEnvVars(serviceId, { GREETING: 'calm' });
    await deployAndWait();
    expect((await echo()).env.GREETING).toBe('calm');
    await waitUntil(() => !isAlive(stubborn.pid) && !isAlive(stubborn.grandchildPid), 'the stubborn process group to be killed');
  });

  it('writes the service output to its own log file', () => {
    const instance = emulator.state().services.find((s) => s.id === serviceId)!.instance!;
    expect(existsSync(instance.logFile)).toBe(true);
    const log = readFileSync(instance.logFile, 'utf8');
    expect(log).toContain('fixture listening on');
    expect(log).toContain('fixture got SIGTERM');
  });

  it('leaves no child process behind after close()', async () => {
    await c.replaceEnvVars(serviceId, { GREETING: 'last', FIXTURE_GRANDCHILD: '1' });
    await deployAndWait();
    const last = await echo();
    expect(isAlive(last.pid)).toBe(true);
    await emulator.close();
    await waitUntil(() => seenPids.every((pid) => !isAlive(pid)), 'every service process to be gone');
    expect(seenPids.filter(isAlive)).toEqual([]);
  });
});
