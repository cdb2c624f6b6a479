// "Local platform" mode: runs a web service like Render does, on loopback. The service URL is a load balancer
// (load-balancer.ts); behind it run the live deploy's numInstances instances, each the service's startCommand
// as a real child process on its own port. Deploys overlap: the new instances start and pass their health check
// while the old ones serve, traffic shifts to the new set at once, then the old set drains and stops.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  healthCheckAction,
  type InstanceEvent,
  type InstanceState,
  isRoutable,
  nextInstanceState,
  nextRolloutPhase,
  restartDelayMs,
  type RolloutEvent,
  type RolloutPhase,
  rolloutVerdict,
  scalePlan,
} from './fleet';
import { ingestLogFile, type LogIngestState, type MemorySample, newLogIngestState, type PlatformLogLine, processTreeRss, type RequestRecord } from './platform-metrics';
import { LoadBalancer, type LoadBalancerCounters } from './load-balancer';
import { groupAlive } from './process-groups';

/**
 * What code a deploy runs:
 * - `{ gitRepo }`: the commit the deploy asks for, as on Render. Each commit is exported once (`git archive`) into
 *   `cacheDir/<sha>`, built there once, and reused by every later deploy of that commit (a rollback included). A deploy
 *   without a commit runs the head of the service's branch. A commit the repository does not have fails the build.
 * - `'working-tree'`: `cwd` as it is, uncommitted changes included, whatever commit is asked for (the commit is then
 *   only a label). Only when asked for explicitly; `describe()` says so, and the demo prints it.
 */
export type LocalSource = 'working-tree' | { gitRepo: string; cacheDir?: string };

export interface LocalPlatformOptions {
  /** The working tree (source 'working-tree'), and the node_modules a git checkout reuses when its lockfile matches. */
  cwd: string;
  /** Which code a deploy runs (see LocalSource). Required: running the working tree must be a choice. */
  source: LocalSource;
  /** Extra env for every service process (below the service's own env vars). */
  env?: Record<string, string>;
  /** How long a new process may take to pass its health check. Default 30 s. */
  readyTimeoutMs?: number;
  /** Where per-service log files go (kept). Default: a fresh directory under the OS temp dir, removed by close(). */
  logDir?: string;
  /** Upper bound on the SIGTERM grace period (Render's maxShutdownDelaySeconds also applies). Default 5 s. */
  shutdownGraceMs?: number;
  /** Deadline of one request forwarded by a service's load balancer. Default 60 s. */
  upstreamTimeoutMs?: number;
  /** Restarts of one crashed instance before the platform gives up on it. Default 20. */
  maxRestarts?: number;
  /** Periodic health check of serving instances: every intervalMs; unrouted after unhealthyAfterMs of failures,
   * restarted after restartAfterMs. Defaults 5 s, 15 s, 60 s (Render's). */
  healthChecks?: { intervalMs?: number; unhealthyAfterMs?: number; restartAfterMs?: number };
  /** How long the build command may run. Default 120 s. */
  buildTimeoutMs?: number;
  /** How often each instance's memory (RSS) is sampled for GET /metrics/memory. Default 1 s. */
  memorySampleMs?: number;
}

/**
 * Render runs the build command in a fresh clone; the local platform runs it in `cwd`, whose node_modules the
 * caller (a test run, the demo) is using at that moment. So the build sees an `npm` that keeps an installed
 * node_modules as it is for `npm ci`/`npm install` (and says so in the service log), runs `npm run NAME` of a script
 * without pre/post scripts as that script (as npm would, without npm's start-up), and every other npm command for
 * real: `npm ci --include=dev && npm run build` compiles dist/ as on Render.
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
      // `npm run NAME` of a script without pre/post scripts: the script itself, as npm runs it (sh -c, the package's
      // node_modules/.bin first on PATH), without npm's own start-up (0.3 s of CPU on every deploy; issue 23).
      '  run|run-script)',
      '    if [ "$#" -eq 2 ]; then',
      `      script=$(node -e 'const s = require(require("path").resolve("package.json")).scripts || {}; const n = process.argv[1]; if (s[n] && !s["pre" + n] && !s["post" + n]) process.stdout.write(s[n]);' "$2" 2>/dev/null) || script=""`,
      '      if [ -n "$script" ]; then echo "[render-emulator] npm run $2: $script"; PATH="$(pwd)/node_modules/.bin:$PATH" exec sh -c "$script"; fi',
      '    fi;;',
      'esac',
      realNpm ? `exec '${realNpm.replace(/'/g, "'\\''")}' "$@"` : 'echo "[render-emulator] npm is not on PATH" >&2; exit 127',
      '',
    ].join('\n'),
  );
  chmodSync(shim, 0o755);
  return dir;
}

const BUILT_MARKER = '.render-emulator-built';

function sha256File(file: string): string | undefined {
  return existsSync(file) ? createHash('sha256').update(readFileSync(file)).digest('hex') : undefined;
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
  /** The emulator's deploy id, to tell two deploys of the same commit apart. */
  deployId?: string;
  /** serviceDetails.numInstances. Default 1. */
  numInstances?: number;
  /** serviceDetails.disk is set: one instance, and no overlap (Render detaches the disk before it attaches it). */
  hasDisk?: boolean;
}

