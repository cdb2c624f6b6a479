/**
 * The compiled service (dist/, built by test/global-setup.ts) run as real processes, the way Render runs them:
 * a one-off command (the pre-deploy migration) or an instance waited on until it listens and is ready.
 * Every process started here is killed by killAll(), which each suite calls in its afterAll.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface CompiledProcess {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

export interface ServiceInstance extends CompiledProcess {
  url: string;
}

const started: ChildProcess[] = [];

export async function waitFor<T>(what: string, probe: () => T | Promise<T>, timeoutMs = 30_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export function runCompiled(script: string, env: Record<string, string>): CompiledProcess {
  const child = spawn(process.execPath, ['--enable-source-maps', script], { cwd: process.cwd(), env, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/**
 * How long a compiled service may take to listen, then to be ready: about a second on a quiet machine, over 30 s at
 * load average 30 on 2 cores (exposure-processes failed there waiting 30 s). No test here is about start-up time.
 */
const START_DEADLINE_MS = 90_000;

/** Starts dist/service/main.js on an ephemeral port (PORT=0 in `env`) and waits until /readyz answers 200. */
export async function startServiceInstance(label: string, env: Record<string, string>): Promise<ServiceInstance> {
  const proc = runCompiled('dist/service/main.js', env);
  const port = await waitFor(`${label} to listen`, () => {
    if (proc.child.exitCode !== null) throw new Error(`${label} exited early: ${proc.output()}`);
    return /Memory service listening on 127\.0\.0\.1:(\d+)/.exec(proc.output())?.[1];
  }, START_DEADLINE_MS);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${label} ready`, async () => (await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5_000) }).catch(() => null))?.status === 200, START_DEADLINE_MS);
  return { ...proc, url };
}

export function killAll(): void {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}
