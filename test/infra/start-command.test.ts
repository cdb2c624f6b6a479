/**
 * Render runs the stack's start command and, on each deploy, sends SIGTERM to that process only. The service
 * must be that process, or it never drains. This runs the declared start command the same way and signals only
 * the PID Render would; and `npm start`, whose script execs node so npm's forwarded SIGTERM reaches the service.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SERVICE_RUNTIME } from '../../infra/service-runtime';

const REPO = path.resolve(__dirname, '..', '..');
let child: ChildProcess | undefined;
let dataDir: string | undefined;

afterEach(() => {
  if (child?.pid && child.exitCode === null) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('the start command Render runs', () => {
  it('makes the service the signalled process: SIGTERM to it drains, exits 0 and leaves nothing behind', async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'start-command-'));
    child = spawn('sh', ['-c', SERVICE_RUNTIME.startCommand], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', HOST: '127.0.0.1', PORT: '0', DATA_DIR: dataDir, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group, so the test can tell whether anything outlives the signal
    });
    let output = '';
    child.stdout!.on('data', (chunk) => (output += chunk));
    child.stderr!.on('data', (chunk) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));

    const port = await until('the service to listen', () => /Memory service listening on 127\.0\.0\.1:(\d+)/.exec(output)?.[1], 60_000);
    await until('readiness', async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status === 200, 30_000);

    process.kill(child.pid!, 'SIGTERM'); // the process only, as Render does; not the group
    expect(await exited).toBe(0);
    expect(output).toContain('SIGTERM received: draining in-flight requests and shutting down');
    await until('the process group to be empty', () => !groupAlive(child!.pid!), 10_000);
  });

  it('`npm start &` then `kill <npm pid>` stops the service too: the start script execs node, so npm passes the signal to it', async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'npm-start-'));
    // No HOST: the default bind is 0.0.0.0, and the log line must say so.
    child = spawn('npm', ['start'], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', PORT: '0', DATA_DIR: dataDir, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    child.stdout!.on('data', (chunk) => (output += chunk));
    child.stderr!.on('data', (chunk) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));

    const listening = await until(
      'the service to listen',
      () => /Memory service listening on 0\.0\.0\.0:(\d+) \(http:\/\/127\.0\.0\.1:(\d+) from this machine\)/.exec(output) ?? undefined,
      120_000,
    );
    const [, boundPort, localPort] = listening;
    expect(localPort).toBe(boundPort);
    await until('readiness', async () => (await fetch(`http://127.0.0.1:${boundPort}/readyz`).catch(() => null))?.status === 200, 30_000);

    process.kill(child.pid!, 'SIGTERM'); // npm's pid, as `kill %1` / `kill $!` would
    await exited;
    await until('the service to drain and stop', () => output.includes('Memory service stopped') || undefined, 30_000);
    expect(output).toContain('SIGTERM received: draining in-flight requests and shutting down');
    await until('the process group to be empty', () => !groupAlive(child!.pid!), 10_000);
  }, 240_000); // npm start builds first (prestart), on a loaded machine
});