/** One instance, as /__emulator/state shows it. */
export interface InstanceInfo {
  instanceId: string;
  deployId: string;
  commitId: string;
  port: number;
  /** The start command's shell: the instance's process group id. Undefined once it is gone. */
  pid: number | undefined;
  state: InstanceState;
  /** Whether the load balancer sends it new requests. */
  routed: boolean;
  inFlight: number;
  /** Requests the load balancer sent it (retries included). */
  requests: number;
  /** Crash restarts in place (same id and port). */
  restarts: number;
  /** When the instance was first started (a crash restart keeps it). */
  createdAt: string;
  /** When its current process started. */
  startedAt: string;
}

/** One deploy as the platform ran it: when its instances were healthy, when traffic moved, when it was drained. */
export interface RolloutInfo {
  deployId: string;
  commitId: string;
  phase: RolloutPhase;
  numInstances: number;
  startedAt: string;
  /** Every new instance passed its health check. */
  healthyAt?: string;
  /** The load balancer moved to this deploy's instances: requests from here on go to them only. */
  shiftedAt?: string;
  /** Replaced: no longer routed; in-flight requests finish, then SIGTERM. */
  drainStartedAt?: string;
  /** Every instance of it is gone. */
  retiredAt?: string;
  failureReason?: string;
  instanceIds: string[];
}

/** A service on the local platform. The first fields keep the single-instance shape (the live instance). */
export interface ServicePlatformInfo {
  serviceId: string;
  /** The load balancer's port: the service URL's, kept across deploys. */
  port: number;
  url: string;
  logFile: string;
  /** First routed instance of the live deploy (kept for single-instance readers). */
  pid: number | undefined;
  instanceId: string | undefined;
  commitId: string | undefined;
  /** The live deploy, if any. */
  liveDeployId: string | undefined;
  /** Every instance not yet gone: the live deploy's, a deploy starting, deploys draining. */
  instances: InstanceInfo[];
  /** Recent deploys, newest first. */
  rollouts: RolloutInfo[];
  loadBalancer: LoadBalancerCounters;
}

interface Instance {
  instanceId: string;
  port: number;
  spec: LaunchSpec;
  deployId: string;
  state: InstanceState;
  child?: ChildProcess;
  restarts: number;
  createdAt: number;
  startedAt: number;
  /** Since when its periodic health check has failed without a pass in between. */
  failingSince?: number;
  probing?: boolean;
}

interface Rollout {
  info: RolloutInfo;
  spec: LaunchSpec;
  instances: Instance[];
}

interface ServiceSlot {
  serviceId: string;
  port: number;
  logFile: string;
  lb: LoadBalancer;
  live?: Rollout;
  /** Every rollout still holding instances or recently finished, newest first (bounded). */
  rollouts: Rollout[];
  /** Deploys and scale changes of one service run one at a time. */
  queue: Promise<unknown>;
}

