/**
 * End-to-end rig on loopback: the Context7 emulator, the Render emulator in local-platform mode
 * running the real memory service, a traffic loop, and the canary CLI as a child process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RenderClient } from '../../../render/client';
import { startRenderEmulator, type RenderEmulator } from '../../../render/emulator';
import { startContext7Emulator } from '../../../service/context7/emulator';
import { generateScopeIdSync } from '../../../service/domain/scope-id';
import { memoryServiceCreateBody } from '../../../infra/service-runtime';
import { STEPPED_TRAFFIC_LOCATIONS, chooseSteppedClock, startSteppedTraffic, type SteppedClock } from './stepped-traffic';
import { compiledArgs } from '../../../canary/compiled';

export const REPO = join(__dirname, '../../..');
export const E2E_POLICY = join(__dirname, '../fixtures/e2e-policy.yaml');
const RENDER_KEY = 'rnd_canary_e2e_KEY_never_logged';
const CONTEXT7_KEY = 'c7_canary_e2e_KEY_never_logged';
/** The service's caller keys (issue 13): one for the traffic, one the canary reads with (CANARY_MEMORY_API_KEY). */
const TRAFFIC_KEY = 'traffic_canary_e2e_KEY_never_logged';
const CANARY_MEMORY_KEY = 'canary_memory_e2e_KEY_never_logged';
/** The stepped tests' traffic (the demo's, support/stepped-traffic.ts) goes to the reserved load-test scopes. */
const LOAD_TRAFFIC_KEY = 'load_traffic_e2e_KEY_never_logged';

type Context7Emulator = Awaited<ReturnType<typeof startContext7Emulator>>;

export interface E2eRig {
  dir: string;
  context7: Context7Emulator;
  render: RenderEmulator;
  client: RenderClient;
  serviceId: string;
  serviceUrl: string;
  renderApiKey: string;
  close(): Promise<void>;
}

/** The service's ADMIN_TOKEN in the rig (the stepped canary sets exposure with it, as CANARY_ADMIN_TOKEN). */
export const E2E_ADMIN_TOKEN = 'admin_canary_e2e_TOKEN_never_logged';

