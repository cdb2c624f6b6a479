/**
 * `npm run bench:service`: memory service throughput and latency on loopback, in one run:
 *   1. a bare Express POST route (express.json + a fixed JSON answer): the baseline;
 *   2. snippet reads on a cache hit;
 *   3. snippet reads on a cache miss against the Context7 emulator with 50 ms added latency;
 *   4. snippet reads with the emulator hung, once the circuit breaker is open;
 * and, first, start-up: exec -> /readyz 200 and RSS, `node --import tsx` vs the compiled start Render runs
 * (BENCH_START_ONLY=1 for just that part).
 * Prints req/s, p50 and p99 per case, the ratios, and PASS/FAIL against the targets.
 * The load generator (this process), the service + bare route (a child, bench/service-child.ts, compiled as
 * `npm run build` compiles the service unless BENCH_SERVICE_RUNTIME=tsx) and the emulator (another child) run as
 * separate processes on one machine, so read the figures as ratios. The bare route and the cache hit run in
 * BENCH_ROUNDS short alternated rounds with the service process pinned to a CPU of its own (taskset; BENCH_PIN=0
 * leaves placement to the scheduler); the cache-hit target is judged on the median round's hit / bare req/s.
 *
 * A miss's own cost is timed apart, to a hundredth of a millisecond (autocannon rounds to whole ms): one request
 * at a time, alternating the emulator alone, a service miss, a bare node:http proxy (bench/bare-proxy.ts, its own
 * process: the floor under a miss) and a miss of the same service with the other HTTP library under its Context7
 * client (CONTEXT7_HTTP_CLIENT: undici by default, axios the other), so all see the same machine. The same misses are
 * marked inside the service and the proxy (bench/service-miss-marks.ts: arrival, the Context7 request created and
 * sent, its answer read, the answer written; BENCH_MISS_MARKS_CPU=1 adds the main thread's CPU time to each,
 * BENCH_MISS_PROFILE=<file> keeps a CPU profile of them). CONTEXT7_HTTP_CLIENT=axios runs the main service on axios.
 *
 *   --quick    a few seconds: no start-up part, 2 s cases; prints the ratios (`RATIO name value`) and checks the
 *              floors given as BENCH_FLOOR_<NAME> (.ci/checks/bench-service.sh); targets are shown, not enforced.
 *   --profile  CPU profiles of the service process on the bare route, a cache hit and a miss (after warm-up), each
 *              broken down into microseconds per request by step (bench/service-profile.ts); the .cpuprofile
 *              files are kept for Chrome DevTools.
 *   --instructions  machine instructions per request of the service process (all its threads), counted by valgrind's
 *              callgrind: the bare route, a cache hit and a miss (emulator +0 ms), BENCH_INSTR_REQUESTS each after
 *              BENCH_INSTR_WARMUP requests of warm-up, BENCH_INSTR_ROUNDS rounds (2); BENCH_INSTR_MISS=0 leaves the
 *              miss out. Slow (minutes), but the count barely depends on the machine's load, where req/s and CPU
 *              time do: the measure to compare code changes by on a busy machine. Each round starts from a full
 *              GC (--expose-gc, the child's /__gc); the median round is the figure to compare. BENCH_INSTR_DUMP=<folder>
 *              keeps each counted round's callgrind dump there, for callgrind_annotate.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import { createContext7Client, DEFAULT_CONTEXT7_HTTP_CLIENT } from '../service/context7/client';
import { generateScopeIdSync } from '../service/domain/scope-id';
import { SERVICE_RUNTIME } from '../infra/service-runtime';
import { BARE_PROXY_PATH } from './bare-proxy';
import { BENCH_CALLER_KEY, BENCH_CONTEXT7_API_KEY, PROFILE_SAMPLING_US } from './service-child';
import type { MissSegments } from './service-miss-marks';
import { breakdown, OTHER_STEP, STEPS, type CpuProfile, type ProfileBreakdown } from './service-profile';

const QUICK = process.argv.includes('--quick');
const PROFILE = process.argv.includes('--profile');
const INSTRUCTIONS = process.argv.includes('--instructions');
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? (QUICK ? 1.5 : 5));
const WARMUP_S = QUICK ? 0.5 : 1;
/**
 * Bare route vs cache hit: this many alternated rounds (bare-hit, then hit-bare, and so on), each BENCH_ROUND_S long;
 * the ratio is the median round's hit / bare, shown with its spread (issue 29's eighth round).
 */
const THROUGHPUT_ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? (QUICK ? 5 : 9)));
const ROUND_S = Number(process.env.BENCH_ROUND_S ?? (QUICK ? 1 : 2));
/**
 * During those rounds the service process runs on a CPU of its own and this process (the load generator), the
 * emulator and the bare proxy on the others (`taskset`, Linux, 2 CPUs or more; BENCH_PIN=0 leaves placement to the
 * scheduler, as before the eighth round). Affinity is restored after the rounds: the timed misses run as before.
 */
const PIN = process.env.BENCH_PIN !== '0';
/** Sequential miss / emulator-alone pairs timed with performance.now(). */
const MISS_SAMPLES = Number(process.env.BENCH_MISS_SAMPLES ?? (QUICK ? 30 : 100));
/** Throughput cases (bare vs cache hit) run with this many connections. */
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
/** Latency-target cases (miss, hung) run lighter, so p50/p99 show per-request cost, not queueing on a shared box. */
const LATENCY_CONNECTIONS = Number(process.env.BENCH_LATENCY_CONNECTIONS ?? 2);
const EMULATOR_LATENCY_MS = 50;
const API_KEY = BENCH_CONTEXT7_API_KEY;
const CALLER_AUTH = { authorization: `Bearer ${BENCH_CALLER_KEY}` };
/**
 * How the service process runs: `compiled` (default) as Render runs it, `node --enable-source-maps` on code compiled
 * by scripts/build.mjs's options; `tsx` under the TypeScript loader (what this bench ran before issue 29's third round).
 */
const SERVICE_RUNTIME_MODE = process.env.BENCH_SERVICE_RUNTIME === 'tsx' ? 'tsx' : 'compiled';

interface CaseResult {
  name: string;
  connections: number;
  requestsPerSecond: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  /** --profile: the service process's CPU per request during the measured run. */
  profile?: ProfileBreakdown;
  /** CPU time of the service process (all its threads) per answered request, µs; null off Linux. */
  cpuUsPerRequest: number | null;
  /** The same, its main thread only. */
  mainCpuUsPerRequest: number | null;
  /** Share of the run's wall time the service process was on a CPU (all threads; 1 = one CPU's worth). */
  serviceBusy: number | null;
  /** The same for this process, the load generator (autocannon). */
  loadGeneratorBusy: number;
}

/**
 * The service child's pid: each measured run also reads the CPU time its threads used (/proc/<pid>/task/<tid>/schedstat,
 * ns) and divides it by the requests answered. On a shared machine, req/s follows whatever CPU share the scheduler
 * gives the process; CPU per request does not, so hit/bare by CPU per request is the steadier figure.
 */
let servicePid: number | null = null;

