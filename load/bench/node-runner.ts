/**
 * npm run bench:load -- [--scenario baseline|breakpoint] [--duration 15] [--connections 10] [--rate N]
 *   [--warmup 2] [--context7-latency-ms 20] [--report-dir DIR] [--out FILE] [--profile rollout|thirty-day]
 *   breakpoint only: [--start-rate 100] [--step-size 100] [--max-rate 3000] [--step-seconds 5]
 *
 * The k6 traffic mix without k6: starts the Context7 emulator and the memory service (flag on,
 * embedded SQLite, loopback only) as child processes, drives the mix through autocannon, and
 * writes summary.json (the k6 summary shape, for load:compare) and report.md.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { findSustainableRate, type StepStats } from '../lib/breakpoint';
import { LOAD_TEST_LOCATION_PREFIX } from '../lib/scope';
import { renderMarkdownReport, type LoadSummary } from '../lib/summary';
import { newRunNonce } from '../lib/traffic-mix';
import { evaluateThresholds, thresholdSpecs, THRESHOLD_PROFILES, type ThresholdProfile } from '../lib/thresholds';
import { DEFAULT_POLICY_PATH, thresholdsFromPolicy } from '../cli/policy-thresholds';
import { driveMix } from './autocannon-driver';
import { startTsxChild, waitUntil, type RunningChild } from './processes';
import { statsOf, summaryFromRecords, type RawRun } from './records';

const ROOT = resolve(__dirname, '..', '..');
const USAGE =
  'usage: npm run bench:load -- [--scenario baseline|breakpoint] [--duration 15] [--connections 10] [--rate N] [--warmup 2]\n' +
  '  [--context7-latency-ms 20] [--report-dir DIR] [--out FILE] [--profile rollout|thirty-day]\n' +
  '  breakpoint: [--start-rate 100] [--step-size 100] [--max-rate 3000] [--step-seconds 5]';

/** A step only holds if the service kept up with the offered rate (k6 would drop iterations). */
const MIN_ACHIEVED_FRACTION = 0.9;

