/**
 * The local platform runs the commit a deploy asks for: a small fixture repository with two real commits whose
 * code differs (neither reads RENDER_GIT_COMMIT). A deploy of the new commit serves the new code; Render's rollback
 * to the earlier deploy serves the earlier code again, from that commit's cached build; a commit the repository does
 * not have fails the build; a deploy without a commit runs the branch head; node_modules is reused when the lockfile
 * matches.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RenderClient } from '../../render/client';
import { type RenderEmulator, startRenderEmulator } from '../../render/emulator';
import { createWebServiceProvider, type WebServiceOutputs } from '../../infra/providers/web-service';

const API_KEY = 'rnd_git_platform_key_4d5e6f';
const WAIT = { timeoutMs: 30_000, pollIntervalMs: 20 };
let dir: string;
let repo: string;
let donor: string;
let emulator: RenderEmulator;
let client: RenderClient;
const commits: Record<'good' | 'broken', string> = { good: '', broken: '' };

/** The fixture service at one commit: its code says which version it is and whether its work succeeds. */
function serverSource(version: string, workStatus: number): string {
  return [
    "const http = require('node:http');",
    'http.createServer((req, res) => {',
    `  if (req.url === '/healthz') { res.end('ok'); return; }`,
    `  if (req.url === '/version') { res.end(${JSON.stringify(version)}); return; }`,
    `  if (req.url === '/work') { res.statusCode = ${workStatus}; res.end(${JSON.stringify(version)}); return; }`,
    '  res.statusCode = 404; res.end();',
    "}).listen(Number(process.env.PORT), '127.0.0.1');",
    '',
  ].join('\n');
}

function git(...args: string[]): string {
  return execFileSync('git', ['-C', repo, '-c', 'user.email=fixture@example.com', '-c', 'user.name=fixture', ...args], { encoding: 'utf8' }).trim();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'render-git-platform-'));
  repo = join(dir, 'repo');
  donor = join(dir, 'donor');
  mkdirSync(repo);
  mkdirSync(join(donor, 'node_modules'), { recursive: true });
  const lock = JSON.stringify({ name: 'fixture', lockfileVersion: 3, packages: {} });
  writeFileSync(join(donor, 'package-lock.json'), lock);
  writeFileSync(join(donor, 'node_modules', 'donor-marker'), 'installed once');
  execFileSync('git', ['init', '-q', '-b', 'main', repo]);
  writeFileSync(join(repo, 'package-lock.json'), lock);
  writeFileSync(join(repo, 'server.js'), serverSource('good', 200));
  git('add', '.');
  git('commit', '-qm', 'good');
  commits.good = git('rev-parse', 'HEAD');
  git('branch', 'release');
  writeFileSync(join(repo, 'server.js'), serverSource('broken', 500));
  git('commit', '-qam', 'broken');
  commits.broken = git('rev-parse', 'HEAD');
  emulator = await startRenderEmulator({
    apiKey: API_KEY,
    deployStepMs: 5,
    localPlatform: { source: { gitRepo: repo, cacheDir: join(dir, 'commits') }, cwd: donor, readyTimeoutMs: 15_000, shutdownGraceMs: 1_000, logDir: join(dir, 'logs') },
  });
  client = new RenderClient({ apiKey: API_KEY, baseUrl: emulator.url });
});

afterAll(async () => {
  await emulator?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: await res.text() };
}