function serviceCpuNs(): { all: number; main: number } | null {
  if (servicePid === null) return null;
  try {
    let all = 0;
    let main = 0;
    for (const task of fs.readdirSync(`/proc/${servicePid}/task`)) {
      const ns = Number(fs.readFileSync(`/proc/${servicePid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
      all += ns;
      // The main (JavaScript) thread's task id is the pid; the rest are V8's helpers (GC, compiler) and libuv's pool.
      if (Number(task) === servicePid) main += ns;
    }
    return { all, main };
  } catch {
    return null; // not Linux, or the process is gone: the figure is left out
  }
}

/** taskset answers at once; a stuck one counts as absent (null status), so the bench runs unpinned and says so. */
const TASKSET_DEADLINE_MS = 5_000;

/** A process's CPU affinity list (`taskset -c -p`), e.g. "0,1" or "0-3"; null without taskset. */
function affinityOf(pid: number): string | null {
  const shown = spawnSync('taskset', ['-c', '-p', String(pid)], { encoding: 'utf8', timeout: TASKSET_DEADLINE_MS });
  if (shown.status !== 0) return null;
  return /list:\s*(\S+)/.exec(shown.stdout)?.[1] ?? null;
}

function cpusIn(list: string): number[] {
  return list.split(',').flatMap((part) => {
    const [from, to] = part.split('-').map(Number);
    return Array.from({ length: (to ?? from!) - from! + 1 }, (_, i) => from! + i);
  });
}

/** Sets the affinity of every thread of `pid` (taskset -a). */
function setAffinity(pid: number, cpus: number[] | string): boolean {
  const list = typeof cpus === 'string' ? cpus : cpus.join(',');
  return spawnSync('taskset', ['-a', '-c', '-p', list, String(pid)], { stdio: 'ignore', timeout: TASKSET_DEADLINE_MS }).status === 0;
}

/**
 * Puts the service process on the last CPU this process may use and everything else of the bench (this process,
 * the emulator, the bare proxy) on the rest; returns how to undo it, or null when it cannot (not Linux, no taskset,
 * one CPU). On 2 CPUs the scheduler otherwise moves the service and autocannon between the CPUs and, now and then,
 * onto one: the bare route's req/s moved by half between quiet runs minutes apart (issue 29's seventh-round verdict).
 */
function pinForThroughput(servicePidToPin: number, others: number[]): { describe: string; restore: () => void } | null {
  if (!PIN || process.platform !== 'linux') return null;
  const original = affinityOf(process.pid);
  if (!original) return null;
  const cpus = cpusIn(original);
  if (cpus.length < 2) return null;
  const serviceCpu = cpus[cpus.length - 1]!;
  const rest = cpus.slice(0, -1);
  const saved = [servicePidToPin, process.pid, ...others].map((pid) => [pid, affinityOf(pid) ?? original] as const);
  const ok = setAffinity(servicePidToPin, [serviceCpu]) && [process.pid, ...others].every((pid) => setAffinity(pid, rest));
  const restore = () => {
    for (const [pid, list] of saved) setAffinity(pid, list);
  };
  if (!ok) {
    restore();
    return null;
  }
  return { describe: `service on CPU ${serviceCpu}, load generator, emulator and bare proxy on CPU ${rest.join(',')}`, restore };
}

/** --profile: the bench child's control routes (on the bare app's port), and where profiles are kept. */
let profileControlUrl: string | null = null;
const profileDir = PROFILE ? fs.mkdtempSync(path.join(os.tmpdir(), 'bench-service-profiles-')) : '';

function progress(message: string): void {
  process.stderr.write(`[bench:service] ${message}\n`);
}

async function measure(
  name: string,
  url: string,
  body: () => string,
  options: { warmupS?: number; durationS?: number; headers?: Record<string, string>; connections?: number } = {},
): Promise<CaseResult> {
  const connections = options.connections ?? CONNECTIONS;
  const run = (duration: number) =>
    autocannon({
      url,
      method: 'POST',
      connections,
      duration,
      headers: { 'content-type': 'application/json', ...CALLER_AUTH, ...options.headers },
      requests: [{ setupRequest: (request) => ({ ...request, body: body() }) }],
    });
  progress(`${name}: warming up`);
  await run(options.warmupS ?? WARMUP_S);
  progress(`${name}: measuring for ${options.durationS ?? DURATION_S}s with ${connections} connections`);
  if (profileControlUrl) await fetch(`${profileControlUrl}/__profile/start`, { method: 'POST' });
  const cpuBefore = serviceCpuNs();
  const ownBefore = process.cpuUsage();
  const wallBefore = performance.now();
  const result = await run(options.durationS ?? DURATION_S);
  const wallUs = (performance.now() - wallBefore) * 1000;
  const own = process.cpuUsage(ownBefore);
  const cpuAfter = serviceCpuNs();
  let profile: ProfileBreakdown | undefined;
  if (profileControlUrl) {
    const cpuProfile = (await (await fetch(`${profileControlUrl}/__profile/stop`, { method: 'POST' })).json()) as CpuProfile;
    const file = path.join(profileDir, `${name.replace(/[^A-Za-z0-9]+/g, '-')}.cpuprofile`);
    fs.writeFileSync(file, JSON.stringify(cpuProfile));
    profile = breakdown(cpuProfile, result.requests.total);
  }
  return {
    name,
    connections,
    requestsPerSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    profile,
    cpuUsPerRequest: cpuBefore === null || cpuAfter === null ? null : (cpuAfter.all - cpuBefore.all) / 1000 / Math.max(1, result.requests.total),
    mainCpuUsPerRequest: cpuBefore === null || cpuAfter === null ? null : (cpuAfter.main - cpuBefore.main) / 1000 / Math.max(1, result.requests.total),
    serviceBusy: cpuBefore === null || cpuAfter === null ? null : (cpuAfter.all - cpuBefore.all) / 1000 / wallUs,
    loadGeneratorBusy: (own.user + own.system) / wallUs,
  };
}

/** Status line, headers and body of one answer, as bytes on the wire: the bare route's and a hit's are compared. */
async function responseShape(url: string, body: string): Promise<{ headerBytes: number; bodyBytes: number; headers: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...CALLER_AUTH } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const lines = [`HTTP/1.1 ${res.statusCode} ${res.statusMessage}`];
        for (let i = 0; i < res.rawHeaders.length; i += 2) lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
        const head = `${lines.join('\r\n')}\r\n\r\n`;
        resolve({
          headerBytes: Buffer.byteLength(head),
          bodyBytes: Buffer.concat(chunks).length,
          headers: res.rawHeaders.filter((_v, i) => i % 2 === 0).join(', '),
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** One POST on a keep-alive agent, timed from the call to the last byte of the answer (ms, sub-ms precision). */
function timedPost(agent: http.Agent, url: string, headers: Record<string, string>, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - started) : reject(new Error(`${url}: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

interface MissTiming {
  samples: number;
  emulatorP50: number;
  missP50: number;
  emulatorP90: number;
  missP90: number;
  /** The bare node:http proxy (bench/bare-proxy.ts) in the same alternation: the floor under a miss. */
  bareProxyP50?: number;
  bareProxyP90?: number;
  /** The library under the service's Context7 client (CONTEXT7_HTTP_CLIENT's default): what missP50 measures. */
  httpClient?: string;
  /** The same service with the other library under its Context7 client, in the same alternation. */
  otherHttpClient?: string;
  otherMissP50?: number;
  otherMissP90?: number;
  /** Medians of the same misses' marks inside the service process. */
  inService?: MissSegments;
  /** The same marks inside the bare proxy. */
  inBareProxy?: MissSegments;
}

/**
 * A miss against the emulator alone, to a hundredth of a ms: one request at a time, alternating the emulator
 * directly, the bare proxy (when given) and a service miss (a fresh query each time), each on its own keep-alive
 * connection.
 */
async function timeMisses(
  emulatorUrl: string,
  serviceUrl: string,
  scopeId: string,
  samples: number,
  { bareProxyUrl, otherServiceUrl }: { bareProxyUrl?: string; otherServiceUrl?: string } = {},
): Promise<MissTiming> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const emulator: number[] = [];
  const proxied: number[] = [];
  const miss: number[] = [];
  const otherMiss: number[] = [];
  try {
    for (let i = -3; i < samples; i += 1) {
      // Each service miss follows a request to another process: the service's work after an answer (its log line,
      // counters) must not delay the next miss's arrival, as it would not in a miss 50 ms later.
      const direct = await timedPost(agent, `${emulatorUrl}/v1/snippets/search`, { authorization: `Bearer ${API_KEY}` }, JSON.stringify({ scopeId, query: `timed direct ${i}`, limit: 10 }));
      const service = await timedPost(agent, `${serviceUrl}/api/memory/snippets`, CALLER_AUTH, JSON.stringify({ scopeId, query: `timed miss ${i}` }));
      const viaProxy = bareProxyUrl
        ? await timedPost(agent, `${bareProxyUrl}${BARE_PROXY_PATH}`, {}, JSON.stringify({ scopeId, query: `timed proxied ${i}`, limit: 10 }))
        : null;
      const viaOther = otherServiceUrl
        ? await timedPost(agent, `${otherServiceUrl}/api/memory/snippets`, CALLER_AUTH, JSON.stringify({ scopeId, query: `timed other miss ${i}` }))
        : null;
      // The first pairs open the connections.
      if (i >= 0) {
        emulator.push(direct);
        if (viaProxy !== null) proxied.push(viaProxy);
        miss.push(service);
        if (viaOther !== null) otherMiss.push(viaOther);
      }
    }
  } finally {
    agent.destroy();
  }
  return {
    samples,
    emulatorP50: percentile(emulator, 50),
    missP50: percentile(miss, 50),
    emulatorP90: percentile(emulator, 90),
    missP90: percentile(miss, 90),
    ...(proxied.length > 0 ? { bareProxyP50: percentile(proxied, 50), bareProxyP90: percentile(proxied, 90) } : {}),
    ...(otherMiss.length > 0 ? { otherMissP50: percentile(otherMiss, 50), otherMissP90: percentile(otherMiss, 90) } : {}),
  };
}

/** Spawns `node <args>` and resolves with the first JSON line it prints on stdout. */
async function spawnJson<T>(args: string[], env: Record<string, string>, wrapper: string[] = []): Promise<{ child: ChildProcess; info: T }> {
  const child = spawn(wrapper[0] ?? process.execPath, wrapper.length > 0 ? [...wrapper.slice(1), process.execPath, ...args] : args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const info = await new Promise<T>((resolve, reject) => {
    let buffer = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const newline = buffer.indexOf('\n');
      if (newline >= 0) resolve(JSON.parse(buffer.slice(0, newline)) as T);
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code} before it was ready`)));
  });
  return { child, info };
}

const children: ChildProcess[] = [];

/**
 * The service process's node arguments. Compiled: bench/service-child.ts bundled with `npm run build`'s own esbuild
 * options (scripts/build.mjs) into dist/bench/, its Context7 contract copied beside it as the build copies it beside
 * dist/service/main.js, and run with `--enable-source-maps` as `npm start` runs the service.
 */
async function serviceChildArgs(): Promise<{ service: string[]; bareProxy: string[] }> {
  const root = path.resolve(__dirname, '..');
  // --instructions starts each round from a collected heap (service-child.ts's /__gc): see countInstructions.
  const gcFlag = INSTRUCTIONS ? ['--expose-gc'] : [];
  if (SERVICE_RUNTIME_MODE === 'tsx') {
    return {
      service: [...gcFlag, '--import', 'tsx', path.join(root, 'bench', 'service-child.ts')],
      bareProxy: ['--import', 'tsx', path.join(root, 'bench', 'bare-proxy.ts')],
    };
  }
  const esbuild = await import('esbuild');
  const { BUNDLE_OPTIONS } = (await import(pathToFileURL(path.join(root, 'scripts', 'build.mjs')).href)) as { BUNDLE_OPTIONS: Record<string, unknown> };
  await esbuild.build({ ...BUNDLE_OPTIONS, entryPoints: ['bench/service-child.ts', 'bench/bare-proxy.ts'], outdir: 'dist' });
  fs.copyFileSync(path.join(root, 'service', 'context7', 'openapi.yaml'), path.join(root, 'dist', 'bench', 'openapi.yaml'));
  return {
    service: [...gcFlag, '--enable-source-maps', path.join(root, 'dist', 'bench', 'service-child.js')],
    // The floor under a miss (bench/bare-proxy.ts), compiled and started as the service is.
    bareProxy: ['--enable-source-maps', path.join(root, 'dist', 'bench', 'bare-proxy.js')],
  };
}

async function stopChildren(): Promise<void> {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const force = setTimeout(() => child.kill('SIGKILL'), 5_000);
          child.once('exit', () => {
            clearTimeout(force);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
}

async function setFaults(emulatorUrl: string, faults: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${emulatorUrl}/__emulator/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(faults),
  });
  if (res.status !== 200) throw new Error(`setting emulator faults failed: HTTP ${res.status}`);
}

/** Start-up, before and after the compiled start: the same service, started by two commands. */
const START_COMMANDS = {
  tsx: 'exec node --import tsx service/main.ts',
  compiled: SERVICE_RUNTIME.startCommand,
} as const;
const START_ROUNDS = Number(process.env.BENCH_START_ROUNDS ?? 5);

interface StartSample {
  readyMs: number;
  rssMb: number;
}

async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Runs a start command as Render does (sh -c, exec), and times exec -> first /readyz 200; RSS once ready. */
async function startOnce(command: string): Promise<StartSample> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-start-'));
  const port = await freePort();
  const started = process.hrtime.bigint();
  const child = spawn('sh', ['-c', command], {
    cwd: path.resolve(__dirname, '..'),
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', HOST: '127.0.0.1', PORT: String(port), DATA_DIR: dataDir, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${command} exited with ${child.exitCode} before /readyz answered 200`);
      const status = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status, () => 0);
      if (status === 200) break;
      if (Date.now() > deadline) throw new Error(`${command}: /readyz not 200 within 60 s`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const readyMs = Number(process.hrtime.bigint() - started) / 1e6;
    // exec: the shell became node, so the child's pid is the service's.
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? NaN);
    return { readyMs, rssMb: rssKb / 1024 };
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

type StartFigures = Record<keyof typeof START_COMMANDS, { readyMs: number; rssMb: number; samples: StartSample[] }>;

/** Both start commands, alternated START_ROUNDS times in one run (same machine state); medians. */
async function measureStarts(): Promise<StartFigures> {
  progress('building dist/ (the compiled start runs it)');
  const build = spawnSync(process.execPath, [path.resolve(__dirname, '..', 'scripts', 'build.mjs')], { stdio: 'inherit' });
  if (build.status !== 0) throw new Error('npm run build failed');
  const samples: Record<keyof typeof START_COMMANDS, StartSample[]> = { tsx: [], compiled: [] };
  for (let round = 0; round < START_ROUNDS; round += 1) {
    for (const name of Object.keys(START_COMMANDS) as (keyof typeof START_COMMANDS)[]) {
      progress(`start-up ${round + 1}/${START_ROUNDS}: ${START_COMMANDS[name]}`);
      samples[name].push(await startOnce(START_COMMANDS[name]));
    }
  }
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  const figures = {} as StartFigures;
  for (const [name, list] of Object.entries(samples) as [keyof typeof START_COMMANDS, StartSample[]][]) {
    figures[name] = { readyMs: median(list.map((s) => s.readyMs)), rssMb: median(list.map((s) => s.rssMb)), samples: list };
  }
  return figures;
}

function startLines(figures: StartFigures): string[] {
  const pad = (text: string, width: number) => text.padEnd(width);
  const { tsx, compiled } = figures;
  return [
    `start-up (median of ${START_ROUNDS}, alternated; exec -> first /readyz 200, RSS at that moment; node ${process.version})`,
    `${pad('start command', 58)}${pad('ready ms', 10)}RSS MB`,
    ...(Object.keys(START_COMMANDS) as (keyof typeof START_COMMANDS)[]).map(
      (name) => `${pad(START_COMMANDS[name], 58)}${pad(figures[name].readyMs.toFixed(0), 10)}${figures[name].rssMb.toFixed(1)}`,
    ),
    `INFO  compiled / tsx: ready time ${(compiled.readyMs / tsx.readyMs).toFixed(2)}x, RSS ${(compiled.rssMb / tsx.rssMb).toFixed(2)}x`,
    '',
  ];
}

interface ClientComparison {
  samples: number;
  /** Calls made back to back (+0 ms) and with the emulator adding 50 ms (each call after an idle wait, as a miss). */
  byLatency: { latencyMs: number; byClient: Record<string, { p50: number; mean: number }> }[];
  missing?: string;
}

/**
 * What the Context7 client's HTTP library costs per call, measured in this process against the emulator: the
 * service's own client (service/context7/client.ts: the deadline, breaker and schema check around axios), axios as
 * that client configures it, a raw http.request on the same keep-alive http.Agent, and undici's Pool (its own
 * keep-alive connection; undici is what Node's fetch is built on). Alternated call by call, so the machine's load
 * falls on all alike. Twice: back to back (+0 ms), and with the emulator adding 50 ms as in the timed misses, where
 * each call starts after a 50 ms idle wait (colder caches: what a miss meets) and the figure to read is p50 - 50.
 */
async function compareHttpClients(emulatorUrl: string, scopeId: string): Promise<ClientComparison> {
  progress('HTTP clients: the service\'s client vs axios vs raw http vs undici against the emulator');
  const { default: axios } = await import('axios');
  // undici is a dependency of the service since issue 29's seventh round; the comparison still says so instead of
  // failing the whole bench if it is gone.
  const undici = await import('undici').catch(() => null);
  if (!undici) return { samples: 0, byLatency: [], missing: 'undici is not installed (npm i -D undici to compare it)' };
  const { Pool } = undici;
  const agent = new http.Agent({ keepAlive: true, timeout: 4_000 });
  const headers = { authorization: `Bearer ${API_KEY}`, accept: 'application/json', 'content-type': 'application/json' };
  const viaAxios = axios.create({
    baseURL: emulatorUrl,
    allowAbsoluteUrls: false,
    maxRedirects: 0,
    validateStatus: () => true,
    responseType: 'json',
    maxContentLength: 5 * 1024 * 1024,
    httpAgent: agent,
    headers,
  });
  const serviceClient = createContext7Client({ baseUrl: emulatorUrl, apiKey: API_KEY, timeoutMs: 2_000 });
  const pool = new Pool(emulatorUrl, { connections: 1, pipelining: 1 });
  const body = (i: number) => JSON.stringify({ scopeId, query: `client ${i}`, limit: 10 });
  const calls: Record<string, (i: number) => Promise<unknown>> = {
    [`the service's Context7 client (deadline, breaker, ${DEFAULT_CONTEXT7_HTTP_CLIENT}, schema check)`]: (i) => serviceClient.searchSnippets({ scopeId, query: `client ${i}`, limit: 10 }),
    "axios (the client's settings, keep-alive Agent)": async (i) => (await viaAxios.post('/v1/snippets/search', body(i), { signal: AbortSignal.timeout(2_000) })).data,
    'http.request (the same Agent) + JSON.parse': (i) =>
      new Promise((resolve, reject) => {
        const req = http.request(`${emulatorUrl}/v1/snippets/search`, { method: 'POST', agent, headers, signal: AbortSignal.timeout(2_000) }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(body(i));
      }),
    'undici Pool.request (keep-alive) + body.json()': async (i) => {
      const res = await pool.request({ path: '/v1/snippets/search', method: 'POST', headers, body: body(i), signal: AbortSignal.timeout(2_000) });
      return res.body.json();
    },
  };
  const samples = Number(process.env.BENCH_CLIENT_SAMPLES ?? 400);
  const byLatency: ClientComparison['byLatency'] = [];
  try {
    for (const latencyMs of [0, EMULATOR_LATENCY_MS]) {
      await setFaults(emulatorUrl, { latencyMs });
      // Each call takes 50 ms with the latency: a quarter as many of them.
      const count = latencyMs === 0 ? samples : Math.ceil(samples / 4);
      const times: Record<string, number[]> = Object.fromEntries(Object.keys(calls).map((name) => [name, []]));
      for (let i = latencyMs === 0 ? -20 : -3; i < count; i += 1) {
        for (const [name, call] of Object.entries(calls)) {
          const started = performance.now();
          await call(i);
          if (i >= 0) times[name]!.push(performance.now() - started);
        }
      }
      byLatency.push({
        latencyMs,
        byClient: Object.fromEntries(
          Object.entries(times).map(([name, values]) => [name, { p50: percentile(values, 50), mean: values.reduce((a, b) => a + b, 0) / values.length }]),
        ),
      });
    }
  } finally {
    await setFaults(emulatorUrl, { latencyMs: 0 });
    agent.destroy();
    serviceClient.close();
    await pool.close();
  }
  return { samples, byLatency };
}

async function main(): Promise<void> {
  const starts = QUICK || PROFILE || INSTRUCTIONS ? null : await measureStarts();
  if (process.env.BENCH_START_ONLY) {
    process.stdout.write(['', ...startLines(starts!)].join('\n'));
    return;
  }
  const results: CaseResult[] = [];
  const scopeId = generateScopeIdSync({ locationId: 'bench', agentId: 'agent-1', promptText: 'You are a helpful assistant' });
  const body = JSON.stringify({ scopeId, query: 'greeting' });
  const loadAtStart = os.loadavg()[0];
  try {
    progress('starting the Context7 emulator and the service (separate processes)');
    const emulator = await spawnJson<{ url: string }>(['--import', 'tsx', 'service/context7/emulator-main.ts', '--port', '0', '--host', '127.0.0.1'], {
      CONTEXT7_API_KEY: API_KEY,
    });
    const emulatorUrl = emulator.info.url;
    progress(`service process: ${SERVICE_RUNTIME_MODE} (BENCH_SERVICE_RUNTIME=tsx|compiled)`);
    const childArgs = await serviceChildArgs();
    const servers = await spawnJson<{ serviceUrl: string; httpClient: string; otherServiceUrl: string; otherHttpClient: string; bareUrl: string }>(
      childArgs.service,
      {
        BENCH_SERVICE_CHILD: '1',
        BENCH_EMULATOR_URL: emulatorUrl,
        ...(PROFILE ? { BENCH_PROFILE: '1' } : {}),
        // Under valgrind the service runs ~50x slower: a Context7 call must not time out for that.
        ...(INSTRUCTIONS ? { BENCH_CONTEXT7_TIMEOUT_MS: '30000' } : {}),
      },
      INSTRUCTIONS ? callgrindWrapper() : [],
    );
    const { serviceUrl, otherServiceUrl, bareUrl } = servers.info;
    // The floor under a miss, in its own process (bench/bare-proxy.ts); idle until the timed misses.
    const bareProxy = await spawnJson<{ url: string }>(childArgs.bareProxy, {
      BENCH_BARE_PROXY: '1',
      BENCH_EMULATOR_URL: emulatorUrl,
      BENCH_CONTEXT7_API_KEY: API_KEY,
    });
    if (PROFILE) profileControlUrl = bareUrl;
    servicePid = servers.child.pid ?? null;

    const seeded = await fetch(`${serviceUrl}/api/memory/patterns`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...CALLER_AUTH },
      body: JSON.stringify({ scopeId, patterns: ['Greet the caller by name', 'Confirm the address', 'Offer a callback'] }),
    });
    if (seeded.status !== 200) throw new Error(`seeding failed: HTTP ${seeded.status}`);
    const seededOther = await fetch(`${otherServiceUrl}/api/memory/patterns`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...CALLER_AUTH },
      body: JSON.stringify({ scopeId, patterns: ['Greet the caller by name', 'Confirm the address', 'Offer a callback'] }),
    });
    if (seededOther.status !== 200) throw new Error(`seeding the second service failed: HTTP ${seededOther.status}`);
    if (INSTRUCTIONS) {
      process.stdout.write(await countInstructions(servers.child.pid!, bareUrl, serviceUrl, body, scopeId, loadAtStart));
      return;
    }
    const shapes = { bare: await responseShape(`${bareUrl}/bare`, body), hit: await responseShape(`${serviceUrl}/api/memory/snippets`, body) };

    // 1 and 2, alternated in short rounds (bare-hit, hit-bare, ...), so JIT warm-up, drift and machine noise fall on
    // both alike; the ratio is the median round's, shown with its spread, and each case's row is its median round.
    // The service has a CPU of its own meanwhile (pinForThroughput), so a round measures what one CPU of service
    // answers, not where the scheduler happened to put it and the load generator.
    const bareRuns: CaseResult[] = [];
    const hitRuns: CaseResult[] = [];
    const rounds = PROFILE ? 1 : THROUGHPUT_ROUNDS;
    const pinned = PROFILE ? null : pinForThroughput(servicePid!, [emulator.child.pid!, bareProxy.child.pid!]);
    progress(`bare vs hit: ${rounds} alternated rounds; ${pinned ? pinned.describe : 'CPU placement left to the scheduler'}`);
    try {
      for (let round = 0; round < rounds; round += 1) {
        // The first round warms each case up as before; later ones only reopen autocannon's connections.
        const options = PROFILE ? {} : { durationS: ROUND_S, warmupS: round === 0 ? WARMUP_S : 0.25 };
        const bareCase = async () => bareRuns.push(await measure('bare Express route', `${bareUrl}/bare`, () => body, options));
        const hitCase = async () => hitRuns.push(await measure('snippets, cache hit', `${serviceUrl}/api/memory/snippets`, () => body, options));
        if (round % 2 === 0) {
          await bareCase();
          await hitCase();
        } else {
          await hitCase();
          await bareCase();
        }
      }
    } finally {
      pinned?.restore();
    }
    const medianRun = (runs: CaseResult[]) => [...runs].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond)[Math.floor((runs.length - 1) / 2)]!;
    results.push(medianRun(bareRuns), medianRun(hitRuns));
    const roundRatios = hitRuns.map((hit, i) => hit.requestsPerSecond / bareRuns[i]!.requestsPerSecond);
    const cpuRatios = hitRuns.flatMap((hit, i) =>
      hit.cpuUsPerRequest && bareRuns[i]!.cpuUsPerRequest ? [bareRuns[i]!.cpuUsPerRequest! / hit.cpuUsPerRequest] : [],
    );

    // 3. Misses: every request a distinct query; Context7 adds 50 ms. The emulator alone is measured too.
    await setFaults(emulatorUrl, { latencyMs: EMULATOR_LATENCY_MS });
    let missCounter = 0;
    const missCase = () =>
      measure('snippets, miss (Context7 +50ms)', `${serviceUrl}/api/memory/snippets`, () => JSON.stringify({ scopeId, query: `miss ${missCounter++}` }), {
        connections: LATENCY_CONNECTIONS,
      });
    if (PROFILE) {
      results.push(await missCase());
      await setFaults(emulatorUrl, { latencyMs: 0 });
      process.stdout.write(profileReport(results));
      return;
    }
    // --quick keeps what CI floors (bare vs hit, the timed miss); the autocannon miss and the hung case run in full.
    let direct: CaseResult | undefined;
    let hung: CaseResult | undefined;
    if (!QUICK) {
      let emulatorCounter = 0;
      direct = await measure('(reference) emulator alone, +50ms', `${emulatorUrl}/v1/snippets/search`, () =>
        JSON.stringify({ scopeId, query: `direct ${emulatorCounter++}`, limit: 10 }),
        { headers: { authorization: `Bearer ${API_KEY}` }, connections: LATENCY_CONNECTIONS },
      );
      results.push(await missCase());
      // The same for the second instance (the other library): the timed misses below then find both libraries' code
      // equally warmed up (without it the main instance's had ~200 more misses behind it, and V8 had optimized more
      // of it), and this row gives a miss's CPU through the other library (both instances share the process).
      let otherCounter = 0;
      results.push(
        await measure(`snippets, miss via ${servers.info.otherHttpClient}`, `${otherServiceUrl}/api/memory/snippets`, () => JSON.stringify({ scopeId, query: `other miss ${otherCounter++}` }), {
          connections: LATENCY_CONNECTIONS,
        }),
      );
    }
    progress(`miss vs emulator alone: ${MISS_SAMPLES} sequential pairs, timed to 0.01 ms`);
    await fetch(`${bareUrl}/__marks/start`, { method: 'POST' });
    await fetch(`${bareProxy.info.url}/__marks/start`, { method: 'POST' });
    const missTiming = await timeMisses(emulatorUrl, serviceUrl, scopeId, MISS_SAMPLES, { bareProxyUrl: bareProxy.info.url, otherServiceUrl });
    missTiming.httpClient = servers.info.httpClient;
    missTiming.otherHttpClient = servers.info.otherHttpClient;
    missTiming.inService = (await (await fetch(`${bareUrl}/__marks/stop`, { method: 'POST' })).json()) as MissSegments;
    missTiming.inBareProxy = (await (await fetch(`${bareProxy.info.url}/__marks/stop`, { method: 'POST' })).json()) as MissSegments;
    const clients = QUICK ? null : await compareHttpClients(emulatorUrl, scopeId);

    if (!QUICK) {
      // 4. Context7 hung: trip the breaker with a few timed-out reads, then measure the fallback path.
      await setFaults(emulatorUrl, { latencyMs: 0, hang: true });
      progress('hung: tripping the circuit breaker');
      const breakerState = async () => ((await (await fetch(`${bareUrl}/breaker`)).json()) as { state: string }).state;
      for (let i = 0; i < 10 && (await breakerState()) !== 'open'; i += 1) {
        await fetch(`${serviceUrl}/api/memory/snippets`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...CALLER_AUTH },
          body: JSON.stringify({ scopeId, query: `trip ${i}` }),
        });
      }
      if ((await breakerState()) !== 'open') throw new Error('the circuit breaker did not open');
      let hungCounter = 0;
      hung = await measure('snippets, Context7 hung (breaker open)', `${serviceUrl}/api/memory/snippets`, () =>
        JSON.stringify({ scopeId, query: `hung ${hungCounter++}` }),
        { connections: LATENCY_CONNECTIONS },
      );
      results.push(hung);
      if ((await breakerState()) !== 'open') throw new Error('the breaker closed during the hung case: figures are not valid');
      await setFaults(emulatorUrl, { hang: false });
    }

    const metrics = (await (await fetch(`${serviceUrl}/api/metrics/memory`)).json()) as { totals: Record<string, number> };
    report(
      { cases: direct ? [...results, direct] : results, roundRatios, bareRuns, hitRuns, placement: pinned?.describe ?? null, cpuRatios, hung, direct, miss: missTiming, clients },
      shapes,
      metrics.totals,
      starts,
      loadAtStart,
    );
  } finally {
    await stopChildren();
  }
}

