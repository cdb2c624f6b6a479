/**
 * A TypeScript command (canary/main.ts, load/cli/*.ts) run as its own process, the way `npm run …` runs it (the
 * canary compiled, canary/compiled.ts; load/cli/*.ts through tsx), asynchronously: a test can start several at once,
 * so their start-up (0.5 to 2 s of CPU each) overlaps with the other worker's waiting instead of adding up. At most two run at once in a
 * worker (the machines have 2 cores): at load 26, six started together ran past a 120 s deadline. Every run has a
 * total deadline from its own start: past it the process is killed and the result says so.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { compiledArgs } from '../../canary/compiled';

export const REPO = join(__dirname, '../..');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved as they arrived */
  output: string;
  /** true when the deadline killed it */
  timedOut: boolean;
}

export interface CliOptions {
  cwd?: string;
  /** the whole environment of the process (default: this process's) */
  env?: NodeJS.ProcessEnv;
  /** Total deadline, start-up included. Default 120 s: at load 20 on 2 cores one start-up alone took 25 s, and
   * several started at once share the CPU. */
  timeoutMs?: number;
}

/** Runs started in this worker at once, at most; further runs wait for a slot, which is handed over in turn. */
const MAX_AT_ONCE = 2;
let running = 0;
const waiting: (() => void)[] = [];

async function acquireSlot(): Promise<void> {
  if (running < MAX_AT_ONCE) {
    running += 1;
    return;
  }
  await new Promise<void>((resume) => waiting.push(resume));
}

function releaseSlot(): void {
  const next = waiting.shift();
  if (next) next();
  else running -= 1;
}

/** `node --import tsx script args`. */
export function runTsx(script: string, args: string[], options: CliOptions = {}): Promise<CliResult> {
  return runNode(['--import', 'tsx', script, ...args], options);
}

async function runNode(nodeArgs: string[], options: CliOptions): Promise<CliResult> {
  await acquireSlot();
  try {
    return await runOnce(nodeArgs, options);
  } finally {
    releaseSlot();
  }
}

function runOnce(nodeArgs: string[], options: CliOptions): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, nodeArgs, {
      cwd: options.cwd ?? REPO,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let output = '';
    let timedOut = false;
    child.stdout.on('data', (chunk: Buffer) => ((stdout += chunk.toString()), (output += chunk.toString())));
    child.stderr.on('data', (chunk: Buffer) => ((stderr += chunk.toString()), (output += chunk.toString())));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 120_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, output, timedOut });
    });
  });
}

/** `npm run canary -- …` as a process: dist/canary/main.js, as the script runs it (global-setup compiled it). */
export function canaryCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return runNode([...compiledArgs('canary/main.ts'), ...args], options);
}
