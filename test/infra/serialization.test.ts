/**
 * The known trap: `pulumi up` ships each dynamic provider as text (runtime.serializeFunction) and the
 * dynamic provider host rebuilds it with requireFromString. vitest rewrites imports, so this cannot be
 * shown in-process. Two plain Node child processes do it for real: one loads the TypeScript as
 * Pulumi's language host does and serializes the providers; the other, with no TypeScript loader at
 * all, loads that text as the dynamic provider host does and drives create/update/delete against the
 * Render emulator.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RenderEmulator, startRenderEmulator } from '../../render/emulator';

const run = promisify(execFile);
const REPO = resolve(__dirname, '..', '..');
const SCRIPTS = join(__dirname, 'serialization');
const API_KEY = 'rnd_roundtrip_key_5a4b3c';
const CHILD_TIMEOUT_MS = 120_000;
// A case that waits on one child outlasts the child's own deadline, so a slow child fails with its own error (killed,
// with its output) rather than vitest's bare 30 s timeout; a loaded machine takes longer than 30 s to type-check.
const ONE_CHILD_TEST_MS = CHILD_TIMEOUT_MS + 10_000;

interface Serialized {
  text: string;
  exportName: string;
  containsSecrets: boolean;
}

let emulator: RenderEmulator;
let workDir: string;
let serialized: Record<string, Serialized>;

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'infra-serialize-'));
  emulator = await startRenderEmulator({ port: 0, apiKey: API_KEY, deployStepMs: 20 });
  const outFile = join(workDir, 'providers.json');
  // execFile's timeout kills the child if it hangs; a clean env keeps credentials out of the serializer.
  await run(process.execPath, [join(SCRIPTS, 'serialize-providers.cjs'), REPO, outFile], {
    cwd: REPO,
    timeout: CHILD_TIMEOUT_MS,
    env: { PATH: process.env.PATH ?? '' },
  });
  serialized = JSON.parse(readFileSync(outFile, 'utf8')) as Record<string, Serialized>;
}, ONE_CHILD_TEST_MS);

/** Starts Pulumi's dynamic provider host (what `pulumi-resource-pulumi-nodejs` runs) and returns its address. */
function startProviderHost(): Promise<{ host: ChildProcess; address: string }> {
  const script = require.resolve('@pulumi/pulumi/cmd/dynamic-provider', { paths: [REPO] });
  // The engine starts it in the project directory; the argument is the engine address (unused here).
  const host = spawn(process.execPath, [script, '127.0.0.1:1'], { cwd: REPO, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  host.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolvePort, reject) => {
    let stdout = '';
    const onData = (chunk: Buffer) => {
      stdout += chunk.toString();
      const line = stdout.split('\n')[0];
      if (stdout.includes('\n') && line && /^\d+$/.test(line.trim())) {
        host.stdout!.off('data', onData);
        clearTimeout(timer);
        resolvePort({ host, address: `127.0.0.1:${line.trim()}` });
      }
    };
    host.stdout!.on('data', onData);
    host.once('exit', (code) => reject(new Error(`provider host exited (${code}): ${stderr}`)));
    // Bounded like every child here: a host that never prints its port is killed, and the test says so.
    const timer = setTimeout(() => {
      host.kill('SIGKILL');
      reject(new Error(`provider host printed no port in ${CHILD_TIMEOUT_MS} ms: ${stderr}`));
    }, CHILD_TIMEOUT_MS);
    host.once('exit', () => clearTimeout(timer));
  });
}

let providerHost: ChildProcess | undefined;