/** Instructions per request, --instructions. */
const INSTR_REQUESTS = Number(process.env.BENCH_INSTR_REQUESTS ?? 2000);
const INSTR_WARMUP = Number(process.env.BENCH_INSTR_WARMUP ?? 4000);
const INSTR_ROUNDS = Math.max(1, Number(process.env.BENCH_INSTR_ROUNDS ?? 2));
const INSTR_MISS = process.env.BENCH_INSTR_MISS !== '0';
const callgrindOut = INSTRUCTIONS ? fs.mkdtempSync(path.join(os.tmpdir(), 'bench-service-callgrind-')) : '';
// Counts are read live (callgrind_control); the dump valgrind writes at the service's exit is not needed after.
if (callgrindOut) process.on('exit', () => fs.rmSync(callgrindOut, { recursive: true, force: true }));

function callgrindWrapper(): string[] {
  const found = spawnSync('valgrind', ['--version'], { encoding: 'utf8' });
  if (found.status !== 0) throw new Error('--instructions needs valgrind (Debian: apt-get install valgrind)');
  // No cache or branch simulation: instructions only (the default --smc-check covers V8's JIT code); all threads.
  const out = INSTR_DUMP ? path.resolve(INSTR_DUMP) : callgrindOut;
  if (INSTR_DUMP) fs.mkdirSync(out, { recursive: true });
  return ['valgrind', '--tool=callgrind', `--callgrind-out-file=${out}/callgrind.out.%p`, '--dump-instr=no', '--compress-strings=no'];
}

