/** The demo's pure parts and its process bookkeeping, without running a rehearsal. */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPolicy } from '../../canary/policy';
import { Cleanup } from '../../demo/cleanup';
import { FAULT_RAMP, faultStageAt } from '../../demo/fault-ramp';
import { PatternLedger } from '../../demo/ledger';
import { defaultWatchdogSeconds, parseDemoOptions } from '../../demo/options';
import { groupAlive, ProcessRegistry } from '../../demo/processes';
import { DEMO_POLICY } from '../../demo/rehearsal';
import { createReporter } from '../../demo/reporter';
import { DEMO_SCOPE_IDS, DEMO_ZIPF_EXPONENT } from '../../demo/traffic';
import { observeSteppedRun, type SteppedReportView } from '../../demo/stepped-outcome';
import { cohortOf } from '../../service/domain/exposure';
import { validateScopeIds } from '../../demo/validation';
import { judgeRehearsal, KILL_SWITCH_BOUND_SECONDS, type CanaryObservation, type Observations } from '../../demo/verdict';

describe('pre-rollout validation', () => {
  it('passes on the runbook example and the traffic scope pool', () => {
    const checks = validateScopeIds(DEMO_SCOPE_IDS);
    expect(checks.every((c) => c.ok)).toBe(true);
    expect(checks[0]!.detail).toMatch(/^scope:test:agent-1:[0-9a-f]{16}$/);
    expect(DEMO_SCOPE_IDS).toHaveLength(160);
  });

  it('flags malformed or placeholder ids in the traffic pool', () => {
    for (const bad of ['scope:test:agent-1:PLACEHOLDER', 'scope:test:agent-1:<hash>', 'scope:*:*:0123456789abcdef', 'test:agent-1:0123456789abcdef']) {
      const check = validateScopeIds([...DEMO_SCOPE_IDS, bad]).find((c) => c.name.startsWith('every scope id'))!;
      expect(check.ok, bad).toBe(false);
    }
    expect(validateScopeIds([]).find((c) => c.name.startsWith('every scope id'))!.ok).toBe(false);
  });
});