describe('the local platform with a git source', () => {
  it('runs the commit each deploy asks for, rolls code back to an earlier commit, and fails a commit it does not have', async () => {
    expect(emulator.platformSource).toMatch(new RegExp(`^the commit each deploy asks for, from the git repository ${repo} `));
    const ownerId = (await client.listOwners())[0]!.id;
    // The service follows `release`, whose head is the good commit: its first deploy runs that commit.
    const created = await client.createService({
      type: 'web_service', name: 'git-fixture', ownerId, repo: 'https://github.com/acme/fixture', branch: 'release',
      serviceDetails: {
        runtime: 'node', healthCheckPath: '/healthz',
        envSpecificDetails: { buildCommand: 'test -f node_modules/donor-marker && echo built >> build-count', startCommand: 'node server.js' },
      },
    } as never);
    const serviceId = created.service!.id;
    const url = (created.service!.serviceDetails as { url: string }).url;
    const first = await client.waitForDeploy(serviceId, created.deployId!, WAIT);
    expect(first.commit!.id).toBe(commits.good);
    expect(await get(`${url}/work`)).toEqual({ status: 200, body: 'good' });

    // The rollout of the new commit: its code, not a label, is what serves.
    const rollout = await client.triggerDeploy(serviceId, { commitId: commits.broken });
    await client.waitForDeploy(serviceId, rollout.id, WAIT);
    expect(await get(`${url}/work`)).toEqual({ status: 500, body: 'broken' });

    // Render's rollback to the first deploy: the good code serves again, from its build (built once per commit).
    const rollback = await client.rollbackDeploy(serviceId, first.id);
    expect(await client.waitForDeploy(serviceId, rollback.id, WAIT)).toMatchObject({ status: 'live', commit: { id: commits.good } });
    expect(await get(`${url}/work`)).toEqual({ status: 200, body: 'good' });
    const goodDir = join(dir, 'commits', commits.good);
    expect(readFileSync(join(goodDir, 'build-count'), 'utf8')).toBe('built\n');
    expect(lstatSync(join(goodDir, 'node_modules')).isSymbolicLink()).toBe(true);
    const log = readFileSync(emulator.state().services[0]!.instance!.logFile, 'utf8');
    expect(log).toContain(`build of commit ${commits.good} reused (built once, in ${goodDir})`);
    expect(log).toContain(`commit ${commits.good}: package-lock.json matches ${donor}'s: its node_modules is reused`);
    // The caller's working tree was never built in.
    expect(existsSync(join(donor, 'build-count'))).toBe(false);

    // What a Pulumi refresh sees (the WebService provider's read): the code that runs, not what the stack last deployed.
    const provider = createWebServiceProvider({ pollIntervalMs: 20, progress: () => undefined });
    const values: Record<string, string> = { 'memory-rollout:renderApiKey': API_KEY, 'memory-rollout:renderApiUrl': emulator.url };
    await provider.configure!({ config: { get: (k: string) => values[k], require: (k: string) => values[k] ?? '' } } as never);
    const recorded = { deployCommit: commits.broken, liveCommit: commits.broken, waitForLive: true, deployTimeoutMinutes: 1 } as WebServiceOutputs;
    expect((await provider.read!(serviceId, recorded)).props).toMatchObject({ liveCommit: commits.good, deployCommit: commits.good });

    // A commit the repository does not have fails the build, as on Render, and the good code keeps serving.
    const missing = await client.triggerDeploy(serviceId, { commitId: 'f'.repeat(40) });
    await expect(client.waitForDeploy(serviceId, missing.id, WAIT)).rejects.toThrow(/build_failed/);
    expect(readFileSync(emulator.state().services[0]!.instance!.logFile, 'utf8')).toContain(
      `build failed: commit ${'f'.repeat(40)} is not in the repository ${repo}`,
    );
    expect(await get(`${url}/work`)).toEqual({ status: 200, body: 'good' });
  }, 90_000);
});

describe('deploy phase times', () => {
  it('each phase takes its own configured time: with a long build configured, a deploy is still building when the same deploy on default times is live', async () => {
    const slow = await startRenderEmulator({ apiKey: API_KEY, deployStepMs: 5, deployPhasesMs: { build: 600_000 } });
    const fast = await startRenderEmulator({ apiKey: API_KEY, deployStepMs: 5 });
    try {
      const start = async (emu: RenderEmulator) => {
        const c = new RenderClient({ apiKey: API_KEY, baseUrl: emu.url });
        const ownerId = (await c.listOwners())[0]!.id;
        const created = await c.createService({ type: 'web_service', name: 'phases', ownerId, serviceDetails: { runtime: 'node' } } as never);
        return { c, serviceId: created.service!.id, deployId: created.deployId! };
      };
      const [held, control] = await Promise.all([start(slow), start(fast)]);
      expect((await control.c.waitForDeploy(control.serviceId, control.deployId, WAIT)).status).toBe('live');
      const deadline = Date.now() + 20_000;
      while ((await held.c.getDeploy(held.serviceId, held.deployId)).status !== 'build_in_progress') {
        if (Date.now() > deadline) throw new Error('the held deploy never reached its build');
        await new Promise((r) => setTimeout(r, 10));
      }
    } finally {
      await Promise.all([slow.close(), fast.close()]);
    }
  });
});