/**
 * BENCH_INSTR_DUMP=<folder>: each counted round is also dumped there (callgrind_control -d, one file per round and
 * case), for `callgrind_annotate`: V8's builtins, runtime functions, GC and libuv/OpenSSL are named in node's binary
 * (JIT-compiled JavaScript is not), so two cases' dumps say where their instructions differ.
 */
const INSTR_DUMP = process.env.BENCH_INSTR_DUMP ?? '';

/** The process's instruction count since the last zeroing (callgrind_control -e Ir), then zeroes it. */
function instructionsSinceZero(pid: number, dumpAs?: string): number {
  const shown = spawnSync('callgrind_control', ['-e', 'Ir', String(pid)], { encoding: 'utf8' });
  // One line per thread ("Th 1   123,456"): the process's count is their sum.
  const perThread = [...shown.stdout.matchAll(/^\s*Th\s*\d+\s+([\d,]+)\s*$/gm)].map((m) => Number(m[1]!.replace(/,/g, '')));
  if (shown.status !== 0 || perThread.length === 0) throw new Error(`callgrind_control -e Ir ${pid} failed: ${shown.stdout}${shown.stderr}`);
  // A dump zeroes the counters as -z does.
  const zeroed = spawnSync('callgrind_control', INSTR_DUMP && dumpAs ? [`--dump=${dumpAs}`, String(pid)] : ['-z', String(pid)], { encoding: 'utf8' });
  if (zeroed.status !== 0) throw new Error(`callgrind_control -z ${pid} failed: ${zeroed.stdout}${zeroed.stderr}`);
  return perThread.reduce((a, b) => a + b, 0);
}