describe('demo options', () => {
  it('defaults to the fault rehearsal on a measured clock with a watchdog that stretches with it', () => {
    expect(parseDemoOptions([])).toEqual({ help: false, mode: 'fault', fleet: false, runDir: undefined, timeScale: undefined, watchdogSeconds: undefined });
    expect(parseDemoOptions(['--healthy', '--time-scale', '30'])).toMatchObject({ mode: 'healthy', timeScale: 30 });
    expect(parseDemoOptions(['--watchdog-seconds', '90']).watchdogSeconds).toBe(90);
    expect([defaultWatchdogSeconds(false, 60), defaultWatchdogSeconds(true, 60), defaultWatchdogSeconds(false, 30), defaultWatchdogSeconds(false, 3)]).toEqual([300, 420, 600, 3_600]);
  });

  it('refuses numbers a timer or the services could not honour', () => {
    // setTimeout fires at once past ~24.8 days; a TTL of 5 min / 1e6 rounds to 0 ms, which the service refuses.
    for (const [flag, value] of [['--watchdog-seconds', '3000000'], ['--time-scale', '1000000'], ['--time-scale', '0'], ['--time-scale', ' '], ['--watchdog-seconds', 'soon']]) {
      expect(() => parseDemoOptions([flag!, value!]), `${flag} ${value}`).toThrow(`${flag} must be a positive number up to`);
    }
    expect(() => parseDemoOptions(['--bogus'])).toThrow();
  });

  it('catches demo flags npm swallowed (`npm run demo --healthy`, no `--`) instead of running the default rehearsal', () => {
    expect(() => parseDemoOptions([], { npm_config_healthy: 'true' })).toThrow('did you mean `npm run demo -- --healthy`?');
    expect(() => parseDemoOptions([], { npm_config_time_scale: '30' })).toThrow('`npm run demo -- --time-scale 30`');
    // npm's own settings are not demo flags.
    expect(parseDemoOptions([], { npm_config_cache: '/tmp/npm', npm_config_user_agent: 'npm/11' }).mode).toBe('fault');
  });

  it('`npm run demo --healthy`: the demo exits 64 at once with the right command, having started nothing', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, '..', '..', 'demo', 'main.ts')], {
      cwd: join(__dirname, '..', '..'),
      env: { ...process.env, npm_config_healthy: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
    expect(code).toBe(64);
    expect(output).toContain('did you mean `npm run demo -- --healthy`?');
    expect(output).not.toContain('Rollout rehearsal');
  }, 60_000);

  it('demo/screenshot.ts refuses to overwrite a picture git tracks (the README\'s command run verbatim), unless --force', async () => {
    const repo = join(__dirname, '..', '..');
    const tracked = join(repo, 'docs', 'canary-report-rollback.png');
    const before = readFileSync(tracked);
    const dir = mkdtempSync(join(tmpdir(), 'demo-screenshot-'));
    try {
      const report = join(dir, 'report.html');
      writeFileSync(report, '<html><body>report</body></html>');
      const run = (args: string[]) =>
        new Promise<{ code: number | null; output: string }>((resolve) => {
          // A Chromium that does not exist: should the guard let the screenshot through, it fails before writing.
          const child = spawn(process.execPath, ['--import', 'tsx', join(repo, 'demo', 'screenshot.ts'), ...args], {
            cwd: repo,
            env: { ...process.env, CHROMIUM_PATH: join(dir, 'no-chromium') },
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let output = '';
          child.stdout.on('data', (chunk) => (output += chunk));
          child.stderr.on('data', (chunk) => (output += chunk));
          child.once('exit', (code) => resolve({ code, output }));
        });
      const refused = await run([report, 'docs/canary-report-rollback.png', '--width', '900', '--height', '900']);
      expect(refused.code).toBe(64);
      expect(refused.output).toContain('refusing to overwrite docs/canary-report-rollback.png: git tracks it (add --force');
      expect(readFileSync(tracked).equals(before)).toBe(true);
      // An untracked path (the run dir) and --force both get past the guard, to the browser launch.
      for (const args of [[report, join(dir, 'report.png')], [report, 'docs/canary-report-rollback.png', '--force']]) {
        const attempted = await run(args);
        expect(attempted.output, args.join(' ')).toContain('screenshot failed');
        expect(attempted.output).not.toContain('refusing to overwrite');
      }
      expect(readFileSync(tracked).equals(before)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('wants a new or empty directory as --run-dir', () => {
    const dir = mkdtempSync(join(tmpdir(), 'demo-options-'));
    try {
      expect(parseDemoOptions(['--run-dir', dir]).runDir).toBe(dir);
      writeFileSync(join(dir, 'earlier'), 'x');
      expect(() => parseDemoOptions(['--run-dir', dir])).toThrow('holds an earlier run');
      expect(() => parseDemoOptions(['--run-dir', join(dir, 'earlier')])).toThrow('is a file');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('demo policy', () => {
  it("keeps the runbook policy's thresholds and confidence; only the clock and sample sizes shrink", () => {
    const runbook = loadPolicy('canary/policy.yaml');
    const demo = loadPolicy(DEMO_POLICY);
    expect(demo.confidence).toBe(runbook.confidence);
    expect(demo.checkpoints.map((c) => c.rollbackIf)).toEqual(runbook.checkpoints.map((c) => c.rollbackIf));
    expect(demo.successCriteria.require).toEqual(runbook.successCriteria.require);
    expect(demo.successCriteria.requireHealthAvailable).toBe(runbook.successCriteria.requireHealthAvailable);
    expect(demo.immediateChecks.endpoints).toEqual(runbook.immediateChecks.endpoints);
    expect([demo.onFailAtEnd, demo.onInconclusiveAtEnd]).toEqual([runbook.onFailAtEnd, runbook.onInconclusiveAtEnd]);
    expect(demo.thirtyDayProfile).toEqual(runbook.thirtyDayProfile);
    expect(demo.load).toEqual(runbook.load);
    // The checkpoints keep their place in the analysis (15 and 30 of 60 -> 3 and 6 of 10, roughly).
    for (const [i, c] of demo.checkpoints.entries()) {
      const share = c.atMinute / demo.successCriteria.atMinute;
      expect(Math.abs(share - runbook.checkpoints[i]!.atMinute / runbook.successCriteria.atMinute)).toBeLessThan(0.15);
    }
  });
});

describe('the stepped rollout\'s scopes and policy', () => {
  // The share of the traffic's picks that land on a scope exposed at `percent` (the traffic's Zipf weights, by rank).
  const trafficShare = (percent: number) => {
    const weights = DEMO_SCOPE_IDS.map((_, rank) => 1 / Math.pow(rank + 1, DEMO_ZIPF_EXPONENT));
    const total = weights.reduce((a, b) => a + b, 0);
    return DEMO_SCOPE_IDS.reduce((share, id, rank) => share + (cohortOf(id, percent) === 'treatment' ? weights[rank]! / total : 0), 0);
  };
  const exposed = (percent: number) => DEMO_SCOPE_IDS.filter((id) => cohortOf(id, percent) === 'treatment').length;

  it('the 5 % step has real treatment traffic: 8 of the 160 scopes, about 5 % of the reads', () => {
    expect(exposed(5)).toBe(8);
    expect(trafficShare(5)).toBeGreaterThan(0.045);
    // Under the load runs' Zipf 1.1 the same 8 scopes would get under 3 %: why the demo's traffic is milder.
    expect(trafficShare(5)).toBeLessThan(0.06);
  });

  it('at 25 %, 44 of the 160 scopes are exposed: 116 (72.5 %) are never exposed when the rollout stops there', () => {
    expect(exposed(25)).toBe(44);
    expect((DEMO_SCOPE_IDS.length - exposed(25)) / DEMO_SCOPE_IDS.length).toBeCloseTo(0.725, 3);
    // Monotonic: every scope exposed at 5 % is exposed at 25 %.
    for (const id of DEMO_SCOPE_IDS) if (cohortOf(id, 5) === 'treatment') expect(cohortOf(id, 25)).toBe('treatment');
  });

  it('the demo policy steps like the runbook policy, with the same alpha and spending, on shorter steps', () => {
    const runbook = loadPolicy('canary/policy.yaml').exposure;
    const demo = loadPolicy(DEMO_POLICY).exposure;
    expect(demo.steps.map((s) => s.percent)).toEqual(runbook.steps.map((s) => s.percent));
    expect([demo.comparison.alpha, demo.comparison.spending]).toEqual([runbook.comparison.alpha, runbook.comparison.spending]);
    expect(demo.abortIfControl).toEqual(runbook.abortIfControl);
    expect(demo.comparison.figures.serverErrorRate).toEqual(runbook.comparison.figures.serverErrorRate);
    // No latency comparison on loopback (see the policy's comment), and no fallbackRate "comparison" with a control
    // that never falls back (a threshold in disguise, issue 27): the thresholds judge fallbacks.
    expect(demo.comparison.figures.latency).toBeUndefined();
    expect(demo.comparison.figures.fallbackRate).toBeUndefined();
    // Shorter than the runbook's 15 minutes, except the 5 % step, sized to the demo's traffic (demo/policy.yaml, issue 23).
    for (const step of demo.steps.slice(1)) expect(step.analysisSeconds).toBeLessThanOrEqual(300);
    expect(demo.steps[0]!.analysisSeconds).toBeLessThanOrEqual(1200);
  });
});

describe('stepped outcome', () => {
  const figures = (requests: number, serverErrors: number, fallbacks: number) => ({
    totals: { requests, reads: requests, fallbacks, serverErrors, latencyMsSum: requests, latencyCount: requests, context7Requests: requests, context7Errors: fallbacks },
    latencyBins: {},
    fallbackRate: fallbacks / requests,
    serverErrorRate: serverErrors / requests,
    errorRate: fallbacks / requests,
    p50LatencyMs: 1,
    p95LatencyMs: 4,
  });
  const step = (index: number, percent: number, started: boolean, treatmentFallbacks = 0, controlErrors = 0) => ({
    index,
    percent,
    startedAtSeconds: started ? index * 300 : null,
    change: null,
    looks: started ? 3 : 0,
    lastDecision: started
      ? {
          kind: 'hold' as const,
          stepIndex: index,
          percent,
          reason: 'r',
          look: 3,
          comparisons: [
            { figure: 'fallbackRate' as const, test: 'two-proportion' as const, treatment: { value: 0.6, n: 30 }, control: { value: 0, n: 60 }, pValue: 1e-9, alphaThisLook: 0.01, verdict: treatmentFallbacks ? ('worse' as const) : ('not_worse' as const), reason: '60% vs 0%' },
          ],
        }
      : null,
    cohorts: started ? { fromSeconds: 0, toSeconds: 60, treatment: figures(30, 0, treatmentFallbacks), control: figures(60, controlErrors, 0) } : null,
  });
  const report = (over: Partial<SteppedReportView> = {}): SteppedReportView => ({
    summary: { schemaVersion: 1, stack: 'production', deployId: 'd', serviceId: 's', outcome: 'rolled_back', startedAt: '2026-01-01T00:00:00.000Z', finishedAt: '2026-01-01T00:01:00.000Z', exposureReachedPercent: 5 },
    decision: { kind: 'rollback', trigger: 'step_rollback', reason: 'at 25% exposure: worse', atSeconds: 500, stepIndex: 1 },
    steps: [step(0, 5, true), step(1, 25, true, 18), step(2, 50, false), step(3, 100, false)],
    killSwitch: { requestedAt: 'a', appliedAt: 'b', secondsFromDecision: 0.53, secondsFromRequest: 0.51, instances: ['i'], failed: null },
    rollbackDuration: { decidedAt: 'a', verifiedAt: 'b', seconds: 3.1, budgetSeconds: 300, withinBudget: true },
    ...over,
  }) as SteppedReportView;
  const traffic = Object.fromEntries(DEMO_SCOPE_IDS.map((id) => [id, 3]));

  it('reads the caught step, the never-exposed scopes by hash, both times and the control', () => {
    const r = observeSteppedRun(report(), traffic, 25);
    expect(r).toMatchObject({ caughtAtStep: 2, caughtAtPercent: 25, highestExposurePercent: 25, exposureReachedPercent: 5, killSwitchSeconds: 0.53, rollbackSeconds: 3.1, controlHealthy: true });
    expect(r.scopes).toEqual({ withTraffic: 160, everExposed: 44, neverExposed: 116, neverExposedShare: 0.725 });
    expect(r.worseThanControl).toEqual(['fallbackRate: 60% vs 0%']);
    expect(r.control).toMatchObject({ requests: 60, serverErrors: 0 });
    expect(r.treatment).toMatchObject({ requests: 30, fallbackRate: 0.6 });
  });

  it('counts only scopes that got traffic, at the highest exposure the fleet applied (the demo\'s own reading wins if higher)', () => {
    const some = Object.fromEntries(DEMO_SCOPE_IDS.slice(0, 40).map((id) => [id, 1]));
    const r = observeSteppedRun(report(), { ...some, [DEMO_SCOPE_IDS[50]!]: 0 }, 0);
    expect(r.scopes.withTraffic).toBe(40);
    expect(r.scopes.everExposed).toBe(DEMO_SCOPE_IDS.slice(0, 40).filter((id) => cohortOf(id, 25) === 'treatment').length);
    expect(observeSteppedRun(report(), traffic, 50).highestExposurePercent).toBe(50);
  });

  it('a control with 5xx answers is not healthy; no rollback means no caught step', () => {
    const broken = report({ steps: [step(0, 5, true, 0, 2), step(1, 25, true, 18), step(2, 50, false), step(3, 100, false)] });
    expect(observeSteppedRun(broken, traffic, 25).controlHealthy).toBe(false);
    const promoted = observeSteppedRun(report({ decision: { kind: 'promote', trigger: 'steps_passed', reason: 'ok', atSeconds: 900, stepIndex: 3 } }), traffic, 100);
    expect(promoted).toMatchObject({ caughtAtStep: null, caughtAtPercent: null, worseThanControl: [], comparedAtPercent: 25 });
    // At 100 % there is no control: the cohorts are read at the last step that had one.
    const through = report({ decision: { kind: 'promote', trigger: 'steps_passed', reason: 'ok', atSeconds: 900, stepIndex: 3 }, steps: [step(0, 5, true), step(1, 25, true), step(2, 50, true), step(3, 100, true)] });
    expect(observeSteppedRun(through, traffic, 100)).toMatchObject({ comparedAtPercent: 50, controlHealthy: true, scopes: { neverExposed: 0 } });
  });
});

describe('pattern ledger', () => {
  it('finds acknowledged patterns missing from the store, per scope', () => {
    const ledger = new PatternLedger();
    ledger.record({ scopeId: 's1', patternIds: ['a', 'b'], destinations: ['database', 'context7'] });
    ledger.record({ scopeId: 's2', patternIds: ['c'], destinations: ['database'] });
    ledger.record({ scopeId: 's1', patternIds: ['a'], destinations: ['database', 'context7'] }); // idempotent re-send
    expect(ledger.totals()).toEqual({ acknowledged: 3, scopes: 2, databaseOnly: 1 });
    expect(ledger.toJSON()).toEqual({ s1: ['a', 'b'], s2: ['c'] });

    const store: Record<string, Set<string>> = { s1: new Set(['a', 'b', 'x']), s2: new Set() };
    const loss = ledger.compare((scope) => store[scope] ?? new Set());
    expect(loss).toEqual({ acknowledged: 3, present: 2, missing: ['s2/c'], scopes: 2 });
    store.s2!.add('c');
    expect(ledger.compare((scope) => store[scope]!).missing).toEqual([]);
  });
});

describe('fault ramp', () => {
  it('rises in stages and is off before it begins', () => {
    expect(faultStageAt(-1)).toBeUndefined();
    expect(faultStageAt(0)).toBe(FAULT_RAMP[0]);
    expect(faultStageAt(45)).toBe(FAULT_RAMP[1]);
    expect(faultStageAt(10_000)).toBe(FAULT_RAMP.at(-1));
    for (let i = 1; i < FAULT_RAMP.length; i++) {
      expect(FAULT_RAMP[i]!.errorRate).toBeGreaterThan(FAULT_RAMP[i - 1]!.errorRate);
      expect(FAULT_RAMP[i]!.latencyMs).toBeGreaterThan(FAULT_RAMP[i - 1]!.latencyMs);
    }
  });
});

describe('verdict', () => {
  const canary = (over: Partial<CanaryObservation>): CanaryObservation => ({
    exitCode: 0,
    outcome: 'promoted',
    deployId: 'abc123',
    reportsExist: true,
    verifyChecks: [],
    latched: false,
    ...over,
  });
  const faultRun = (): Observations => ({
    mode: 'fault',
    validationOk: true,
    staging: canary({}),
    promotedStack: { pinnedCommit: 'abc123', flag: true },
    productionStack: { pinnedCommit: 'abc123', flag: false },
    production: canary({ exitCode: 1, outcome: 'rolled_back', latched: true, verifyChecks: [{ ok: true, detail: 'config' }, { ok: true, detail: 'watch' }] }),
    productionRenderFlag: 'false',
    patterns: { acknowledged: 10, present: 10, missing: 0 },
    processesLeft: 0,
  });

  const steppedFaultRun = (): Observations => ({
    ...faultRun(),
    stepped: {
      ...observeSteppedRunFixture(),
      faultBeganAtPercent: 25,
    },
  });
  function observeSteppedRunFixture(): NonNullable<Observations['stepped']> {
    return {
      steps: [5, 25, 50, 100],
      highestExposurePercent: 25,
      exposureReachedPercent: 5,
      decision: { kind: 'rollback', trigger: 'step_rollback', reason: 'worse' },
      caughtAtStep: 2,
      caughtAtPercent: 25,
      worseThanControl: ['fallbackRate: 64% vs 0%'],
      killSwitchSeconds: 0.5,
      killSwitchRequestSeconds: 0.5,
      rollbackSeconds: 3,
      rollbackBudgetSeconds: 300,
      scopes: { withTraffic: 160, everExposed: 44, neverExposed: 116, neverExposedShare: 0.725 },
      comparedAtPercent: 25,
      control: { requests: 70, serverErrors: 0, fallbackRate: 0, errorRate: 0.9, p50LatencyMs: 1, p95LatencyMs: 150 },
      treatment: { requests: 31, serverErrors: 0, fallbackRate: 0.64, errorRate: 0.88, p50LatencyMs: 1, p95LatencyMs: 467 },
      controlHealthy: true,
      faultBeganAtPercent: 25,
    };
  }

  it('passes the expected stepped fault rehearsal: caught at 25 %, ~75 % never exposed, kill switch in seconds, control healthy', () => {
    const verdict = judgeRehearsal(steppedFaultRun());
    expect(verdict.checks.filter((c) => !c.ok)).toEqual([]);
    expect(verdict.checks.map((c) => c.name)).toEqual(
      expect.arrayContaining([
        'the stepped canary caught the incident at the step where it began, the steps before it passed',
        'the scopes outside the caught step were never exposed',
        `the kill switch stopped exposure within ${KILL_SWITCH_BOUND_SECONDS} s`,
        "the durable rollback was verified within the runbook's budget",
        'the control cohort stayed healthy',
      ]),
    );
  });

  it.each([
    ['caught at 5 % (before the incident)', (r: NonNullable<Observations['stepped']>) => Object.assign(r, { caughtAtStep: 1, caughtAtPercent: 5, exposureReachedPercent: 0 }), 'caught the incident'],
    ['caught only at 50 %', (r: NonNullable<Observations['stepped']>) => Object.assign(r, { caughtAtStep: 3, caughtAtPercent: 50, highestExposurePercent: 50, exposureReachedPercent: 25 }), 'caught the incident'],
    ['not caught at all', (r: NonNullable<Observations['stepped']>) => Object.assign(r, { caughtAtStep: null, caughtAtPercent: null }), 'caught the incident'],
    ['exposure went past the caught step', (r: NonNullable<Observations['stepped']>) => Object.assign(r, { highestExposurePercent: 50 }), 'never exposed'],
    ['too few scopes never exposed', (r: NonNullable<Observations['stepped']>) => (r.scopes.neverExposedShare = 0.6), 'never exposed'],
    ['a slow kill switch', (r: NonNullable<Observations['stepped']>) => (r.killSwitchSeconds = KILL_SWITCH_BOUND_SECONDS + 1), 'kill switch'],
    ['no confirmed kill switch', (r: NonNullable<Observations['stepped']>) => (r.killSwitchSeconds = null), 'kill switch'],
    ['a rollback never verified', (r: NonNullable<Observations['stepped']>) => (r.rollbackSeconds = null), 'durable rollback'],
    ['a failing control', (r: NonNullable<Observations['stepped']>) => (r.controlHealthy = false), 'control cohort'],
  ])('the stepped fault rehearsal fails on %s', (_name, spoil, failingCheck) => {
    const o = steppedFaultRun();
    spoil(o.stepped!);
    const verdict = judgeRehearsal(o);
    expect(verdict.ok).toBe(false);
    expect(verdict.checks.filter((c) => !c.ok).map((c) => c.name).join(' | ')).toContain(failingCheck);
  });

  it('the embedded demo without a stepped report fails; the healthy stepped rehearsal must pass every step', () => {
    expect(judgeRehearsal({ ...faultRun(), stepped: null }).checks.find((c) => !c.ok)?.name).toBe('the stepped canary left a report');
    const healthy: Observations = {
      ...faultRun(),
      mode: 'healthy',
      production: canary({ outcome: 'signed_off' }),
      productionRenderFlag: 'true',
      productionStack: { pinnedCommit: 'abc123', flag: true },
      stepped: { ...observeSteppedRunFixture(), decision: { kind: 'promote', trigger: 'steps_passed', reason: 'ok' }, exposureReachedPercent: 100, caughtAtStep: null, caughtAtPercent: null },
    };
    expect(judgeRehearsal(healthy).ok).toBe(true);
    healthy.stepped!.exposureReachedPercent = 50;
    expect(judgeRehearsal(healthy).checks.find((c) => !c.ok)?.name).toBe('the stepped rollout passed every step');
  });

  it('passes the expected fault rehearsal', () => {
    const verdict = judgeRehearsal(faultRun());
    expect(verdict.checks.filter((c) => !c.ok)).toEqual([]);
    expect(verdict.ok).toBe(true);
  });

  it.each([
    ['staging held', (o: Observations) => (o.staging = canary({ exitCode: 2, outcome: 'held' })), 'staging canary promoted'],
    ['a different commit pinned', (o: Observations) => (o.promotedStack = { pinnedCommit: 'other', flag: true }), 'promotion pinned'],
    ['production signed off despite the fault', (o: Observations) => (o.production = canary({ outcome: 'signed_off' })), 'production canary rolled back'],
    ['a failed verification', (o: Observations) => (o.production!.verifyChecks = [{ ok: false, detail: 'health' }]), 'rollback verified'],
    ['no verification at all', (o: Observations) => (o.production!.verifyChecks = []), 'rollback verified'],
    ['flag still on in Render', (o: Observations) => (o.productionRenderFlag = 'true'), 'flag off'],
    ['the flag was never on (nothing latched)', (o: Observations) => (o.promotedStack = { pinnedCommit: 'abc123', flag: false }), 'latch written'],
    ['no latch action', (o: Observations) => (o.production!.latched = false), 'latch written'],
    ['a lost pattern', (o: Observations) => (o.patterns = { acknowledged: 10, present: 9, missing: 1 }), 'no acknowledged learned pattern lost'],
    ['no pattern written at all', (o: Observations) => (o.patterns = { acknowledged: 0, present: 0, missing: 0 }), 'no acknowledged learned pattern lost'],
    ['a process left', (o: Observations) => (o.processesLeft = 1), 'no process left behind'],
    ['missing reports', (o: Observations) => (o.production!.reportsExist = false), 'reports exist'],
  ])('fails on %s', (_name, spoil, failingCheck) => {
    const o = faultRun();
    spoil(o);
    const verdict = judgeRehearsal(o);
    expect(verdict.ok).toBe(false);
    expect(verdict.checks.filter((c) => !c.ok).map((c) => c.name).join(' | ')).toContain(failingCheck);
  });

  it('expects sign-off and the flag kept on in a healthy rehearsal', () => {
    const healthy: Observations = {
      ...faultRun(),
      mode: 'healthy',
      production: canary({ outcome: 'signed_off' }),
      productionRenderFlag: 'true',
      productionStack: { pinnedCommit: 'abc123', flag: true },
    };
    expect(judgeRehearsal(healthy).ok).toBe(true);
    expect(judgeRehearsal({ ...healthy, production: canary({ exitCode: 1, outcome: 'rolled_back' }) }).ok).toBe(false);
  });
});

describe('cleanup', () => {
  it('runs closers once, newest first, past failures; late additions close at once', async () => {
    const order: string[] = [];
    const cleanup = new Cleanup();
    cleanup.add('a', () => order.push('a'));
    cleanup.add('b', () => {
      throw new Error('boom');
    });
    cleanup.add('c', async () => order.push('c'));
    const [first, second] = await Promise.all([cleanup.run(), cleanup.run()]);
    expect(order).toEqual(['c', 'a']);
    expect(first).toEqual(['b: boom']);
    expect(second).toBe(first);
    let late = false;
    cleanup.add('late', () => (late = true));
    await new Promise((r) => setImmediate(r));
    expect(late).toBe(true);
  });
});

describe('process registry', () => {
  it('stops a whole process group (grandchildren included) and reports none alive', async () => {
    // A shell that ignores nothing but has a grandchild: the group, not the leader, must go.
    const child = spawn('sh', ['-c', 'sleep 60 & sleep 60; wait'], { detached: true, stdio: 'ignore' });
    const registry = new ProcessRegistry();
    try {
      expect(registry.record('test', child.pid!)).toBe(true);
      expect(registry.record('test', child.pid!)).toBe(false);
      expect(groupAlive(child.pid!)).toBe(true);
      expect(registry.alive()).toHaveLength(1);
      expect(await registry.stopAll(5_000)).toEqual([]);
      expect(groupAlive(child.pid!)).toBe(false);
    } finally {
      registry.signalAll('SIGKILL');
    }
  }, 20_000);
});

describe('reporter', () => {
  it('numbers steps and throttles status lines when not on a terminal', () => {
    let out = '';
    let t = 0;
    const stream = { isTTY: false, write: (s: string) => ((out += s), true) } as unknown as NodeJS.WriteStream;
    const say = createReporter(stream, () => t);
    say.step('first');
    say.status('one');
    t = 1_000;
    say.status('two (throttled)');
    t = 4_000;
    say.status('three');
    say.ok('done');
    expect(out).toContain('Step 1: first');
    expect(out).toContain('… one');
    expect(out).not.toContain('two (throttled)');
    expect(out).toContain('… three');
    expect(out).toContain('✔ done');
  });
});
