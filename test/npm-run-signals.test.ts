/**
 * Issue 23: the emulator READMEs start them with `npm run … &`, and a newcomer stops them by killing that npm process
 * (`kill %1` in a script, `kill <pid>`). Only npm gets the signal then; it forwards it to its child, and that child
 * must be the program itself (the npm script `exec`s it, as `npm start` does), never a shell that dies and leaves
 * the program, and what it started, running (the next start then fails with EADDRINUSE). Each test starts npm in a
 * process group of its own, signals the npm process only, and waits until nothing of the group, nor a service the
 * Render emulator started, is left.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SERVICE_RUNTIME } from '../infra/service-runtime';

const REPO = resolve(__dirname, '..');
const started: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(() => {
  for (const child of started.splice(0)) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // gone, as it should be
    }
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Live (not zombie) processes whose process group is `pgid`. */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] !== 'Z' && Number(fields[2]) === pgid) members.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return members;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      done(true);
    });
    socket.on('error', () => done(false));
  });
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `npm run <script> -- args` in a group of its own; resolves with its first stdout line that parses as JSON. */
async function npmRun(script: string, args: string[], env: Record<string, string> = {}): Promise<{ npm: ChildProcess; first: Record<string, unknown> }> {
  const npm = spawn('npm', ['run', '--silent', script, '--', ...args], {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  started.push(npm);
  let out = '';
  let err = '';
  npm.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const first = await new Promise<Record<string, unknown>>((done, fail) => {
    npm.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      for (const line of out.split('\n').slice(0, -1)) {
        try {
          return done(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not the JSON line yet
        }
      }
    });
    npm.on('exit', (code) => fail(new Error(`npm run ${script} exited ${code} before it printed its URL: ${out}${err}`)));
  });
  return { npm, first };
}

describe('npm run … & then killing npm stops everything it started', () => {
  it('context7:emulator: SIGTERM to npm stops the emulator and frees its port', async () => {
    const { npm, first } = await npmRun('context7:emulator', ['--port', '0']);
    const port = Number(new URL(String(first.url)).port);
    expect(await portOpen(port)).toBe(true);
    expect(groupMembers(npm.pid!).length).toBeGreaterThan(1);

    process.kill(npm.pid!, 'SIGTERM'); // npm only, as `kill %1` does in a script
    await until('nothing of the group is left', () => groupMembers(npm.pid!).length === 0);
    expect(await portOpen(port)).toBe(false);
  }, 60_000);

  it('render:emulator --local-platform: SIGTERM to npm stops the emulator and the service processes it started', async () => {
    const logDir = mkdtempSync(join(tmpdir(), 'npm-run-signals-'));
    dirs.push(logDir);
    const apiKey = 'rnd_npm_run_signals_test';
    const { npm, first } = await npmRun('render:emulator', ['--port', '0', '--local-platform', '--source', 'working-tree', '--cwd', REPO, '--log-dir', logDir, '--deploy-step-ms', '20'], { RENDER_API_KEY: apiKey });
    const api = String(first.url);
    const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
    const owners = (await (await fetch(`${api}/owners`, { headers })).json()) as { owner: { id: string } }[];
    const created = await fetch(`${api}/services`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        type: 'web_service',
        name: 'npm-run-signals',
        ownerId: owners[0]!.owner.id,
        serviceDetails: { runtime: 'node', healthCheckPath: '/readyz', envSpecificDetails: { buildCommand: 'true', startCommand: SERVICE_RUNTIME.startCommand } },
        envVars: [
          { key: 'DATA_DIR', value: join(logDir, 'data') },
          { key: 'MEMORY_AUTH', value: 'open' },
        ],
      }),
    });
    expect(created.status, await created.clone().text()).toBe(201);
    const control = String(first.control);
    const instancePids = async (): Promise<number[]> => {
      const state = (await (await fetch(`${control}/state`)).json()) as { services: { instance?: { instances?: { pid?: number; ready?: boolean }[] } }[] };
      return state.services.flatMap((s) => s.instance?.instances ?? []).filter((i) => i.pid !== undefined).map((i) => i.pid!);
    };
    let pids: number[] = [];
    await until('the service process runs', async () => (pids = await instancePids()).length > 0 && pids.every(alive), 90_000);
    const servicePort = Number(new URL((((await created.json()) as { service: { serviceDetails: { url: string } } }).service.serviceDetails.url)).port);

    process.kill(npm.pid!, 'SIGTERM');
    await until('nothing of the emulator group is left', () => groupMembers(npm.pid!).length === 0);
    await until('the service processes are gone', () => pids.every((pid) => !alive(pid)));
    expect(await portOpen(servicePort)).toBe(false);
  }, 150_000);
});