async function sendRequests(url: string, amount: number, connections: number, body: () => string, headers: Record<string, string> = {}): Promise<number> {
  const result = await autocannon({
    url,
    method: 'POST',
    connections,
    amount,
    timeout: 60,
    headers: { 'content-type': 'application/json', ...CALLER_AUTH, ...headers },
    requests: [{ setupRequest: (request) => ({ ...request, body: body() }) }],
  });
  if (result.non2xx > 0) throw new Error(`${url}: ${result.non2xx} non-2xx answers`);
  // A socket error under valgrind's slowness (a keep-alive socket the server closed) costs a reconnect: shown, not fatal.
  if (result.errors > 0 || result.timeouts > 0) progress(`${url}: ${result.errors} socket errors, ${result.timeouts} timeouts (reconnected)`);
  return result.requests.total;
}

/**
 * --instructions: each case warmed up, then the counters zeroed, INSTR_REQUESTS requests sent and the count read;
 * twice, alternated, so a stray JIT compilation or GC shows as a difference between the rounds.
 */
async function countInstructions(pid: number, bareUrl: string, serviceUrl: string, body: string, scopeId: string, loadAtStart: number): Promise<string> {
  let missCounter = 0;
  const missBody = () => JSON.stringify({ scopeId, query: `counted miss ${missCounter++}` });
  const cases: { name: string; url: string; body: () => string; connections: number }[] = [
    { name: 'bare Express route', url: `${bareUrl}/bare`, body: () => body, connections: CONNECTIONS },
    { name: 'snippets, cache hit', url: `${serviceUrl}/api/memory/snippets`, body: () => body, connections: CONNECTIONS },
    // Misses one at a time, as the sequential miss timing sends them; the cache keeps every one (distinct queries).
    ...(INSTR_MISS ? [{ name: 'snippets, miss (emulator +0 ms)', url: `${serviceUrl}/api/memory/snippets`, body: missBody, connections: 1 }] : []),
  ];
  const counts = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  for (const c of cases) {
    progress(`instructions: warming up ${c.name} (${INSTR_WARMUP} requests under valgrind)`);
    await sendRequests(c.url, c.name.includes('miss') ? Math.ceil(INSTR_WARMUP / 10) : INSTR_WARMUP, c.connections, c.body);
  }
  for (let round = 0; round < INSTR_ROUNDS; round += 1) {
    for (const c of cases) {
      // Misses go one at a time through two processes under load: fewer of them (a miss is ~40x a hit's work).
      const amount = c.name.includes('miss') ? Math.ceil(INSTR_REQUESTS / 10) : INSTR_REQUESTS;
      progress(`instructions: round ${round + 1}, ${c.name}, ${amount} requests`);
      // A full collection first, outside the count: whether a round happened to include one of the few major GCs
      // moved a round's count by up to ±40 % (issue 29's fourth round). Scavenges of the round's own garbage count.
      await fetch(`${bareUrl}/__gc`, { method: 'POST' });
      instructionsSinceZero(pid);
      const startedAt = performance.now();
      const answered = await sendRequests(c.url, amount, c.connections, c.body);
      const perRequest = instructionsSinceZero(pid, `round ${round + 1} ${c.name}`) / answered;
      counts.get(c.name)!.push(perRequest);
      const seconds = ((performance.now() - startedAt) / 1000).toFixed(0);
      progress(`instructions: round ${round + 1}, ${c.name}: ${Math.round(perRequest).toLocaleString('en-US')} per request (${seconds} s)`);
    }
  }
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    const middle = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  };
  const bare = median(counts.get(cases[0]!.name)!);
  const hit = median(counts.get(cases[1]!.name)!);
  const rounds = Array.from({ length: INSTR_ROUNDS }, (_, i) => `round ${i + 1}`.padStart(12)).join('');
  const lines = [
    '',
    `service process instructions per request (valgrind callgrind, all threads; node ${process.version}, service ${SERVICE_RUNTIME_MODE}, load average ${loadAtStart.toFixed(1)} at start, ${os.loadavg()[0].toFixed(1)} at end; ${new Date().toISOString()})`,
    `${'case'.padEnd(40)}${rounds}${'median'.padStart(12)}`,
    ...cases.map(
      (c) =>
        `${c.name.padEnd(40)}${counts.get(c.name)!.map((n) => Math.round(n).toLocaleString('en-US').padStart(12)).join('')}${Math.round(median(counts.get(c.name)!)).toLocaleString('en-US').padStart(12)}`,
    ),
    `RATIO INSTR_HIT_VS_BARE ${(bare / hit).toFixed(3)}  (bare / cache-hit instructions per request, median rounds)`,
    '',
  ];
  return lines.join('\n');
}

