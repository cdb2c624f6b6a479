// "Local platform" mode: runs a web service's startCommand as a real child process on loopback, like
// Render runs an instance, and replaces it on each deploy.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { groupAlive } from './process-groups';

export interface LocalPlatformOptions {
  /** Working directory of every service process. */
  cwd: string;
  /** Extra env for every service process (below the service's own env vars). */
  env?: Record<string, string>;
  /** How long a new process may take to pass its health check. Default 30 s. */
  readyTimeoutMs?: number;
  /** Where per-service log files go. Default: a fresh directory under the OS temp dir. */
  logDir?: string;
  /** Upper bound on the SIGTERM grace period (Render's maxShutdownDelaySeconds also applies). Default 5 s. */
  shutdownGraceMs?: number;
  /** How long the build command may run. Default 120 s. */
  buildTimeoutMs?: number;
}

/**
 * Render runs the build command in a fresh clone; the local platform runs it in `cwd`, whose node_modules the
 * caller (a test run, the demo) is using at that moment. So the build sees an `npm` that keeps an installed
 * node_modules as it is for `npm ci`/`npm install` (and says so in the service log) and runs every other npm
 * command for real: `npm ci --include=dev && npm run build` compiles dist/ exactly as on Render.
 */
function writeNpmShim(dir: string): string {
  const realNpm = (process.env.PATH ?? '')
    .split(path.delimiter)
    .filter(Boolean)
    .map((entry) => path.join(entry, 'npm'))
    .find((candidate) => existsSync(candidate));
  mkdirSync(dir, { recursive: true });
  const shim = path.join(dir, 'npm');
  writeFileSync(
    shim,
    [
      '#!/bin/sh',
      '# Written by the Render emulator\'s local platform (render/emulator/local-platform.ts).',
      'case "$1" in',
      '  ci|install|i|clean-install)',
      '    if [ -d node_modules ]; then echo "[render-emulator] npm $*: this checkout\'s node_modules is already installed, kept as it is (Render installs into a fresh clone)"; exit 0; fi',
      '    echo "[render-emulator] npm $*: no node_modules in $(pwd): run npm ci there first" >&2; exit 1;;',
      'esac',
      realNpm ? `exec '${realNpm.replace(/'/g, "'\\''")}' "$@"` : 'echo "[render-emulator] npm is not on PATH" >&2; exit 127',
      '',
    ].join('\n'),
  );
  chmodSync(shim, 0o755);
  return dir;
}

/** Parent env passed through to instances; everything else (notably RENDER_API_KEY) stays out, as on Render. */
const INHERITED_ENV = ['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'LANG', 'LC_ALL', 'TMPDIR', 'TZ', 'NODE_EXTRA_CA_CERTS'];

export interface LaunchSpec {
  serviceId: string;
  startCommand: string;
  envVars: Record<string, string>;
  commitId: string;
  healthCheckPath: string;
  maxShutdownDelaySeconds?: number;
}

export interface InstanceInfo {
  serviceId: string;
  port: number;
  url: string;
  logFile: string;
  pid: number | undefined;
  instanceId: string | undefined;
  commitId: string | undefined;
}

interface Instance {
  port: number;
  logFile: string;
  child?: ChildProcess;
  exited?: Promise<void>;
  instanceId?: string;
  commitId?: string;
  lastGood?: LaunchSpec;
}

export async function allocateLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Group already gone.
  }
}

/**
 * SIGTERM to the whole group, then SIGKILL once the grace period is over. The start command's shell may exit
 * before the service it started, so the group (not the shell) is what we wait for.
 */
async function stopGroup(child: ChildProcess, graceMs: number): Promise<void> {
  const pgid = child.pid;
  if (pgid === undefined || !groupAlive(pgid)) return;
  killGroup(child, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && groupAlive(pgid)) await new Promise((r) => setTimeout(r, 25));
  if (groupAlive(pgid)) killGroup(child, 'SIGKILL');
  const killDeadline = Date.now() + 5_000;
  while (Date.now() < killDeadline && groupAlive(pgid)) await new Promise((r) => setTimeout(r, 25));
}

function randomHex(bytes: number): string {
  return Array.from({ length: bytes }, () => Math.floor(Math.random() * 256).toString(16).padStart(2, '0')).join('');
}

export class LocalPlatform {
  private readonly instances = new Map<string, Instance>();
  private readonly oneOffs = new Set<ChildProcess>();
  private readonly logDir: string;
  private closed = false;
  private readonly onParentExit = () => this.killAllNow();
  private readonly buildPath: string;

