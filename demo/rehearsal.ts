/**
 * The rollout rehearsal: the runbook end to end on loopback, on a compressed clock.
 *   1. Context7 emulator + Render emulator (local platform), staging and production services created
 *      through the Render API with the flag off;
 *   2. pre-rollout scope id validation, flag on in staging through the Render API, load mix, staging
 *      canary -> promotion into a copy of Pulumi.production.yaml;
 *   3. production: a stepped rollout at the pinned commit (runtime exposure 0 % before the flag goes on, then
 *      `canary stepped` raises it 5 -> 25 -> 50 -> 100 %, each step judged against the control cohort), load mix
 *      with learning writes; Context7 degrades once the service reports 25 % exposed (unless healthy), and the
 *      stepped canary catches it at that step: kill switch (0 %), then rollback, latch, verification;
 *   4. proof that no acknowledged learned pattern was lost.
 * With `fleet`, production-shaped: each environment on its own PostgreSQL database and Redis key prefix, 2
 * instances per service behind the local platform's load balancer, steady traffic through every deploy, the infra
 * guard before the production flag goes on, and after the rollback the incident is fixed and the same pinned
 * commit is rolled out again with the flag on, which the production canary must sign off. Every acknowledged
 * pattern is then looked up in PostgreSQL and in the Context7 emulator.
 * Everything it starts is registered with `cleanup` / `registry`; the caller tears them down.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FLAG_KEY, PINNED_COMMIT_KEY, readStackConfig, setStackConfig, stackFilePath } from '../canary/actions/stack-file';
import { RenderClient } from '../render/client';
import { startRenderEmulator, type RenderEmulator } from '../render/emulator';
import { startContext7Emulator } from '../service/context7/emulator';
import { canaryStatus, looksAtCurrentStep, REPO_ROOT, startCanary } from './canary-run';
import { PROBE_LOCATION } from '../canary/probe/learning-probe';
import type { Cleanup } from './cleanup';
import { faultStageAt, type FaultStage } from './fault-ramp';
import { provisionFleetBacking, randomRunSuffix, type FleetBacking } from './fleet-backing';
import { firstFew, missingFromDatabase, waitForDelivery } from './fleet-patterns';
import { markSecretsSet, runInfraGuard, tamperedStagingReport, type GuardOutcome } from './guard-step';
import { PatternLedger } from './ledger';
import type { ProcessRegistry } from './processes';
import type { Reporter } from './reporter';
import { DEMO_SCOPE_IDS, DEMO_TRAFFIC, startTraffic, type TrafficRun, type TrafficStats } from './traffic';
import { validateScopeIds } from './validation';
import { CAPACITY_SHARE, httpCapacitySampler, measureClock, type ClockChoice } from './clock';
import type { CanaryObservation, DemoMode, FleetObservations, Observations } from './verdict';
import { observeSteppedRun } from './stepped-outcome';
import { loadPolicy } from '../canary/policy';
import { memoryServiceCreateBody } from '../infra/service-runtime';
import { prepareExposure } from '../canary/exposure/prepare';
import { httpProbe } from '../canary/sources/http';

export const DEMO_POLICY = join(__dirname, 'policy.yaml');
/** The stepped rollout's incident: Context7 degrades only once this share of scopes is exposed (the issue's 25 %). */
export const FAULT_FROM_EXPOSURE_PERCENT = 25;

export interface RehearsalOptions {
  mode: DemoMode;
  runDir: string;
  /** policy seconds per real second; undefined: measured (demo/clock.ts) */
  timeScale: number | undefined;
  /** told the clock once it is chosen (the watchdog stretches with a slower one) */
  onClock?: (clock: ClockChoice) => void;
  /** the stepped rollout: the exposure (percent, as the service reports it) from which Context7 degrades */
  faultFromExposurePercent: number;
  reporter: Reporter;
  registry: ProcessRegistry;
  cleanup: Cleanup;
  /** production-shaped: PostgreSQL + Redis per environment, 2 instances per service, rollback then retry */
  fleet?: boolean;
  /** Why the rehearsal is being stopped from outside (a signal, the watchdog), or null: what it sees then is not a verdict. */
  stopping?: () => string | null;
}

/** Instances per service in the fleet rehearsal (the production stack's minimum). */
export const FLEET_INSTANCES = 2;

/** What the fleet rehearsal adds to the result; the verdict's part of it is `observations.fleet`. */
export interface FleetResult {
  instancesPerService: number;
  databases: Partial<Record<Stack, string>>;
  redisKeyPrefixes: Partial<Record<Stack, string>>;
  guard: { promoted?: GuardOutcome; tamperedReport?: GuardOutcome; retry?: GuardOutcome };
  patterns: Partial<Record<Stack, { acknowledged: number; foundInPostgres: number; deliveredToContext7: number; missingInPostgres: string[]; undelivered: string[]; deliveryWaitMs: number }>>;
  /** every traffic run of the rehearsal: requests that got no HTTP answer at all */
  requestsWithoutAnswer: number;
  requestsSent: number;
  /** each service's load balancer counters at the end (unavailable / badGateway count answers it could not give) */
  loadBalancers: Partial<Record<Stack, unknown>>;
}

export interface CanaryRunPaths {
  log: string;
  state: string;
  reports: { json: string; signoff: string; html: string };
}

export interface RehearsalResult {
  observations: Omit<Observations, 'processesLeft'>;
  paths: {
    runDir: string;
    stackDir: string;
    serviceLogs: Record<string, string>;
    /** scope id -> ids of the learning writes production acknowledged */
    acknowledgedPatterns?: string;
    /** SQLite data dir per stack */
    dataDirs: Record<string, string>;
    /** by canary run: staging, production, and with --fleet production-retry */
    canary: Partial<Record<CanaryRunName, CanaryRunPaths>>;
  };
  /** by canary run; with --fleet also each stack's steady traffic (`<stack>-steady`) */
  traffic: Partial<Record<string, TrafficStats>>;
  patterns: { acknowledged: number; present: number; missing: string[]; databaseOnly: number; waitingInOutbox: number; scopes: number } | null;
  faultStages: FaultStage[];
  /** the stepped rollout: exposure as the demo saw the production service report it, and when the fault began */
  exposure: { seen: { atMs: number; percent: number }[]; faultBeganAtPercent: number | null } | null;
  fleet: FleetResult | null;
  /** the policy clocks: given, or chosen from the machine's measured capacity before each canary run's traffic */
  clocks: ClockChoice[];
}

