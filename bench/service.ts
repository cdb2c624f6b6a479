/**
 * `npm run bench:service`: memory service throughput and latency on loopback, in one run:
 *   1. a bare Express POST route (express.json + a fixed JSON answer): the baseline;
 *   2. snippet reads on a cache hit;
 *   3. snippet reads on a cache miss against the Context7 emulator with 50 ms added latency;
 *   4. snippet reads with the emulator hung, once the circuit breaker is open;
 * and, first, start-up: exec -> /readyz 200 and RSS, `node --import tsx` vs the compiled start Render runs
 * (BENCH_START_ONLY=1 for just that part).
 * Prints req/s, p50 and p99 per case, the ratios, and PASS/FAIL against the targets.
 * The load generator (this process), the service + bare route (a child) and the emulator (another child)
 * run as separate processes on one machine, so read the figures as ratios.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import express from 'express';
import pino from 'pino';
import { loadConfig } from '../service/config';
import { createMemoryService } from '../service/compose';
import { startContext7Emulator } from '../service/context7/emulator';
import { generateScopeIdSync } from '../service/domain/scope-id';
import { SERVICE_RUNTIME } from '../infra/service-runtime';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 5);
/** Throughput cases (bare vs cache hit) run with this many connections. */
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
/** Latency-target cases (miss, hung) run lighter, so p50/p99 show per-request cost, not queueing on a shared box. */
const LATENCY_CONNECTIONS = Number(process.env.BENCH_LATENCY_CONNECTIONS ?? 2);
const EMULATOR_LATENCY_MS = 50;
const API_KEY = 'bench-context7-key-0123456789';
/** The service's caller key (issue 13): a local bench value, in both processes, sent on every memory request. */
const CALLER_KEY = 'bench-service-caller-key-0123456789';
const CALLER_AUTH = { authorization: `Bearer ${CALLER_KEY}` };

interface CaseResult {
  name: string;
  connections: number;
  requestsPerSecond: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

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
  await run(options.warmupS ?? 1);
  progress(`${name}: measuring for ${options.durationS ?? DURATION_S}s with ${connections} connections`);
  const result = await run(options.durationS ?? DURATION_S);
  return {
    name,
    connections,
    requestsPerSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

async function listen(handler: http.RequestListener): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Child mode: the bare Express app and the memory service, in a process of their own. */
async function serve(): Promise<void> {
  const emulatorUrl = process.env.BENCH_EMULATOR_URL;
  if (!emulatorUrl) throw new Error('BENCH_EMULATOR_URL is required in --serve mode');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-service-'));
  const config = loadConfig({
    DATA_DIR: dataDir,
    ENABLE_CONTEXT7_MEMORY: 'true',
    CONTEXT7_API_KEY: API_KEY,
    CONTEXT7_BASE_URL: emulatorUrl,
    CONTEXT7_TIMEOUT_MS: '1000',
    LOG_LEVEL: 'info',
    RENDER_INSTANCE_ID: 'bench',
    MEMORY_API_KEYS: `bench:${CALLER_KEY}`,
  });
  // As `npm start` builds it, logging at info to /dev/null (the same serialization work, no terminal).
  const service = createMemoryService(config, {
    logDestination: pino.destination({ dest: '/dev/null', sync: false }),
    enableSchedule: false,
    // A long half-open delay keeps the breaker open for the whole hung case.
    context7ClientOptions: { breakerThreshold: 5, breakerHalfOpenAfterMs: 120_000 },
  });
  const { url } = await service.start(0, '127.0.0.1');

  // The baseline: the same body parsing and a fixed answer. /breaker reports the service's breaker.
  const bareApp = express();
  bareApp.post('/bare', express.json(), (_req, res) => {
    res.json({ snippets: [], source: 'bare' });
  });
  bareApp.get('/breaker', (_req, res) => {
    res.json({ state: service.context7?.circuitState() ?? 'none' });
  });
  const bare = await listen(bareApp);
  process.stdout.write(`${JSON.stringify({ serviceUrl: url, bareUrl: bare.url })}\n`);
  process.once('SIGTERM', () => {
    void Promise.all([service.stop(), bare.close()]).finally(() => {
      fs.rmSync(dataDir, { recursive: true, force: true });
      process.exit(0);
    });
  });
}

/** Spawns a child and resolves with the first JSON line it prints on stdout. */
async function spawnJson<T>(args: string[], env: Record<string, string>): Promise<{ child: ChildProcess; info: T }> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
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

async function main(): Promise<void> {
  const starts = await measureStarts();
  if (process.env.BENCH_START_ONLY) {
    process.stdout.write(['', ...startLines(starts)].join('\n'));
    return;
  }
  const results: CaseResult[] = [];
  const scopeId = generateScopeIdSync({ locationId: 'bench', agentId: 'agent-1', promptText: 'You are a helpful assistant' });
  const body = JSON.stringify({ scopeId, query: 'greeting' });
  try {
    progress('starting the Context7 emulator and the service (separate processes)');
    const emulator = await spawnJson<{ url: string }>(['service/context7/emulator-main.ts', '--port', '0', '--host', '127.0.0.1'], {
      CONTEXT7_API_KEY: API_KEY,
    });
    const emulatorUrl = emulator.info.url;
    const servers = await spawnJson<{ serviceUrl: string; bareUrl: string }>([__filename, '--serve'], { BENCH_EMULATOR_URL: emulatorUrl });
    const { serviceUrl, bareUrl } = servers.info;

    const seeded = await fetch(`${serviceUrl}/api/memory/patterns`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...CALLER_AUTH },
      body: JSON.stringify({ scopeId, patterns: ['Greet the caller by name', 'Confirm the address', 'Offer a callback'] }),
    });
    if (seeded.status !== 200) throw new Error(`seeding failed: HTTP ${seeded.status}`);

    // 1 and 2, interleaved twice (best of two each), so JIT warm-up and machine noise hit both alike.
    const bareRuns: CaseResult[] = [];
    const hitRuns: CaseResult[] = [];
    for (let round = 0; round < 2; round += 1) {
      bareRuns.push(await measure('bare Express route', `${bareUrl}/bare`, () => body));
      hitRuns.push(await measure('snippets, cache hit', `${serviceUrl}/api/memory/snippets`, () => body));
    }
    const best = (runs: CaseResult[]) => runs.reduce((a, b) => (b.requestsPerSecond > a.requestsPerSecond ? b : a));
    results.push(best(bareRuns), best(hitRuns));

    // 3. Misses: every request a distinct query; Context7 adds 50 ms. The emulator alone is measured too.
    await setFaults(emulatorUrl, { latencyMs: EMULATOR_LATENCY_MS });
    let emulatorCounter = 0;
    const direct = await measure('(reference) emulator alone, +50ms', `${emulatorUrl}/v1/snippets/search`, () =>
      JSON.stringify({ scopeId, query: `direct ${emulatorCounter++}`, limit: 10 }),
      { headers: { authorization: `Bearer ${API_KEY}` }, connections: LATENCY_CONNECTIONS },
    );
    let missCounter = 0;
    results.push(
      await measure('snippets, miss (Context7 +50ms)', `${serviceUrl}/api/memory/snippets`, () =>
        JSON.stringify({ scopeId, query: `miss ${missCounter++}` }),
        { connections: LATENCY_CONNECTIONS },
      ),
    );

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
    results.push(
      await measure('snippets, Context7 hung (breaker open)', `${serviceUrl}/api/memory/snippets`, () =>
        JSON.stringify({ scopeId, query: `hung ${hungCounter++}` }),
        { connections: LATENCY_CONNECTIONS },
      ),
    );
    if ((await breakerState()) !== 'open') throw new Error('the breaker closed during the hung case: figures are not valid');
    await setFaults(emulatorUrl, { hang: false });

    const metrics = (await (await fetch(`${serviceUrl}/api/metrics/memory`)).json()) as { totals: Record<string, number> };
    report([...results, direct], metrics.totals, starts);
  } finally {
    await stopChildren();
  }
}

