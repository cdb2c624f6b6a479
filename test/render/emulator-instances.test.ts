import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RenderClient } from '../../render/client';
import { RenderSpecValidator, startRenderEmulator, type RenderEmulator } from '../../render/emulator';

const API_KEY = 'rnd_emulator_instances_key';
const spec = new RenderSpecValidator();
let emulator: RenderEmulator;
let c: RenderClient;

beforeAll(async () => {
  emulator = await startRenderEmulator({ apiKey: API_KEY, deployStepMs: 5 });
  c = new RenderClient({ apiKey: API_KEY, baseUrl: emulator.url });
});
afterAll(async () => {
  await emulator?.close();
});

describe('GET /services/{id}/instances (no local platform)', () => {
  it('lists numInstances spec-valid instances of the live deploy, follows /scale, and 404s an unknown service', async () => {
    const ownerId = (await c.listOwners())[0]!.id;
    const created = await c.createService({
      type: 'web_service',
      name: 'instances',
      ownerId,
      serviceDetails: { runtime: 'node', numInstances: 2, envSpecificDetails: { buildCommand: 'npm ci', startCommand: 'npm start' } },
    } as Parameters<RenderClient['createService']>[0]);
    const serviceId = created.service!.id;
    await c.waitForDeploy(serviceId, created.deployId!, { timeoutMs: 10_000, pollIntervalMs: 20 });
    const instances = await c.listInstances(serviceId);
    expect(instances).toHaveLength(2);
    for (const instance of instances) expect(spec.validateSchema('serviceInstance', instance)).toEqual({ ok: true, message: '' });
    expect(new Set(instances.map((i) => i.id)).size).toBe(2);
    await c.scaleService(serviceId, 3);
    expect(await c.listInstances(serviceId)).toHaveLength(3);
    const res = await fetch(`${emulator.url}/services/srv-nope/instances`, { headers: { Authorization: `Bearer ${API_KEY}` } });
    expect(res.status).toBe(404);
  });
});