type CanaryRunName = 'staging' | 'production' | 'production-retry';
type Context7Emulator = Awaited<ReturnType<typeof startContext7Emulator>>;
type Stack = 'staging' | 'production';

interface DemoService {
  stack: Stack;
  id: string;
  url: string;
  logFile: string;
}

/** Secrets are generated per run and never printed. Their marker lets the e2e test prove that. */
export const SECRET_MARKER = 'DEMOSECRET';
const secret = (prefix: string) => `${prefix}_${SECRET_MARKER}_${randomBytes(16).toString('hex')}`;

export async function runRehearsal(o: RehearsalOptions): Promise<RehearsalResult> {
  const { reporter: say, registry, cleanup } = o;
  const dirs = {
    logs: join(o.runDir, 'logs'),
    data: join(o.runDir, 'data'),
    stacks: join(o.runDir, 'stacks'),
    state: join(o.runDir, 'state'),
    reports: join(o.runDir, 'reports'),
  };
  for (const dir of Object.values(dirs)) mkdirSync(dir, { recursive: true });
  for (const stack of ['staging', 'production']) {
    copyFileSync(join(REPO_ROOT, `Pulumi.${stack}.yaml`), stackFilePath(dirs.stacks, stack));
    // The guard runs on these copies: give them the secrets an operator's checkout has (as ciphertext).
    if (o.fleet) markSecretsSet(stackFilePath(dirs.stacks, stack));
  }
  // Caller keys per run too (issue 13): one for the demo's traffic and probes, one for the canary's verification.
  const keys = { render: secret('rnd'), context7: secret('c7'), admin: secret('adm'), memory: secret('mem'), canary: secret('cny'), probe: secret('prb') };

  const result: RehearsalResult = {
    observations: {
      mode: o.mode,
      validationOk: false,
      staging: null,
      promotedStack: null,
      productionStack: null,
      production: null,
      productionRenderFlag: null,
      patterns: null,
      stepped: null,
      fleet: null,
    },
    paths: { runDir: o.runDir, stackDir: dirs.stacks, serviceLogs: {}, dataDirs: { staging: join(dirs.data, 'staging'), production: join(dirs.data, 'production') }, canary: {} },
    traffic: {},
    patterns: null,
    faultStages: [],
    exposure: null,
    clocks: [],
    fleet: o.fleet
      ? { instancesPerService: FLEET_INSTANCES, databases: {}, redisKeyPrefixes: {}, guard: {}, patterns: {}, requestsWithoutAnswer: 0, requestsSent: 0, loadBalancers: {} }
      : null,
  };
  const fleet = result.fleet;
  const backings: Partial<Record<Stack, FleetBacking>> = {};
  /** fleet: each stack's steady traffic, from its first deploy to the end, so every deploy happens under load */
  const steady: Partial<Record<Stack, TrafficRun>> = {};
  const ledgers: Record<Stack, PatternLedger> = { staging: new PatternLedger(), production: new PatternLedger() };
  let retryObservation: CanaryObservation | null = null;
  /** The stepped canary's last held look shown, per run: the same wait is not repeated at every poll. */
  const lastHeldFor = new Map<string, string>();
  const stagingReportPath = () => result.paths.canary.staging!.reports.json;

  // ── Step 1 ──────────────────────────────────────────────────────────────────────────────────
  say.step(
    o.fleet
      ? `start the Context7 emulator, the Render emulator (local platform), a PostgreSQL database and a Redis key prefix per environment, and two memory services of ${FLEET_INSTANCES} instances`
      : 'start the Context7 emulator, the Render emulator (local platform) and two memory services',
  );
  if (fleet) {
    const suffix = randomRunSuffix();
    for (const stack of ['staging', 'production'] as const) {
      const backing = await provisionFleetBacking(stack, suffix);
      backings[stack] = backing;
      // Registered first, so it runs last: after the services that write to it are stopped.
      cleanup.add(`${stack} database ${backing.databaseName} and Redis keys ${backing.redisKeyPrefix}*`, () => backing.remove());
      fleet.databases[stack] = backing.databaseName;
      fleet.redisKeyPrefixes[stack] = backing.redisKeyPrefix;
      say.ok(`${stack}: PostgreSQL database ${backing.databaseName} on ${new URL(backing.databaseUrl).host}, Redis key prefix ${backing.redisKeyPrefix} on ${new URL(backing.redisUrl).host}`);
    }
  }
  const context7 = await startContext7Emulator({ apiKey: keys.context7, seed: 7 });
  cleanup.add('Context7 emulator', () => context7.close());
  say.ok(`Context7 emulator on ${context7.url} (API key generated, never printed)`);
  const render = await startRenderEmulator({
    apiKey: keys.render,
    // Each emulated deploy phase (queue, build, pre-deploy, start) waits this long on top of the real build and start.
    deployStepMs: 20,
    localPlatform: { source: 'working-tree', cwd: REPO_ROOT, logDir: dirs.logs, readyTimeoutMs: 60_000, shutdownGraceMs: 3_000 },
  });
  cleanup.add('Render emulator and its services', () => render.close());
  say.ok(
    `Render emulator on ${render.url} (local platform: ` +
      (o.fleet
        ? 'a load balancer per service; each deploy starts new instances, health-checks them, shifts traffic, then drains and stops the old ones)'
        : 'each deploy restarts the service as a real process)'),
  );
  // Which code the rehearsal ran: the working tree, chosen explicitly above (its deploys' commit ids are labels).
  say.ok(`Render emulator runs ${render.platformSource ?? 'no local code'}`);
  const watcher = setInterval(() => recordInstances(render, registry), 200);
  cleanup.add('instance watcher', () => clearInterval(watcher));

  const client = new RenderClient({ apiKey: keys.render, baseUrl: render.url });
  // The rehearsal's production runs on this local platform, as RENDER_API_URL would say to a real preview's guard.
  const onLocalPlatform = { RENDER_API_URL: render.url };
  const ownerId = (await client.listOwners())[0]!.id;
  const [staging, production] = await Promise.all(
    (['staging', 'production'] as const).map((stack) => createService(stack)),
  );
  result.paths.serviceLogs = { staging: staging!.logFile, production: production!.logFile };
  // Measured on production, whose flag stays off until long after: the burst never lands in the window of the
  // Render platform latency the staging canary judges (it did once, and staging rolled back on p95 > 2 s). Measured
  // again before production's rollout: a shared machine's load changes over minutes.
  let timeScale = await chooseClock(production!, 'staging');
  if (fleet) {
    for (const service of [staging!, production!]) {
      const traffic = startTraffic({
        baseUrl: service.url,
        ledger: ledgers[service.stack],
        requestsPerPolicyMinute: DEMO_TRAFFIC.steady,
        timeScale,
        seed: service.stack === 'staging' ? 11 : 12,
        label: `${service.stack}-steady`,
        memoryApiKey: keys.memory,
      });
      steady[service.stack] = traffic;
      cleanup.add(`${service.stack} steady traffic`, () => traffic.stop());
    }
    say.info('steady traffic on both services from now to the end (1 worker each, learning writes included): every deploy below happens under load');
  }

  // ── Step 2 ──────────────────────────────────────────────────────────────────────────────────
  say.step('pre-rollout validation (runbook "Critical Validation": scope id format)');
  const validation = validateScopeIds(DEMO_SCOPE_IDS);
  const invalidProbe = await postJson(`${staging!.url}/api/memory/snippets`, { scopeId: 'scope:test:agent-1:PLACEHOLDER' }, keys.memory);
  validation.push({
    name: 'the service refuses a malformed scope id with 400 "Invalid scopeId format"',
    ok: invalidProbe.status === 400 && String((invalidProbe.body as { error?: unknown })?.error ?? '').startsWith('Invalid scopeId format'),
    detail: `HTTP ${invalidProbe.status} ${JSON.stringify(invalidProbe.body)}`,
  });
  for (const check of validation) (check.ok ? say.ok : say.fail)(`${check.name}: ${check.detail}`);
  result.observations.validationOk = validation.every((c) => c.ok);
  if (!result.observations.validationOk) {
    say.fail('validation failed: the runbook says do not proceed');
    return fleet ? finishFleet() : result;
  }

  say.step('enable the flag on staging through the Render API, drive the load mix, run the staging canary');
  await enableFlag(staging!);
  await expectHealthAvailable(staging!);
  const stagingRun = await canaryWithTraffic(staging!, fleet ? ledgers.staging : undefined);
  result.observations.staging = stagingRun.observation;
  result.traffic.staging = stagingRun.traffic;
  const productionStackFile = stackFilePath(dirs.stacks, 'production');
  result.observations.promotedStack = {
    pinnedCommit: readStackConfig(productionStackFile, PINNED_COMMIT_KEY),
    flag: readStackConfig(productionStackFile, FLAG_KEY),
  };
  const pinned = result.observations.promotedStack.pinnedCommit;
  if (stagingRun.observation.outcome !== 'promoted' || typeof pinned !== 'string') {
    if (o.stopping?.()) return fleet ? finishFleet() : result;
    say.fail(`staging did not promote (outcome ${stagingRun.observation.outcome ?? 'none'}): the runbook says do not proceed to production`);
    return fleet ? finishFleet() : result;
  }
  say.ok(`promotion written to ${productionStackFile}: ${PINNED_COMMIT_KEY}: ${pinned.slice(0, 12)}…, ${FLAG_KEY}: true`);
  if (fleet) {
    say.step('infra guard, as `pulumi preview -s production` runs it, on the stack file the staging canary wrote');
    fleet.guard.promoted = guardProduction('the promoted production stack', stagingReportPath());
    const tampered = join(dirs.reports, 'staging-report-tampered.json');
    tamperedStagingReport(stagingReportPath(), tampered);
    fleet.guard.tamperedReport = runInfraGuard('production', productionStackFile, tampered, onLocalPlatform);
    (fleet.guard.tamperedReport.ok ? say.fail : say.ok)(
      `with a tampered copy of the staging report (another commit): ${fleet.guard.tamperedReport.ok ? 'NOT refused' : `refused (${refusalFacts(fleet.guard.tamperedReport.violations)})`}`,
    );
    if (!fleet.guard.promoted.ok || fleet.guard.tamperedReport.ok) {
      say.fail('the guard did not behave: the runbook says do not turn the production flag on');
      return finishFleet();
    }
  }

  // ── Step 3 ──────────────────────────────────────────────────────────────────────────────────
  const ledger = ledgers.production;
  const steps = loadPolicy(DEMO_POLICY).exposure.steps.map((step) => step.percent);
  say.step(
    `production: a stepped rollout at the pinned commit${fleet ? ` on ${FLEET_INSTANCES} instances` : ''}, ${steps.join(' → ')} % of scopes, each step judged against the control cohort` +
      (o.mode === 'fault' ? `; Context7 degrades once ${o.faultFromExposurePercent} % are exposed` : ' (healthy: no fault)'),
  );
  timeScale = await chooseClock(production!, 'production');
  // Exposure 0 before the flag goes on: the flag-on deploy then exposes nobody until the stepped canary's first step.
  await setExposure(production!, 0);
  await enableFlag(production!, pinned);
  await expectHealthAvailable(production!);
  const productionRun = await canaryWithTraffic(production!, ledger, { run: 'production', injectFault: o.mode === 'fault', stepped: true });
  result.observations.production = productionRun.observation;
  result.traffic.production = productionRun.traffic;
  result.observations.productionStack = {
    pinnedCommit: readStackConfig(productionStackFile, PINNED_COMMIT_KEY),
    flag: readStackConfig(productionStackFile, FLAG_KEY),
  };
  const env = await client.listEnvVars(production!.id);
  result.observations.productionRenderFlag = env.find((v) => v.key === 'ENABLE_CONTEXT7_MEMORY')?.value ?? null;
  say.info(`Render API: production ENABLE_CONTEXT7_MEMORY=${result.observations.productionRenderFlag}`);
  say.info(`production stack copy: ${FLAG_KEY}: ${String(result.observations.productionStack.flag)}`);
  for (const check of productionRun.observation.verifyChecks) (check.ok ? say.ok : say.fail)(`canary verification: ${check.detail}`);

  if (fleet) {
    say.step('the incident is fixed: Context7 healthy again; the same pinned commit rolled out again with the flag on');
    if (productionRun.observation.outcome !== 'rolled_back') {
      say.fail(`production did not roll back (outcome ${productionRun.observation.outcome ?? 'none'}): nothing to retry`);
      return finishFleet();
    }
    context7.resetFaults();
    say.ok('Context7 emulator faults cleared');
    // The operator reverts the latch (a reviewable one-line diff), and `pulumi preview` runs the guard again.
    setStackConfig(productionStackFile, { [FLAG_KEY]: true });
    say.info(`${productionStackFile}: ${FLAG_KEY}: true again (the latch reverted), ${PINNED_COMMIT_KEY} unchanged`);
    fleet.guard.retry = guardProduction('the retry', stagingReportPath());
    if (!fleet.guard.retry.ok) return finishFleet();
    await enableFlag(production!, pinned);
    await expectHealthAvailable(production!);
    // The kill switch left the runtime exposure at 0 %: the retry starts from nobody exposed, stepped again.
    const retryRun = await canaryWithTraffic(production!, ledger, { run: 'production-retry', injectFault: false, stepped: true });
    result.traffic['production-retry'] = retryRun.traffic;
    retryObservation = retryRun.observation;
  }

  // ── Step 4 ──────────────────────────────────────────────────────────────────────────────────
  // The ledger must be final before it is compared with the store.
  if (fleet) await stopSteadyTraffic();
  say.step('no learned pattern lost: every acknowledged pattern is in the local store (admin export)');
  const totals = ledger.totals();
  result.paths.acknowledgedPatterns = join(o.runDir, 'acknowledged-patterns.json');
  writeFileSync(result.paths.acknowledgedPatterns, `${JSON.stringify(ledger, null, 1)}\n`);
  const stored = new Map<string, { ids: Set<string>; unsynced: number }>();
  for (const scopeId of ledger.scopes()) {
    const res = await fetch(`${production!.url}/api/admin/export?scopeId=${encodeURIComponent(scopeId)}`, {
      headers: { authorization: `Bearer ${keys.admin}` },
      signal: AbortSignal.timeout(10_000),
    });
    if (res.status !== 200) throw new Error(`admin export for ${scopeId} answered HTTP ${res.status}`);
    const body = (await res.json()) as { patterns: { id: string; syncedAt: string | null }[] };
    stored.set(scopeId, { ids: new Set(body.patterns.map((p) => p.id)), unsynced: body.patterns.filter((p) => p.syncedAt === null).length });
  }
  const loss = ledger.compare((scopeId) => stored.get(scopeId)?.ids ?? new Set());
  const waitingInOutbox = [...stored.values()].reduce((n, s) => n + s.unsynced, 0);
  result.patterns = { ...loss, databaseOnly: totals.databaseOnly, waitingInOutbox };
  result.observations.patterns = { acknowledged: loss.acknowledged, present: loss.present, missing: loss.missing.length };
  (loss.missing.length === 0 && loss.acknowledged > 0 ? say.ok : say.fail)(
    `${loss.present}/${loss.acknowledged} acknowledged patterns over ${loss.scopes} scopes are in the local store` +
      (totals.databaseOnly > 0
        ? ` (${totals.databaseOnly} were acknowledged to the database only while Context7 failed; ${waitingInOutbox} wait in the outbox for Context7)`
        : ` (${waitingInOutbox} still wait in the outbox for Context7)`),
  );
  if (loss.missing.length > 0) say.fail(`missing: ${loss.missing.slice(0, 5).join(', ')}${loss.missing.length > 5 ? ', …' : ''}`);
  if (fleet) {
    await checkFleetPatterns();
    return finishFleet();
  }
  if (o.mode === 'fault') {
    const after = await postJson(`${production!.url}/api/memory/snippets`, { scopeId: DEMO_SCOPE_IDS[0] }, keys.memory);
    say.info(`after the rollback, snippets answer ${JSON.stringify(after.body)} (runbook: {"snippets":[],"source":"disabled"}); the service keeps working on its local store`);
  }
  return result;

  // ── helpers (closures over this run) ──────────────────────────────────────────────────────
  /**
   * The policy clock: --time-scale when given; else measured on a service whose flag is still off, the fastest clock
   * whose busiest traffic fits the machine now (demo/clock.ts).
   */
  async function chooseClock(service: DemoService, forRun: 'staging' | 'production'): Promise<number> {
    const busiest = Math.max(DEMO_TRAFFIC.canary, DEMO_TRAFFIC.stepped);
    let clock: ClockChoice;
    if (o.timeScale !== undefined) {
      clock = { forRun, timeScale: o.timeScale, chosen: 'given', capacityPerSecond: null, measuredSeconds: null, requestsPerPolicyMinute: busiest };
    } else {
      say.status(`measuring what this machine carries now (${service.stack}, flag off, from 0.5 s; again after a pause if far below 60x)`);
      const measured = await measureClock(httpCapacitySampler(service.url, keys.memory), busiest);
      clock = {
        forRun,
        timeScale: measured.timeScale,
        chosen: 'measured',
        capacityPerSecond: Math.round(measured.perSecond),
        measuredSeconds: Math.round(measured.seconds * 100) / 100,
        requestsPerPolicyMinute: busiest,
        ...(measured.rounds.length > 1 ? { roundsPerSecond: measured.rounds.map((r) => Math.round(r)) } : {}),
      };
    }
    result.clocks.push(clock);
    o.onClock?.(clock);
    const perMinute = `one policy minute per ${(60 / clock.timeScale).toFixed(1)} s`;
    say.ok(
      clock.chosen === 'given'
        ? `${forRun} clock: ${clock.timeScale}x (${perMinute}; --time-scale)`
        : `${forRun} clock: ${clock.timeScale}x (${perMinute}): this machine answered ${clock.capacityPerSecond} requests/s now, and the busiest traffic, ` +
            `${busiest} requests a policy minute, may use ${Math.round(CAPACITY_SHARE * 100)} % of that` +
            (clock.roundsPerSecond ? ` (the best of ${clock.roundsPerSecond.length} measurements: ${clock.roundsPerSecond.join(', ')} requests/s)` : ''),
    );
    say.info(`traffic: ${DEMO_TRAFFIC.canary} requests a policy minute for the staging canary, ${DEMO_TRAFFIC.stepped} for the stepped rollout, whatever the clock`);
    return clock.timeScale;
  }

  /** Fleet step: every acknowledged pattern, both environments, in PostgreSQL and then in Context7. */
  async function checkFleetPatterns(): Promise<void> {
    await stopSteadyTraffic();
    say.step('no pattern lost: every acknowledged pattern is in its environment\'s PostgreSQL database and reaches Context7');
    // Staging's too, beside production's acknowledged-patterns.json, so both can be checked independently.
    writeFileSync(join(o.runDir, 'acknowledged-patterns-staging.json'), `${JSON.stringify(ledgers.staging, null, 1)}\n`);
    for (const stack of ['staging', 'production'] as const) {
      const backing = backings[stack]!;
      const inDatabase = await missingFromDatabase(backing.databaseUrl, ledgers[stack]);
      (inDatabase.missing.length === 0 && inDatabase.acknowledged > 0 ? say.ok : say.fail)(
        `${stack}: ${inDatabase.acknowledged - inDatabase.missing.length}/${inDatabase.acknowledged} acknowledged patterns are rows in PostgreSQL (${backing.databaseName}.patterns)`,
      );
      // The drainers retry with backoff after the incident: wait for them, bounded.
      const delivery = await waitForDelivery(ledgers[stack], (scopeId) => new Set(context7.patterns(scopeId).map((p) => p.id)), {
        timeoutMs: 150_000,
        onProgress: (delivered, total) => say.status(`${stack}: ${delivered}/${total} acknowledged patterns in Context7 (the outbox drainers deliver the rest)`),
      });
      (delivery.undelivered.length === 0 && inDatabase.acknowledged > 0 ? say.ok : say.fail)(
        `${stack}: ${delivery.delivered}/${inDatabase.acknowledged} acknowledged patterns reached the Context7 emulator (waited ${(delivery.waitedMs / 1000).toFixed(1)} s for the outbox drainers)`,
      );
      if (inDatabase.missing.length > 0) say.fail(`${stack}: missing in PostgreSQL: ${firstFew(inDatabase.missing).join(', ')}`);
      if (delivery.undelivered.length > 0) say.fail(`${stack}: not in Context7: ${firstFew(delivery.undelivered).join(', ')}`);
      fleet!.patterns[stack] = {
        acknowledged: inDatabase.acknowledged,
        foundInPostgres: inDatabase.acknowledged - inDatabase.missing.length,
        deliveredToContext7: delivery.delivered,
        missingInPostgres: firstFew(inDatabase.missing),
        undelivered: firstFew(delivery.undelivered),
        deliveryWaitMs: delivery.waitedMs,
      };
    }
  }

  async function stopSteadyTraffic(): Promise<void> {
    for (const stack of ['staging', 'production'] as const) {
      const traffic = steady[stack];
      if (traffic) result.traffic[`${stack}-steady`] = await traffic.stop();
    }
  }

  /** Fleet: the figures the verdict judges, on every path out of the rehearsal (an early stop included). */
  async function finishFleet(): Promise<RehearsalResult> {
    await stopSteadyTraffic();
    const runs = Object.values(result.traffic).filter((t): t is TrafficStats => t !== undefined);
    fleet!.requestsSent = runs.reduce((n, t) => n + t.sent, 0);
    fleet!.requestsWithoutAnswer = runs.reduce((n, t) => n + t.transportErrors, 0);
    for (const service of [staging, production]) {
      if (service) fleet!.loadBalancers[service.stack] = render.state().services.find((s) => s.id === service.id)?.instance?.loadBalancer;
    }
    (fleet!.requestsWithoutAnswer === 0 ? say.ok : say.fail)(
      `zero-downtime: ${fleet!.requestsWithoutAnswer} of ${fleet!.requestsSent} requests over the whole rehearsal went without answer, through every deploy of ${FLEET_INSTANCES} instances`,
    );
    const totals = Object.values(fleet!.patterns);
    const patterns = totals.length
      ? {
          acknowledged: totals.reduce((n, p) => n + p.acknowledged, 0),
          foundInPostgres: totals.reduce((n, p) => n + p.foundInPostgres, 0),
          deliveredToContext7: totals.reduce((n, p) => n + p.deliveredToContext7, 0),
        }
      : null;
    result.observations.fleet = {
      guardPassedPromoted: fleet!.guard.promoted?.ok ?? null,
      guardRefusedTampered: fleet!.guard.tamperedReport ? !fleet!.guard.tamperedReport.ok : null,
      guardPassedRetry: fleet!.guard.retry?.ok ?? null,
      retry: retryObservation,
      patterns,
      requestsWithoutAnswer: fleet!.requestsWithoutAnswer,
    };
    return result;
  }

  function guardProduction(what: string, stagingReport: string): GuardOutcome {
    const outcome = runInfraGuard('production', stackFilePath(dirs.stacks, 'production'), stagingReport, onLocalPlatform);
    if (outcome.ok) say.ok(`infra guard passes ${what}: ${FLAG_KEY}: true at a commit the staging canary promoted (${stagingReport})`);
    else for (const violation of outcome.violations) say.fail(`infra guard refuses ${what}: ${violation}`);
    return outcome;
  }

  async function createService(stack: Stack): Promise<DemoService> {
    const backing = backings[stack];
    const created = await client.createService(memoryServiceCreateBody({
      name: `memory-${stack}`,
      ownerId,
      // Fleet: as the infra program declares it: N instances, and the migration as the pre-deploy command.
      ...(backing ? { fleet: { instances: FLEET_INSTANCES, maxShutdownDelaySeconds: 30 } } : {}),
      envVars: [
        // The rollout starts from the flag off: the runbook turns it on per environment.
        { key: 'ENABLE_CONTEXT7_MEMORY', value: 'false' },
        { key: 'CONTEXT7_API_KEY', value: keys.context7 },
        { key: 'CONTEXT7_BASE_URL', value: context7.url },
        { key: 'ADMIN_TOKEN', value: keys.admin },
        { key: 'MEMORY_API_KEYS', value: `demo-traffic:${keys.memory}:loadtest-*;canary:${keys.canary};canary-probe:${keys.probe}:${PROBE_LOCATION}` },
        { key: 'DATA_DIR', value: result.paths.dataDirs[stack]! },
        { key: 'NODE_ENV', value: 'production' },
        { key: 'LOG_LEVEL', value: 'info' },
        { key: 'OUTBOX_DRAIN_INTERVAL_MS', value: '1000' },
        ...(backing
          ? [
              { key: 'DATABASE_URL', value: backing.databaseUrl },
              { key: 'REDIS_URL', value: backing.redisUrl },
              { key: 'REDIS_KEY_PREFIX', value: backing.redisKeyPrefix },
              // Every client of the rehearsal is 127.0.0.1 and, with Redis, the per-client limit is fleet-wide: the
              // default (3,000 a minute) would count the whole simulated client population as one client.
              { key: 'RATE_LIMIT_MAX', value: '100000' },
            ]
          : []),
      ],
    }));
    const id = created.service!.id;
    const url = (created.service!.serviceDetails as { url: string }).url;
    await waitLive(stack, id, created.deployId!, 'first deploy');
    const logFile = render.state().services.find((s) => s.id === id)?.instance?.logFile ?? join(dirs.logs, `${id}.log`);
    const shape = backing ? `${FLEET_INSTANCES} instances behind its load balancer, on ${backing.databaseName} and ${backing.redisKeyPrefix}*, ` : '';
    say.ok(`${stack} service ${id} live on ${url}: ${shape}ENABLE_CONTEXT7_MEMORY=false (log: ${logFile})`);
    return { stack, id, url, logFile };
  }

  async function waitLive(stack: Stack, serviceId: string, deployId: string, what: string): Promise<void> {
    await client.waitForDeploy(serviceId, deployId, {
      timeoutMs: 90_000,
      pollIntervalMs: 100,
      onProgress: (deploy) => say.status(`${stack}: ${what} ${deployId} is ${deploy.status}`),
    });
    recordInstances(render, registry);
  }

  async function enableFlag(service: DemoService, commitId?: string): Promise<void> {
    // The runbook's 5-minute cache TTL on the policy clock (5 s at 60x), set with the flag: the clock is chosen after
    // the services started, and a service with the flag off has no cache to time.
    await client.setEnvVar(service.id, 'MEMORY_CACHE_TTL_MS', String(Math.round((5 * 60 * 1000) / timeScale)));
    await client.setEnvVar(service.id, 'ENABLE_CONTEXT7_MEMORY', 'true');
    const deploy = await client.triggerDeploy(service.id, commitId ? { commitId } : {});
    say.info(`${service.stack}: set ENABLE_CONTEXT7_MEMORY=true and triggered deploy ${deploy.id}${commitId ? ` at commit ${commitId.slice(0, 12)}…` : ''}`);
    await waitLive(service.stack, service.id, deploy.id!, 'deploy');
    say.ok(`${service.stack}: deploy ${deploy.id} is live`);
  }

  /** A runtime exposure change through the service's admin API (PUT /api/admin/exposure), audited with `reason`. */
  async function setExposure(service: DemoService, percent: number): Promise<void> {
    // The same code as `npm run canary -- stepped --prepare --prepare-percent 0` in the example workflow.
    const prepared = await prepareExposure({ baseUrl: service.url, adminToken: keys.admin, percent, firstStepPercent: steps[0]!, probe: httpProbe, timeoutMs: 5_000 });
    if (!prepared.ok) throw new Error(`${service.stack}: ${prepared.detail}`);
    say.ok(`${service.stack}: ${prepared.detail} (canary stepped --prepare)`);
  }

  /** The percentage the service applies (GET /api/admin/exposure), or null when it cannot say right now. */
  async function readExposurePercent(service: DemoService): Promise<number | null> {
    try {
      const res = await fetch(`${service.url}/api/admin/exposure`, { headers: { authorization: `Bearer ${keys.admin}` }, signal: AbortSignal.timeout(2_000) });
      if (res.status !== 200) return null;
      const body = (await res.json()) as { percent?: unknown };
      return typeof body.percent === 'number' ? body.percent : null;
    } catch {
      return null; // restarting (the rollback's redeploy): the next tick asks again
    }
  }

  /** The runbook's "Verify Staging" / "Immediate Checks": health says available:true. */
  async function expectHealthAvailable(service: DemoService): Promise<void> {
    let last: unknown;
    for (let attempt = 0; attempt < 40; attempt++) {
      const health = await getJson(`${service.url}/api/memory/health`);
      last = health.body;
      if (health.status === 200 && (health.body as { available?: unknown })?.available === true) {
        say.ok(`${service.stack}: GET /api/memory/health -> ${JSON.stringify(health.body)}`);
        return;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`${service.stack}: health never reported available:true (last: ${JSON.stringify(last)})`);
  }

  /** `run` names the canary run (its log, state and report directory); a retry of production is its own run. */
  async function canaryWithTraffic(
    service: DemoService,
    ledger: PatternLedger | undefined,
    { run = service.stack as CanaryRunName, injectFault = false, stepped = false }: { run?: CanaryRunName; injectFault?: boolean; stepped?: boolean } = {},
  ): Promise<{ observation: CanaryObservation; traffic: TrafficStats }> {
    const stack = service.stack;
    const paths: CanaryRunPaths = {
      log: join(dirs.logs, `canary-${run}.log`),
      state: join(dirs.state, `canary-${run}.json`),
      reports: {
        json: join(dirs.reports, run, 'report.json'),
        signoff: join(dirs.reports, run, 'signoff.md'),
        html: join(dirs.reports, run, 'report.html'),
      },
    };
    result.paths.canary[run] = paths;
    // A fixed number of requests a policy minute (demo/traffic.ts): what the canary's windows hold does not depend
    // on how fast this machine answers.
    const requestsPerPolicyMinute = stepped ? DEMO_TRAFFIC.stepped : DEMO_TRAFFIC.canary;
    const traffic = startTraffic({
      baseUrl: service.url,
      ledger,
      requestsPerPolicyMinute,
      timeScale,
      seed: { staging: 1, production: 2, 'production-retry': 3 }[run],
      label: run,
      memoryApiKey: keys.memory,
    });
    cleanup.add(`${run} traffic`, () => traffic.stop());
    say.info(`${stack}: load mix running (snippet reads over ${DEMO_SCOPE_IDS.length} scopes, learning writes, health/config/metrics polls)`);
    const canary = startCanary(
      {
        command: stepped ? 'stepped' : 'run',
        ...(stepped ? { adminToken: keys.admin } : {}),
        stack,
        baseUrl: service.url,
        renderApiUrl: render.url,
        renderServiceId: service.id,
        renderApiKey: keys.render,
        memoryApiKey: keys.canary,
        probeKey: keys.probe,
        policyFile: DEMO_POLICY,
        stateFile: paths.state,
        reportDir: join(dirs.reports, run),
        stackDir: dirs.stacks,
        timeScale,
        logFile: paths.log,
      },
      registry,
      (line) => relayCanaryLine(run, line),
    );
    say.info(`${stack}: ${stepped ? 'stepped canary (canary stepped)' : 'canary'} started (pid ${canary.pid}, policy ${DEMO_POLICY} at ${timeScale}x; log ${paths.log})`);

    let stage: FaultStage | undefined;
    // The stepped rollout: the exposure the service reports, read by the demo itself; the fault follows it.
    const exposure: RehearsalResult['exposure'] = stepped ? { seen: [], faultBeganAtPercent: null } : null;
    if (run === 'production') result.exposure = exposure;
    let faultBeganAtPolicySeconds: number | undefined;
    let readingExposure = false;
    const watchExposure = async () => {
      readingExposure = true;
      try {
        const percent = await readExposurePercent(service);
        const last = exposure!.seen.at(-1);
        if (percent === null || percent === last?.percent) return;
        exposure!.seen.push({ atMs: Date.now(), percent });
        say.info(`  ${run}: the service reports exposure ${percent} % (${percent === 0 ? 'no scope reads from Context7' : percent === 100 ? 'every scope reads from Context7' : `the scopes whose hash falls under ${percent} % read from Context7`})`);
        if (injectFault && faultBeganAtPolicySeconds === undefined && percent >= o.faultFromExposurePercent) {
          faultBeganAtPolicySeconds = canary.policySeconds() ?? 0;
          exposure!.faultBeganAtPercent = percent;
        }
      } finally {
        readingExposure = false;
      }
    };
    // --fleet: once, mid-run, the operator's view of the stepped rollout from another process (`canary status`).
    let statusAsked = !(o.fleet && stepped && run === 'production');
    const showStatus = async () => {
      const lines = await canaryStatus({ stack, stateFile: paths.state, policyFile: DEMO_POLICY, baseUrl: service.url, adminToken: keys.admin, timeScale });
      say.info(`  ${run}: \`npm run canary -- status --stack ${stack} --state-file ${paths.state}\` from another terminal, mid-run:`);
      for (const line of lines) say.info(`    ${line}`);
    };
    const ticker = setInterval(() => {
      if (!statusAsked && looksAtCurrentStep(paths.state) >= 3) {
        statusAsked = true;
        void showStatus();
      }
      if (exposure && !readingExposure) void watchExposure();
      const policySeconds = canary.policySeconds();
      if (policySeconds === undefined) return;
      if (injectFault && faultBeganAtPolicySeconds !== undefined) {
        const next = faultStageAt(policySeconds - faultBeganAtPolicySeconds);
        if (next && next !== stage) {
          stage = next;
          result.faultStages.push(next);
          context7.setFaults({ errorRate: next.errorRate, latencyMs: next.latencyMs });
          say.fail(
            `Context7 incident at canary minute ${(policySeconds / 60).toFixed(1)}${exposure ? ` (exposure ${exposure.seen.at(-1)?.percent ?? '?'} %)` : ''}: ` +
              `${Math.round(next.errorRate * 100)}% errors, +${next.latencyMs} ms latency`,
          );
        }
      }
      const s = traffic.stats();
      const sources = Object.entries(s.snippetSources).map(([k, v]) => `${k} ${v}`).join(', ');
      const exposed = exposure ? ` · exposure ${exposure.seen.at(-1)?.percent ?? '?'} %` : '';
      say.status(`${run} canary at minute ${(policySeconds / 60).toFixed(1)}${exposed} · ${s.sent} requests (${sources}) · ${s.patternsAcknowledged} patterns acknowledged`);
    }, 250);
    const exitCode = await canary.exit.finally(() => clearInterval(ticker));
    const stats = await traffic.stop();
    // The rollout judged in the verdict is production's first; the fleet's retry is judged by its outcome.
    if (stepped && run === 'production' && existsSync(paths.reports.json)) {
      const report = JSON.parse(readFileSync(paths.reports.json, 'utf8'));
      const seen = Math.max(0, ...(exposure?.seen.map((point) => point.percent) ?? []));
      result.observations.stepped = { ...observeSteppedRun(report, stats.requestsByScope, seen), faultBeganAtPercent: exposure?.faultBeganAtPercent ?? null };
    }
    say.info(
      `${run}: traffic ${stats.sent} requests, ${stats.transportErrors} without answer, statuses ${JSON.stringify(stats.byStatus)}, ` +
        `snippet sources ${JSON.stringify(stats.snippetSources)}, ${stats.failedChecks} failed response checks`,
    );
    const slip = stats.schedule.maxBehind;
    (slip <= stats.schedule.requestsPerPolicyMinute / 2 ? say.info : say.fail)(
      `${run}: schedule ${stats.schedule.requestsPerPolicyMinute} requests a policy minute over ${stats.schedule.policyMinutes.toFixed(1)} policy minutes: ` +
        `${stats.schedule.started} of ${stats.schedule.due} due were started, at most ${slip} behind` +
        (slip > stats.schedule.requestsPerPolicyMinute / 2 ? ' (this machine could not keep the schedule: the canary saw fewer requests a policy minute than the rehearsal is sized for)' : ''),
    );
    const observation = readCanaryReport(paths, exitCode);
    const stoppedBecause = o.stopping?.();
    if (stoppedBecause) {
      // Killed by the demo's own teardown: not the canary's verdict.
      say.info(`${run} canary stopped (${stoppedBecause})`);
      return { observation, traffic: stats };
    }
    (observation.outcome === (stack === 'staging' ? 'promoted' : injectFault ? 'rolled_back' : 'signed_off') ? say.ok : say.fail)(
      `${run} canary exited ${exitCode}: ${observation.outcome ?? 'no report'}`,
    );
    if (stepped && run === 'production' && result.observations.stepped) describeSteppedRun(result.observations.stepped);
    return { observation, traffic: stats };
  }

  /** The stepped rollout's headline facts, as the summary carries them. */
  function describeSteppedRun(r: NonNullable<Observations['stepped']>): void {
    const seconds = (value: number | null) => (value === null ? 'n/a' : `${value.toFixed(2)} s`);
    if (r.caughtAtPercent !== null) {
      // Say which caught it: a comparison with the control that means what it says, or the runbook's thresholds.
      say.ok(
        `caught at step ${r.caughtAtStep} of ${r.steps.length} (${r.caughtAtPercent} % exposed) ${
          r.worseThanControl.length ? `by the comparison with the control: treatment worse than control (${r.worseThanControl.join('; ')})` : `by the thresholds: ${r.decision?.reason}`
        }`,
      );
    } else {
      say.info(`not rolled back: ${r.decision ? `${r.decision.kind} (${r.decision.trigger})` : 'no decision'}; exposure reached ${r.exposureReachedPercent ?? 0} %`);
    }
    const share = r.scopes.neverExposedShare === null ? 'n/a' : `${(r.scopes.neverExposedShare * 100).toFixed(1)} %`;
    say.info(`scopes: ${r.scopes.neverExposed} of the ${r.scopes.withTraffic} scopes the traffic reached were never exposed (${share}; counted by hash at ${r.highestExposurePercent} %, the highest exposure applied)`);
    if (r.killSwitchSeconds !== null || r.rollbackSeconds !== null) {
      say.info(`kill switch: exposure 0 % on every instance ${seconds(r.killSwitchSeconds)} after the decision; durable rollback (flag off, redeploy, latch, verify) ${seconds(r.rollbackSeconds)} after it`);
    }
    const c = r.control;
    const t = r.treatment;
    if (c && t) {
      const pct = (rate: number) => `${(rate * 100).toFixed(1)} %`;
      (r.controlHealthy ? say.ok : say.fail)(
        `${r.controlHealthy ? 'control healthy' : 'control NOT healthy'} at the ${r.comparedAtPercent} % step: ` +
          `${c.requests} requests, ${c.serverErrors} 5xx, p50 ${c.p50LatencyMs.toFixed(0)} ms, its reads answered from the local store ` +
          `(its learning writes reach Context7 too: ${pct(c.errorRate)} Context7 errors, acknowledged to the database meanwhile); ` +
          `treatment: ${t.requests} requests, fallbacks ${pct(t.fallbackRate)}, Context7 errors ${pct(t.errorRate)}, p95 ${t.p95LatencyMs.toFixed(0)} ms`,
      );
    }
  }

  function relayCanaryLine(stack: string, line: string): void {
    const text = line.replace(/^\[canary\]\s?/, '');
    if (!line.startsWith('[canary]')) return;
    const step = /^\s*([\d.]+) min\s+(?:\[[^\]]*\]\s+)?window: (.*?) \|/.exec(text);
    if (step) return say.info(`  ${stack} canary ${step[1]!.padStart(4)} min  ${step[2]}`);
    if (/^\s+\S.*: (pass|fail|inconclusive)$/i.test(text)) return say.info(`  ${stack} canary        ${text.trim()}`);
    if (/^\s*ERROR/.test(text) || /min\s+ERROR/.test(text)) return say.info(`  ${stack} canary  ${text.trim()}`);
    const look = /^step (\d+\/\d+) \((\d+(?:\.\d+)?)%\) look (\d+): (HOLD|ADVANCE|PROMOTE|ROLLBACK|ABORT): (.*)$/.exec(text);
    if (look) {
      // Every look is in the canary's log. The terminal gets every decision, and a held look only when what it
      // waits for changes (its reason with the numbers left out), shortened.
      const [, step, percent, n, kind] = look;
      const reason = look[5]!.replace(/(\d+\.\d+)s of (\d+)s analysed/, (_, elapsed: string, length: string) => `${Math.round(Number(elapsed))}s of ${length}s analysed`);
      if (kind === 'HOLD') {
        const waitingFor = `${step} ${reason.split(' | ')[0]!.replace(/[\d.e+-]+/g, '#')}`;
        if (waitingFor === lastHeldFor.get(stack)) return;
        lastHeldFor.set(stack, waitingFor);
      }
      const detail = kind === 'HOLD' && reason.length > 110 ? `${reason.slice(0, 109)}…` : reason;
      return say.info(`  ${stack} canary  step ${step} (${percent} %) look ${n}: ${kind}: ${detail}`);
    }
    if (/^(DECISION|outcome:|set-env:|trigger-deploy:|deploy-live:|latch:|promote:|sign-off:|render:|next:|WARNING|exposure:|advance:|kill-switch:|kill switch)/.test(text)) {
      return say.info(`  ${stack} canary  ${text}`);
    }
  }
}