function report(results: CaseResult[], totals: Record<string, number>, starts: StartFigures): void {
  const [bare, hit, miss, hung, direct] = results;
  const pad = (text: string, width: number) => text.padEnd(width);
  const lines = [
    '',
    `memory service benchmark (autocannon, ${DURATION_S}s per case, loopback, node ${process.version}, ${os.cpus().length} CPUs, load average ${os.loadavg()[0].toFixed(1)})`,
    '',
    `${pad('case', 42)}${pad('conns', 7)}${pad('req/s', 10)}${pad('p50 ms', 9)}${pad('p99 ms', 9)}non-2xx/errors`,
    ...results.map(
      (r) =>
        `${pad(r.name, 42)}${pad(String(r.connections), 7)}${pad(r.requestsPerSecond.toFixed(0), 10)}${pad(String(r.p50), 9)}${pad(String(r.p99), 9)}${r.non2xx}/${r.errors}`,
    ),
    '',
  ];
  const hitRatio = hit.requestsPerSecond / bare.requestsPerSecond;
  const missOverhead = miss.p50 - EMULATOR_LATENCY_MS;
  const targets: [string, string, boolean][] = [
    ['cache-hit throughput vs bare Express >= 0.8x', `${hitRatio.toFixed(2)}x`, hitRatio >= 0.8],
    [`miss p50 - ${EMULATOR_LATENCY_MS} ms (emulator latency) <= 2 ms`, `${missOverhead.toFixed(1)} ms`, missOverhead <= 2],
    ['hung Context7, breaker open: p99 < 25 ms', `${hung.p99} ms`, hung.p99 < 25],
    ['no non-2xx answers or socket errors', `${results.reduce((n, r) => n + r.non2xx + r.errors, 0)}`, results.every((r) => r.non2xx === 0 && r.errors === 0)],
  ];
  for (const [target, value, pass] of targets) lines.push(`${pass ? 'PASS' : 'FAIL'}  ${pad(target, 52)}${value}`);
  lines.push(`INFO  ${pad('emulator alone: p50 - 50 ms (its own overhead)', 52)}${(direct.p50 - EMULATOR_LATENCY_MS).toFixed(1)} ms`);
  lines.push('', `service totals: ${JSON.stringify(totals)}`, '', ...startLines(starts));
  process.stdout.write(lines.join('\n'));
  if (!targets.every(([, , pass]) => pass)) process.exitCode = 1;
}

(process.argv.includes('--serve') ? serve() : main()).catch((error: unknown) => {
  process.stderr.write(`[bench:service] failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
