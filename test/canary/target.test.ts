/**
 * The canary never acts on a target it has not seen: a URL that never answered is an abort (exit 3, nothing
 * changed), a URL that is not the Render service's is refused before anything (exit 64), and a service that
 * answered and then went down is still rolled back.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyze, type Measurement } from '../../canary/analysis';
import { loadPolicy } from '../../canary/policy';
import { checkTargetBelongsToService } from '../../canary/target';
import { RenderClient } from '../../render/client';
import { RenderSpecValidator, startRenderEmulator, type RenderEmulator } from '../../render/emulator';
import { canaryCli } from '../support/tsx-cli';

const REPO = join(__dirname, '../..');
const policy = loadPolicy(join(REPO, 'canary/policy.yaml'));
const RENDER_KEY = 'rnd_target_test_key';

describe('checkTargetBelongsToService', () => {
  const service = { id: 'srv-1', url: 'https://memory-prod.onrender.com', customDomains: ['memory.example.com'] };

  it('accepts the service URL and its custom domains, whatever the case or default port', () => {
    expect(checkTargetBelongsToService('https://memory-prod.onrender.com', service)).toEqual({ ok: true, matched: 'memory-prod.onrender.com' });
    expect(checkTargetBelongsToService('https://MEMORY-prod.onrender.com:443/api', service).ok).toBe(true);
    expect(checkTargetBelongsToService('https://memory.example.com', service)).toEqual({ ok: true, matched: 'memory.example.com' });
    expect(checkTargetBelongsToService('http://127.0.0.1:4100', { id: 's', url: 'http://127.0.0.1:4100', customDomains: [] }).ok).toBe(true);
  });

  it('refuses another host, another port, or a service without a URL, naming both sides', () => {
    const other = checkTargetBelongsToService('https://memory-staging.onrender.com', service);
    expect(other).toMatchObject({ ok: false, reason: expect.stringContaining('memory-staging.onrender.com') });
    expect(other.ok || other.reason).toContain('memory-prod.onrender.com, memory.example.com');
    expect(checkTargetBelongsToService('http://127.0.0.1:3999', { id: 's', url: 'http://127.0.0.1:3000', customDomains: [] }).ok).toBe(false);
    expect(checkTargetBelongsToService('http://127.0.0.1:3000', { id: 's', url: undefined, customDomains: [] })).toMatchObject({
      ok: false,
      reason: expect.stringContaining('it has no URL'),
    });
    expect(checkTargetBelongsToService('ftp://memory.example.com', service).ok).toBe(false);
  });
});

describe('down before ever answering vs down after being seen', () => {
  const refused = { status: null, error: 'network' as const, message: 'connect ECONNREFUSED 127.0.0.1:3999' };
  const unreachable = (minute: number): Measurement => ({ atSeconds: minute * 60, samples: [refused], health: refused, config: refused });

  it('a target that never answered is an abort (never_reached), not a rollback', () => {
    const result = analyze(policy, { measurements: [unreachable(0), unreachable(2)] });
    expect(result.decision).toMatchObject({ kind: 'abort', trigger: 'never_reached', atSeconds: 120 });
    expect(result.decision?.reason).toMatch(/cannot reach the service.*nothing was changed/);
  });

  it('a target that answered health once and then went down is service_down, rolled back', () => {
    const healthyOnce: Measurement = {
      atSeconds: 0,
      samples: [{ status: 500, body: { error: 'starting' } }],
      health: { status: 200, body: { available: true, provider: 'context7' } },
    };
    const result = analyze(policy, { measurements: [healthyOnce, unreachable(2), unreachable(4)] });
    expect(result.decision).toMatchObject({ kind: 'rollback', trigger: 'service_down', atSeconds: 240 });
  });

  it('an HTTP error from whatever listens there is not "seen healthy"', () => {
    const notOurs = (minute: number): Measurement => ({
      atSeconds: minute * 60,
      samples: [{ status: 404, body: { error: 'no such route' } }],
      health: { status: 404, body: {} },
      config: { status: 404, body: {} },
    });
    expect(analyze(policy, { measurements: [notOurs(0), notOurs(2)] }).decision).toMatchObject({ kind: 'abort', trigger: 'never_reached' });
  });
});

// The CLI runs below are independent of each other: the tests run at once, so the runs' start-up (about 0.7 s of
// CPU each, compiled) overlaps (test/support/tsx-cli.ts). Each test asserts with its own `expect`.
describe.concurrent('canary run against a target it cannot vouch for (CLI)', () => {
  let render: RenderEmulator;
  let dir: string;
  let serviceId: string;
  let serviceUrl: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'canary-target-'));
    render = await startRenderEmulator({ apiKey: RENDER_KEY, deployStepMs: 5 });
    const client = new RenderClient({ apiKey: RENDER_KEY, baseUrl: render.url });
    const [owner] = await client.listOwners();
    const created = await client.createService({
      type: 'web_service',
      name: 'memory-target-test',
      ownerId: owner!.id,
      serviceDetails: { runtime: 'node', envSpecificDetails: { buildCommand: 'npm ci', startCommand: 'npm start' } },
    } as Parameters<RenderClient['createService']>[0]);
    serviceId = created.service!.id;
    serviceUrl = (created.service!.serviceDetails as { url: string }).url;
    await client.addCustomDomain(serviceId, 'memory.example.com');
    expect((await client.addCustomDomain(serviceId, 'example.org')).map((d) => d.name)).toEqual(['example.org', 'www.example.org']);
  });
  afterAll(async () => {
    await render?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A loopback port nothing listens on (bound, then released). */
  async function closedPort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
  }

  async function canary(args: string[], env: Record<string, string> = {}): Promise<{ status: number | null; output: string }> {
    const result = await canaryCli(['run', ...args], { env: { ...process.env, RENDER_API_KEY: '', ...env } });
    return { status: result.status, output: result.output };
  }

  it('the emulator lists custom domains as the spec says', async ({ expect }) => {
    const res = await fetch(`${render.url}/services/${serviceId}/custom-domains`, { headers: { Authorization: `Bearer ${RENDER_KEY}` } });
    const body = (await res.json()) as unknown[];
    const spec = new RenderSpecValidator();
    expect(res.status).toBe(200);
    expect(body.map((item) => (item as { customDomain: { name: string } }).customDomain.name)).toEqual(['memory.example.com', 'example.org', 'www.example.org']);
    for (const item of body) expect(spec.validateSchema('customDomainWithCursor', item)).toEqual({ ok: true, message: '' });
  });

  it('a mistyped port on a dry run aborts with "cannot reach" (exit 3), not a rollback', async ({ expect }) => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const run = await canary(['--base-url', url, '--stack', 'staging', '--dry-run', '--time-scale', '1200', '--report-dir', join(dir, 'dry')]);
    expect(run.output).toContain(`cannot reach ${url}`);
    expect(run.output).not.toMatch(/DECISION: rollback/);
    expect(run.status).toBe(3);
  }, 180_000);

  it('a base URL that is not the service\'s is refused with exit 64 before anything is written', async ({ expect }) => {
    const stateFile = join(dir, 'state-mismatch.json');
    const run = await canary(
      ['--base-url', `http://127.0.0.1:${await closedPort()}`, '--stack', 'production', '--render-service-id', serviceId,
        '--render-api-url', render.url, '--state-file', stateFile, '--report-dir', join(dir, 'mismatch')],
      { RENDER_API_KEY: RENDER_KEY },
    );
    expect(run.status).toBe(64);
    expect(run.output).toContain(`is not service ${serviceId}'s`);
    expect(run.output).toContain(new URL(serviceUrl).host);
    expect(existsSync(stateFile)).toBe(false);
    expect(existsSync(join(dir, 'mismatch'))).toBe(false);
  }, 180_000);

  it('--backfill needs the admin token from the environment (exit 64), never from the command line', async ({ expect }) => {
    const [run, sometimes] = await Promise.all([
      canary(['--base-url', serviceUrl, '--stack', 'staging', '--dry-run', '--backfill', 'start'], { CANARY_ADMIN_TOKEN: '' }),
      canary(['--base-url', serviceUrl, '--stack', 'staging', '--dry-run', '--backfill', 'sometimes']),
    ]);
    expect(run.status).toBe(64);
    expect(run.output).toContain('--backfill needs CANARY_ADMIN_TOKEN');
    expect(sometimes.status).toBe(64);
  }, 180_000);

  it('the learning probe key is never the admin token (exit 64, and the key is not echoed)', async ({ expect }) => {
    const shared = 'shared-admin-and-probe-secret-0123456789';
    const run = await canary(['--base-url', serviceUrl, '--stack', 'staging', '--dry-run', '--backfill', 'start'], { CANARY_ADMIN_TOKEN: shared, CANARY_PROBE_KEY: shared });
    expect(run.status).toBe(64);
    expect(run.output).toContain('CANARY_PROBE_KEY must be a dedicated probe caller key, never the admin token');
    expect(run.output).not.toContain(shared);
  }, 180_000);

  it('a service id the Render API does not know aborts (exit 3) with nothing changed', async ({ expect }) => {
    const run = await canary(
      ['--base-url', serviceUrl, '--stack', 'production', '--render-service-id', 'srv-doesnotexist', '--render-api-url', render.url,
        '--state-file', join(dir, 'state-unknown.json'), '--report-dir', join(dir, 'unknown')],
      { RENDER_API_KEY: RENDER_KEY },
    );
    expect(run.status).toBe(3);
    expect(run.output).toMatch(/cannot read service srv-doesnotexist[\s\S]*nothing was changed/);
  }, 180_000);
});