/** The timed misses' marks inside the service and the bare proxy (medians of each segment, so they need not add up exactly). */
function missSegmentLines(miss: MissTiming): string[] {
  const marks = miss.inService!;
  const p = miss.inBareProxy;
  // The marks tell the libraries apart by their diagnostics channels: node:http's are axios's, undici's its own.
  const segmentsOf = (library: string | undefined) => (library === 'undici' ? marks.undici : marks);
  const s = segmentsOf(miss.httpClient) ?? marks;
  const u = miss.otherHttpClient ? segmentsOf(miss.otherHttpClient) : undefined;
  // JSON sent the CPU figures as null when they were not taken (NaN).
  const ms = (wall: number | undefined, cpu: number | null | undefined) =>
    wall === undefined ? '-' : `${wall.toFixed(3)}${cpu === null || cpu === undefined || Number.isNaN(cpu) ? '' : ` (CPU ${cpu.toFixed(3)})`}`;
  const rows: [string, keyof MissSegments['cpu']][] = [
    ['arrived -> upstream http.request created', 'arrivedToCreated'],
    ['-> flushed to its socket (end() done)', 'createdToSent'],
    ["-> upstream's answer read", 'sentToAnswered'],
    ["-> the process's answer written", 'answeredToFinished'],
    ['whole, inside the process', 'arrivedToFinished'],
  ];
  const lines = [
    ...(miss.bareProxyP50 !== undefined
      ? [`bare node:http proxy vs emulator alone, same alternation: p50 ${miss.bareProxyP50.toFixed(2)} vs ${miss.emulatorP50.toFixed(2)} ms, p90 ${miss.bareProxyP90!.toFixed(2)} vs ${miss.emulatorP90.toFixed(2)} ms`]
      : []),
    ...(miss.otherMissP50 !== undefined
      ? [`miss with ${miss.otherHttpClient} under the Context7 client vs emulator alone, same alternation: p50 ${miss.otherMissP50.toFixed(2)} vs ${miss.emulatorP50.toFixed(2)} ms, p90 ${miss.otherMissP90!.toFixed(2)} vs ${miss.emulatorP90.toFixed(2)} ms`]
      : []),
    `  inside each process, medians of ${s.misses} misses${p ? ` / ${p.misses} proxied` : ''}, wall ms (main-thread CPU with BENCH_MISS_MARKS_CPU=1):`,
    `    ${'segment'.padEnd(44)}${`service miss (${miss.httpClient ?? '?'})`.padEnd(26)}${`service miss (${miss.otherHttpClient ?? '-'})`.padEnd(26)}bare proxy`,
    ...rows.map(([label, key]) => `    ${label.padEnd(44)}${ms(s[key], s.cpu[key]).padEnd(26)}${ms(u?.[key], u?.cpu[key]).padEnd(26)}${ms(p?.[key], p?.cpu[key])}`),
    `    ${'p50 from the bench - whole inside'.padEnd(44)}${(miss.missP50 - s.arrivedToFinished).toFixed(3).padEnd(26)}${(u && miss.otherMissP50 !== undefined ? (miss.otherMissP50 - u.arrivedToFinished).toFixed(3) : '-').padEnd(26)}${p && miss.bareProxyP50 !== undefined ? (miss.bareProxyP50 - p.arrivedToFinished).toFixed(3) : '-'}`,
  ];
  return lines;
}

