/** Child processes for bench:load (Context7 emulator, memory service): start, await readiness, stop. */
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';

const TSX = resolve(__dirname, '..', '..', 'node_modules', '.bin', 'tsx');

export interface RunningChild {
  url: string;
  /** last lines of output, for a useful error when something dies */
  recentOutput(): string;
  stop(): Promise<void>;
}

/**
 * Runs `tsx script args` and resolves once it prints a JSON line whose `event` is `readyEvent`
 * and that carries a `url`. tsx is spawned directly: `npm run` would not forward SIGTERM.
 */
export function startTsxChild(name: string, script: string, args: string[], env: NodeJS.ProcessEnv, readyEvent: string, timeoutMs = 60_000): Promise<RunningChild> {
  const child: ChildProcess = spawn(TSX, [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const recent: string[] = [];
  const remember = (line: string) => {
    recent.push(line.length > 400 ? `${line.slice(0, 400)}…` : line);
    if (recent.length > 30) recent.shift();
  };
  let exited = false;
  const exitedPromise = new Promise<void>((done) => child.once('exit', () => {
    exited = true;
    done();
  }));
  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exitedPromise;
    clearTimeout(timer);
  };
  return new Promise<RunningChild>((resolveReady, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`${name} did not become ready within ${timeoutMs} ms:\n${recent.join('\n')}`));
    }, timeoutMs);
    createInterface({ input: child.stderr! }).on('line', remember);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      remember(line);
      try {
        const parsed = JSON.parse(line) as { event?: string; url?: string };
        if (parsed.event === readyEvent && typeof parsed.url === 'string') {
          clearTimeout(timer);
          resolveReady({ url: parsed.url, recentOutput: () => recent.join('\n'), stop });
        }
      } catch {
        // not a JSON line
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${signal ?? code}) before it was ready:\n${recent.join('\n')}`));
    });
  });
}

/** Polls `url` until `accept(status, body)` holds: real readiness, not a fixed sleep. */
export async function waitUntil(url: string, accept: (status: number, body: string) => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      const body = await res.text();
      if (accept(res.status, body)) return;
      last = `${res.status} ${body.slice(0, 200)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms (last: ${last})`);
}
