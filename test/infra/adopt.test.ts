/**
 * `npm run infra:adopt`: finds a stack's resources by name through the Render API (the emulator here) and prints the
 * lines that adopt them; a resource that is not what the stack describes is listed with its fixes (exit 1).
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RenderClient } from '../../render/client';
import { type RenderEmulator, startRenderEmulator } from '../../render/emulator';
import { adopt } from '../../infra/adopt';

const run = promisify(execFile);
const REPO = resolve(__dirname, '..', '..');
const API_KEY = 'rnd_adopt_cli_key_1a2b3c';
let emulator: RenderEmulator;
let client: RenderClient;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'infra-adopt-'));
  copyFileSync(join(REPO, 'Pulumi.staging.yaml'), join(dir, 'Pulumi.staging.yaml'));
  emulator = await startRenderEmulator({ port: 0, apiKey: API_KEY, deployStepMs: 5 });
  client = new RenderClient({ apiKey: API_KEY, baseUrl: emulator.url });
});
afterAll(async () => {
  await emulator?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('infra:adopt', () => {
  it('prints the adoption line for what matches, the fixes for what does not, and says what it did not find', async () => {
    const [owner] = await client.listOwners();
    const web = await client.createService({
      type: 'web_service', name: 'memory-rollout-staging', ownerId: owner!.id, repo: 'https://github.com/your-org/context7-memory-rollout',
      branch: 'develop', autoDeploy: 'yes', serviceDetails: { runtime: 'node', plan: 'starter', region: 'oregon', numInstances: 1 },
    } as never);
    const kv = await client.createKeyValue({ name: 'memory-rollout-staging-kv', ownerId: owner!.id, plan: 'starter', region: 'oregon', maxmemoryPolicy: 'noeviction' } as never);
    const env = { RENDER_API_KEY: API_KEY, RENDER_API_URL: emulator.url };

    const result = await adopt('staging', dir, env);
    expect(result.code).toBe(1);
    const id = web.service!.id;
    expect(result.lines).toEqual([
      `# infra:adopt for stack "staging" (workspace ${owner!.id})`,
      `# web service "memory-rollout-staging" (${id}) is not what the stack describes; make the stack match first:`,
      '#   branch: Render has "develop", the stack says "main": pulumi config set memory-rollout:branch develop -s staging',
      `pulumi config set memory-rollout:existingServiceId ${id} -s staging`,
      '#   adopting changes nothing; the first `pulumi up` after it changes: ENABLE_CONTEXT7_MEMORY (unset) -> true; ' +
        'CONTEXT7_EXPOSURE_PERCENT (unset) -> 100; the env vars the stack declares are set (the others stay), then one deploy of the branch head',
      '# Postgres "memory-rollout-staging-db": none on Render: the stack will create it (or set memory-rollout:existingPostgresId to adopt one by id)',
      `pulumi config set memory-rollout:existingKeyValueId ${kv.id} -s staging`,
    ]);

    // As a command: the same lines on stdout, exit 1; without an API key, a usage error (64) that says what to export.
    const cli = (extra: Record<string, string>) =>
      run(process.execPath, ['--import', 'tsx', join(REPO, 'infra/adopt.ts'), '--stack', 'staging', '--dir', dir], {
        cwd: REPO, timeout: 60_000, env: { PATH: process.env.PATH ?? '', ...extra },
      }).then(() => ({ code: 0, stdout: '', stderr: '' }), (err: { code: number; stdout: string; stderr: string }) => err);
    const mismatch = await cli(env);
    expect(mismatch.code).toBe(1);
    expect(mismatch.stdout).toContain(`pulumi config set memory-rollout:existingServiceId ${id} -s staging`);
    const noKey = await cli({});
    expect(noKey.code).toBe(64);
    expect(noKey.stderr).toMatch(/No Render API key: export RENDER_API_KEY \(infra:adopt reads the environment only\)/);
  }, 90_000);
});