/** --profile: CPU per request by step, the bare route beside a hit and a miss. */
function profileReport(results: CaseResult[]): string {
  const pad = (text: string, width: number) => text.padEnd(width);
  const num = (value: number | undefined, width: number) => (value === undefined ? '' : value.toFixed(1)).padStart(width);
  const lines = [
    '',
    `service process CPU per request, µs (V8 sampling profiler every ${PROFILE_SAMPLING_US} µs, after warm-up; node ${process.version}, service ${SERVICE_RUNTIME_MODE}, load average ${os.loadavg()[0].toFixed(1)})`,
    '',
    `${pad('step', 58)}${results.map((r) => r.name.replace('snippets, ', '').slice(0, 14).padStart(16)).join('')}`,
  ];
  for (const step of [...STEPS.map((s) => s.step), OTHER_STEP]) {
    if (results.every((r) => (r.profile?.perRequestUs.get(step) ?? 0) < 0.05)) continue;
    lines.push(`${pad(step, 58)}${results.map((r) => num(r.profile?.perRequestUs.get(step), 16)).join('')}`);
  }
  lines.push(`${pad('total CPU per request', 58)}${results.map((r) => num(r.profile?.busyUsPerRequest, 16)).join('')}`);
  lines.push(`${pad('req/s during the profile', 58)}${results.map((r) => r.requestsPerSecond.toFixed(0).padStart(16)).join('')}`);
  lines.push(`${pad('process idle share', 58)}${results.map((r) => `${((r.profile?.idleShare ?? 0) * 100).toFixed(0)}%`.padStart(16)).join('')}`);
  for (const r of results) {
    lines.push('', `top functions by own time, ${r.name} (µs per request)`);
    for (const { label, us } of r.profile?.topSelf ?? []) lines.push(`  ${us.toFixed(1).padStart(7)}  ${label}`);
  }
  lines.push('', `profiles (open in Chrome DevTools > Performance): ${profileDir}`, '');
  return lines.join('\n');
}

/** The ratios CI floors (.ci/checks/bench-service.sh): higher is better, measured side by side in this run. */
function ratiosOf(roundRatios: number[], cpuRatios: number[], miss: MissTiming): [string, number, string][] {
  return [
    ...(cpuRatios.length > 0
      ? ([['CPU_HIT_VS_BARE', percentile(cpuRatios, 50), 'bare / cache-hit service CPU per request, the median round']] as [string, number, string][])
      : []),
    ['HIT_VS_BARE', percentile(roundRatios, 50), `cache-hit req/s / bare Express req/s, the median of ${roundRatios.length} alternated rounds`],
    ['EMULATOR_VS_MISS', miss.emulatorP50 / miss.missP50, 'emulator-alone p50 / service-miss p50 (sequential)'],
  ];
}