  constructor(private readonly options: LocalPlatformOptions) {
    this.logDir = options.logDir ?? path.join(os.tmpdir(), `render-emulator-${process.pid}-${randomHex(4)}`);
    mkdirSync(this.logDir, { recursive: true });
    this.buildPath = writeNpmShim(path.join(this.logDir, `.build-bin-${randomHex(3)}`));
    // Last resort if the parent exits without close(): never leave instances behind.
    process.once('exit', this.onParentExit);
  }

  /** Reserves the service's loopback port (kept across deploys) and returns its URL. */
  async register(serviceId: string): Promise<string> {
    let instance = this.instances.get(serviceId);
    if (!instance) {
      instance = { port: await allocateLoopbackPort(), logFile: path.join(this.logDir, `${serviceId}.log`) };
      this.instances.set(serviceId, instance);
    }
    return `http://127.0.0.1:${instance.port}`;
  }

  info(serviceId: string): InstanceInfo | undefined {
    const instance = this.instances.get(serviceId);
    if (!instance) return undefined;
    return {
      serviceId,
      port: instance.port,
      url: `http://127.0.0.1:${instance.port}`,
      logFile: instance.logFile,
      pid: instance.child && instance.child.exitCode === null && instance.child.signalCode === null ? instance.child.pid : undefined,
      instanceId: instance.instanceId,
      commitId: instance.commitId,
    };
  }

  all(): InstanceInfo[] {
    return [...this.instances.keys()].flatMap((id) => this.info(id) ?? []);
  }

  /**
   * Replaces the running process with one built from `spec`, and resolves once the health check answers 200.
   * On failure the previous good version is started again (Render keeps serving the old instance) and the
   * returned reason explains why the deploy failed.
   */
  async deploy(spec: LaunchSpec): Promise<{ ok: true } | { ok: false; reason: string }> {
    await this.register(spec.serviceId);
    const instance = this.instances.get(spec.serviceId)!;
    await this.stop(instance, spec.maxShutdownDelaySeconds);
    const result = await this.start(instance, spec);
    if (result.ok) {
      instance.lastGood = spec;
      return result;
    }
    await this.stop(instance, 0);
    if (instance.lastGood && !this.closed) {
      this.log(instance, `new version failed (${result.reason}); restarting the previous version`);
      await this.start(instance, instance.lastGood);
    }
    return result;
  }

  /** Runs the build command with the service's env, as Render does before each deploy; ok when it exits 0. */
  async build(spec: { serviceId: string; command: string; envVars: Record<string, string>; commitId: string }): Promise<{ ok: boolean; reason: string }> {
    return this.runOnce({ ...spec, kind: 'build' });
  }

  /** Runs a one-off command (the pre-deploy command, or the build) with the service's env; ok when it exits 0. */
  async runOnce(spec: {
    serviceId: string;
    command: string;
    envVars: Record<string, string>;
    commitId: string;
    kind?: 'pre-deploy' | 'build';
  }): Promise<{ ok: boolean; reason: string }> {
    await this.register(spec.serviceId);
    const instance = this.instances.get(spec.serviceId)!;
    if (this.closed) return { ok: false, reason: 'emulator is closing' };
    const kind = spec.kind ?? 'pre-deploy';
    this.log(instance, `running ${kind} command (commit ${spec.commitId}): ${spec.command}`);
    const env = this.baseEnv(spec.envVars, instance, spec.serviceId, spec.commitId, `${spec.serviceId}-${kind === 'build' ? 'build' : 'predeploy'}`);
    if (kind === 'build') env.PATH = `${this.buildPath}${path.delimiter}${env.PATH ?? ''}`;
    const fd = openSync(instance.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn('sh', ['-c', spec.command], { cwd: this.options.cwd, env, detached: true, stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    this.oneOffs.add(child);
    const timeoutMs = kind === 'build' ? (this.options.buildTimeoutMs ?? 120_000) : (this.options.readyTimeoutMs ?? 30_000);
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        killGroup(child, 'SIGKILL');
      }, timeoutMs);
      child.once('exit', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
      child.once('error', () => {
        clearTimeout(timer);
        resolve(null);
      });
    });
    this.oneOffs.delete(child);
    this.safeLog(instance, `${kind} command exited with ${code ?? 'no code'}`);
    return code === 0 ? { ok: true, reason: '' } : { ok: false, reason: `${kind} command exited with ${code ?? 'no code'}` };
  }

