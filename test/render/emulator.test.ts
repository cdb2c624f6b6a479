import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RenderSpecValidator, startRenderEmulator, type RenderEmulator } from '../../render/emulator';

const API_KEY = 'rnd_emulator_test_key';
let emulator: RenderEmulator;
let ownerId: string;
const spec = new RenderSpecValidator();

async function api(method: string, path: string, body?: unknown, key: string | null = API_KEY, target: RenderEmulator = emulator) {
  const res = await fetch(`${target.url}${path}`, {
    method,
    headers: {
      ...(key ? { Authorization: `Bearer ${key}` } : {}),
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as any) : undefined };
}

function apiOn(target: RenderEmulator, method: string, path: string, body?: unknown) {
  return api(method, path, body, API_KEY, target);
}

function webServiceBody(name: string) {
  return { ...webServiceBodyFor(name), ownerId };
}

function webServiceBodyFor(name: string) {
  return {
    type: 'web_service',
    name,
    ownerId: '',
    serviceDetails: {
      runtime: 'node',
      healthCheckPath: '/healthz',
      envSpecificDetails: { buildCommand: 'npm ci', startCommand: 'npm start' },
    },
  };
}

beforeAll(async () => {
  emulator = await startRenderEmulator({ apiKey: API_KEY, deployStepMs: 5 });
  ownerId = (await api('GET', '/owners')).body[0].owner.id;
});
afterAll(async () => {
  await emulator?.close();
});

describe('Render emulator', () => {
  it('listens on loopback and requires the bearer key (401 with Render error body)', async () => {
    expect(emulator.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    for (const key of [null, 'wrong']) {
      const res = await api('GET', '/owners', undefined, key);
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ id: expect.any(String), message: expect.any(String) });
    }
  });

  it.each([
    ['POST', '/services', () => ({ ...webServiceBody('x'), type: 'web-service' }), /type/],
    ['POST', '/services', () => ({ name: 'x', ownerId }), /type/],
    ['POST', '/services', () => ({ ...webServiceBody('x'), serviceDetails: { runtime: 'node', healthcheckPath: '/h' } }), /healthcheckPath/],
    ['POST', '/services', () => ({ ...webServiceBody('x'), envVars: [{ key: 'A', val: '1' }] }), /value|generateValue|val/],
    ['POST', '/postgres', () => ({ name: 'db', ownerId, plan: 'basic_256mb', version: '9' }), /version/],
    ['POST', '/postgres', () => ({ name: 'db', ownerId, plan: 'basic_256mb' }), /version/],
    ['POST', '/key-value', () => ({ name: 'kv', ownerId, plan: 'huge' }), /plan/],
    ['POST', '/key-value', () => ({ name: 'kv', ownerId, plan: 'starter', maxmemoryPolicy: 'lru' }), /maxmemoryPolicy/],
  ])('answers 400 {id, message} to a %s %s body that violates the spec (%#)', async (method, path, body, mentions) => {
    const res = await api(method, path, body());
    expect(res.status).toBe(400);
    expect(res.body.id).toEqual(expect.any(String));
    expect(res.body.message).toMatch(mentions);
  });

  it('answers 400 to spec violations on service sub-resources, and to malformed JSON', async () => {
    const created = await api('POST', '/services', webServiceBody(`sub-${Date.now()}`));
    expect(created.status).toBe(201);
    const id = created.body.service.id;
    const cases: Array<[string, string, unknown]> = [
      ['PATCH', `/services/${id}`, { serviceDetails: { numInstances: 'two' } }],
      ['PATCH', `/services/${id}`, { region: 'frankfurt' }], // region cannot be patched on Render
      ['PUT', `/services/${id}/env-vars`, { key: 'A', value: '1' }], // must be an array
      ['PUT', `/services/${id}/env-vars/A`, { val: '1' }],
      ['POST', `/services/${id}/deploys`, { clearCache: true }],
      ['POST', `/services/${id}/deploys`, { commitId: 42 }],
      ['POST', `/services/${id}/deploys`, '{"commitId": '],
    ];
    for (const [method, path, body] of cases) {
      const res = await api(method, path, body);
      expect({ method, path, status: res.status }).toEqual({ method, path, status: 400 });
      expect(res.body).toEqual({ id: expect.any(String), message: expect.any(String) });
    }
    expect((await api('GET', `/services/${id}/env-vars?limit=0`)).status).toBe(400);
    expect((await api('GET', `/services/${id}/env-vars?limit=101`)).status).toBe(400);
    expect((await api('GET', `/services/${id}/env-vars?cursor=nope`)).status).toBe(400);
    expect((await api('GET', '/services/srv-unknown')).status).toBe(404);
    expect((await api('GET', '/no-such-route')).status).toBe(404);
  });

  it('never answers 5xx to arbitrary JSON bodies (bad input is a 4xx)', async () => {
    const created = await api('POST', '/services', webServiceBody(`fuzz-${Date.now()}`));
    const id = created.body.service.id;
    const targets: Array<[string, string]> = [
      ['POST', '/services'],
      ['PATCH', `/services/${id}`],
      ['PUT', `/services/${id}/env-vars`],
      ['PUT', `/services/${id}/env-vars/K`],
      ['POST', `/services/${id}/deploys`],
      ['POST', `/services/${id}/scale`],
      ['POST', '/postgres'],
      ['POST', '/key-value'],
    ];
    const body = fc.oneof(
      fc.jsonValue(),
      fc.record({ type: fc.constantFrom('web_service', 'cron_job', 'x', 'constructor', '__proto__', 'toString'), name: fc.string(), ownerId: fc.constant(ownerId), serviceDetails: fc.jsonValue() }, { requiredKeys: [] }),
      fc.record({ serviceDetails: fc.jsonValue(), name: fc.jsonValue() }, { requiredKeys: [] }),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...targets), body, async ([method, path], value) => {
        const res = await api(method, path, JSON.stringify(value));
        return res.status < 500 && typeof res.body === 'object';
      }),
      { numRuns: 150 },
    );
    for (const type of ['constructor', '__proto__', 'toString']) {
      expect((await api('POST', '/services', JSON.stringify({ type, name: `proto-${type}`, ownerId }))).status).toBe(400);
    }
  });

  it('refuses a second service with the same name (409), as names are unique per workspace', async () => {
    const name = `dupe-${Date.now()}`;
    expect((await api('POST', '/services', webServiceBody(name))).status).toBe(201);
    expect((await api('POST', '/services', webServiceBody(name))).status).toBe(409);
  });

  it("answers with Render's response shapes", async () => {
    const created = await api('POST', '/services', {
      ...webServiceBody(`shape-${Date.now()}`),
      envVars: [{ key: 'A', value: '1' }, { key: 'B', generateValue: true }],
    });
    expect(spec.validateSchema('serviceAndDeploy', created.body)).toEqual({ ok: true, message: '' });
    const id = created.body.service.id;
    expect(spec.validateSchema('service', (await api('GET', `/services/${id}`)).body).ok).toBe(true);
    expect(spec.validateSchema('serviceList', (await api('GET', '/services')).body)).toEqual({ ok: true, message: '' });
    const deploys = await api('GET', `/services/${id}/deploys`);
    expect(spec.validateSchema('deployList', deploys.body).ok).toBe(true);
    expect(spec.validateSchema('deploy', (await api('GET', `/services/${id}/deploys/${created.body.deployId}`)).body).ok).toBe(true);
    const kv = await api('POST', '/key-value', { name: 'kv', ownerId, plan: 'starter' });
    expect(spec.validateSchema('keyValueDetail', kv.body)).toEqual({ ok: true, message: '' });
    expect(spec.validateSchema('keyValueConnectionInfo', (await api('GET', `/key-value/${kv.body.id}/connection-info`)).body).ok).toBe(true);
    const pg = await api('POST', '/postgres', { name: 'db', ownerId, plan: 'basic_256mb', version: '16' });
    expect(spec.validateSchema('postgresConnectionInfo', (await api('GET', `/postgres/${pg.body.id}/connection-info`)).body).ok).toBe(true);
    const owners = await api('GET', '/owners');
    expect(spec.validateSchema('owner', owners.body[0].owner).ok).toBe(true);
  });

  it('moves a deploy through created, build_in_progress, update_in_progress to live, deactivating the previous one', async () => {
    const created = await api('POST', '/services', webServiceBody(`states-${Date.now()}`));
    const id = created.body.service.id;
    const seen = new Set<string>();
    const deadline = Date.now() + 20_000;
    let status = '';
    while (status !== 'live' && Date.now() < deadline) {
      status = (await api('GET', `/services/${id}/deploys/${created.body.deployId}`)).body.status;
      seen.add(status);
    }
    expect(status).toBe('live');
    const second = await api('POST', `/services/${id}/deploys`, {});
    expect(second.status).toBe(201);
    expect(second.body.status).toBe('created');
    while ((await api('GET', `/services/${id}/deploys/${second.body.id}`)).body.status !== 'live' && Date.now() < deadline);
    expect((await api('GET', `/services/${id}/deploys/${created.body.deployId}`)).body.status).toBe('deactivated');
    const live = await api('GET', `/services/${id}/deploys?status=live`);
    expect(live.body.map((w: any) => w.deploy.id)).toEqual([second.body.id]);
    const finished = await api('GET', `/services/${id}/deploys?status=live&status=deactivated`);
    expect(finished.body).toHaveLength(2);
    expect(finished.body[0].deploy.finishedAt).toEqual(expect.any(String));
  });

  it('rolls back (POST /services/{id}/rollback) per the spec: a new deploy of the target commit, trigger rollback, its env vars', async () => {
    const created = await api('POST', '/services', { ...webServiceBody(`rollback-${Date.now()}`), envVars: [{ key: 'FLAG', value: 'off' }] });
    const id = created.body.service.id;
    const untilLive = async (deployId: string) => {
      const deadline = Date.now() + 20_000;
      let deploy: any;
      do deploy = (await api('GET', `/services/${id}/deploys/${deployId}`)).body;
      while (deploy.status !== 'live' && Date.now() < deadline);
      return deploy;
    };
    const first = await untilLive(created.body.deployId);
    await api('PUT', `/services/${id}/env-vars/FLAG`, { value: 'on' });
    const second = await api('POST', `/services/${id}/deploys`, { commitId: 'f'.repeat(40) });
    await untilLive(second.body.id);

    for (const body of [undefined, {}, { deployId: 7 }]) {
      const res = await api('POST', `/services/${id}/rollback`, body);
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ id: expect.any(String), message: expect.any(String) });
    }
    const unknown = await api('POST', `/services/${id}/rollback`, { deployId: 'dep-unknown' });
    expect(unknown.status).toBe(404);
    expect(spec.validateSchema('error', unknown.body).ok).toBe(true);
    expect((await api('POST', '/services/srv-unknown/rollback', { deployId: first.id })).status).toBe(404);

    const rollback = await api('POST', `/services/${id}/rollback`, { deployId: first.id });
    expect(rollback.status).toBe(201);
    expect(spec.validateSchema('deploy', rollback.body)).toEqual({ ok: true, message: '' });
    expect(rollback.body).toMatchObject({ trigger: 'rollback', commit: { id: first.commit.id } });
    expect(rollback.body.id).not.toBe(first.id);
    expect((await untilLive(rollback.body.id)).status).toBe('live');
    expect((await api('GET', `/services/${id}/deploys/${second.body.id}`)).body.status).toBe('deactivated');
    // Render: the rollback ran with the target deploy's env vars; the service's current ones are unchanged.
    expect((await api('GET', `/services/${id}/env-vars/FLAG`)).body.value).toBe('on');

    const failing = await startRenderEmulator({ apiKey: API_KEY, deployStepMs: 60_000 });
    try {
      const owner = (await apiOn(failing, 'GET', '/owners')).body[0].owner.id;
      const pending = await apiOn(failing, 'POST', '/services', { ...webServiceBodyFor('pending'), ownerId: owner });
      const res = await apiOn(failing, 'POST', `/services/${pending.body.service.id}/rollback`, { deployId: pending.body.deployId });
      expect(res.status).toBe(400);
      expect(res.body.message).toMatch(/went live/);
    } finally {
      await failing.close();
    }
  });

  it('queues a deploy triggered while another is in flight', async () => {
    const slow = await startRenderEmulator({ apiKey: API_KEY, deployStepMs: 60_000 });
    try {
      const headers = { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' };
      const owner = ((await (await fetch(`${slow.url}/owners`, { headers })).json()) as any)[0].owner.id;
      const created = (await (await fetch(`${slow.url}/services`, { method: 'POST', headers, body: JSON.stringify({ ...webServiceBody('q'), ownerId: owner }) })).json()) as any;
      const next = (await (await fetch(`${slow.url}/services/${created.service.id}/deploys`, { method: 'POST', headers, body: '{}' })).json()) as any;
      expect(next.status).toBe('queued');
    } finally {
      await slow.close();
    }
  });

  it('exposes faults through the control API, consuming them one response at a time', async () => {
    // Its own emulator with slow deploys: no deploy reaches its build step (which consumes failBuilds) here.
    const emu = await startRenderEmulator({ apiKey: API_KEY, deployStepMs: 60_000 });
    try {
      await faultsScenario(emu);
    } finally {
      await emu.close();
    }
  });
});