function report(
  figures: {
    cases: CaseResult[];
    /** hit / bare of each round (adjacent runs) */
    roundRatios: number[];
    bareRuns: CaseResult[];
    hitRuns: CaseResult[];
    /** How the throughput rounds were placed on the CPUs (pinForThroughput), or null. */
    placement: string | null;
    /** bare / hit service CPU per request, each round */
    cpuRatios: number[];
    hung?: CaseResult;
    direct?: CaseResult;
    miss: MissTiming;
    clients: ClientComparison | null;
  },
  shapes: Record<'bare' | 'hit', { headerBytes: number; bodyBytes: number; headers: string }>,
  totals: Record<string, number>,
  starts: StartFigures | null,
  loadAtStart: number,
): void {
  const { cases: results, roundRatios, bareRuns, hitRuns, placement, cpuRatios, hung, direct, miss, clients } = figures;
  const missCase = results.find((r) => r.name.startsWith('snippets, miss'));
  const pad = (text: string, width: number) => text.padEnd(width);
  const lines = [
    '',
    `memory service benchmark (autocannon; bare vs hit ${THROUGHPUT_ROUNDS} alternated rounds of ${ROUND_S}s, ${DURATION_S}s per other case${QUICK ? ', --quick' : ''}, loopback, node ${process.version}, service ${SERVICE_RUNTIME_MODE}, ${os.cpus().length} CPUs, load average ${loadAtStart.toFixed(1)} at start, ${os.loadavg()[0].toFixed(1)} at end; ${new Date().toISOString()})`,
    '',
    `${pad('case', 42)}${pad('conns', 7)}${pad('req/s', 10)}${pad('p50 ms', 9)}${pad('p99 ms', 9)}${pad('CPU µs/req', 12)}${pad('main thread', 13)}non-2xx/errors`,
    ...results.map((r) => {
      const cpu = (value: number | null) => (r.name.includes('emulator alone') || value === null ? '-' : value.toFixed(0));
      return `${pad(r.name, 42)}${pad(String(r.connections), 7)}${pad(r.requestsPerSecond.toFixed(0), 10)}${pad(String(r.p50), 9)}${pad(String(r.p99), 9)}${pad(cpu(r.cpuUsPerRequest), 12)}${pad(cpu(r.mainCpuUsPerRequest), 13)}${r.non2xx}/${r.errors}`;
    }),
    '',
    `miss (${miss.httpClient ?? '?'} under the Context7 client, the default) vs emulator alone, ${miss.samples} sequential pairs: p50 ${miss.missP50.toFixed(2)} vs ${miss.emulatorP50.toFixed(2)} ms, p90 ${miss.missP90.toFixed(2)} vs ${miss.emulatorP90.toFixed(2)} ms`,
    ...(miss.inService ? missSegmentLines(miss) : []),
    `response on the wire: bare ${shapes.bare.headerBytes} B head + ${shapes.bare.bodyBytes} B body (${shapes.bare.headers}); cache hit ${shapes.hit.headerBytes} B head + ${shapes.hit.bodyBytes} B body (${shapes.hit.headers})`,
    '',
  ];
  // The median round's hit / bare (the rounds alternate, so each ratio compares two runs seconds apart).
  const hitRatio = percentile(roundRatios, 50);
  const missOverhead = miss.missP50 - miss.emulatorP50;
  const targets: [string, string, boolean][] = [
    ['cache-hit throughput vs bare Express >= 0.85x', `${hitRatio.toFixed(2)}x`, hitRatio >= 0.85],
    ['miss p50 - emulator-alone p50 <= 2 ms (sequential)', `${missOverhead.toFixed(2)} ms`, missOverhead <= 2],
    ...(hung ? ([['hung Context7, breaker open: p99 < 25 ms', `${hung.p99} ms`, hung.p99 < 25]] as [string, string, boolean][]) : []),
    ['no non-2xx answers or socket errors', `${results.reduce((n, r) => n + r.non2xx + r.errors, 0)}`, results.every((r) => r.non2xx === 0 && r.errors === 0)],
  ];
  // --quick runs on busy CI machines: the targets are shown there, the floors below are what it enforces.
  for (const [target, value, pass] of targets) lines.push(`${QUICK ? (pass ? 'ok  ' : 'miss') : pass ? 'PASS' : 'FAIL'}  ${pad(target, 52)}${value}`);
  if (miss.bareProxyP50 !== undefined) {
    // The floor (bench/bare-proxy.ts): Node's two extra HTTP legs alone, and what the service adds on top of them.
    lines.push(`INFO  ${pad('bare node:http proxy p50 - emulator-alone p50', 52)}${(miss.bareProxyP50 - miss.emulatorP50).toFixed(2)} ms`);
    lines.push(`INFO  ${pad('miss p50 - bare node:http proxy p50', 52)}${(miss.missP50 - miss.bareProxyP50).toFixed(2)} ms`);
  }
  if (miss.otherMissP50 !== undefined) {
    // The same service with the other library under its Context7 client: the library's share, measured as a miss.
    lines.push(`INFO  ${pad(`miss (${miss.otherHttpClient} client) p50 - emulator-alone p50`, 52)}${(miss.otherMissP50 - miss.emulatorP50).toFixed(2)} ms`);
    lines.push(`INFO  ${pad(`miss (${miss.otherHttpClient}) p50 - miss (${miss.httpClient}, the default) p50`, 52)}${(miss.otherMissP50 - miss.missP50).toFixed(2)} ms`);
  }
  if (direct) lines.push(`INFO  ${pad('emulator alone (autocannon): p50 - 50 ms', 52)}${(direct.p50 - EMULATOR_LATENCY_MS).toFixed(1)} ms`);
  if (missCase) lines.push(`INFO  ${pad('miss (autocannon): p50 - 50 ms', 52)}${(missCase.p50 - EMULATOR_LATENCY_MS).toFixed(1)} ms`);
  if (clients) {
    if (clients.missing) lines.push('', `HTTP clients not compared: ${clients.missing}`);
    for (const { latencyMs, byClient } of clients.byLatency) {
      const count = Object.values(byClient)[0] ? (latencyMs === 0 ? clients.samples : Math.ceil(clients.samples / 4)) : 0;
      lines.push(
        '',
        `HTTP client, one POST /v1/snippets/search to the emulator (+${latencyMs} ms) at a time, ${count} each, alternated (this process, not the service)${latencyMs > 0 ? `; p50 - ${latencyMs} ms:` : ':'}`,
      );
      for (const [name, figure] of Object.entries(byClient)) {
        lines.push(`  ${pad(name, 72)}p50 ${(figure.p50 - latencyMs).toFixed(3)} ms  mean ${(figure.mean - latencyMs).toFixed(3)} ms`);
      }
    }
  }
  lines.push('');
  let floorsOk = true;
  lines.push(`INFO  ${pad('cache hit / bare, round by round', 52)}${roundRatios.map((r) => `${r.toFixed(2)}x`).join(' ')}`);
  lines.push(
    `INFO  ${pad('cache hit / bare: median, quartiles, range', 52)}${percentile(roundRatios, 50).toFixed(3)}x, ${percentile(roundRatios, 25).toFixed(3)}-${percentile(roundRatios, 75).toFixed(3)}, ${Math.min(...roundRatios).toFixed(3)}-${Math.max(...roundRatios).toFixed(3)}`,
  );
  lines.push(`INFO  ${pad('throughput rounds: CPU placement', 52)}${placement ?? 'left to the scheduler'}`);
  // Which side limited the rounds: the service near 1 CPU's worth means the service; the load generator near 1 and
  // the service well under it would mean autocannon (the ratio would then say little about the service).
  const busy = (runs: CaseResult[], pick: (r: CaseResult) => number | null) => {
    const values = runs.map(pick).filter((v): v is number => v !== null);
    return values.length === 0 ? '-' : `${(percentile(values, 50) * 100).toFixed(0)} %`;
  };
  for (const [label, runs] of [['bare route', bareRuns], ['cache hit', hitRuns]] as const) {
    lines.push(`INFO  ${pad(`${label}: CPU busy, service / load generator`, 52)}${busy(runs, (r) => r.serviceBusy)} / ${busy(runs, (r) => r.loadGeneratorBusy)} (median round)`);
  }
  if (cpuRatios.length > 0) {
    lines.push(`INFO  ${pad('service CPU per request, bare / cache hit, by round', 52)}${cpuRatios.map((r) => `${r.toFixed(2)}x`).join(' ')}`);
  }
  for (const [name, value, meaning] of ratiosOf(roundRatios, cpuRatios, miss)) {
    lines.push(`RATIO ${pad(name, 18)}${value.toFixed(3)}  (${meaning})`);
    const floor = process.env[`BENCH_FLOOR_${name}`];
    if (floor === undefined) continue;
    const pass = value >= Number(floor);
    floorsOk &&= pass;
    lines.push(`${pass ? 'FLOOR PASS' : 'FLOOR FAIL'}  ${name} ${value.toFixed(3)} ${pass ? '>=' : '<'} ${floor}`);
  }
  lines.push('', `service totals: ${JSON.stringify(totals)}`, '');
  if (starts) lines.push(...startLines(starts));
  process.stdout.write(lines.join('\n'));
  const targetsOk = targets.every(([, , pass]) => pass);
  // A socket error or a non-2xx answer fails even --quick: the figures would not be about the same work.
  const clean = results.every((r) => r.non2xx === 0 && r.errors === 0);
  if (!floorsOk || !clean || (!QUICK && !targetsOk)) process.exitCode = 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`[bench:service] failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
