import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isRenderNotFound, RenderClient, type RenderClientOptions } from '../../render/client';
import { DeployFailedError, RenderApiError, RenderWaitTimeoutError } from '../../render/errors';
import { startRenderEmulator, type RenderEmulator } from '../../render/emulator';
import type { ServiceCreateBody } from '../../render/types';
import { captureLogger, fakeTime } from './support/helpers';

const API_KEY = 'rnd_test_SECRETKEY_0123456789abcdef';

let emulator: RenderEmulator;
let ownerId: string;
let serial = 0;

function client(extra: Partial<RenderClientOptions> = {}): RenderClient {
  return new RenderClient({ apiKey: API_KEY, baseUrl: emulator.url, random: () => 0.5, ...extra });
}

function webService(name: string, extra: Partial<ServiceCreateBody> = {}): ServiceCreateBody {
  return {
    type: 'web_service',
    name,
    ownerId,
    repo: 'https://github.com/example/memory-service',
    branch: 'main',
    serviceDetails: {
      runtime: 'node',
      plan: 'starter',
      region: 'oregon',
      healthCheckPath: '/api/health/ready',
      preDeployCommand: 'npm run migrate',
      numInstances: 1,
      envSpecificDetails: { buildCommand: 'npm ci', startCommand: 'npm start' },
    },
    envVars: [{ key: 'NODE_ENV', value: 'production' }],
    ...extra,
  };
}

async function newService(): Promise<string> {
  serial += 1;
  const { service } = await client().createService(webService(`svc-${serial}-${Date.now()}`));
  return service!.id;
}

beforeAll(async () => {
  emulator = await startRenderEmulator({ apiKey: API_KEY, deployStepMs: 5 });
  ownerId = (await client().listOwners())[0]!.id;
});

afterEach(() => emulator.resetFaults());
afterAll(async () => {
  await emulator?.close();
});