async function faultsScenario(emu: RenderEmulator): Promise<void> {
  const api = (method: string, path: string, body?: unknown) => apiOn(emu, method, path, body);
  const ownerId = (await api('GET', '/owners')).body[0].owner.id;
  const webServiceBody = (name: string) => ({ ...webServiceBodyFor(name), ownerId });
  const emulator = emu;
  const control = `${emulator.origin}/__emulator`;
  const bad = await fetch(`${control}/faults`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ rateLimit: { count: -1 } }) });
  expect(bad.status).toBe(400);
  const unknown = await fetch(`${control}/faults`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ explode: 1 }) });
  expect(unknown.status).toBe(400);

  const set = await fetch(`${control}/faults`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ rateLimit: { count: 1, retryAfterSeconds: 2, resetSeconds: 9 }, serverErrors: { count: 1, status: 503 } }),
  });
  expect(set.status).toBe(200);
  const limited = await api('GET', '/owners');
  expect(limited.status).toBe(429);
  expect(limited.headers.get('retry-after')).toBe('2');
  expect(limited.headers.get('ratelimit-remaining')).toBe('0');
  expect(limited.headers.get('ratelimit-reset')).toBe('9');
  expect(limited.headers.get('ratelimit-limit')).toEqual(expect.stringMatching(/^\d+$/));
  expect((await api('GET', '/owners')).status).toBe(503);
  const ok = await api('GET', '/owners');
  expect(ok.status).toBe(200);
  expect(Number(ok.headers.get('ratelimit-remaining'))).toBeGreaterThan(0);

  await fetch(`${control}/faults`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ emptyDeployResponses: 1, failBuilds: 2 }) });
  const created = await api('POST', '/services', { ...webServiceBody(`faults-${Date.now()}`), envVars: [{ key: 'CONTEXT7_API_KEY', value: 'c7-secret-value' }] });
  const state = (await (await fetch(`${control}/state`)).json()) as any;
  expect(state.faults).toMatchObject({ emptyDeployResponses: 1, failBuilds: 2 });
  expect(JSON.stringify(state)).not.toContain(API_KEY);
  expect(JSON.stringify(state)).not.toContain('c7-secret-value');
  expect(state.services.find((s: any) => s.id === created.body.service.id).envVars).toHaveProperty('CONTEXT7_API_KEY');
  const withKey = (await (await fetch(`${control}/state`, { headers: { Authorization: `Bearer ${API_KEY}` } })).json()) as any;
  expect(withKey.services.find((s: any) => s.id === created.body.service.id).envVars.CONTEXT7_API_KEY).toBe('c7-secret-value');
  const id = created.body.service.id;
  const empty = await api('POST', `/services/${id}/deploys`, {});
  expect(empty.status).toBe(202);
  expect(empty.body).toBeUndefined();
  const cleared = await fetch(`${control}/faults`, { method: 'DELETE' });
  expect(await cleared.json()).toEqual({});
  expect(emulator.state().faults).toEqual({});
}