  /** Stops the service's process and forgets it (the service was deleted). */
  async remove(serviceId: string): Promise<void> {
    const instance = this.instances.get(serviceId);
    if (!instance) return;
    await this.stop(instance, 0);
    this.instances.delete(serviceId);
  }

  private baseEnv(
    envVars: Record<string, string>,
    instance: Instance,
    serviceId: string,
    commitId: string,
    instanceId: string,
  ): Record<string, string> {
    const env: Record<string, string> = {};
    for (const key of INHERITED_ENV) {
      const value = process.env[key];
      if (value !== undefined) env[key] = value;
    }
    return Object.assign(env, this.options.env ?? {}, envVars, {
      // Local instances only ever listen on loopback, whatever the service's own env says.
      HOST: '127.0.0.1',
      PORT: String(instance.port),
      RENDER: 'true',
      RENDER_GIT_COMMIT: commitId,
      RENDER_SERVICE_ID: serviceId,
      RENDER_INSTANCE_ID: instanceId,
      RENDER_EXTERNAL_URL: `http://127.0.0.1:${instance.port}`,
    });
  }

  private log(instance: Instance, line: string): void {
    const fd = openSync(instance.logFile, 'a');
    try {
      writeSync(fd, `[render-emulator ${new Date().toISOString()}] ${line}\n`);
    } finally {
      closeSync(fd);
    }
  }

  private async start(instance: Instance, spec: LaunchSpec): Promise<{ ok: true } | { ok: false; reason: string }> {
    if (this.closed) return { ok: false, reason: 'emulator is closing' };
    const instanceId = `${spec.serviceId}-${randomHex(3)}`;
    const env = this.baseEnv(spec.envVars, instance, spec.serviceId, spec.commitId, instanceId);
    this.log(instance, `starting ${instanceId} (commit ${spec.commitId}) on port ${instance.port}`);
    const fd = openSync(instance.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn('sh', ['-c', spec.startCommand], {
        cwd: this.options.cwd,
        env,
        detached: true, // own process group, so the whole tree can be signalled
        stdio: ['ignore', fd, fd],
      });
    } finally {
      closeSync(fd);
    }
    instance.child = child;
    instance.instanceId = instanceId;
    instance.commitId = spec.commitId;
    let exitedEarly = false;
    instance.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        exitedEarly = true;
        this.safeLog(instance, `${instanceId} exited (code ${code ?? 'none'}, signal ${signal ?? 'none'})`);
        resolve();
      });
      child.once('error', () => {
        exitedEarly = true;
        resolve();
      });
    });

    const deadline = Date.now() + (this.options.readyTimeoutMs ?? 30_000);
    const url = `http://127.0.0.1:${instance.port}${spec.healthCheckPath || '/'}`;
    while (Date.now() < deadline) {
      if (exitedEarly) return { ok: false, reason: `process exited before passing its health check (see ${instance.logFile})` };
      if (this.closed) return { ok: false, reason: 'emulator is closing' };
      const status = await probe(url);
      if (status !== undefined && (status === 200 || !spec.healthCheckPath)) return { ok: true };
      await new Promise((r) => setTimeout(r, 100));
    }
    return { ok: false, reason: `health check ${spec.healthCheckPath || '/'} did not answer 200 in time` };
  }

  private safeLog(instance: Instance, line: string): void {
    try {
      this.log(instance, line);
    } catch {
      // Log directory removed during shutdown: nothing to record.
    }
  }

  private async stop(instance: Instance, maxShutdownDelaySeconds: number | undefined): Promise<void> {
    const child = instance.child;
    if (!child || child.pid === undefined) return;
    const graceMs = Math.min((maxShutdownDelaySeconds ?? 30) * 1000, this.options.shutdownGraceMs ?? 5_000);
    await stopGroup(child, graceMs);
  }

  /** Stops every instance: SIGTERM, then SIGKILL after a short grace period. */
  async close(graceMs = 2_000): Promise<void> {
    this.closed = true;
    for (const child of this.oneOffs) killGroup(child, 'SIGKILL');
    await Promise.all(
      [...this.instances.values()].map((instance) => (instance.child ? stopGroup(instance.child, graceMs) : undefined)),
    );
    process.removeListener('exit', this.onParentExit);
  }

  private killAllNow(): void {
    for (const instance of this.instances.values()) if (instance.child) killGroup(instance.child, 'SIGKILL');
    for (const child of this.oneOffs) killGroup(child, 'SIGKILL');
  }
}

function probe(url: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}
