/**
 * The demo as a child process, for the end-to-end tests: started in its own process group (so a failed test can
 * still stop the whole tree), its output collected, and what it left looked for in /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compiledArgs } from '../../../canary/compiled';

const REPO = join(__dirname, '../../..');

export interface StartedDemo {
  child: ChildProcess;
  runDir: string;
  output: () => string;
  closed: Promise<number | null>;
  /** resolves once the output matches `pattern`, or the demo ended, or `timeoutMs` passed: the caller checks which */
  waitFor: (pattern: RegExp, timeoutMs: number) => Promise<void>;
}

/** The line each demo prints once it has chosen its staging clock (demo/clock.ts) from what the machine carries. */
export const CLOCK_CHOSEN = /staging clock: \d+x/;

/** demo/main.ts compiled (built by test/global-setup.ts) `--run-dir <runDir> ...args`, detached; every child is added to `children`. */
export function startDemo(runDir: string, args: string[], env: NodeJS.ProcessEnv, children: Set<ChildProcess>): StartedDemo {
  let output = '';
  const child = spawn(process.execPath, [...compiledArgs('demo/main.ts'), '--run-dir', runDir, ...args], {
    cwd: REPO,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  children.add(child);
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const closed = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  const waitFor = async (pattern: RegExp, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(output) && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  };
  return { child, runDir, output: () => output, closed, waitFor };
}

/** "staging 50x (361/s), production 45x (302/s)": each clock the demo chose and the capacity it chose it from. */
export function describeClocks(clocks: { forRun: string; timeScale: number; capacityPerSecond: number | null }[] | undefined): string {
  return (clocks ?? []).map((c) => `${c.forRun} ${c.timeScale}x${c.capacityPerSecond === null ? '' : ` (${c.capacityPerSecond}/s)`}`).join(', ');
}

/** Any process whose command line or environment mentions `text` (a run directory): one the demo left. */
export function processesMentioning(text: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text) || readFileSync(`/proc/${entry}/environ`, 'utf8').includes(text)) found.push(Number(entry));
    } catch {
      // exited meanwhile, or not ours to read
    }
  }
  return found;
}

/**
 * Polls until `done` holds or the deadline passes: a process SIGKILLed just before the demo exited
 * may take a moment to be gone on a loaded machine; one the demo leaked stays, and fails the check.
 */
export async function settle(done: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
}
