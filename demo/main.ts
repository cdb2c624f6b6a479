/**
 * npm run demo [-- --healthy | --fleet] [--run-dir DIR] [--time-scale N] [--watchdog-seconds N]
 *
 * A complete rollout rehearsal on loopback (see demo/rehearsal.ts); --fleet is the production-shaped one
 * (PostgreSQL and Redis, 2 instances per service, rollback then retry). Prints progress step by step, the
 * report paths, a line `DEMO_SUMMARY {json}` (also written to <run dir>/demo-summary.json), and last the
 * summary file's path with a one-line verdict. Exit 0 when the rehearsal behaved as
 * expected, 1 when it did not, 64 on bad arguments, 130/143 when interrupted. Everything it started
 * is stopped on every path, Ctrl-C included.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { resolve, join } from 'node:path';
import { buildIfNeeded } from '../canary/compiled';
import { Cleanup } from './cleanup';
import { defaultWatchdogSeconds, parseDemoOptions, USAGE, type DemoOptions } from './options';
import { ProcessRegistry } from './processes';
import { createReporter } from './reporter';
import { FAULT_FROM_EXPOSURE_PERCENT, runRehearsal, type RehearsalResult } from './rehearsal';
import { judgeRehearsal } from './verdict';

async function main(): Promise<number> {
  let options: DemoOptions;
  try {
    options = parseDemoOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    return 64;
  }
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  // The canaries it starts run compiled (demo/canary-run.ts): dist/ is brought up to date before anything starts.
  try {
    buildIfNeeded(['cli']);
  } catch (error) {
    process.stderr.write(`demo: ${(error as Error).message}\n`);
    return 1;
  }

  const say = createReporter();
  const registry = new ProcessRegistry();
  const cleanup = new Cleanup();
  const started = Date.now();
  const runDir = options.runDir ? resolve(options.runDir) : mkdtempSync(join(tmpdir(), 'context7-rollout-demo-'));
  mkdirSync(runDir, { recursive: true });

  const teardown = async () => {
    // Canaries first, so none acts on a platform that is shutting down; then emulators and services.
    await registry.stopAll(3_000, (p) => p.role.startsWith('canary:'));
    const failed = await cleanup.run();
    for (const f of failed) say.fail(`cleanup: ${f}`);
    return registry.stopAll(3_000);
  };
  // Last resort on any exit: nothing we started may outlive us.
  process.on('exit', () => {
    for (const p of registry.alive()) {
      try {
        process.kill(-p.pgid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });
  // Why the rehearsal was stopped from outside (a signal, the watchdog): said the same way in the terminal, the
  // summary and the last line, whatever the rehearsal itself was doing when it happened.
  let stoppedBy: string | null = null;
  let interruptedBy: NodeJS.Signals | null = null;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (interruptedBy) {
        registry.signalAll('SIGKILL');
        process.exit(signal === 'SIGINT' ? 130 : 143);
      }
      interruptedBy = signal;
      stoppedBy = `interrupted by ${signal}`;
      say.fail(`${signal}: stopping everything the demo started (again to force)`);
      void teardown()
        .then((left) => {
          writeSummary({ result: undefined, failure: stoppedBy, left, interrupted: true });
          say.info(`stopped; partial results in ${runDir}`);
        })
        .finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    });
  }
  // The watchdog counts from the start; without --watchdog-seconds it stretches once the clock is chosen.
  let watchdog: NodeJS.Timeout | undefined;
  const armWatchdog = (seconds: number) => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => {
      stoppedBy = `stopped by the watchdog after ${seconds} s`;
      say.fail(`watchdog: the rehearsal took more than ${seconds} s; stopping everything`);
      void teardown();
    }, Math.max(0, seconds * 1000 - (Date.now() - started)));
    watchdog.unref();
  };
  armWatchdog(options.watchdogSeconds ?? defaultWatchdogSeconds(options.fleet, options.timeScale ?? 60));
  let slowest = options.timeScale ?? 60;

  const what = options.fleet
    ? 'production-shaped (--fleet): PostgreSQL and Redis, 2 instances per service, a Context7 incident, the rollback, and the retry'
    : options.mode === 'fault'
      ? 'with a Context7 incident in production'
      : 'healthy: no fault';
  say.info(`Rollout rehearsal (${what}), run directory ${runDir}`);
  say.info(`child output goes to ${join(runDir, 'logs')}`);

  let result: RehearsalResult | undefined;
  let failure: string | undefined;
  try {
    result = await runRehearsal({
      mode: options.mode,
      runDir,
      timeScale: options.timeScale,
      onClock: (clock) => {
        // The slowest clock of the run sets the watchdog.
        slowest = Math.min(slowest, clock.timeScale);
        if (options.watchdogSeconds === undefined) armWatchdog(defaultWatchdogSeconds(options.fleet, slowest));
      },
      faultFromExposurePercent: FAULT_FROM_EXPOSURE_PERCENT,
      reporter: say,
      registry,
      cleanup,
      fleet: options.fleet,
      stopping: () => stoppedBy,
    });
  } catch (error) {
    failure = (error as Error).message;
    say.fail(`the rehearsal stopped: ${failure}`);
  } finally {
    clearTimeout(watchdog);
  }
  // An interrupted run is reported once, by its signal handler, which then exits: nothing more to say here.
  if (interruptedBy) return new Promise<number>(() => undefined);
  if (stoppedBy) failure = stoppedBy;
  say.step('clean up: stop every process the demo started');
  const left = await teardown();
  (left.length === 0 ? say.ok : say.fail)(`${registry.all().length} process groups started, ${left.length} still alive`);

  const verdict = writeSummary({ result, failure, left, interrupted: false });
  return verdict.ok ? 0 : 1;

  /**
   * The result block, demo-summary.json, the DEMO_SUMMARY line and, last, the one-line verdict: written the same
   * way for a finished run and for one stopped from outside (then with `interrupted`/`error` saying so).
   */
  function writeSummary(end: { result: RehearsalResult | undefined; failure: string | undefined | null; left: Awaited<ReturnType<typeof teardown>>; interrupted: boolean }) {
    const { result, left } = end;
    const failure = end.failure ?? undefined;
    const tracked = registry.all();
    const verdict = result
      ? judgeRehearsal({ ...result.observations, processesLeft: left.length })
      : { ok: false, checks: [{ name: 'rehearsal ran to the end', ok: false, detail: failure ?? 'unknown' }] };
    if (failure && result) verdict.ok = false;

    say.step('result');
    for (const check of verdict.checks) (check.ok ? say.ok : say.fail)(`${check.name} (${check.detail})`);
    for (const [stack, paths] of Object.entries(result?.paths.canary ?? {})) {
      say.info(`${stack} reports: ${paths.reports.json}`);
      say.info(`${' '.repeat(stack.length)}          ${paths.reports.signoff}`);
      say.info(`${' '.repeat(stack.length)}          ${paths.reports.html}`);
    }
    if (result) say.info(`logs: ${join(runDir, 'logs')}; stack file copies: ${result.paths.stackDir}`);
    const durationMs = Date.now() - started;
    const outcome = end.interrupted ? `was ${failure}` : verdict.ok ? 'behaved as expected' : 'did NOT behave as expected';
    (verdict.ok ? say.ok : say.fail)(`the rehearsal ${outcome} in ${(durationMs / 1000).toFixed(1)} s`);
    const summaryFile = join(runDir, 'demo-summary.json');
    const summary = {
      ok: verdict.ok,
      interrupted: end.interrupted,
      mode: options.mode,
      fleet: fleetSummary(result),
      durationMs,
      runDir,
      error: failure ?? null,
      checks: verdict.checks,
      staging: result?.observations.staging ?? null,
      production: result?.observations.production ?? null,
      promotedStack: result?.observations.promotedStack ?? null,
      productionStack: result?.observations.productionStack ?? null,
      productionRenderFlag: result?.observations.productionRenderFlag ?? null,
      patterns: result?.patterns ?? null,
      stepped: result?.observations.stepped ?? null,
      exposure: result?.exposure ?? null,
      faultStages: result?.faultStages ?? [],
      clocks: result?.clocks ?? [],
      traffic: result?.traffic ?? {},
      paths: result?.paths ?? null,
      processes: tracked,
      processesLeft: left,
      demoPid: process.pid,
      summaryFile,
    };
    writeFileSync(summaryFile, `${JSON.stringify(summary, null, 1)}\n`);
    say.raw(`DEMO_SUMMARY ${JSON.stringify(shortSummary(summary))}`);
    // The last line a person reads: the verdict, and where the whole summary is.
    const word = end.interrupted ? 'INTERRUPTED' : verdict.ok ? 'PASS' : 'FAIL';
    say.raw(`${word}: ${verdict.checks.filter((c) => c.ok).length}/${verdict.checks.length} checks, ${(durationMs / 1000).toFixed(1)} s; summary in ${summaryFile}`);
    return verdict;
  }
}

