/**
 * npm run bench:load -- [--scenario baseline|breakpoint] [--duration 15] [--connections 10] [--rate N]
 *   [--warmup 2] [--context7-latency-ms 20] [--report-dir DIR] [--out FILE] [--profile rollout|thirty-day]
 *   [--base-url URL]
 *   breakpoint only: [--start-rate 100] [--step-size 100] [--max-rate 3000] [--step-seconds 5]
 *
 * The k6 traffic mix without k6: starts the Context7 emulator and the memory service (flag on,
 * embedded SQLite, loopback only) as child processes, drives the mix through autocannon, and
 * writes summary.json (the k6 summary shape, for load:compare) and report.md.
 * With --base-url it starts nothing and drives that service instead (an environment k6 would target), with the
 * caller key from MEMORY_API_KEY and the rate limiter's LOAD_TEST_TOKEN from the environment, as k6 takes them.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { findSustainableRate, MIN_ACHIEVED_FRACTION, type StepStats } from '../lib/breakpoint';
import { LOAD_TEST_LOCATION_PREFIX } from '../lib/scope';
import { renderMarkdownReport, type LoadSummary } from '../lib/summary';
import { newRunNonce } from '../lib/traffic-mix';
import { evaluateThresholds, thresholdSpecs, THRESHOLD_PROFILES, type ThresholdProfile } from '../lib/thresholds';
import { DEFAULT_POLICY_PATH, thresholdsFromPolicy } from '../cli/policy-thresholds';
import { MEMORY_API_KEY_ENV } from '../lib/credentials';
import { driveMix } from './autocannon-driver';
import { startLocalStack, type LocalStack } from './local-stack';
import { statsOf, summaryFromRecords, type RawRun } from './records';

const ROOT = resolve(__dirname, '..', '..');
const USAGE =
  'usage: npm run bench:load -- [--scenario baseline|breakpoint] [--duration 15] [--connections 10] [--rate N] [--warmup 2]\n' +
  '  [--context7-latency-ms 20] [--report-dir DIR] [--out FILE] [--profile rollout|thirty-day] [--base-url URL]\n' +
  '  breakpoint: [--start-rate 100] [--step-size 100] [--max-rate 3000] [--step-seconds 5]';

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
      'base-url': { type: 'string' },
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

  const targetUrl = values['base-url'];
  if (targetUrl !== undefined && !/^https?:\/\/[^/]+/.test(targetUrl)) throw new Error('--base-url must be http(s)://HOST[:PORT]');

  const thresholds = thresholdsFromPolicy(DEFAULT_POLICY_PATH, profile);
  const specs = thresholdSpecs(thresholds.load);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const reportDir = resolve(values['report-dir'] ?? join(ROOT, 'load', 'reports', `bench-${scenario}-${stamp}`));
  let stack: LocalStack | undefined;
  const onSignal = () => {
    void (stack?.stop() ?? Promise.resolve()).then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const loadAtStart = loadavg()[0];
  const startedAt = new Date().toISOString();
  const runNonce = newRunNonce();
  const BASELINE_SEED = 20261123;
  try {
    // --base-url: drive that service with its own credentials from the environment (never an argument, never in a
    // report); otherwise the local stack (the Context7 emulator and the service, with per-run credentials).
    if (targetUrl === undefined) stack = await startLocalStack({ context7LatencyMs, log });
    const service = { url: stack?.url ?? targetUrl!.replace(/\/+$/, '') };
    const memoryApiKey = stack ? stack.memoryApiKey : process.env[MEMORY_API_KEY_ENV]?.trim() || undefined;
    const loadTestToken = stack ? stack.loadTestToken : process.env.LOAD_TEST_TOKEN?.trim() || undefined;
    if (targetUrl !== undefined) {
      log(`driving ${service.url} (started nothing; its Context7, store and cache are its own)`);
      if (!memoryApiKey) log(`${MEMORY_API_KEY_ENV} is not set: snippet reads and learning writes to ${service.url} will get 401`);
    }

    if (warmup > 0) {
      log(`warm-up: ${warmup} s (not measured)`);
      await driveMix({ baseUrl: service.url, rate: scenario === 'breakpoint' ? startRate : rate, connections, durationSeconds: warmup, seed: 1, writerId: 'warmup', runNonce, memoryApiKey, loadTestToken });
    }

    // The machine (cores, load average, Node) goes in `machine`, the same fields k6 runs have.
    const machine = () => ({ cores: cpus().length, cpuModel: cpus()[0]?.model, loadAverage1mAtStart: Number(loadAtStart.toFixed(2)), loadAverage1mAtEnd: Number(loadavg()[0].toFixed(2)), node: process.version });
    const environment: Record<string, string | number | boolean> = {
      connections,
      warmupSeconds: warmup,
      ...(targetUrl === undefined
        ? { context7: `emulator, ${context7LatencyMs} ms added latency`, store: 'sqlite', cache: 'in-process LRU', serviceLogLevel: 'warn' }
        : { target: 'an existing service (--base-url): its own Context7, store and cache' }),
      loadTestToken: loadTestToken ? 'sent' : 'not set',
    };
    let summary: LoadSummary;
    if (scenario === 'baseline') {
      log(`measuring: ${duration} s, ${connections} connections, ${rate ? `${rate} req/s offered` : 'closed loop (as fast as the service answers)'}`);
      const run = await withProgress('baseline', duration, driveMix({ baseUrl: service.url, rate, connections, durationSeconds: duration, seed: BASELINE_SEED, writerId: 'bench', runNonce, memoryApiKey, loadTestToken }));
      summary = summaryFromRecords(run, {
        offered: rate ? { model: 'open', ratePerSecond: rate, plannedDurationSeconds: duration } : { model: 'closed', connections, plannedDurationSeconds: duration },
        traffic: { seed: BASELINE_SEED, runNonce, scopePrefix: LOAD_TEST_LOCATION_PREFIX },
        machine: machine(),
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
        steps.push({ rate: stepRate, ...stats, thresholdsOk: held, seconds: Number(run.durationSeconds.toFixed(3)), achievedRatePerSecond: Number(achieved.toFixed(2)) });
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
        machine: machine(),
        scenario,
        target: service.url,
        startedAt,
        specs,
        thresholdsSource: `${thresholds.source} (${profile})`,
        environment: { ...environment, stepSeconds, minAchievedFraction: MIN_ACHIEVED_FRACTION, seedPerStep: 'the step rate' },
      });
      summary.breakpoint = findSustainableRate(steps, Math.max(20, Math.round(startRate * stepSeconds * 0.5)));
    }

    // The service's own counters: with the flag on, the cache hit rate says whether reuse worked. Only for the
    // service this run started: another one's counters include every other caller's traffic.
    try {
      if (!stack) throw new Error('not read: --base-url (its counters are every caller\'s, not this run\'s)');
      const m = await stack.serviceMetrics();
      for (const key of Object.keys(m)) summary.environment = { ...summary.environment, [`service.${key}`]: m[key]! };
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
    await stack?.stop();
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