/** Records every service instance the local platform runs (each instance of each deploy is its own process group). */
function recordInstances(render: RenderEmulator, registry: ProcessRegistry): void {
  for (const service of render.state().services) {
    for (const instance of service.instance?.instances ?? []) if (instance.pid) registry.record(`service:${service.name}`, instance.pid);
  }
}

/** The facts of the guard's refusal ("it judged commit …, but production is pinned to …"), for one line of output. */
function refusalFacts(violations: string[]): string {
  const text = violations.join(' ');
  const facts = /does not authori[sz]e commit \S+ \(([^)]*)\)/.exec(text)?.[1];
  return facts ?? (text.length > 200 ? `${text.slice(0, 199)}…` : text);
}

function readCanaryReport(paths: CanaryRunPaths, exitCode: number): CanaryObservation {
  const reportsExist = Object.values(paths.reports).every((p) => existsSync(p));
  if (!existsSync(paths.reports.json)) return { exitCode, outcome: null, deployId: null, reportsExist, verifyChecks: [], latched: false };
  const report = JSON.parse(readFileSync(paths.reports.json, 'utf8')) as {
    summary?: { outcome?: string; deployId?: string };
    actions?: { action: string; ok: boolean; detail: string }[];
  };
  return {
    exitCode,
    outcome: report.summary?.outcome ?? null,
    deployId: report.summary?.deployId ?? null,
    reportsExist,
    verifyChecks: (report.actions ?? []).filter((a) => a.action === 'verify').map((a) => ({ ok: a.ok, detail: a.detail })),
    latched: (report.actions ?? []).some((a) => a.action === 'latch' && a.ok),
  };
}

async function getJson(url: string): Promise<{ status: number | null; body: unknown }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    return { status: res.status, body: await res.json().catch(() => undefined) };
  } catch (error) {
    return { status: null, body: (error as Error).message };
  }
}

async function postJson(url: string, body: unknown, memoryApiKey?: string): Promise<{ status: number | null; body: unknown }> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(memoryApiKey ? { authorization: `Bearer ${memoryApiKey}` } : {}) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(5_000),
    });
    return { status: res.status, body: await res.json().catch(() => undefined) };
  } catch (error) {
    return { status: null, body: (error as Error).message };
  }
}
