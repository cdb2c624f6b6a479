import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { isAlive, waitUntil } from './support/helpers';

const ROOT = path.join(__dirname, '..', '..');
const children: ChildProcess[] = [];

function startCli(args: string[], env: Record<string, string> = {}): { child: ChildProcess; firstLine: Promise<string>; stderr: () => string } {
  // node --import tsx, not the tsx wrapper: the wrapper relays signals over IPC and, on a loaded machine, may
  // give up waiting and exit 130 itself, hiding the emulator's own exit code.
  const child = spawn(process.execPath, ['--import', 'tsx', 'render/emulator/main.ts', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr += String(chunk);
  });
  const firstLine = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`emulator CLI exited with ${code}: ${stderr}`)));
  });
  firstLine.catch(() => {}); // tests that expect an early exit never read the line
  return { child, firstLine, stderr: () => stderr };
}

function exitCode(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

describe('render:emulator CLI', () => {
  it('prints one JSON line with its URL, serves the API with the key, and stops on SIGTERM', async () => {
    const { child, firstLine } = startCli(['--port', '0', '--deploy-step-ms', '5'], { RENDER_API_KEY: 'cli-key' });
    const info = JSON.parse(await firstLine) as { url: string; origin: string; control: string };
    expect(info.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    expect(JSON.stringify(info)).not.toContain('cli-key');
    expect((await fetch(`${info.url}/owners`, { headers: { Authorization: 'Bearer cli-key' } })).status).toBe(200);
    expect((await fetch(`${info.url}/owners`)).status).toBe(401);
    expect((await fetch(`${info.control}/state`)).status).toBe(200);
    child.kill('SIGTERM');
    expect(await exitCode(child)).toBe(0);
  });

  it('runs local-platform services and kills them when stopped', async () => {
    const fixtures = path.join(__dirname, 'fixtures');
    const { child, firstLine } = startCli(['--api-key', 'cli-key-2', '--local-platform', '--source', 'working-tree', '--cwd', fixtures, '--deploy-step-ms', '5']);
    const info = JSON.parse(await firstLine) as { url: string; control: string };
    const headers = { Authorization: 'Bearer cli-key-2', 'Content-Type': 'application/json' };
    const owners = (await (await fetch(`${info.url}/owners`, { headers })).json()) as Array<{ owner: { id: string } }>;
    const created = (await (
      await fetch(`${info.url}/services`, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          type: 'web_service',
          name: 'echo',
          ownerId: owners[0]!.owner.id,
          serviceDetails: { runtime: 'node', healthCheckPath: '/healthz', envSpecificDetails: { buildCommand: 'true', startCommand: 'node echo-env-server.js' } },
        }),
      })
    ).json()) as { service: { id: string }; deployId: string };
    let pid: number | undefined;
    await waitUntil(async () => {
      const state = (await (await fetch(`${info.control}/state`)).json()) as { services: Array<{ deploys: Array<{ status: string }>; instance?: { pid?: number } }> };
      const service = state.services[0]!;
      pid = service.instance?.pid;
      return service.deploys[0]!.status === 'live';
    }, 'the local service to go live', 25_000);
    expect(isAlive(pid)).toBe(true);
    expect(created.deployId).toMatch(/^dep-/);
    child.kill('SIGINT');
    expect(await exitCode(child)).toBe(0);
    await waitUntil(() => !isAlive(pid), 'the service process to be gone');
  });

  it('refuses bad arguments with exit code 64', async () => {
    const { child } = startCli(['--port', 'abc', '--api-key', 'k']);
    expect(await exitCode(child)).toBe(64);
    const noKey = startCli(['--port', '0']);
    expect(await exitCode(noKey.child)).toBe(64);
    expect(noKey.stderr()).toContain('--api-key');
    // Which code the local platform runs is a choice, never a default.
    const noSource = startCli(['--port', '0', '--api-key', 'k', '--local-platform']);
    expect(await exitCode(noSource.child)).toBe(64);
    expect(noSource.stderr()).toContain('--local-platform needs --source git');
  });
});
