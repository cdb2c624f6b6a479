/**
 * npm run load -- --base-url URL --scenario baseline|spike|soak|breakpoint [--report-dir DIR]
 *   [--profile rollout|thirty-day] [--policy canary/policy.yaml]
 *   [--rate N] [--duration 5m] [--peak-rate N] [--max-rate N] [--ramp-seconds N] [--step-size N]
 * Runs load/k6/memory-api.ts with k6 against exactly the URL given (k6's usage report is off, so
 * no other host is contacted). k6 prints its own end-of-test summary; k6 also exports the figures
 * (--summary-export), from which this writes summary.json and report.md and prints the report after k6's.
 * Without k6 it says how to install it and exits 127. Ctrl-C: k6 stops, still summarises, exits 105; the run is
 * recorded as interrupted (never PASS) and this exits 130, the shell's code for an interrupt (143 for SIGTERM).
 * LOAD_TEST_TOKEN, from the environment only, is handed to k6 the same way: the service's rate limit then lets the
 * load-test scopes through. It is never a flag (flags show in `ps` and shell history) and never printed or recorded.
 */
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isScenarioName, SCENARIO_NAMES } from '../lib/scenarios';
import { k6DataFromSummaryExport, renderMarkdownReport, verdictOf, type LoadSummary } from '../lib/summary';
import { k6RunContext, summarizeK6Run } from '../lib/k6-report';
import { newRunNonce } from '../lib/traffic-mix';
import { THRESHOLD_PROFILES, type ThresholdProfile, type ThresholdsFile } from '../lib/thresholds';
import { DEFAULT_POLICY_PATH, thresholdsFromPolicy } from './policy-thresholds';
import type { Io } from './compare';
import { readSummaryFile } from './summary-schema';
import { LOAD_TEST_TOKEN_MIN_LENGTH } from '../../service/config';

export const K6_SCRIPT = resolve(__dirname, '..', 'k6', 'memory-api.ts');
export const EXIT_K6_MISSING = 127;
export const EXIT_USAGE = 2;
/** k6's exit code when a threshold failed */
export const K6_THRESHOLDS_FAILED = 99;
/** An interrupted run (Ctrl-C): the shell's 128 + SIGINT, which `npm run` reports anyway; k6's own 105 is in summary.json. */
export const EXIT_INTERRUPTED = 130;
/** Where k6 writes its figures (`--summary-export`), beside the reports. */
export const K6_EXPORT_FILE = 'k6-summary-export.json';

export const USAGE =
  `usage: npm run load -- --base-url URL --scenario ${SCENARIO_NAMES.join('|')} [--report-dir DIR]\n` +
  `  [--profile ${THRESHOLD_PROFILES.join('|')}] [--policy ${DEFAULT_POLICY_PATH}]\n` +
  '  [--rate N] [--duration 5m] [--peak-rate N] [--max-rate N] [--ramp-seconds N] [--step-size N]';

export const K6_INSTALL_HELP = [
  'k6 is not installed (no `k6` on PATH, and K6_BIN is not set).',
  'Install it: https://grafana.com/docs/k6/latest/set-up/install-k6/',
  '  macOS:          brew install k6',
  '  Debian/Ubuntu:  add the Grafana apt repository from the page above, then: sudo apt-get install k6',
  '  Fedora/CentOS:  sudo dnf install https://dl.k6.io/rpm/repo.rpm && sudo dnf install k6',
  '  Windows:        winget install k6 --source winget   (or: choco install k6)',
  '  Docker:         the grafana/k6 image, with this repository mounted (see the page above)',
  'k6 v0.57 or newer runs TypeScript directly. Or point K6_BIN at a k6 binary.',
  'Without k6, `npm run bench:load` drives the same traffic mix through a Node load generator.',
].join('\n');

