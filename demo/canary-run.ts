/**
 * Runs `canary run` or `canary stepped` (canary/main.ts) as a child process, the way CI would: its own process group,
 * compiled as `npm run canary` runs it (demo/main.ts builds dist/ first, when needed),
 * RENDER_API_KEY only in its environment, its output in a log file. Lines worth showing are handed
 * to `onLine`; the canary's state file tells how far its (compressed) clock has got.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compiledArgs } from '../canary/compiled';
import type { ProcessRegistry } from './processes';

export const REPO_ROOT = join(__dirname, '..');

export interface CanaryRunSpec {
  /** `run`: the whole flag at once (today's canary); `stepped`: the policy's exposure steps (progressive exposure) */
  command?: 'run' | 'stepped';
  stack: 'staging' | 'production';
  baseUrl: string;
  renderApiUrl: string;
  renderServiceId: string;
  renderApiKey: string;
  /** Caller key for the rollback verification's snippets read (CANARY_MEMORY_API_KEY, environment only). */
  memoryApiKey?: string;
  /** The learning probe's caller key, restricted to the probe location (CANARY_PROBE_KEY, environment only). */
  probeKey?: string;
  /** The service's ADMIN_TOKEN, with which the stepped canary sets the exposure (CANARY_ADMIN_TOKEN, environment only). */
  adminToken?: string;
  policyFile: string;
  stateFile: string;
  reportDir: string;
  stackDir: string;
  timeScale: number;
  logFile: string;
}

export interface CanaryChild {
  pid: number;
  exit: Promise<number>;
  /** policy seconds elapsed on the canary's clock, once it has written its state file */
  policySeconds(): number | undefined;
}

export function startCanary(spec: CanaryRunSpec, registry: ProcessRegistry, onLine: (line: string) => void): CanaryChild {
  const args = [
    ...compiledArgs('canary/main.ts'), spec.command ?? 'run',
    '--base-url', spec.baseUrl,
    '--stack', spec.stack,
    '--policy', spec.policyFile,
    '--render-api-url', spec.renderApiUrl,
    '--render-service-id', spec.renderServiceId,
    '--state-file', spec.stateFile,
    '--report-dir', spec.reportDir,
    '--stack-dir', spec.stackDir,
    '--time-scale', String(spec.timeScale),
  ];
  const log = createWriteStream(spec.logFile, { flags: 'a' });
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      RENDER_API_KEY: spec.renderApiKey,
      ...(spec.memoryApiKey ? { CANARY_MEMORY_API_KEY: spec.memoryApiKey } : {}),
      ...(spec.probeKey ? { CANARY_PROBE_KEY: spec.probeKey } : {}),
      ...(spec.adminToken ? { CANARY_ADMIN_TOKEN: spec.adminToken } : {}),
      CANARY_OPERATOR: 'npm run demo',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  if (child.pid === undefined) throw new Error('could not start the canary (no pid)');
  registry.record(`canary:${spec.stack}`, child.pid);

  let pending = '';
  const onData = (chunk: Buffer) => {
    log.write(chunk);
    pending += chunk.toString('utf8');
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) onLine(line.replace(/\r?\x1b\[2K/g, '').trimEnd());
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);

  const exit = new Promise<number>((resolve) => {
    child.on('error', (error) => {
      log.write(`demo: canary process error: ${error.message}\n`);
      resolve(-1);
    });
    child.on('close', (code, signal) => {
      if (pending) onLine(pending);
      log.end();
      resolve(code ?? (signal ? 128 : -1));
    });
  });

  let startedAtMs: number | undefined;
  return {
    pid: child.pid,
    exit,
    policySeconds() {
      if (startedAtMs === undefined && existsSync(spec.stateFile)) {
        try {
          const state = JSON.parse(readFileSync(spec.stateFile, 'utf8')) as { startedAtMs?: unknown };
          if (typeof state.startedAtMs === 'number') startedAtMs = state.startedAtMs;
        } catch {
          // written atomically; a parse failure means it is not there yet
        }
      }
      return startedAtMs === undefined ? undefined : ((Date.now() - startedAtMs) / 1000) * spec.timeScale;
    },
  };
}

/** Looks the stepped canary has taken at its current step, from its state file (0 before any). */
export function looksAtCurrentStep(stateFile: string): number {
  try {
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { stepped?: { stepIndex: number; steps: { decisions: unknown[] }[] } };
    const stepped = state.stepped;
    return stepped?.steps[stepped.stepIndex]?.decisions.length ?? 0;
  } catch {
    return 0;
  }
}

/**
 * `canary status` from another process, as an operator would run it while the canary runs: its printed lines, or
 * why there are none. The admin token goes in its environment only (it reads every instance's exposure).
 */
export function canaryStatus(spec: Pick<CanaryRunSpec, 'stack' | 'stateFile' | 'policyFile' | 'baseUrl' | 'adminToken' | 'timeScale'>): Promise<string[]> {
  const args = [...compiledArgs('canary/main.ts'), 'status', '--stack', spec.stack, '--state-file', spec.stateFile, '--policy', spec.policyFile, '--base-url', spec.baseUrl, '--time-scale', String(spec.timeScale)];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      env: { ...process.env, ...(spec.adminToken ? { CANARY_ADMIN_TOKEN: spec.adminToken } : {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30_000,
    });
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.on('error', (error) => resolve([`canary status could not run: ${error.message}`]));
    child.on('close', (code, signal) => {
      const lines = out.split('\n').filter((line) => line.trim() && !line.startsWith('node24:') && !line.startsWith('build:'));
      resolve(code === 0 ? lines : [...lines, `canary status exited ${code ?? signal}`]);
    });
  });
}