afterAll(async () => {
  providerHost?.kill('SIGKILL');
  await emulator?.close();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe('the program entry, as Pulumi\'s language host runs it', () => {
  const runProgram = async (stack: string, config: Record<string, string>, secretKeys: string[]) => {
    const { stdout } = await run(
      process.execPath,
      [join(SCRIPTS, 'run-program.cjs'), REPO, stack, JSON.stringify(config), JSON.stringify(secretKeys)],
      { cwd: REPO, timeout: CHILD_TIMEOUT_MS, env: { PATH: process.env.PATH ?? '' } },
    );
    return JSON.parse(stdout.trim().split('\n').pop()!) as {
      error?: string;
      resources?: Array<{ type: string; name: string; provider: string | null }>;
      outputs?: Record<string, unknown>;
    };
  };
  const secrets = { 'memory-rollout:context7ApiKey': 'c7-key', 'memory-rollout:adminToken': 'admin-token-serialized' };
  const secretKeys = Object.keys(secrets);

  it('type-checks, runs infra/index.ts and ships a serialized shim with every dynamic resource', async () => {
    const config = { 'memory-rollout:repo': 'https://github.com/acme/memory', 'memory-rollout:enableContext7Memory': 'true', ...secrets };
    const result = await runProgram('staging', config, secretKeys);
    expect(result.error).toBeUndefined();
    expect(result.resources!.map((r) => r.type).sort()).toEqual([
      'memory-rollout:index:MemoryServiceStack',
      'pulumi-nodejs:dynamic/memory:CallerKeys',
      'pulumi-nodejs:dynamic/render:KeyValue',
      'pulumi-nodejs:dynamic/render:Postgres',
      'pulumi-nodejs:dynamic/render:WebService',
    ]);
    // The caller keys' generator (issue 13) ships whole: it has no imports, only node:crypto required at call time.
    const callerKeys = result.resources!.find((r) => r.type.endsWith(':CallerKeys'))!;
    expect(callerKeys.provider).toMatch(/^exports\.handler = /);
    expect(callerKeys.provider).toContain("require('node:crypto')");
    expect(callerKeys.provider).not.toContain('c7-key');
    for (const resource of result.resources!.filter((r) => r.type.startsWith('pulumi-nodejs:dynamic/render'))) {
      expect(resource.provider, resource.name).toMatch(/^exports\.handler = [\s\S]*"infra\/providers\/index\.ts"/);
      expect(resource.provider).not.toContain('c7-key');
    }
    expect(result.outputs).toEqual({
      serviceUrl: 'https://memory-rollout-staging.onrender.com',
      serviceId: 'srv-memory-rollout-staging-web',
      dashboardUrl: 'https://dashboard.render.com/web/srv-memory-rollout-staging-web',
      environment: 'staging',
      flagEnabled: true,
      deployedCommit: 'main (head)',
    });
  }, ONE_CHILD_TEST_MS);

  it('refuses with the guard message and declares nothing', async () => {
    const config = { 'memory-rollout:repo': 'https://github.com/acme/memory', 'memory-rollout:instances': '1', ...secrets };
    const result = await runProgram('production', config, secretKeys);
    expect(result.error).toMatch(/production needs at least 2 instances/);
    expect(result.resources).toBeUndefined();
  }, ONE_CHILD_TEST_MS);
});

describe('provider serialization, as pulumi up does it', () => {
  it('serializes every shipped provider to a small shim without secrets, loading its implementation at run time', () => {
    for (const name of ['webService', 'postgres', 'keyValue']) {
      const entry = serialized[name];
      expect(entry, name).toBeDefined();
      expect(entry!.exportName).toBe('handler');
      expect(entry!.containsSecrets).toBe(false);
      expect(entry!.text).toMatch(/^exports\.handler = /);
      expect(entry!.text).toContain('"infra/providers/index.ts"');
      expect(entry!.text).toContain("require('tsx/cjs/api')");
      // Nothing that Pulumi's serializer would mangle (classes, Error subclasses) is captured by value.
      expect(entry!.text).not.toMatch(/RenderClient|RenderApiError|__super/);
      expect(entry!.text).not.toContain('__vite_ssr_import');
      expect(entry!.text.length).toBeLessThan(20_000);
    }
  });

  it('loads in a plain Node host and drives create, diff, update, read and delete against the emulator', async () => {
    const { stdout } = await run(process.execPath, [join(SCRIPTS, 'host-drive.cjs'), REPO, join(workDir, 'providers.json')], {
      cwd: REPO,
      timeout: CHILD_TIMEOUT_MS,
      env: { PATH: process.env.PATH ?? '', RENDER_EMULATOR_URL: emulator.url, RENDER_TEST_KEY: API_KEY },
    });
    const result = JSON.parse(stdout.trim().split('\n').pop()!) as {
      methods: Record<string, string[]>;
      steps: Record<string, Record<string, unknown> & { id?: string }>;
      tsLoaderBeforeLoad: boolean;
    };

    for (const name of ['webService', 'postgres', 'keyValue', 'webServiceFast', 'postgresFast', 'keyValueFast']) {
      expect(result.methods[name], name).toEqual(['check', 'diff', 'create', 'read', 'update', 'delete']);
    }
    expect(result.tsLoaderBeforeLoad).toBe(false);

    const { steps } = result;
    expect(steps.keyValueCreate).toMatchObject({ status: 'available', hasUrl: true });
    expect(steps.postgresCreate).toMatchObject({ status: 'available', hasUrl: true });
    expect(steps.webCreate).toMatchObject({ lastDeployStatus: 'live', url: 'https://memory-rollout-roundtrip.onrender.com' });
    expect(steps.webDiffSame).toMatchObject({ changes: false, replaces: [] });
    expect(steps.webDiffFlagOff).toMatchObject({ changes: true, replaces: [] });
    expect(steps.webDiffRegion).toEqual({ isError: true, message: expect.stringMatching(/^Refusing to replace the web service memory-rollout-roundtrip/) });
    expect(steps.webDiffRegionAllowed).toMatchObject({ changes: true, replaces: ['region'] });
    expect(steps.webUpdate).toMatchObject({ lastDeployStatus: 'live' });
    expect(steps.webUpdate!.lastDeployId).not.toBe(steps.webCreate!.lastDeployId);
    expect(steps.webRead).toEqual({
      id: steps.webCreate!.id,
      envKeys: ['DATABASE_URL', 'ENABLE_CONTEXT7_MEMORY', 'NODE_ENV', 'PORT', 'REDIS_URL'],
    });
    expect(steps.webDiffAfterRead).toMatchObject({ changes: false });
    expect(steps.deleted).toBe(true);
    expect(steps.badCreate).toEqual({ isError: true, message: expect.stringMatching(/createService failed \(HTTP 400\)/) });
    expect(steps.outsideProject).toMatch(
      /^Could not find the Render provider implementation \(infra\/providers\/index\.ts\) from \/\S*\. Run pulumi from the project directory \(where Pulumi\.yaml is\)\.$/,
    );
    expect(steps.updateDeleted).toEqual({ isError: true, message: expect.stringMatching(/getService failed \(HTTP 404\)/) });

    // The emulator saw it all happen, and nothing is left behind.
    const state = emulator.state();
    expect(state.services).toEqual([]);
    expect(state.postgres).toEqual([]);
    expect(state.keyValue).toEqual([]);
  }, ONE_CHILD_TEST_MS);
});

describe('inside Pulumi\'s own dynamic provider host, driven over gRPC like the engine does', () => {
  it('configures with secret config, then check, create, diff (a replace refused), update, a failed build, read (refresh, drift, .get, import) and delete', async () => {
    const started = await startProviderHost();
    providerHost = started.host;
    const { stdout } = await run(
      process.execPath,
      [join(SCRIPTS, 'grpc-drive.cjs'), REPO, started.address, join(workDir, 'providers.json'), emulator.origin, API_KEY],
      { cwd: REPO, timeout: CHILD_TIMEOUT_MS, env: { PATH: process.env.PATH ?? '' } },
    );
    const steps = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, Record<string, unknown> | string>;
    expect(steps.kvCreate).toMatchObject({ status: 'available', providerKept: true });
    expect(steps.checkBad).toMatchObject({ failures: [{ property: 'instances', reason: 'must be a whole number of at least 1' }] });
    expect(steps.webCreate).toMatchObject({ lastDeployStatus: 'live', providerKept: true });
    expect(steps.diffSame).toEqual({ changes: 'none', replaces: [], deleteBeforeReplace: false });
    expect(steps.diffFlagOff).toEqual({ changes: 'some', replaces: [], deleteBeforeReplace: false });
    // A replace fails the preview: the engine gets the diff's error, with why and how to proceed.
    expect(steps.diffRegion).toEqual({ refused: expect.stringMatching(/Refusing to replace the web service memory-rollout-grpc .*region oregon -> ohio.*allowServiceReplacement true/) });
    expect(steps.diffRegionAllowed).toEqual({ changes: 'some', replaces: ['region'], deleteBeforeReplace: true });
    expect(steps.update).toEqual({ lastDeployStatus: 'live', newDeploy: true });
    // The engine records a service whose deploy failed, with a readable reason.
    expect(steps.failedBuild).toMatchObject({
      message: expect.stringMatching(/deploy did not go live: .*build_failed/),
      initFailedId: (steps.webCreate as { id: string }).id,
      recordedStatus: 'build_failed',
      providerKept: true,
    });
    const webId = (steps.webCreate as { id: string }).id;
    expect(steps.read).toMatchObject({ id: webId, liveCommit: expect.stringMatching(/^[0-9a-f]{40}$/) });
    // Refresh works: a deploy made outside Pulumi shows up as the live commit, and the provider stays in the state.
    expect(steps.refreshAfterOutsideDeploy).toEqual({ liveCommit: '2222222222222222222222222222222222222222', providerKept: true });
    // `.get` works (Read with the program's inputs); an import by id alone fails: the host has no serialized provider to
    // load (requireFromString(undefined)), and says only this.
    expect(steps.getWithInputs).toEqual({ id: webId, name: 'memory-rollout-grpc', liveCommit: '2222222222222222222222222222222222222222' });
    expect(steps.importById).toEqual({ failed: 'code must be a string, not undefined' });
    expect(steps.updateGone).toMatch(/getService failed \(HTTP 404\)/);
    expect(JSON.stringify(steps)).not.toContain(API_KEY);
    expect(emulator.state().services.some((s) => s.name === 'memory-rollout-grpc')).toBe(false);
  }, 2 * CHILD_TIMEOUT_MS + 10_000); // the provider host's start and the driver, each with its own deadline
});