/** Finds an executable the way a shell would, or undefined. */
export function findExecutable(name: string, pathEnv: string | undefined): string | undefined {
  for (const dir of (pathEnv ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Only an http(s) origin with an optional path: credentials or a query would end up in reports. */
export function validateBaseUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // Echo it without anything that looks like credentials (user:password@): errors end up in CI logs.
    throw new Error(`--base-url is not a URL: ${JSON.stringify(raw.replace(/^([^/]*\/\/)?[^/@]*@/, '$1***@'))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`--base-url must be http or https, got ${url.protocol}`);
  if (url.username || url.password) throw new Error('--base-url must not carry credentials (they would appear in reports)');
  if (url.search || url.hash) throw new Error('--base-url must not have a query or fragment');
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

export interface RunPlan {
  k6: string;
  args: string[];
  env: Record<string, string>;
  reportDir: string;
  scenario: string;
  thresholds: ThresholdsFile;
}

const NUMERIC_FLAGS = { rate: 'RATE', 'peak-rate': 'PEAK_RATE', 'max-rate': 'MAX_RATE', 'ramp-seconds': 'RAMP_SECONDS', 'step-size': 'STEP_SIZE' } as const;

export class UsageError extends Error {
  override name = 'UsageError';
}

/** LOAD_TEST_TOKEN from the environment, checked; undefined when unset. Errors never show the value. */
export function loadTestTokenFrom(env: NodeJS.ProcessEnv): string | undefined {
  const token = env.LOAD_TEST_TOKEN;
  if (token === undefined || token === '') return undefined;
  if (!/^[\x21-\x7e]+$/.test(token)) throw new UsageError('LOAD_TEST_TOKEN must be printable ASCII without spaces (it is sent as a header)');
  // The service refuses a shorter one at start, so a shorter one can never be right.
  if (token.length < LOAD_TEST_TOKEN_MIN_LENGTH) {
    throw new UsageError(`LOAD_TEST_TOKEN is shorter than ${LOAD_TEST_TOKEN_MIN_LENGTH} characters: it cannot be the service's`);
  }
  return token;
}

/** Parses the flags, writes thresholds.json into the report dir and returns the k6 command to run. */
export function planRun(argv: string[], env: NodeJS.ProcessEnv, now: Date): RunPlan | { k6Missing: true } {
  if (argv.some((arg) => /^--load-test-token(=|$)/.test(arg))) {
    throw new UsageError('the load-test token is read from LOAD_TEST_TOKEN in the environment, never from the command line');
  }
  const loadTestToken = loadTestTokenFrom(env);
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        'base-url': { type: 'string' },
        scenario: { type: 'string' },
        'report-dir': { type: 'string' },
        profile: { type: 'string' },
        policy: { type: 'string' },
        duration: { type: 'string' },
        rate: { type: 'string' },
        'peak-rate': { type: 'string' },
        'max-rate': { type: 'string' },
        'ramp-seconds': { type: 'string' },
        'step-size': { type: 'string' },
      },
      strict: true,
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (!values['base-url']) throw new UsageError('--base-url is required');
  const baseUrl = validateBaseUrl(values['base-url']);
  if (!isScenarioName(values.scenario)) throw new UsageError(`--scenario must be one of ${SCENARIO_NAMES.join(', ')}`);
  const profile = (values.profile ?? 'rollout') as ThresholdProfile;
  if (THRESHOLD_PROFILES.indexOf(profile) < 0) throw new UsageError(`--profile must be one of ${THRESHOLD_PROFILES.join(', ')}`);

  const k6Env: Record<string, string> = {};
  for (const [flag, name] of Object.entries(NUMERIC_FLAGS)) {
    const raw = values[flag as keyof typeof NUMERIC_FLAGS];
    if (raw === undefined) continue;
    if (!(Number(raw) > 0)) throw new UsageError(`--${flag} must be a positive number, got ${JSON.stringify(raw)}`);
    k6Env[name] = raw;
  }
  if (values.duration !== undefined) {
    if (!/^(\d+h)?(\d+m)?(\d+s)?$/.test(values.duration) || values.duration === '') throw new UsageError('--duration must look like 30s, 5m or 1h30m');
    if (values.scenario === 'breakpoint') throw new UsageError('--duration does not apply to breakpoint: its length is --ramp-seconds');
    k6Env.DURATION = values.duration;
  }

  // The policy is checked before anything else happens, with or without k6.
  const thresholds = thresholdsFromPolicy(values.policy ?? DEFAULT_POLICY_PATH, profile);
  const k6 = env.K6_BIN || findExecutable('k6', env.PATH);
  if (!k6) return { k6Missing: true };

  const stamp = now.toISOString().replace(/[:.]/g, '-');
  const reportDir = resolve(values['report-dir'] ?? join('load', 'reports', `${values.scenario}-${stamp}`));
  mkdirSync(reportDir, { recursive: true });
  const thresholdsPath = join(reportDir, 'thresholds.json');
  writeFileSync(thresholdsPath, `${JSON.stringify(thresholds, null, 2)}\n`);

  return {
    k6,
    scenario: values.scenario,
    reportDir,
    thresholds,
    // No REPORT_DIR for the script: its handleSummary then returns nothing and k6 prints its own summary.
    args: ['run', '--no-usage-report', '--summary-export', join(reportDir, K6_EXPORT_FILE), K6_SCRIPT],
    env: {
      ...k6Env,
      BASE_URL: baseUrl,
      SCENARIO: values.scenario,
      THRESHOLDS_FILE: thresholdsPath,
      RUN_NONCE: newRunNonce(),
      K6_NO_USAGE_REPORT: 'true',
      // In k6's environment, like the rest, and never in its arguments: the script reads it from __ENV.
      ...(loadTestToken ? { LOAD_TEST_TOKEN: loadTestToken } : {}),
    },
  };
}

export interface RunFacts {
  exitCode: number;
  startedAt: Date;
  /** wall-clock seconds k6 ran (init included): the duration when the export has no counter to derive it from */
  wallSeconds: number;
  machineAtStart: { cores: number; loadAverage1m: number };
  loadAverage1mAtEnd: number;
  /** `k6 version`'s first line, so a baseline names the tool that measured it */
  k6Version?: string;
}

/** `k6 version`'s first line, or undefined if it does not answer within 15 s. */
export function k6VersionOf(k6: string): string | undefined {
  const res = spawnSync(k6, ['version'], { encoding: 'utf8', timeout: 15_000 });
  const line = res.status === 0 ? res.stdout.split('\n')[0]?.trim() : undefined;
  return line || undefined;
}

/**
 * Builds the run's summary from k6's export, with what only the wrapper sees: how the run ended (k6's exit code:
 * an interrupted run must not read as a pass) and the machine. Writes summary.json and report.md; null when k6
 * exported nothing (it died before its summary).
 */
export function writeRunReports(plan: RunPlan, facts: RunFacts): LoadSummary | null {
  const exportPath = join(plan.reportDir, K6_EXPORT_FILE);
  if (!existsSync(exportPath)) return null;
  const data = k6DataFromSummaryExport(JSON.parse(readFileSync(exportPath, 'utf8')), facts.wallSeconds);
  const ctx = k6RunContext(plan.env, plan.thresholds);
  const summary = summarizeK6Run(data, ctx, { exitCode: facts.exitCode, startedAt: facts.startedAt.toISOString(), runNonce: plan.env.RUN_NONCE! });
  if (facts.k6Version) summary.environment = { ...summary.environment, k6: facts.k6Version };
  summary.machine = {
    cores: facts.machineAtStart.cores,
    cpuModel: cpus()[0]?.model,
    loadAverage1mAtStart: Number(facts.machineAtStart.loadAverage1m.toFixed(2)),
    loadAverage1mAtEnd: Number(facts.loadAverage1mAtEnd.toFixed(2)),
  };
  writeFileSync(join(plan.reportDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  writeFileSync(join(plan.reportDir, 'report.md'), renderMarkdownReport(summary));
  return summary;
}

/** The wrapper's one-line verdict, printed last. */
export function outcomeLine(summary: LoadSummary): string {
  const run = summary.run!;
  const dropped = summary.droppedIterations ? `; dropped: ${summary.droppedIterations} iterations` : '';
  return `${verdictOf(summary)}: ${run.outcome.replace(/_/g, ' ')} (k6 exit ${run.exitCode}), ${summary.durationSeconds.toFixed(1)} s of ${run.plannedDurationSeconds} s planned` +
    (summary.rateLimited ? `; limited: ${summary.rateLimited} × 429` : '') + dropped;
}

/** For a breakpoint run, crossing the thresholds is the goal: with a sustainable rate found it succeeded. */
export function interpretExit(plan: RunPlan, code: number, io: Io, signal?: NodeJS.Signals): number {
  const summaryPath = join(plan.reportDir, 'summary.json');
  if (existsSync(summaryPath)) io.out(`summary: ${summaryPath}\nreport:  ${join(plan.reportDir, 'report.md')}`);
  if (signal === 'SIGTERM' || code === 143) return 143;
  if (signal === 'SIGINT' || code === 105 || code === EXIT_INTERRUPTED) return EXIT_INTERRUPTED;
  if (plan.scenario !== 'breakpoint' || !existsSync(summaryPath)) return code;
  try {
    const summary = readSummaryFile(summaryPath);
    const b = summary.breakpoint;
    if (!b) return code;
    const sustainable = b.sustainableRatePerSecond === null ? 'none' : `${b.sustainableRatePerSecond} req/s`;
    const broke = b.brokeAtRatePerSecond === null ? 'did not break up to the highest rate tried' : `broke at ${b.brokeAtRatePerSecond} req/s`;
    io.out(`breakpoint: sustainable rate ${sustainable}, ${broke}`);
    if (summary.run && summary.run.outcome !== 'completed' && summary.run.outcome !== 'aborted_by_threshold') return code;
    if (code === K6_THRESHOLDS_FAILED && b.sustainableRatePerSecond !== null) return 0;
  } catch {
    // the summary is k6's output; if unreadable, k6's own exit code stands
  }
  return code;
}

export async function runLoad(argv: string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(USAGE);
    return 0;
  }
  let plan;
  try {
    plan = planRun(argv, env, new Date());
  } catch (err) {
    io.err(`load: ${(err as Error).message}\n${USAGE}`);
    return EXIT_USAGE;
  }
  if ('k6Missing' in plan) {
    io.err(K6_INSTALL_HELP);
    return EXIT_K6_MISSING;
  }
  io.out(`k6 ${plan.scenario} against ${plan.env.BASE_URL}; run nonce ${plan.env.RUN_NONCE}; report dir ${plan.reportDir}`);
  // k6 reads MEMORY_API_KEY from the environment it inherits; it is never passed as `-e` (a command line).
  if (!env.MEMORY_API_KEY) io.err('load: MEMORY_API_KEY is not set: snippet reads and learning writes will get 401 (set it to a MEMORY_API_KEYS key of the target)');
  io.out(
    plan.env.LOAD_TEST_TOKEN
      ? 'load-test token: sent (X-Load-Test-Token), so the rate limit lets load-test scopes through'
      : 'no LOAD_TEST_TOKEN: the service\'s rate limit applies, and any 429 is counted as "limited"',
  );
  const runPlan = plan;
  const k6Version = k6VersionOf(runPlan.k6);
  const machineAtStart = { cores: cpus().length, loadAverage1m: loadavg()[0] ?? 0 };
  const startedAt = new Date();
  let signal: NodeJS.Signals | undefined;
  const code = await new Promise<number>((resolveCode) => {
    // REPORT_DIR is never inherited: the script would then write reports itself and k6 would print no summary.
    const { REPORT_DIR: _ignored, ...inherited } = env;
    const child = spawn(runPlan.k6, runPlan.args, { stdio: 'inherit', env: { ...inherited, ...runPlan.env } });
    // Ctrl-C already reaches k6 (same process group): a second SIGINT would make it skip its summary.
    const waitForK6 = () => {
      signal = 'SIGINT';
    };
    const forwardTerm = () => {
      signal = 'SIGTERM';
      child.kill('SIGTERM');
    };
    process.on('SIGINT', waitForK6);
    process.on('SIGTERM', forwardTerm);
    child.on('error', (err) => {
      io.err(`load: could not start k6 (${runPlan.k6}): ${err.message}`);
      resolveCode(EXIT_K6_MISSING);
    });
    child.on('exit', (exitCode, signal) => {
      process.off('SIGINT', waitForK6);
      process.off('SIGTERM', forwardTerm);
      resolveCode(exitCode ?? (signal ? 128 + (signal === 'SIGINT' ? 2 : 15) : 1));
    });
  });
  try {
    const summary = writeRunReports(runPlan, {
      exitCode: code,
      startedAt,
      wallSeconds: (Date.now() - startedAt.getTime()) / 1000,
      machineAtStart,
      loadAverage1mAtEnd: loadavg()[0] ?? 0,
      k6Version,
    });
    if (summary) {
      // After k6's own summary: ours, then the one-line verdict.
      io.out(renderMarkdownReport(summary));
      io.out(outcomeLine(summary));
    } else {
      io.out(`load: k6 exported no summary (exit ${code}): nothing to report`);
    }
  } catch (err) {
    io.err(`load: could not build the run's summary from k6's export: ${(err as Error).message}`);
  }
  return interpretExit(runPlan, code, io, signal);
}

if (require.main === module) {
  void runLoad(process.argv.slice(2), process.env, { out: (l) => console.log(l), err: (l) => console.error(l) }).then((code) => {
    process.exitCode = code;
  });
}