export async function startRig(extraEnv: { key: string; value: string }[] = []): Promise<E2eRig> {
  const dir = mkdtempSync(join(tmpdir(), 'canary-e2e-'));
  const context7 = await startContext7Emulator({ apiKey: CONTEXT7_KEY, seed: 11 });
  let render: RenderEmulator | undefined;
  try {
    render = await startRenderEmulator({
      apiKey: RENDER_KEY,
      deployStepMs: 20,
      localPlatform: { source: 'working-tree', cwd: REPO, readyTimeoutMs: 40_000, shutdownGraceMs: 3_000, logDir: dir },
    });
    const client = new RenderClient({ apiKey: RENDER_KEY, baseUrl: render.url });
    const ownerId = (await client.listOwners())[0]!.id;
    const created = await client.createService(memoryServiceCreateBody({
      name: 'memory-canary-e2e',
      ownerId,
      envVars: [
        { key: 'ENABLE_CONTEXT7_MEMORY', value: 'true' },
        { key: 'CONTEXT7_API_KEY', value: CONTEXT7_KEY },
        { key: 'CONTEXT7_BASE_URL', value: context7.url },
        { key: 'CONTEXT7_TIMEOUT_MS', value: '2000' },
        { key: 'MEMORY_CACHE_TTL_MS', value: '400' },
        { key: 'DATA_DIR', value: join(dir, 'data') },
        { key: 'HOST', value: '127.0.0.1' },
        { key: 'LOG_LEVEL', value: 'warn' },
        { key: 'OUTBOX_DRAIN_INTERVAL_MS', value: '60000' },
        { key: 'MEMORY_API_KEYS', value: `traffic:${TRAFFIC_KEY};canary:${CANARY_MEMORY_KEY};load-traffic:${LOAD_TRAFFIC_KEY}:${STEPPED_TRAFFIC_LOCATIONS}` },
        ...extraEnv,
      ],
    }));
    const serviceId = created.service!.id;
    const serviceUrl = (created.service!.serviceDetails as { url: string }).url;
    // 200 ms polls: a slow service start must not use up the emulator's 1000-calls-a-minute window.
    await client.waitForDeploy(serviceId, created.deployId!, { timeoutMs: 45_000, pollIntervalMs: 200 });
    for (const stack of ['staging', 'production']) copyFileSync(join(REPO, `Pulumi.${stack}.yaml`), join(dir, `Pulumi.${stack}.yaml`));
    const rig: E2eRig = {
      dir,
      context7,
      render,
      client,
      serviceId,
      serviceUrl,
      renderApiKey: RENDER_KEY,
      async close() {
        await render?.close();
        await context7.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
    return rig;
  } catch (error) {
    await render?.close();
    await context7.close();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Snippet reads over a small pool of scopes (so the cache hits) and some learning writes. With `scopeCount` the
 * pool is larger and walked in turn by every worker, so each scope gets its share (the stepped canary's cohorts
 * need every exposed scope to see traffic; the default pool keeps the pseudo-random pick the other tests rely on).
 */
export function startTraffic(baseUrl: () => string, concurrency = 6, scopeCount?: number): { stop(): Promise<{ sent: number; failed: number }> } {
  let running = true;
  let sent = 0;
  let failed = 0;
  const scopes = Array.from({ length: scopeCount ?? 12 }, (_, i) => generateScopeIdSync({ locationId: 'e2e', agentId: `agent-${i}`, promptText: `prompt ${i}` }));
  let turn = 0;
  const worker = async (seed: number) => {
    let n = seed;
    while (running) {
      n = (n * 1103515245 + 12345) % 2147483648;
      const scopeId = scopes[scopeCount === undefined ? n % scopes.length : turn++ % scopes.length]!;
      const write = n % 10 === 0;
      try {
        const res = await fetch(`${baseUrl()}/api/memory/${write ? 'patterns' : 'snippets'}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${TRAFFIC_KEY}` },
          body: JSON.stringify(write ? { scopeId, patterns: [`learned pattern ${n % 50}`] } : { scopeId, query: 'greeting', limit: 5 }),
          signal: AbortSignal.timeout(3000),
        });
        await res.arrayBuffer();
        sent++;
        if (res.status >= 400) failed++;
      } catch {
        failed++;
      }
      await new Promise((r) => setTimeout(r, 15));
    }
  };
  const workers = Array.from({ length: concurrency }, (_, i) => worker(i * 7919 + 1));
  return {
    async stop() {
      running = false;
      await Promise.all(workers);
      return { sent, failed };
    },
  };
}

export interface CanaryProcess {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number>;
}

/** Runs `canary run` (or another command) as `npm run canary` does (compiled: canary/compiled.ts), with RENDER_API_KEY only in its environment. */
export function runCanaryCli(args: string[], renderApiKey: string, command = 'run', env: Record<string, string> = {}): CanaryProcess {
  let output = '';
  const child = spawn(process.execPath, [...compiledArgs('canary/main.ts'), command, ...args], {
    cwd: REPO,
    env: { ...process.env, RENDER_API_KEY: renderApiKey, CANARY_MEMORY_API_KEY: CANARY_MEMORY_KEY, CANARY_OPERATOR: 'e2e-test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exit = new Promise<number>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : -1))));
  return { child, output: () => output, exit };
}

export async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** `canary run` against the rig: its service, its Render emulator, stack files and state in its directory. */
export function canaryRunArgs(rig: E2eRig, stack: 'staging' | 'production', reportDir: string, statePath = join(rig.dir, 'state.json')): string[] {
  return [
    '--base-url', rig.serviceUrl,
    '--stack', stack,
    '--policy', E2E_POLICY,
    '--render-api-url', rig.render.url,
    '--render-service-id', rig.serviceId,
    '--state-file', statePath,
    '--report-dir', reportDir,
    '--stack-dir', rig.dir,
    '--time-scale', '60',
  ];
}

/**
 * One rig per test file, with its lifecycle hooks registered: the rig starts before the file's tests; after each
 * test the load stops first and any canary still running is killed, also when an assertion failed midway.
 */
export function useE2eRig(extraEnv: { key: string; value: string }[] = []) {
  let rig: E2eRig | undefined;
  let traffic: { stop(): Promise<{ sent: number }> } | undefined;
  const canaries: CanaryProcess[] = [];
  const stopTraffic = async (): Promise<{ sent: number } | undefined> => {
    const stats = await traffic?.stop();
    traffic = undefined;
    return stats;
  };
  beforeAll(async () => {
    rig = await startRig(extraEnv);
  }, 60_000);
  afterEach(async () => {
    await stopTraffic();
    for (const canary of canaries.splice(0)) if (canary.child.exitCode === null) canary.child.kill('SIGKILL');
  });
  afterAll(async () => {
    await rig?.close();
  });
  const started = (): E2eRig => {
    if (!rig) throw new Error('the e2e rig is not started (use it inside a test)');
    return rig;
  };
  return {
    get rig(): E2eRig {
      return started();
    },
    startTraffic(scopeCount?: number): void {
      traffic = startTraffic(() => started().serviceUrl, 6, scopeCount);
    },
    /** The stepped canary's clock for this machine now (support/stepped-traffic.ts). */
    chooseSteppedClock(): Promise<SteppedClock> {
      return chooseSteppedClock(started().serviceUrl, LOAD_TRAFFIC_KEY);
    },
    /** A fixed number of requests a policy minute on that clock (support/stepped-traffic.ts), stopped after each test. */
    startSteppedTraffic(timeScale: number): void {
      traffic = startSteppedTraffic([started().serviceUrl], LOAD_TRAFFIC_KEY, timeScale);
    },
    stopTraffic,
    runCanary(args: string[], command = 'run', env: Record<string, string> = {}): CanaryProcess {
      const canary = runCanaryCli(args, started().renderApiKey, command, env);
      canaries.push(canary);
      return canary;
    },
  };
}