/**
 * The DEMO_SUMMARY line: one short JSON object for scripts (what happened, and where the whole summary is); the
 * detail (every check, the traffic by scope, the reports' paths) stays in demo-summary.json.
 */
export function shortSummary(summary: {
  ok: boolean;
  interrupted: boolean;
  mode: string;
  fleet: unknown;
  durationMs: number;
  error: string | null;
  checks: { ok: boolean }[];
  clocks: { timeScale: number }[];
  stepped: { caughtAtPercent: number | null; exposureReachedPercent: number | null } | null;
  summaryFile: string;
}) {
  return {
    ok: summary.ok,
    interrupted: summary.interrupted,
    mode: summary.mode,
    fleet: summary.fleet !== null,
    durationMs: summary.durationMs,
    timeScales: summary.clocks.map((c) => c.timeScale),
    checks: `${summary.checks.filter((c) => c.ok).length}/${summary.checks.length}`,
    caughtAtPercent: summary.stepped?.caughtAtPercent ?? null,
    exposureReachedPercent: summary.stepped?.exposureReachedPercent ?? null,
    error: summary.error,
    summaryFile: summary.summaryFile,
  };
}

/** The fleet rehearsal's headline figures (issue 11, item 5), or null for the embedded demo. */
function fleetSummary(result: RehearsalResult | undefined) {
  const fleet = result?.fleet;
  if (!fleet) return null;
  const observed = result.observations.fleet;
  const verify = result.observations.production?.verifyChecks ?? [];
  return {
    instancesPerService: fleet.instancesPerService,
    rollbackVerified: result.observations.production?.outcome === 'rolled_back' && verify.length > 0 && verify.every((c) => c.ok),
    retrySignedOff: observed?.retry?.outcome === 'signed_off' && observed.retry.exitCode === 0,
    patternsAcknowledged: observed?.patterns?.acknowledged ?? 0,
    patternsFoundInPostgres: observed?.patterns?.foundInPostgres ?? 0,
    patternsDeliveredToContext7: observed?.patterns?.deliveredToContext7 ?? 0,
    requestsWithoutAnswer: fleet.requestsWithoutAnswer,
    requestsSent: fleet.requestsSent,
    guard: {
      promotedStack: fleet.guard.promoted ?? null,
      tamperedStagingReport: fleet.guard.tamperedReport ?? null,
      retry: fleet.guard.retry ?? null,
    },
    byEnvironment: fleet.patterns,
    databases: fleet.databases,
    redisKeyPrefixes: fleet.redisKeyPrefixes,
    loadBalancers: fleet.loadBalancers,
  };
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`demo failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