const ROLLOUT_HISTORY = 10;

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

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class LocalPlatform {
  private readonly slots = new Map<string, ServiceSlot>();
  /** One load balancer per service, even when two callers register it at once. */
  private readonly registering = new Map<string, Promise<ServiceSlot>>();
  private readonly oneOffs = new Set<ChildProcess>();
  /** Background work (drains, crash restarts) that close() waits for. */
  private readonly background = new Set<Promise<unknown>>();
  private readonly logDir: string;
  /** true when no logDir was given: the folder is this platform's own, removed by close() */
  private readonly ownsLogDir: boolean;
  private closed = false;
  private readonly onParentExit = () => this.killAllNow();
  private readonly healthTimer: NodeJS.Timeout;
  private readonly memoryTimer: NodeJS.Timeout;
  /** RSS readings per service, oldest first (bounded). */
  private readonly memory = new Map<string, MemorySample[]>();
  /** Each service's log lines as received so far (stamped on receipt, like Render's). */
  private readonly logs = new Map<string, LogIngestState>();
  private readonly buildPath: string;
  /** Git source: where each commit's code is, once exported (sha -> directory). */
  private readonly checkouts = new Map<string, string>();

  constructor(private readonly options: LocalPlatformOptions) {
    this.ownsLogDir = options.logDir === undefined;
    this.logDir = options.logDir ?? path.join(os.tmpdir(), `render-emulator-${process.pid}-${randomHex(4)}`);
    mkdirSync(this.logDir, { recursive: true });
    this.healthTimer = setInterval(() => this.checkHealth(), options.healthChecks?.intervalMs ?? 5_000);
    this.healthTimer.unref();
    this.memoryTimer = setInterval(() => this.sampleMemory(), options.memorySampleMs ?? 1_000);
    this.memoryTimer.unref();
    this.buildPath = writeNpmShim(path.join(this.logDir, `.build-bin-${randomHex(3)}`));
    // Last resort if the parent exits without close(): never leave instances behind.
    process.once('exit', this.onParentExit);
  }

  /** One line for people: which code deploys run (the demo prints it). */
  describe(): string {
    const source = this.options.source;
    if (source === 'working-tree') {
      return `the working tree of ${this.options.cwd} as it is, uncommitted changes included (asked for explicitly; the deploy's commit id is only a label)`;
    }
    return `the commit each deploy asks for, from the git repository ${source.gitRepo} (each commit exported and built once, cached in ${this.cacheDir()})`;
  }

  private cacheDir(): string {
    const source = this.options.source;
    return source === 'working-tree' ? this.options.cwd : (source.cacheDir ?? path.join(this.logDir, 'commits'));
  }

  /** Git source: the full sha of `ref` (a branch, or a commit), or undefined if the repository has no such commit. */
  resolveCommit(ref: string): string | undefined {
    const source = this.options.source;
    if (source === 'working-tree') return undefined;
    try {
      return execFileSync('git', ['-C', source.gitRepo, 'rev-parse', '--verify', '--quiet', `${ref}^{commit}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * The directory holding the code of `commitId`: the working tree, or (git source) the commit exported once into the
   * cache, with the donor's node_modules linked in when its package-lock.json is the same file.
   */
  private codeFor(commitId: string, logFile: string): { ok: true; dir: string } | { ok: false; reason: string } {
    const source = this.options.source;
    if (source === 'working-tree') return { ok: true, dir: this.options.cwd };
    const cached = this.checkouts.get(commitId);
    if (cached) return { ok: true, dir: cached };
    const sha = this.resolveCommit(commitId);
    if (!sha) return { ok: false, reason: `commit ${commitId} is not in the repository ${source.gitRepo} (Render fails the build: it cannot check it out)` };
    const dir = path.join(this.cacheDir(), sha);
    if (!existsSync(dir)) {
      const staging = `${dir}.tmp-${randomHex(3)}`;
      mkdirSync(staging, { recursive: true });
      try {
        // A gitRepo below the repository's root exports that folder only (as Render's rootDir does).
        const prefix = execFileSync('git', ['-C', source.gitRepo, 'rev-parse', '--show-prefix'], { encoding: 'utf8' }).trim();
        const tree = prefix ? `${sha}:${prefix.replace(/\/$/, '')}` : sha;
        const tar = execFileSync('git', ['-C', source.gitRepo, 'archive', '--format=tar', tree], { maxBuffer: 1024 * 1024 * 1024 });
        execFileSync('tar', ['-x', '-C', staging], { input: tar });
        const donorLock = sha256File(path.join(this.options.cwd, 'package-lock.json'));
        const lock = sha256File(path.join(staging, 'package-lock.json'));
        if (lock !== undefined && lock === donorLock && existsSync(path.join(this.options.cwd, 'node_modules'))) {
          symlinkSync(path.join(this.options.cwd, 'node_modules'), path.join(staging, 'node_modules'), 'dir');
          this.log(logFile, `commit ${sha}: package-lock.json matches ${this.options.cwd}'s: its node_modules is reused`);
        }
        renameSync(staging, dir);
      } catch (err) {
        rmSync(staging, { recursive: true, force: true });
        return { ok: false, reason: `could not export commit ${sha}: ${(err as Error).message.split('\n')[0]}` };
      }
      this.log(logFile, `commit ${sha}: exported from ${source.gitRepo} into ${dir}`);
    }
    this.checkouts.set(commitId, dir);
    this.checkouts.set(sha, dir);
    return { ok: true, dir };
  }

  /** Starts the service's load balancer on a loopback port (kept across deploys) and returns the service URL. */
  async register(serviceId: string): Promise<string> {
    let registering = this.registering.get(serviceId);
    if (!registering) {
      registering = this.openSlot(serviceId);
      this.registering.set(serviceId, registering);
    }
    const slot = await registering;
    return `http://127.0.0.1:${slot.port}`;
  }

  private async openSlot(serviceId: string): Promise<ServiceSlot> {
    const logFile = path.join(this.logDir, `${serviceId}.log`);
    const lb = new LoadBalancer({
      ...(this.options.upstreamTimeoutMs !== undefined ? { upstreamTimeoutMs: this.options.upstreamTimeoutMs } : {}),
      log: (line) => this.safeLog(logFile, line),
    });
    const port = await lb.listen();
    const slot: ServiceSlot = { serviceId, port, logFile, lb, rollouts: [], queue: Promise.resolve() };
    this.slots.set(serviceId, slot);
    return slot;
  }

  /** The service's log lines (its processes' output and the platform's own lines), for GET /logs. */
  logLines(serviceId: string): PlatformLogLine[] {
    const slot = this.slots.get(serviceId);
    if (!slot) return [];
    this.ingestLogs(slot);
    return [...this.logState(slot).lines];
  }

  private logState(slot: ServiceSlot): LogIngestState {
    let state = this.logs.get(slot.serviceId);
    if (!state) {
      state = newLogIngestState();
      this.logs.set(slot.serviceId, state);
    }
    return state;
  }

  /** Render stamps log lines when it receives them: read what was appended since the last time. */
  private ingestLogs(slot: ServiceSlot): void {
    const instances = slot.rollouts.flatMap((r) => r.instances.map((i) => i.instanceId));
    ingestLogFile(this.logState(slot), slot.logFile, slot.serviceId, instances);
  }

  /** Requests the service's load balancer answered, for GET /metrics/http-requests and http-latency. */
  requestLog(serviceId: string): RequestRecord[] {
    return this.slots.get(serviceId)?.lb.requestLog() ?? [];
  }

  /** RSS readings of the service's instances, for GET /metrics/memory. */
  memorySamples(serviceId: string): MemorySample[] {
    return [...(this.memory.get(serviceId) ?? [])];
  }

  private sampleMemory(): void {
    const at = Date.now();
    for (const slot of this.slots.values()) {
      this.ingestLogs(slot);
      const samples = this.memory.get(slot.serviceId) ?? [];
      for (const instance of slot.rollouts.flatMap((r) => r.instances)) {
        const pid = livePid(instance);
        const bytes = pid === undefined ? undefined : processTreeRss(pid);
        if (bytes !== undefined) samples.push({ at, instanceId: instance.instanceId, bytes });
      }
      if (samples.length > 50_000) samples.splice(0, samples.length - 50_000);
      this.memory.set(slot.serviceId, samples);
    }
  }

  info(serviceId: string): ServicePlatformInfo | undefined {
    const slot = this.slots.get(serviceId);
    if (!slot) return undefined;
    const routed = new Set(slot.lb.routed().map((u) => u.key));
    const instances = slot.rollouts.flatMap((r) => r.instances).filter((i) => i.state !== 'stopped' && i.state !== 'failed');
    const first = slot.live?.instances.find((i) => routed.has(i.instanceId)) ?? slot.live?.instances[0];
    return {
      serviceId,
      port: slot.port,
      url: `http://127.0.0.1:${slot.port}`,
      logFile: slot.logFile,
      pid: first ? livePid(first) : undefined,
      instanceId: first?.instanceId,
      commitId: first?.spec.commitId,
      liveDeployId: slot.live?.info.deployId,
      instances: instances.map((i) => ({
        instanceId: i.instanceId,
        deployId: i.deployId,
        commitId: i.spec.commitId,
        port: i.port,
        pid: livePid(i),
        state: i.state,
        routed: routed.has(i.instanceId),
        inFlight: slot.lb.inFlightTo(i.instanceId),
        requests: slot.lb.sentTo(i.instanceId),
        restarts: i.restarts,
        createdAt: new Date(i.createdAt).toISOString(),
        startedAt: new Date(i.startedAt).toISOString(),
      })),
      rollouts: slot.rollouts.map((r) => ({ ...r.info, instanceIds: r.instances.map((i) => i.instanceId) })),
      loadBalancer: slot.lb.snapshot(),
    };
  }

  all(): ServicePlatformInfo[] {
    return [...this.slots.keys()].flatMap((id) => this.info(id) ?? []);
  }

  /**
   * Rolls `spec` out with overlap, as Render does for a service without a disk: starts its numInstances
   * instances next to the live ones, waits until each passes the health check, shifts traffic to them, then
   * drains and stops the old ones in the background. If a new instance fails, the deploy fails, the new
   * instances are stopped, and traffic stays where it was.
   */
  async deploy(spec: LaunchSpec): Promise<{ ok: true } | { ok: false; reason: string }> {
    await this.register(spec.serviceId);
    const slot = this.slots.get(spec.serviceId)!;
    return this.serially(slot, () => this.rollOut(slot, spec));
  }

  /** Sets the live deploy's number of instances: starts the missing ones, drains and stops the extra ones. */
  async scale(serviceId: string, numInstances: number): Promise<void> {
    const slot = this.slots.get(serviceId);
    if (!slot) return;
    await this.serially(slot, () => this.rescale(slot, numInstances));
  }

  /** Runs the build command with the service's env, as Render does before each deploy; ok when it exits 0. */
  async build(spec: { serviceId: string; command: string; envVars: Record<string, string>; commitId: string }): Promise<{ ok: boolean; reason: string }> {
    await this.register(spec.serviceId);
    const slot = this.slots.get(spec.serviceId)!;
    const code = this.codeFor(spec.commitId, slot.logFile);
    if (!code.ok) {
      this.log(slot.logFile, `build failed: ${code.reason}`);
      return { ok: false, reason: code.reason };
    }
    // Git source: a commit is built once; every later deploy of it (a rollback too) reuses that build.
    const marker = path.join(code.dir, BUILT_MARKER);
    if (this.options.source !== 'working-tree' && existsSync(marker)) {
      this.log(slot.logFile, `build of commit ${spec.commitId} reused (built once, in ${code.dir})`);
      return { ok: true, reason: '' };
    }
    const result = await this.runOnce({ ...spec, kind: 'build' });
    if (result.ok && this.options.source !== 'working-tree') writeFileSync(marker, `${new Date().toISOString()}\n`);
    return result;
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
    const slot = this.slots.get(spec.serviceId)!;
    if (this.closed) return { ok: false, reason: 'emulator is closing' };
    const kind = spec.kind ?? 'pre-deploy';
    this.log(slot.logFile, `running ${kind} command (commit ${spec.commitId}): ${spec.command}`);
    const env = this.baseEnv(spec.envVars, slot, slot.port, spec.serviceId, spec.commitId, `${spec.serviceId}-${kind === 'build' ? 'build' : 'predeploy'}`);
    if (kind === 'build') env.PATH = `${this.buildPath}${path.delimiter}${env.PATH ?? ''}`;
    const source = this.codeFor(spec.commitId, slot.logFile);
    if (!source.ok) return { ok: false, reason: source.reason };
    const child = this.spawnService(spec.command, env, slot.logFile, source.dir);
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
    this.safeLog(slot.logFile, `${kind} command exited with ${code ?? 'no code'}`);
    return code === 0 ? { ok: true, reason: '' } : { ok: false, reason: `${kind} command exited with ${code ?? 'no code'}` };
  }

  /** Stops the service's instances and its load balancer, and forgets it (the service was deleted). */
  async remove(serviceId: string): Promise<void> {
    const slot = this.slots.get(serviceId);
    if (!slot) return;
    this.slots.delete(serviceId);
    this.registering.delete(serviceId);
    slot.live = undefined; // no crash restart for a deleted service
    slot.lb.route([]);
    await Promise.all(slot.rollouts.flatMap((r) => r.instances).map((i) => this.terminate(slot, i, 0)));
    await slot.lb.close();
  }

  /** Stops every instance (SIGTERM, then SIGKILL after a short grace period) and every load balancer. */
  async close(graceMs = 2_000): Promise<void> {
    this.closed = true;
    clearInterval(this.healthTimer);
    clearInterval(this.memoryTimer);
    for (const child of this.oneOffs) killGroup(child, 'SIGKILL');
    for (const slot of this.slots.values()) slot.lb.route([]);
    await Promise.all(
      [...this.slots.values()].flatMap((slot) => slot.rollouts.flatMap((r) => r.instances).map((i) => this.terminate(slot, i, graceMs))),
    );
    await Promise.all([...this.background]);
    await Promise.all([...this.slots.values()].map((slot) => slot.lb.close()));
    process.removeListener('exit', this.onParentExit);
    // The npm shim is ours either way; a log folder we made ourselves goes with it (pass logDir to keep the logs).
    rmSync(this.buildPath, { recursive: true, force: true });
    if (this.ownsLogDir) rmSync(this.logDir, { recursive: true, force: true });
  }

  // ------------------------------------------------------------ deploys and scaling

  private serially<T>(slot: ServiceSlot, work: () => Promise<T>): Promise<T> {
    const run = slot.queue.then(work, work);
    slot.queue = run.catch(() => undefined);
    return run;
  }

  private async rollOut(slot: ServiceSlot, spec: LaunchSpec): Promise<{ ok: true } | { ok: false; reason: string }> {
    if (this.closed) return { ok: false, reason: 'emulator is closing' };
    const count = spec.hasDisk ? 1 : Math.max(1, spec.numInstances ?? 1);
    const deployId = spec.deployId ?? `deploy-${randomHex(4)}`;
    const previous = slot.live;
    if (spec.hasDisk && previous) {
      // A disk belongs to one instance at a time: Render stops the old instance before it starts the new one,
      // so a service with a disk has a gap on each deploy (its load balancer answers 503 meanwhile).
      slot.live = undefined;
      this.reroute(slot);
      this.log(slot.logFile, `deploy ${deployId}: the service has a disk: stopping the live instance first (no overlap)`);
      await this.drainRollout(slot, previous);
    }
    const rollout: Rollout = {
      spec,
      instances: [],
      info: { deployId, commitId: spec.commitId, phase: 'starting', numInstances: count, startedAt: new Date().toISOString(), instanceIds: [] },
    };
    slot.rollouts.unshift(rollout);
    this.log(slot.logFile, `deploy ${deployId} (commit ${spec.commitId}): starting ${count} instance(s) next to the live ones`);
    const results = await Promise.all(Array.from({ length: count }, () => this.startInstance(slot, rollout)));
    const verdict = rolloutVerdict(rollout.instances.map((i) => i.state));
    if (verdict !== 'healthy' || this.closed) {
      const reason = results.find((r) => !r.ok)?.reason ?? 'emulator is closing';
      this.advance(rollout, 'instance_failed');
      rollout.info.failureReason = reason;
      this.log(slot.logFile, `deploy ${deployId} failed (${reason}); traffic stays on the live instances`);
      await Promise.all(rollout.instances.map((i) => this.terminate(slot, i, 0)));
      this.trimHistory(slot);
      if (spec.hasDisk && previous && !this.closed) {
        // The old instance is already gone: like Render, bring the previous deploy back.
        this.log(slot.logFile, `restarting the previous deploy ${previous.info.deployId}`);
        await this.rollOut(slot, previous.spec);
      }
      return { ok: false, reason };
    }
    rollout.info.healthyAt = new Date().toISOString();
    // The shift comes before the old set hears anything: by the time it drains it gets no new request.
    slot.live = rollout;
    this.advance(rollout, 'traffic_shifted');
    this.reroute(slot);
    rollout.info.shiftedAt = new Date().toISOString();
    this.log(slot.logFile, `deploy ${deployId}: traffic shifted to ${rollout.instances.map((i) => `${i.instanceId}:${i.port}`).join(', ')}`);
    if (previous && !spec.hasDisk) this.inBackground(this.drainRollout(slot, previous));
    return { ok: true };
  }

  private async rescale(slot: ServiceSlot, desired: number): Promise<void> {
    const live = slot.live;
    if (!live || this.closed || live.spec.hasDisk) return;
    live.info.numInstances = desired;
    const plan = scalePlan(live.instances, desired);
    if (plan.retire.length > 0) {
      const retiring = live.instances.filter((i) => plan.retire.includes(i.instanceId));
      for (const instance of retiring) this.transition(instance, 'drain');
      this.reroute(slot);
      this.log(slot.logFile, `scale to ${desired}: retiring ${plan.retire.join(', ')}`);
      this.inBackground(Promise.all(retiring.map((i) => this.drainInstance(slot, i))));
    }
    if (plan.start > 0) {
      this.log(slot.logFile, `scale to ${desired}: starting ${plan.start} instance(s)`);
      const before = new Set(live.instances);
      await Promise.all(Array.from({ length: plan.start }, () => this.startInstance(slot, live)));
      this.reroute(slot);
      // One that never became healthy may still be running (a hung start): it must not linger unrouted.
      const failed = live.instances.filter((i) => !before.has(i) && i.state === 'failed');
      await Promise.all(failed.map((i) => this.terminate(slot, i, 0)));
    }
  }

  /** Starts one instance of `rollout` on a fresh port and waits for its health check. */
  private async startInstance(slot: ServiceSlot, rollout: Rollout): Promise<{ ok: true } | { ok: false; reason: string }> {
    const instance: Instance = {
      instanceId: `${slot.serviceId}-${randomHex(3)}`,
      port: await allocateLoopbackPort(),
      spec: rollout.spec,
      deployId: rollout.info.deployId,
      state: 'starting',
      restarts: 0,
      createdAt: Date.now(),
      startedAt: Date.now(),
    };
    rollout.instances.push(instance);
    return this.launch(slot, rollout, instance);
  }

  /** Spawns the instance's process (first start or a restart in place) and waits for its health check. */
  private async launch(slot: ServiceSlot, rollout: Rollout, instance: Instance): Promise<{ ok: true } | { ok: false; reason: string }> {
    if (this.closed) {
      this.transition(instance, 'gave_up');
      return { ok: false, reason: 'emulator is closing' };
    }
    const { spec } = instance;
    const env = this.baseEnv(spec.envVars, slot, instance.port, spec.serviceId, spec.commitId, instance.instanceId);
    this.log(slot.logFile, `starting ${instance.instanceId} (deploy ${instance.deployId}, commit ${spec.commitId}) on port ${instance.port}`);
    const code = this.codeFor(spec.commitId, slot.logFile);
    if (!code.ok) {
      this.transition(instance, 'health_check_timed_out');
      return { ok: false, reason: code.reason };
    }
    const child = this.spawnService(spec.startCommand, env, slot.logFile, code.dir);
    instance.child = child;
    instance.startedAt = Date.now();
    instance.failingSince = undefined;
    let exited = false;
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      if (exited) return;
      exited = true;
      this.safeLog(slot.logFile, `${instance.instanceId} exited (code ${code ?? 'none'}, signal ${signal ?? 'none'})`);
      if (instance.child !== child) return; // an earlier incarnation
      const wasServing = instance.state === 'healthy' || instance.state === 'unhealthy';
      this.transition(instance, 'exited');
      if (wasServing) this.onCrash(slot, rollout, instance);
    };
    child.once('exit', onExit);
    child.once('error', () => onExit(null, null));

    const deadline = Date.now() + (this.options.readyTimeoutMs ?? 30_000);
    const url = `http://127.0.0.1:${instance.port}${spec.healthCheckPath || '/'}`;
    while (Date.now() < deadline) {
      if (exited) return { ok: false, reason: `process exited before passing its health check (see ${slot.logFile})` };
      if (this.closed || instance.state !== 'starting') return { ok: false, reason: 'emulator is closing' };
      const status = await probe(url);
      if (status !== undefined && (status === 200 || !spec.healthCheckPath)) {
        if (exited || instance.state !== 'starting') continue;
        this.transition(instance, 'passed_health_check');
        this.log(slot.logFile, `${instance.instanceId} passed its health check`);
        return { ok: true };
      }
      await sleep(100);
    }
    this.transition(instance, 'health_check_timed_out');
    return { ok: false, reason: `health check ${spec.healthCheckPath || '/'} did not answer 200 in time` };
  }

  /** Render restarts a crashed instance in place: same instance id and port, same deploy. */
  private onCrash(slot: ServiceSlot, rollout: Rollout, instance: Instance): void {
    this.reroute(slot);
    // What the crashed process left in its group (children) goes too, and frees the port for the restart.
    if (instance.child) killGroup(instance.child, 'SIGKILL');
    const maxRestarts = this.options.maxRestarts ?? 20;
    const restart = async () => {
      while (!this.closed && slot.live === rollout && (instance.state === 'crashed' || instance.state === 'failed')) {
        if (instance.restarts >= maxRestarts) {
          this.transition(instance, 'gave_up');
          this.safeLog(slot.logFile, `${instance.instanceId} crashed ${instance.restarts} times: giving up on it`);
          return;
        }
        await sleep(restartDelayMs(instance.restarts));
        if (this.closed || slot.live !== rollout || !(instance.state === 'crashed' || instance.state === 'failed')) return;
        instance.restarts += 1;
        this.transition(instance, 'restarting');
        this.safeLog(slot.logFile, `${instance.instanceId} crashed: restart ${instance.restarts}`);
        const result = await this.launch(slot, rollout, instance);
        if (result.ok) {
          this.reroute(slot);
          return;
        }
        if (instance.child) await stopGroup(instance.child, 0);
      }
    };
    this.inBackground(restart());
  }

  /** One round of periodic health checks over the live instances (one probe per instance at a time). */
  private checkHealth(): void {
    if (this.closed) return;
    const limits = {
      unhealthyAfterMs: this.options.healthChecks?.unhealthyAfterMs ?? 15_000,
      restartAfterMs: this.options.healthChecks?.restartAfterMs ?? 60_000,
    };
    for (const slot of this.slots.values()) {
      for (const instance of slot.live?.instances ?? []) {
        if (instance.probing || (instance.state !== 'healthy' && instance.state !== 'unhealthy')) continue;
        instance.probing = true;
        const { healthCheckPath } = instance.spec;
        const child = instance.child;
        void probe(`http://127.0.0.1:${instance.port}${healthCheckPath || '/'}`).then((status) => {
          instance.probing = false;
          if (this.closed || instance.child !== child) return;
          const passed = status !== undefined && (status === 200 || !healthCheckPath);
          if (passed) instance.failingSince = undefined;
          else instance.failingSince ??= Date.now();
          const failingFor = instance.failingSince === undefined ? undefined : Date.now() - instance.failingSince;
          const action = healthCheckAction(instance.state, failingFor, limits);
          if (action === 'recovered') {
            this.transition(instance, 'passed_health_check');
            this.safeLog(slot.logFile, `${instance.instanceId} passes its health check again: back in the rotation`);
            this.reroute(slot);
          } else if (action === 'unroute') {
            this.transition(instance, 'failing_health_checks');
            this.safeLog(slot.logFile, `${instance.instanceId} failed its health check for ${failingFor} ms: out of the rotation`);
            this.reroute(slot);
          } else if (action === 'restart' && child) {
            this.safeLog(slot.logFile, `${instance.instanceId} failed its health check for ${failingFor} ms: restarting it`);
            killGroup(child, 'SIGKILL'); // its exit is handled as a crash: restarted in place
          }
        });
      }
    }
  }

  /** The replaced deploy: already unrouted; each instance finishes its in-flight requests, then stops. */
  private async drainRollout(slot: ServiceSlot, rollout: Rollout): Promise<void> {
    this.advance(rollout, 'replaced');
    rollout.info.drainStartedAt = new Date().toISOString();
    for (const instance of rollout.instances) this.transition(instance, 'drain');
    await Promise.all(rollout.instances.map((i) => this.drainInstance(slot, i)));
    this.advance(rollout, 'drained');
    rollout.info.retiredAt = new Date().toISOString();
    this.log(slot.logFile, `deploy ${rollout.info.deployId} retired`);
    this.trimHistory(slot);
  }

  private async drainInstance(slot: ServiceSlot, instance: Instance): Promise<void> {
    const graceMs = this.graceMs(instance.spec);
    const idle = await slot.lb.idle(instance.instanceId, graceMs);
    if (!idle) this.safeLog(slot.logFile, `${instance.instanceId} still had requests in flight after ${graceMs} ms`);
    await this.terminate(slot, instance, graceMs);
  }

  /** SIGTERM, wait up to graceMs for the process group, then SIGKILL; closes the LB's connections to it. */
  private async terminate(slot: ServiceSlot, instance: Instance, graceMs: number): Promise<void> {
    if (instance.state === 'stopped') return;
    this.transition(instance, 'terminate');
    slot.lb.forget(instance.instanceId);
    if (instance.child) await stopGroup(instance.child, graceMs);
    instance.state = 'stopped';
  }

  /** Points the load balancer at the live deploy's healthy instances. */
  private reroute(slot: ServiceSlot): void {
    const instances = slot.live?.instances.filter((i) => isRoutable(i.state)) ?? [];
    slot.lb.route(instances.map((i) => ({ key: i.instanceId, port: i.port })));
  }

  private transition(instance: Instance, event: InstanceEvent): void {
    instance.state = nextInstanceState(instance.state, event);
  }

  private advance(rollout: Rollout, event: RolloutEvent): void {
    rollout.info.phase = nextRolloutPhase(rollout.info.phase, event);
  }

  private graceMs(spec: LaunchSpec): number {
    return Math.min((spec.maxShutdownDelaySeconds ?? 30) * 1000, this.options.shutdownGraceMs ?? 5_000);
  }

  private trimHistory(slot: ServiceSlot): void {
    const holding = (r: Rollout) => r === slot.live || r.instances.some((i) => i.state !== 'stopped' && i.state !== 'failed');
    let kept = 0;
    slot.rollouts = slot.rollouts.filter((r) => holding(r) || (kept += 1) <= ROLLOUT_HISTORY);
  }

  private inBackground(work: Promise<unknown>): void {
    const tracked = work.catch((error: unknown) => this.safeLogAll(`background work failed: ${String(error)}`));
    this.background.add(tracked);
    void tracked.finally(() => this.background.delete(tracked));
  }

  // ------------------------------------------------------------ processes

  /** The one place a service process is spawned: sh -c, its own process group, output to the service log. */
  private spawnService(command: string, env: Record<string, string>, logFile: string, cwd: string): ChildProcess {
    const fd = openSync(logFile, 'a');
    try {
      return spawn('sh', ['-c', command], {
        cwd,
        env,
        detached: true, // own process group, so the whole tree can be signalled
        stdio: ['ignore', fd, fd],
      });
    } finally {
      closeSync(fd);
    }
  }

  private baseEnv(
    envVars: Record<string, string>,
    slot: ServiceSlot,
    port: number,
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
      PORT: String(port),
      RENDER: 'true',
      RENDER_GIT_COMMIT: commitId,
      RENDER_SERVICE_ID: serviceId,
      RENDER_INSTANCE_ID: instanceId,
      // The service's public URL is its load balancer's, never an instance's.
      RENDER_EXTERNAL_URL: `http://127.0.0.1:${slot.port}`,
    });
  }

  private log(logFile: string, line: string): void {
    const fd = openSync(logFile, 'a');
    try {
      writeSync(fd, `[render-emulator ${new Date().toISOString()}] ${line}\n`);
    } finally {
      closeSync(fd);
    }
  }

  private safeLog(logFile: string, line: string): void {
    try {
      this.log(logFile, line);
    } catch {
      // Log directory removed during shutdown: nothing to record.
    }
  }

  private safeLogAll(line: string): void {
    for (const slot of this.slots.values()) this.safeLog(slot.logFile, line);
  }

  private killAllNow(): void {
    for (const slot of this.slots.values()) {
      for (const instance of slot.rollouts.flatMap((r) => r.instances)) if (instance.child) killGroup(instance.child, 'SIGKILL');
    }
    for (const child of this.oneOffs) killGroup(child, 'SIGKILL');
  }
}

function livePid(instance: Instance): number | undefined {
  const child = instance.child;
  if (!child || instance.state === 'stopped') return undefined;
  return child.exitCode === null && child.signalCode === null ? child.pid : undefined;
}

function probe(url: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 2_000, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}