describe('RenderClient against the emulator', () => {
  it('lists owners and rejects a wrong key with a typed 401 that names the operation', async () => {
    const owners = await client().listOwners();
    expect(owners).toHaveLength(1);
    expect(owners[0]).toMatchObject({ type: 'team' });
    const err = await client({ apiKey: 'wrong-key' }).listOwners().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RenderApiError);
    expect(err).toMatchObject({ operation: 'listOwners', status: 401, renderErrorId: 'unauthorized' });
  });

  it('creates, reads, patches, finds and deletes a service', async () => {
    const c = client();
    const name = `crud-${Date.now()}`;
    const created = await c.createService(webService(name));
    const id = created.service!.id;
    expect(created.deployId).toMatch(/^dep-/);
    expect(created.service).toMatchObject({ name, type: 'web_service', ownerId });

    const fetched = await c.getService(id);
    expect(fetched.serviceDetails).toMatchObject({ healthCheckPath: '/api/health/ready', region: 'oregon', numInstances: 1 });

    const patched = await c.updateService(id, { serviceDetails: { healthCheckPath: '/healthz', maxShutdownDelaySeconds: 60 } });
    expect(patched.serviceDetails).toMatchObject({ healthCheckPath: '/healthz', maxShutdownDelaySeconds: 60, region: 'oregon' });

    expect((await c.findServicesByName(name)).map((s) => s.id)).toEqual([id]);
    expect((await c.findServicesByName(name, { ownerId })).map((s) => s.id)).toEqual([id]);
    expect(await c.findServicesByName(`${name}-nope`)).toEqual([]);
    expect(await c.findServicesByName(name, { ownerId: 'tea-other' })).toEqual([]);

    await c.deleteService(id);
    const err = await c.getService(id).catch((e: unknown) => e);
    expect(isRenderNotFound(err)).toBe(true);
    expect(err).toMatchObject({ operation: 'getService', status: 404 });
    expect((err as RenderApiError).renderErrorId).toBeTruthy();
    expect((err as Error).message).toContain('getService');
  });

  it('scales a service (202, no body), and refuses a count below 1 before calling Render', async () => {
    const c = client();
    const id = await newService();
    await c.scaleService(id, 3);
    expect((await c.getService(id)).serviceDetails).toMatchObject({ numInstances: 3 });
    await expect(c.scaleService(id, 0)).rejects.toThrow(TypeError);
    const raw = await fetch(`${emulator.url}/services/${id}/scale`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ numInstances: 'many' }),
    });
    expect(raw.status).toBe(400);
  });

  it('gets the emulator to refuse a body that violates the spec, as a 400 naming the operation', async () => {
    const bad = webService(`bad-${Date.now()}`);
    (bad.serviceDetails as { runtime: string }).runtime = 'nodejs';
    const err = await client().createService(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RenderApiError);
    expect(err).toMatchObject({ operation: 'createService', status: 400 });
    expect((err as RenderApiError).renderMessage).toContain('runtime');
  });

  it('manages env vars: replace (map and generateValue), set, delete, and lists them across pages', async () => {
    const c = client();
    const id = await newService();
    const replaced = await c.replaceEnvVars(id, { A: '1', B: '2' });
    expect(replaced).toEqual([{ key: 'A', value: '1' }, { key: 'B', value: '2' }]);
    const generated = await c.replaceEnvVars(id, [{ key: 'ADMIN_TOKEN', generateValue: true }, { key: 'C', value: '3' }]);
    expect(generated.find((v) => v.key === 'ADMIN_TOKEN')?.value).toMatch(/^[\w-]{20,}$/);
    expect(await c.setEnvVar(id, 'C', 'three')).toEqual({ key: 'C', value: 'three' });
    await c.deleteEnvVar(id, 'ADMIN_TOKEN');
    expect(await c.listEnvVars(id)).toEqual([{ key: 'C', value: 'three' }]);
    const missing = await c.deleteEnvVar(id, 'NOPE').catch((e: unknown) => e);
    expect(missing).toMatchObject({ operation: 'deleteEnvVar', status: 404 });

    const many = Object.fromEntries(Array.from({ length: 230 }, (_, i) => [`VAR_${String(i).padStart(3, '0')}`, `v${i}`]));
    await c.replaceEnvVars(id, many);
    const before = emulator.state().responses['200'] ?? 0;
    const listed = await c.listEnvVars(id);
    expect(listed).toHaveLength(230);
    expect(listed.map((v) => v.key)).toEqual(Object.keys(many));
    expect((emulator.state().responses['200'] ?? 0) - before).toBe(3); // pages of 100, 100, 30

    const keys: string[] = [];
    for await (const item of c.paginate<{ envVar: { key: string }; cursor: string }>('listEnvVars', `/services/${id}/env-vars`, {}, 7)) {
      keys.push(item.envVar.key);
    }
    expect(keys).toEqual(Object.keys(many));
  });

  it('honours 429 with Retry-After, with jitter on top of the server wait', async () => {
    const time = fakeTime();
    const c = client({ clock: time.clock, sleep: time.sleep });
    const id = await newService();
    emulator.setFaults({ rateLimit: { count: 2, retryAfterSeconds: 3, resetSeconds: 1 } });
    const service = await c.getService(id);
    expect(service.id).toBe(id);
    const retryWaits = time.sleeps.filter((ms) => ms >= 3000);
    expect(retryWaits).toHaveLength(2);
    for (const ms of retryWaits) expect(ms).toBeLessThanOrEqual(3600);
    expect(emulator.state().faults.rateLimit?.count).toBe(0);
  });

  it('honours 429 without Retry-After from the Ratelimit-Reset header', async () => {
    const time = fakeTime();
    const c = client({ clock: time.clock, sleep: time.sleep });
    const id = await newService();
    emulator.setFaults({ rateLimit: { count: 1, retryAfterSeconds: null, resetSeconds: 7 } });
    await c.getService(id);
    expect(time.sleeps[0]).toBeGreaterThanOrEqual(7000);
    expect(time.sleeps[0]).toBeLessThanOrEqual(8400);
  });

  it('gives up on 429 after maxRetries with a typed error', async () => {
    const time = fakeTime();
    const c = client({ clock: time.clock, sleep: time.sleep, maxRetries: 2 });
    emulator.setFaults({ rateLimit: { count: 10, retryAfterSeconds: 1 } });
    const err = await c.listOwners().catch((e: unknown) => e);
    expect(err).toMatchObject({ operation: 'listOwners', status: 429, attempts: 3 });
  });

  it('retries 5xx for idempotent calls only', async () => {
    const time = fakeTime();
    const c = client({ clock: time.clock, sleep: time.sleep });
    const id = await newService();
    emulator.setFaults({ serverErrors: { count: 2, status: 503 } });
    expect((await c.getService(id)).id).toBe(id);
    expect(time.sleeps).toHaveLength(2);

    const before = emulator.state().responses['500'] ?? 0;
    emulator.setFaults({ serverErrors: { count: 1, match: 'POST /services' } });
    const err = await c.createService(webService(`five-${Date.now()}`)).catch((e: unknown) => e);
    expect(err).toMatchObject({ operation: 'createService', status: 500, attempts: 1 });
    expect((emulator.state().responses['500'] ?? 0) - before).toBe(1);
  });

  it('reports an unreachable API as status 0 after retrying idempotent calls', async () => {
    const time = fakeTime();
    const gone = await startRenderEmulator({ apiKey: API_KEY });
    const url = gone.url;
    await gone.close();
    const c = new RenderClient({ apiKey: API_KEY, baseUrl: url, clock: time.clock, sleep: time.sleep, maxRetries: 2 });
    const err = await c.getService('srv-x').catch((e: unknown) => e);
    expect(err).toMatchObject({ operation: 'getService', status: 0, attempts: 3 });
  });

  it('triggers deploys, waits for live, and lists deploys by status', async () => {
    const c = client();
    const id = await newService();
    const commitId = 'a'.repeat(40);
    const deploy = await c.triggerDeploy(id, { commitId, clearCache: true });
    expect(deploy.commit?.id).toBe(commitId);
    const seen: string[] = [];
    const live = await c.waitForDeploy(id, deploy.id, { timeoutMs: 20_000, pollIntervalMs: 5, onProgress: (d) => seen.push(d.status!) });
    expect(live.status).toBe('live');
    expect(seen.at(-1)).toBe('live');
    expect(await c.getDeploy(id, deploy.id)).toMatchObject({ id: deploy.id, status: 'live' });
    const liveOnes = await c.listDeploys(id, { status: 'live' });
    expect(liveOnes.map((d) => d.id)).toEqual([deploy.id]);
    const all = await c.listDeploys(id);
    expect(all[0]!.id).toBe(deploy.id); // newest first
    expect(all.length).toBe(2); // the creation deploy and ours
  });

  it('finds the deploy when POST /deploys answers 202 with an empty body', async () => {
    const c = client();
    const id = await newService();
    emulator.setFaults({ emptyDeployResponses: 1 });
    const commitId = 'b'.repeat(40);
    const deploy = await c.triggerDeploy(id, { commitId });
    expect(emulator.state().faults.emptyDeployResponses).toBe(0);
    expect(deploy.commit?.id).toBe(commitId);
    const known = emulator.state().services.find((s) => s.id === id)!.deploys.map((d) => d.id);
    expect(known).toContain(deploy.id);
    expect((await c.waitForDeploy(id, deploy.id, { timeoutMs: 20_000, pollIntervalMs: 5 })).status).toBe('live');
  });

  it('finds a 202-empty deploy even when it already finished before the lookup', async () => {
    const fast = await startRenderEmulator({ apiKey: API_KEY, deployStepMs: 0 });
    try {
      const c = new RenderClient({ apiKey: API_KEY, baseUrl: fast.url, random: () => 0.5 });
      const owner = (await c.listOwners())[0]!.id;
      const { service, deployId } = await c.createService({ ...webService('fast'), ownerId: owner });
      await c.waitForDeploy(service!.id, deployId!, { timeoutMs: 20_000, pollIntervalMs: 5 });
      for (let i = 0; i < 3; i++) {
        fast.setFaults({ emptyDeployResponses: 1 });
        const deploy = await c.triggerDeploy(service!.id);
        expect(fast.state().services[0]!.deploys[0]!.id).toBe(deploy.id);
      }
    } finally {
      await fast.close();
    }
  });

  it('rolls back to an earlier deploy: a new deploy of its commit, 429 retried, 5xx not (each call is a deploy)', async () => {
    const time = fakeTime();
    const c = client({ clock: time.clock, sleep: time.sleep });
    const wait = { timeoutMs: 20_000, pollIntervalMs: 5 };
    const id = await newService();
    const first = (await c.listDeploys(id))[0]!;
    await c.waitForDeploy(id, first.id, wait);
    const bad = await c.triggerDeploy(id, { commitId: 'b'.repeat(40) });
    await c.waitForDeploy(id, bad.id, wait);

    emulator.setFaults({ rateLimit: { count: 1, retryAfterSeconds: 2, match: 'POST /services' } });
    const rollback = await c.rollbackDeploy(id, first.id);
    expect(time.sleeps.filter((ms) => ms >= 2000)).toHaveLength(1);
    expect(rollback).toMatchObject({ trigger: 'rollback', commit: { id: first.commit!.id } });
    expect(rollback.id).not.toBe(first.id);
    expect((await c.waitForDeploy(id, rollback.id, wait)).status).toBe('live');
    expect((await c.listDeploys(id, { limit: 1 }))[0]!.id).toBe(rollback.id);

    const deploysBefore = (await c.listDeploys(id)).length;
    emulator.setFaults({ serverErrors: { count: 1, status: 503, match: '/rollback' } });
    const err = await c.rollbackDeploy(id, bad.id).catch((e: unknown) => e);
    expect(err).toMatchObject({ operation: 'rollbackDeploy', status: 503, attempts: 1 });
    expect(await c.listDeploys(id)).toHaveLength(deploysBefore);
    const unknown = await c.rollbackDeploy(id, 'dep-nope').catch((e: unknown) => e);
    expect(isRenderNotFound(unknown)).toBe(true);
  });

  it('throws DeployFailedError on a failed build, and the next deploy goes live', async () => {
    const c = client();
    const id = await newService();
    const first = (await c.listDeploys(id))[0]!;
    await c.waitForDeploy(id, first.id, { timeoutMs: 20_000, pollIntervalMs: 5 });
    emulator.setFaults({ failBuilds: 1 });
    const failing = await c.triggerDeploy(id);
    const err = await c.waitForDeploy(id, failing.id, { timeoutMs: 20_000, pollIntervalMs: 5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeployFailedError);
    expect(err).toMatchObject({ serviceId: id, deployId: failing.id, status: 'build_failed' });
    const next = await c.triggerDeploy(id);
    expect((await c.waitForDeploy(id, next.id, { timeoutMs: 20_000, pollIntervalMs: 5 })).status).toBe('live');
  });

  it('paces deploys under 10 per minute per service on the injected clock', async () => {
    const time = fakeTime();
    const { logger, lines } = captureLogger();
    const c = client({ clock: time.clock, sleep: time.sleep, logger });
    const a = await newService();
    const b = await newService();
    for (let i = 0; i < 10; i++) await c.triggerDeploy(a);
    expect(time.sleeps).toEqual([]);
    await c.triggerDeploy(b); // another service has its own budget
    expect(time.sleeps).toEqual([]);
    await c.triggerDeploy(a);
    expect(time.sleeps).toEqual([6000]);
    await c.triggerDeploy(a);
    expect(time.sleeps).toEqual([6000, 6000]);
    time.advance(60_000);
    await c.triggerDeploy(a);
    expect(time.sleeps).toEqual([6000, 6000]);
    expect(lines.some((l) => l.includes('pacing deploys'))).toBe(true);
  });

  it('times out waiting for a deploy with a typed error', async () => {
    const slow = await startRenderEmulator({ apiKey: API_KEY, deployStepMs: 60_000 });
    try {
      const time = fakeTime();
      const c = new RenderClient({ apiKey: API_KEY, baseUrl: slow.url, clock: time.clock, sleep: time.sleep });
      const owner = (await c.listOwners())[0]!.id;
      const { service, deployId } = await c.createService({ ...webService('slow'), ownerId: owner });
      const err = await c.waitForDeploy(service!.id, deployId!, { timeoutMs: 1_000, pollIntervalMs: 400 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RenderWaitTimeoutError);
      expect(err).toMatchObject({ lastStatus: 'created' });
    } finally {
      await slow.close();
    }
  });

  it('creates Postgres and Key Value, waits for availability, reads connection info, deletes', async () => {
    const c = client();
    const pg = await c.createPostgres({ name: 'memory-db', ownerId, plan: 'basic_256mb', version: '16', region: 'oregon' });
    expect(pg.status).toBe('creating');
    const statuses: string[] = [];
    const ready = await c.waitForPostgresAvailable(pg.id, { timeoutMs: 20_000, pollIntervalMs: 5, onProgress: (p) => statuses.push(p.status) });
    expect(ready.status).toBe('available');
    expect(statuses.at(-1)).toBe('available');
    const pgInfo = await c.getPostgresConnectionInfo(pg.id);
    expect(pgInfo.internalConnectionString).toMatch(/^postgresql:\/\//);
    expect(pgInfo.externalConnectionString).toContain(pgInfo.password);
    await c.deletePostgres(pg.id);
    expect(isRenderNotFound(await c.getPostgres(pg.id).catch((e: unknown) => e))).toBe(true);

    const kv = await c.createKeyValue({ name: 'memory-cache', ownerId, plan: 'starter', region: 'oregon', maxmemoryPolicy: 'allkeys_lru' });
    expect((await c.getKeyValue(kv.id)).name).toBe('memory-cache');
    const kvInfo = await c.getKeyValueConnectionInfo(kv.id);
    expect(kvInfo.internalConnectionString).toMatch(/^redis:\/\//);
    await c.deleteKeyValue(kv.id);
    expect(await c.getKeyValue(kv.id).catch((e: unknown) => e)).toMatchObject({ operation: 'getKeyValue', status: 404 });
  });

  it('never puts the API key in errors or logs', async () => {
    const time = fakeTime();
    const { logger, lines } = captureLogger();
    const c = client({ clock: time.clock, sleep: time.sleep, logger, maxRetries: 1 });
    const errors: unknown[] = [];
    emulator.setFaults({ rateLimit: { count: 5, retryAfterSeconds: 1 } });
    errors.push(await c.listOwners().catch((e: unknown) => e));
    emulator.resetFaults();
    emulator.setFaults({ serverErrors: { count: 5 } });
    errors.push(await c.getService('srv-x').catch((e: unknown) => e));
    emulator.resetFaults();
    errors.push(await c.getService('srv-missing').catch((e: unknown) => e));
    errors.push(await new RenderClient({ apiKey: API_KEY, baseUrl: 'http://127.0.0.1:1/v1', clock: time.clock, sleep: time.sleep, logger, maxRetries: 1 })
      .getService('srv-x')
      .catch((e: unknown) => e));
    expect(errors.every((e) => e instanceof RenderApiError)).toBe(true);
    expect(lines.length).toBeGreaterThan(0);
    const text = [...lines, ...errors.map((e) => `${inspect(e, { depth: 10, showHidden: true })} ${JSON.stringify(e)} ${(e as Error).stack}`)].join('\n');
    expect(text).not.toContain(API_KEY);
    expect(text).not.toContain('SECRETKEY');
    expect(inspect(c, { depth: 10, showHidden: true })).not.toContain('SECRETKEY');
  });
});
