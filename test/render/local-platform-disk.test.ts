/**
 * A service with a disk, as Render runs it: one instance, and deploys that do not overlap (the old instance stops
 * before the new one starts, so there is a gap); a failed deploy brings the previous one back.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RenderClient } from '../../render/client';
import { RenderApiError } from '../../render/errors';
import { type RenderEmulator, type ServicePlatformInfo, startRenderEmulator } from '../../render/emulator';
import { waitUntil } from './support/helpers';
import { startTraffic } from './support/traffic';

const API_KEY = 'rnd_local_platform_disk_KEY';
const WAIT = { timeoutMs: 25_000, pollIntervalMs: 100 };
let emulator: RenderEmulator;
let c: RenderClient;
let serviceId: string;
let serviceUrl: string;

const platform = (): ServicePlatformInfo => emulator.state().services.find((s) => s.id === serviceId)!.instance!;

beforeAll(async () => {
  emulator = await startRenderEmulator({
    apiKey: API_KEY,
    deployStepMs: 5,
    localPlatform: { source: 'working-tree', cwd: path.join(__dirname, 'fixtures'), readyTimeoutMs: 3_000, shutdownGraceMs: 2_000 },
  });
  c = new RenderClient({ apiKey: API_KEY, baseUrl: emulator.url });
  const created = await c.createService({
    type: 'web_service',
    name: 'stand-in-disk',
    ownerId: (await c.listOwners())[0]!.id,
    serviceDetails: {
      runtime: 'node',
      healthCheckPath: '/healthz',
      disk: { name: 'data', mountPath: '/var/data', sizeGB: 1 },
      envSpecificDetails: { buildCommand: 'true', startCommand: 'node lb-stand-in.js' },
    },
  } as Parameters<RenderClient['createService']>[0]);
  serviceId = created.service!.id;
  serviceUrl = (created.service!.serviceDetails as { url: string }).url;
  await c.waitForDeploy(serviceId, created.deployId!, WAIT);
});

afterAll(async () => {
  await emulator?.close();
});

describe('local platform: a service with a disk', () => {
  it('stops the old instance before starting the new one: a gap the load balancer answers with 503', async () => {
    const traffic = startTraffic(serviceUrl, { requests: [{ method: 'GET', path: '/whoami' }], keepAliveWorkers: 2, freshWorkers: 0, pauseMs: 5 });
    const deploy = await c.triggerDeploy(serviceId, { commitId: 'd'.repeat(40) });
    await c.waitForDeploy(serviceId, deploy.id, WAIT);
    const report = await traffic.stop();
    const [live, old] = platform().rollouts;
    expect(live).toMatchObject({ phase: 'live', commitId: 'd'.repeat(40) });
    expect(old!.phase).toBe('retired');
    const newInstance = platform().instances.find((i) => i.deployId === live!.deployId)!;
    expect(Date.parse(newInstance.createdAt)).toBeGreaterThanOrEqual(Date.parse(old!.retiredAt!));
    expect(report.withoutAnswer).toBe(0); // the LB still answers...
    expect(report.statuses['503'] ?? 0).toBeGreaterThan(0); // ...503 while no instance runs
    expect(platform().loadBalancer.unavailable).toBe(report.statuses['503']);
  });

  it('refuses to scale beyond one instance, and brings the previous deploy back when a deploy fails', async () => {
    const err = await c.scaleService(serviceId, 2).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RenderApiError);
    expect(err).toMatchObject({ status: 400 });
    await c.setEnvVar(serviceId, 'FIXTURE_UNHEALTHY', '1');
    const deploy = await c.triggerDeploy(serviceId, { commitId: 'e'.repeat(40) });
    await expect(c.waitForDeploy(serviceId, deploy.id, WAIT)).rejects.toMatchObject({ status: 'update_failed' });
    await waitUntil(() => platform().instances.some((i) => i.routed), 'the previous deploy to serve again');
    const res = await fetch(`${serviceUrl}/whoami`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { commit: string }).commit).toBe('d'.repeat(40));
  });
});
