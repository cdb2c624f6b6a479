import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLAG_KEY, PINNED_COMMIT_KEY, readStackConfig } from '../../canary/actions/stack-file';
import { StateFile } from '../../canary/actions/state-file';
import { silentNotifier } from '../../canary/actions/webhook';
import { runCanary } from '../../canary/controller';
import { loadPolicy } from '../../canary/policy';
import { silentProgress } from '../../canary/progress';
import { httpProbe } from '../../canary/sources/http';
import { createHttpMetricSource } from '../../canary/sources/metrics-poller';
import { RenderClient } from '../../render/client';
import { RenderSpecValidator, startRenderEmulator, type RenderEmulator } from '../../render/emulator';
import { E2E_POLICY, REPO } from './support/e2e';
import { renderPlatformOf } from '../../render/platform';

const API_KEY = 'rnd_code_rollback_e2e_KEY';
/**
 * A small fixture repository with two real commits: `release` points at the first (the stand-in service as it is); the
 * second changes the code so that it is broken whatever the flag. The local platform runs the code of the commit each
 * deploy asks for, so the code rollback really brings the first commit's code back.
 */
const commits = { good: '', broken: '' };
const WAIT = { timeoutMs: 20_000, pollIntervalMs: 100 };

let emulator: RenderEmulator;
let client: RenderClient;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'canary-code-rollback-e2e-'));
  for (const stack of ['staging', 'production']) copyFileSync(join(REPO, `Pulumi.${stack}.yaml`), join(dir, `Pulumi.${stack}.yaml`));
  const repo = join(dir, 'repo');
  mkdirSync(repo);
  const git = (...args: string[]) =>
    execFileSync('git', ['-C', repo, '-c', 'user.email=fixture@example.com', '-c', 'user.name=fixture', ...args], { encoding: 'utf8' }).trim();
  execFileSync('git', ['init', '-q', '-b', 'main', repo]);
  const source = readFileSync(join(__dirname, 'fixtures', 'commit-dependent-service.js'), 'utf8');
  writeFileSync(join(repo, 'commit-dependent-service.js'), source);
  git('add', '.');
  git('commit', '-qm', 'the service as it was');
  commits.good = git('rev-parse', 'HEAD');
  git('branch', 'release');
  const brokenLine = /^const broken = .*$/m;
  if (!brokenLine.test(source)) throw new Error('the fixture no longer has its `const broken = ...` line');
  writeFileSync(join(repo, 'commit-dependent-service.js'), source.replace(brokenLine, 'const broken = true; // this commit broke the memory store'));
  git('commit', '-qam', 'a change that breaks the memory store');
  commits.broken = git('rev-parse', 'HEAD');
  emulator = await startRenderEmulator({
    apiKey: API_KEY,
    deployStepMs: 5,
    localPlatform: { source: { gitRepo: repo, cacheDir: join(dir, 'commits') }, cwd: repo, readyTimeoutMs: 10_000, shutdownGraceMs: 1_000, logDir: dir },
  });
  client = new RenderClient({ apiKey: API_KEY, baseUrl: emulator.url });
});

afterAll(async () => {
  await emulator?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('canary with the Render emulator: a fault in the code', () => {
  it('rolls the flag back, sees the fault persist, rolls the code back through Render, and verifies', async () => {
    const ownerId = (await client.listOwners())[0]!.id;
    const created = await client.createService({
      type: 'web_service',
      name: 'commit-dependent',
      ownerId,
      repo: 'https://github.com/acme/fixture',
      branch: 'release',
      serviceDetails: { runtime: 'node', healthCheckPath: '/healthz', envSpecificDetails: { buildCommand: 'true', startCommand: 'node commit-dependent-service.js' } },
      envVars: [
        { key: 'ENABLE_CONTEXT7_MEMORY', value: 'false' },
        { key: 'FIXTURE_CONTEXT7_ERROR_SHARE', value: '0.5' },
      ],
    });
    const serviceId = created.service!.id;
    const baseUrl = (created.service!.serviceDetails as { url: string }).url;
    const before = await client.waitForDeploy(serviceId, created.deployId!, WAIT);
    const previousCommit = before.commit!.id!;
    expect(previousCommit).toBe(commits.good);
    const NEW = commits.broken;
    // The rollout: the new commit goes live together with the flag.
    await client.setEnvVar(serviceId, 'ENABLE_CONTEXT7_MEMORY', 'true');
    const rolledOut = await client.triggerDeploy(serviceId, { commitId: NEW });
    await client.waitForDeploy(serviceId, rolledOut.id, WAIT);

    const policy = loadPolicy(E2E_POLICY);
    const result = await runCanary({
      policy,
      stack: 'production',
      baseUrl,
      serviceId,
      source: createHttpMetricSource({ baseUrl, policy, expectedInstances: 1 }),
      stateFile: new StateFile(join(dir, 'state.json')),
      stackDir: dir,
      reportDir: join(dir, 'report'),
      timeScale: 60,
      dryRun: false,
      render: client,
      measuredOn: renderPlatformOf(emulator.url),
      notifier: silentNotifier,
      probe: httpProbe,
      progress: silentProgress,
      operator: 'code-rollback-e2e',
      now: Date.now,
      sleep: (ms) => new Promise((done) => setTimeout(done, ms)),
    });
    expect(result.state.decision?.kind).toBe('rollback');
    expect(result, JSON.stringify(result.state.actions, null, 1)).toMatchObject({ outcome: 'rolled_back', exitCode: 1 });

    // Render: the newest deploy is the rollback, live, at the previous commit; the flag stays off.
    const [newest, flagOff] = await client.listDeploys(serviceId);
    expect(newest).toMatchObject({ trigger: 'rollback', status: 'live', commit: { id: previousCommit } });
    expect(flagOff).toMatchObject({ commit: { id: NEW }, status: 'deactivated' });
    expect(new RenderSpecValidator().validateSchema('deploy', newest).ok).toBe(true);
    expect((await client.listEnvVars(serviceId)).find((v) => v.key === 'ENABLE_CONTEXT7_MEMORY')?.value).toBe('false');
    // The restarted process runs the previous commit's code, flag off: the broken commit's 500s are gone.
    const metrics = (await (await fetch(`${baseUrl}/api/metrics/memory`)).json()) as { deployId: string };
    expect(metrics.deployId).toBe(previousCommit);
    expect(await (await fetch(`${baseUrl}/api/config`)).json()).toMatchObject({ enableContext7Memory: false });
    const read = await fetch(`${baseUrl}/api/memory/snippets`, { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json' } });
    await read.arrayBuffer();
    expect(read.status).not.toBe(500);

    const production = join(dir, 'Pulumi.production.yaml');
    expect(readStackConfig(production, PINNED_COMMIT_KEY)).toBe(previousCommit);
    expect(readStackConfig(production, FLAG_KEY)).toBe(false);
    const report = JSON.parse(readFileSync(join(dir, 'report', 'report.json'), 'utf8')) as { actions: Array<{ action: string; ok: boolean }> };
    expect(report.actions.filter((a) => a.action.endsWith('rollback')).map((a) => [a.action, a.ok])).toEqual([
      ['flag-rollback', false],
      ['code-rollback', true],
    ]);
  }, 60_000);
});