function num(values: Record<string, unknown>, name: string, fallback: number, min: number, max: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new Error(`--${name} must be a number in ${min}..${max}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

function log(line: string): void {
  process.stderr.write(`[bench:load] ${line}\n`);
}

async function withProgress<T>(label: string, seconds: number, work: Promise<T>): Promise<T> {
  const started = Date.now();
  const timer = setInterval(() => log(`${label}: ${Math.round((Date.now() - started) / 1000)} s / ${seconds} s`), 5_000);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      scenario: { type: 'string' },
      duration: { type: 'string' },
      rate: { type: 'string' },
      connections: { type: 'string' },
      warmup: { type: 'string' },
      'context7-latency-ms': { type: 'string' },
      'report-dir': { type: 'string' },
      out: { type: 'string' },
      profile: { type: 'string' },
      'start-rate': { type: 'string' },
      'step-size': { type: 'string' },
      'max-rate': { type: 'string' },
      'step-seconds': { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const scenario = values.scenario ?? 'baseline';
  if (scenario !== 'baseline' && scenario !== 'breakpoint') throw new Error('--scenario must be baseline or breakpoint (spike and soak need k6: npm run load)');
  const profile = (values.profile ?? 'rollout') as ThresholdProfile;
  if (THRESHOLD_PROFILES.indexOf(profile) < 0) throw new Error(`--profile must be one of ${THRESHOLD_PROFILES.join(', ')}`);
  const duration = num(values, 'duration', 15, 1, 600);
  // Baseline default: a closed loop of `connections` callers, so throughput measures capacity.
  const rate = values.rate === undefined ? undefined : num(values, 'rate', 0, 1, 100_000);
  const connections = num(values, 'connections', 10, 1, 1_000);
  const warmup = num(values, 'warmup', 2, 0, 60);
  const context7LatencyMs = num(values, 'context7-latency-ms', 20, 0, 10_000);
  const startRate = num(values, 'start-rate', 100, 1, 100_000);
  const stepSize = num(values, 'step-size', 100, 1, 100_000);
  const maxRate = num(values, 'max-rate', 3_000, startRate, 1_000_000);
  const stepSeconds = num(values, 'step-seconds', 5, 1, 60);

  const thresholds = thresholdsFromPolicy(DEFAULT_POLICY_PATH, profile);
  const specs = thresholdSpecs(thresholds.load);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const reportDir = resolve(values['report-dir'] ?? join(ROOT, 'load', 'reports', `bench-${scenario}-${stamp}`));
  const dataDir = mkdtempSync(join(tmpdir(), 'load-bench-data-'));
  // A random key per run: the emulator checks it, nothing prints it.
  const apiKey = randomBytes(16).toString('hex');
  // The service's caller key (issue 13), likewise random per run and only in the child's environment.
  const memoryApiKey = randomBytes(24).toString('hex');
  // Sent on every request as k6 sends LOAD_TEST_TOKEN, so both drivers' requests are the same (this service runs
  // without Redis or PostgreSQL, so it has no rate limit to lift); made per run, never printed.
  const loadTestToken = randomBytes(16).toString('hex');
  // The embedded defaults: SQLite in a scratch dir and the in-process cache, whatever the caller's env says.
  const baseEnv: NodeJS.ProcessEnv = { ...process.env };
  delete baseEnv.DATABASE_URL;
  delete baseEnv.REDIS_URL;
  delete baseEnv.PORT;

  const children: RunningChild[] = [];
  const stopAll = () => Promise.all(children.map((c) => c.stop()));
  const onSignal = () => {
    void stopAll().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const loadAtStart = loadavg()[0];
  const startedAt = new Date().toISOString();
  const runNonce = newRunNonce();
  const BASELINE_SEED = 20261123;
  try {
    log(`starting the Context7 emulator (${context7LatencyMs} ms added latency)`);
    const emulator = await startTsxChild(
      'Context7 emulator',
      join(ROOT, 'service', 'context7', 'emulator-main.ts'),
      ['--port', '0', '--host', '127.0.0.1', '--latency-ms', String(context7LatencyMs)],
      { ...baseEnv, CONTEXT7_API_KEY: apiKey },
      'listening',
    );
    children.push(emulator);
    log('starting the memory service (ENABLE_CONTEXT7_MEMORY=true, SQLite)');
    const service = await startTsxChild(
      'memory service',
      join(ROOT, 'load', 'bench', 'service-child.ts'),
      [],
      {
        ...baseEnv,
        NODE_ENV: 'production',
        LOG_LEVEL: 'warn',
        ENABLE_CONTEXT7_MEMORY: 'true',
        CONTEXT7_API_KEY: apiKey,
        CONTEXT7_BASE_URL: emulator.url,
        LOAD_TEST_TOKEN: loadTestToken,
        DATA_DIR: dataDir,
        MEMORY_API_KEYS: `bench-load:${memoryApiKey}:loadtest-*`, // the load tests' reserved locations only
        MEMORY_AUTH: '',
      },
      'load-bench-service-listening',
    );
    children.push(service);
    await waitUntil(`${service.url}/api/memory/health`, (status, body) => status === 200 && body.includes('"available":true'));
    log(`service ready at ${service.url}, Context7 available`);

    if (warmup > 0) {
      log(`warm-up: ${warmup} s (not measured)`);
      await driveMix({ baseUrl: service.url, rate: scenario === 'breakpoint' ? startRate : rate, connections, durationSeconds: warmup, seed: 1, writerId: 'warmup', runNonce, memoryApiKey, loadTestToken });
    }

    const environment: Record<string, string | number | boolean> = {
      node: process.version,
      cpus: cpus().length,
      loadAverage1mAtStart: Number(loadAtStart.toFixed(2)),
      connections,
      warmupSeconds: warmup,
      context7: `emulator, ${context7LatencyMs} ms added latency`,
      store: 'sqlite',
      cache: 'in-process LRU',
      serviceLogLevel: 'warn',
      loadTestToken: 'sent',
    };
    let summary: LoadSummary;
    if (scenario === 'baseline') {
      log(`measuring: ${duration} s, ${connections} connections, ${rate ? `${rate} req/s offered` : 'closed loop (as fast as the service answers)'}`);
      const run = await withProgress('baseline', duration, driveMix({ baseUrl: service.url, rate, connections, durationSeconds: duration, seed: BASELINE_SEED, writerId: 'bench', runNonce, memoryApiKey, loadTestToken }));
      summary = summaryFromRecords(run, {
        offered: rate ? { model: 'open', ratePerSecond: rate, plannedDurationSeconds: duration } : { model: 'closed', connections, plannedDurationSeconds: duration },
        traffic: { seed: BASELINE_SEED, runNonce, scopePrefix: LOAD_TEST_LOCATION_PREFIX },
        machine: { cores: cpus().length, loadAverage1mAtStart: Number(loadAtStart.toFixed(2)), loadAverage1mAtEnd: Number(loadavg()[0].toFixed(2)) },
        scenario,
        target: service.url,
        startedAt,
        specs,
        thresholdsSource: `${thresholds.source} (${profile})`,
        environment: { ...environment, offeredRatePerSecond: rate ?? 'closed loop' },
      });
    } else {
      const steps: StepStats[] = [];
      const all: RawRun = { records: [], transportErrors: 0, durationSeconds: 0 };
      for (let stepRate = startRate; stepRate <= maxRate; stepRate += stepSize) {
        const run = await driveMix({ baseUrl: service.url, rate: stepRate, connections, durationSeconds: stepSeconds, seed: stepRate, writerId: `bp${stepRate}`, runNonce, memoryApiKey, loadTestToken });
        all.records.push(...run.records);
        all.transportErrors += run.transportErrors;
        all.durationSeconds += run.durationSeconds;
        const stats = statsOf(run.records, run.transportErrors);
        const achieved = stats.requests / run.durationSeconds;
        const held = evaluateThresholds(specs, stats).every((t) => t.ok) && achieved >= stepRate * MIN_ACHIEVED_FRACTION;
        steps.push({ rate: stepRate, ...stats, thresholdsOk: held });
        log(`step ${stepRate} req/s: achieved ${achieved.toFixed(0)} req/s, p95 ${stats.latencyMs.p95.toFixed(1)} ms, errors ${(stats.errorRate * 100).toFixed(2)}% -> ${held ? 'held' : 'BROKE'}`);
        if (!held) break;
      }
      summary = summaryFromRecords(all, {
        offered: {
          model: 'open',
          ratePerSecond: maxRate,
          profile: `${startRate}..${maxRate} step ${stepSize} every ${stepSeconds}s`,
          plannedDurationSeconds: (Math.floor((maxRate - startRate) / stepSize) + 1) * stepSeconds,
        },
        traffic: { seed: startRate, runNonce, scopePrefix: LOAD_TEST_LOCATION_PREFIX },
        machine: { cores: cpus().length, loadAverage1mAtStart: Number(loadAtStart.toFixed(2)), loadAverage1mAtEnd: Number(loadavg()[0].toFixed(2)) },
        scenario,
        target: service.url,
        startedAt,
        specs,
        thresholdsSource: `${thresholds.source} (${profile})`,
        environment: { ...environment, stepSeconds, minAchievedFraction: MIN_ACHIEVED_FRACTION, seedPerStep: 'the step rate' },
      });
      summary.breakpoint = findSustainableRate(steps, Math.max(20, Math.round(startRate * stepSeconds * 0.5)));
    }

    // The service's own counters: with the flag on, the cache hit rate says whether reuse worked.
    try {
      const res = await fetch(`${service.url}/api/metrics/memory`, { signal: AbortSignal.timeout(5_000) });
      const m = (await res.json()) as Record<string, unknown>;
      for (const key of ['cacheHitRate', 'fallbackRate', 'errorRate', 'avgLatency', 'context7Requests']) {
        if (typeof m[key] === 'number') summary.environment = { ...summary.environment, [`service.${key}`]: Number((m[key] as number).toFixed(4)) };
      }
    } catch (err) {
      log(`could not read the service metrics: ${(err as Error).message}`);
    }

    mkdirSync(reportDir, { recursive: true });
    const json = `${JSON.stringify(summary, null, 2)}\n`;
    writeFileSync(join(reportDir, 'summary.json'), json);
    const report = renderMarkdownReport(summary);
    writeFileSync(join(reportDir, 'report.md'), report);
    if (values.out) {
      mkdirSync(dirname(resolve(values.out)), { recursive: true });
      writeFileSync(resolve(values.out), json);
    }
    process.stdout.write(`${report}\n`);
    log(`summary: ${join(reportDir, 'summary.json')}${values.out ? ` (and ${values.out})` : ''}`);
    if (summary.breakpoint) return summary.breakpoint.sustainableRatePerSecond === null ? 1 : 0;
    return summary.thresholdsOk ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await stopAll();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench:load: ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    process.exitCode = 2;
  },
);
