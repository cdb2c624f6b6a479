/**
 * The stepped canary's live loop on a fake clock, against an in-test service that answers the exposure admin API
 * and the per-cohort metrics in the contract's shapes (support/fake-exposure-service.ts), with the real step
 * analysis (canary/exposure/analyze-step.ts) and the real durable rollback behind a fake Render port.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXPOSURE_PERCENT_KEY, FLAG_KEY, PINNED_COMMIT_KEY, readStackConfig } from '../../canary/actions/stack-file';
import { InMemoryState, StateFile, type CanaryState, type StateStore } from '../../canary/actions/state-file';
import type { RenderPort } from '../../canary/actions/rollback';
import type { Notifier } from '../../canary/actions/webhook';
import { runCanary } from '../../canary/controller';
import { runSteppedCanary, type SteppedRunOptions } from '../../canary/exposure/stepped-controller';
import { loadPolicy } from '../../canary/policy';
import { silentProgress } from '../../canary/progress';
import { canaryReportSummarySchema } from '../../canary/report-summary';
import { createExposureAdmin } from '../../canary/sources/exposure-admin';
import { FAKE_COMMIT, FakeExposureService } from './support/fake-exposure-service';
import { recordingRender, steppedOptions } from './support/stepped-options';

const REPO = join(__dirname, '../..');
const policy = loadPolicy(join(__dirname, 'fixtures/stepped-policy.yaml'));
const ADMIN_TOKEN = 'stepped_controller_test_ADMIN_never_recorded';
const BASE_URL = 'http://127.0.0.1:9';

let dir: string;
let now: number;
let service: FakeExposureService;
let renderCalls: string[];
let notifications: string[];

const fakeRender = (): RenderPort => recordingRender(service, renderCalls, (ms) => (now += ms), FAKE_COMMIT);

let notifiedFields: Record<string, string>[];
const notifier: Notifier = {
  async notify(event, text, fields) {
    notifications.push(`${event}: ${text}`);
    notifiedFields.push(fields);
  },
};

function options(overrides: Partial<SteppedRunOptions> = {}): SteppedRunOptions {
  const sleep = async (ms: number) => {
    now += ms;
  };
  const run = { policy, service, dir, baseUrl: BASE_URL, adminToken: ADMIN_TOKEN, now: () => now, sleep, render: fakeRender(), notifier, operator: 'stepped-test' };
  return { ...steppedOptions(run), ...overrides };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'stepped-controller-'));
  for (const stack of ['staging', 'production']) copyFileSync(join(REPO, `Pulumi.${stack}.yaml`), join(dir, `Pulumi.${stack}.yaml`));
  now = Date.parse('2026-11-24T12:00:00.000Z');
  // Two instances; the second applies a change 400 ms after the first.
  service = new FakeExposureService({ adminToken: ADMIN_TOKEN, now: () => now, applyDelayMs: 200 });
  // 40 memory requests per policy second at the time scale of 60.
  service.requestsPerSecond = 2400;
  renderCalls = [];
  notifications = [];
  notifiedFields = [];
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function report() {
  return JSON.parse(readFileSync(join(dir, 'report', 'report.json'), 'utf8'));
}

describe('stepped canary controller', () => {
  it('a promotion short of 100% writes the exposure it judged into the production stack (the guard holds production to it)', async () => {
    const shortOfFull = structuredClone(policy);
    shortOfFull.exposure.steps = shortOfFull.exposure.steps.slice(0, 2);
    const production = join(dir, 'Pulumi.production.yaml');
    expect(readStackConfig(production, EXPOSURE_PERCENT_KEY)).toBe(100);
    const result = await runSteppedCanary(options({ policy: shortOfFull }));
    expect(result).toMatchObject({ outcome: 'promoted', exitCode: 0 });
    expect(readStackConfig(production, EXPOSURE_PERCENT_KEY)).toBe(25);
    expect(readStackConfig(production, PINNED_COMMIT_KEY)).toBe(FAKE_COMMIT);
  });

  it('walks a healthy rollout through 5 -> 25 -> 50 -> 100 and promotes, recording the exposure reached', async () => {
    const result = await runSteppedCanary(options());
    expect(result).toMatchObject({ outcome: 'promoted', exitCode: 0 });
    expect(service.changes.map((c) => c.percent)).toEqual([5, 25, 50, 100]);
    expect(service.changes.every((c) => c.actor === 'canary')).toBe(true);
    // Each step observed at least its analysis length before advancing.
    const steps = result.state.stepped!.steps;
    for (let i = 1; i < steps.length; i++) expect(steps[i]!.startedAtSeconds! - steps[i - 1]!.startedAtSeconds!).toBeGreaterThanOrEqual(90);
    expect(renderCalls).toEqual([]);
    expect(result.reportPaths.incident).toBeUndefined();
    const production = join(dir, 'Pulumi.production.yaml');
    expect(readStackConfig(production, PINNED_COMMIT_KEY)).toBe(FAKE_COMMIT);
    expect(readStackConfig(production, FLAG_KEY)).toBe(true);

    const json = report();
    expect(canaryReportSummarySchema.parse(json.summary)).toMatchObject({ outcome: 'promoted', exposureReachedPercent: 100, deployId: FAKE_COMMIT });
    expect(json.killSwitch).toBeNull();
    expect(json.steps.map((s: { percent: number; lastDecision: { kind: string } }) => [s.percent, s.lastDecision.kind])).toEqual([
      [5, 'advance'],
      [25, 'advance'],
      [50, 'advance'],
      [100, expect.stringMatching(/^(advance|promote)$/)],
    ]);
    // Side by side over the 5% step's window: both cohorts measured, the comparisons stated with p and alpha.
    const first = json.steps[0];
    expect(first.cohorts.treatment.totals.requests).toBeGreaterThan(20);
    expect(first.cohorts.control.totals.requests).toBeGreaterThan(first.cohorts.treatment.totals.requests);
    expect(first.lastDecision.comparisons.map((c: { figure: string }) => c.figure).sort()).toEqual(['fallbackRate', 'latency', 'serverErrorRate']);
    expect(json.exposureOverTime.at(-1).appliedPercent).toBe(100);
    const signoff = readFileSync(join(dir, 'report', 'signoff.md'), 'utf8');
    expect(signoff).toContain('**Exposure Reached**: 100%');
    // The test the comparison ran, not its family: a pooled z, or Fisher's exact with few events (issue 23).
    expect(signoff).toMatch(/serverErrorRate: not worse \((two-proportion z \(pooled, one-sided\)|Fisher's exact \(one-sided\)); .* p = [\d.e-]+ against alpha [\d.e-]+ this look\)/);
    expect(signoff).not.toMatch(/\(two-proportion;/);
    // The control's Context7 calls are its learning writes: the row says so.
    expect(signoff).toMatch(/\| Context7 error rate \| [^|]+ \| [^|]+: its learning writes only/);
    const html = readFileSync(join(dir, 'report', 'report.html'), 'utf8');
    expect(html).toContain('data-metric="exposurePercent"');
    expect(html).toContain('<table class="comparisons">');
    expect(html).not.toMatch(/NaN|undefined|Infinity/);
    // One message per step: each advance with its figures and the next command, then the promotion.
    expect(notifications).toEqual([
      expect.stringMatching(/^advance: step 1 of 4 \(\d+%\) passed; next 25%$/),
      expect.stringMatching(/^advance: step 2 of 4 \(\d+%\) passed; next 50%$/),
      expect.stringMatching(/^advance: step 3 of 4 \(\d+%\) passed; next 100%$/),
      expect.stringMatching(/^promote: .*exposure reached 100%/),
    ]);
    expect(notifiedFields[0]!.figures).toMatch(/serverErrorRate: treatment [\d.]+% \(n \d+\) vs control [\d.]+% \(n \d+\), not worse, p=/);
    expect(notifiedFields[0]!.next).toBe(`npm run canary -- status --stack staging --state-file '${join(dir, 'state.json')}'`);
    expect(JSON.stringify(notifiedFields) + notifications.join()).not.toContain(ADMIN_TOKEN);
  });

  it('rolls back at 25% when Context7 degrades there: the kill switch first (timed to every instance), then flag off, redeploy, latch, verify', async () => {
    service.degradeFromPercent = 25;
    const result = await runSteppedCanary(options({ stack: 'production' }));
    expect(result).toMatchObject({ outcome: 'rolled_back', exitCode: 1 });
    // Never beyond the step that failed: 5, 25, then the kill switch.
    expect(service.changes.map((c) => c.percent)).toEqual([5, 25, 0]);
    expect(service.maxApplied).toBe(25);
    expect(result.state.decision).toMatchObject({ kind: 'rollback', trigger: 'step_rollback', stepIndex: 1 });
    // The durable rollback ran after the kill switch, in order.
    expect(renderCalls).toEqual(['setEnvVar ENABLE_CONTEXT7_MEMORY=false', `triggerDeploy ${FAKE_COMMIT}`, 'waitForDeploy dep-rollback']);
    const killAt = result.state.actions.findIndex((a) => a.action === 'kill-switch');
    const renderAt = result.state.actions.findIndex((a) => a.action === 'render' || a.action === 'flag-rollback');
    expect(killAt).toBeGreaterThanOrEqual(0);
    expect(killAt).toBeLessThan(renderAt);
    expect(readStackConfig(join(dir, 'Pulumi.production.yaml'), FLAG_KEY)).toBe(false);

    const json = report();
    expect(json.summary).toMatchObject({ outcome: 'rolled_back', exposureReachedPercent: 5 });
    // Both instances applied 0%: the second 400 ms after the request; the port polls every 100 ms.
    expect(json.killSwitch).toMatchObject({ instances: ['srv-a', 'srv-b'], failed: null, secondsFromRequest: 0.4 });
    expect(json.killSwitch.secondsFromDecision).toBeGreaterThanOrEqual(0.4);
    expect(json.rollbackDuration).toMatchObject({ withinBudget: true });
    expect(json.rollbackDuration.seconds).toBeGreaterThan(json.killSwitch.secondsFromDecision);
    // The control cohort was unaffected at the failing step: no fallbacks, no 5xx, healthy latency.
    const failing = json.steps[1];
    expect(failing.lastDecision.kind).toBe('rollback');
    expect(failing.cohorts.control.totals).toMatchObject({ fallbacks: 0, serverErrors: 0 });
    expect(failing.cohorts.treatment.totals.fallbacks).toBeGreaterThan(0);
    expect(json.steps[2].startedAtSeconds).toBeNull();
    const signoff = readFileSync(join(dir, 'report', 'signoff.md'), 'utf8');
    expect(signoff).toContain('**Rollback Needed**: YES');
    expect(signoff).toMatch(/\*\*Kill Switch Time\*\*: exposure 0% on every instance \(srv-a, srv-b\)/);
    expect(signoff).toMatch(/\*\*Rollback Time\*\* \(durable: flag off, redeploy, latch, verify\): rollback time .* PASS/);
    expect(notifications).toEqual([
      expect.stringMatching(/^advance: step 1 of 4 \(\d+%\) passed; next 25%$/),
      expect.stringMatching(/^rollback: kill switch: exposure 0% on every instance/),
    ]);
    expect(notifiedFields[1]!.figures).toMatch(/fallbackRate: treatment [\d.]+% .* worse, p=/);
    // The incident record: how far exposure got, both times, the cohorts at the deciding step, the escalation path.
    const incident = readFileSync(result.reportPaths.incident!, 'utf8');
    expect(incident).toContain('# Incident: Context7 memory stepped rollout rolled back at 25% (production');
    expect(incident).toContain('- exposure: at most 25% of scopes read from Context7 (the fleet\'s own report at each poll); 75% were never exposed');
    expect(incident).toMatch(/- kill switch: exposure 0% on every instance/);
    expect(incident).toMatch(/- durable rollback: rollback time .* PASS/);
    expect(incident).toMatch(/\| fallback rate \| 30\.00% \(\d+\) \| 0\.00% \(0\) \|/);
    expect(incident).toContain('## Escalation path (runbook)');
    for (const text of [readFileSync(join(dir, 'report', 'report.json'), 'utf8'), readFileSync(join(dir, 'state.json'), 'utf8'), incident]) expect(text).not.toContain(ADMIN_TOKEN);
  });

  it('resumes after a crash between the kill switch and the durable rollback without pulling the kill switch twice', async () => {
    service.degradeFromPercent = 25;
    const path = join(dir, 'state.json');
    const file = new StateFile(path);
    // Saves like the real file, then dies right after the kill switch is recorded as applied.
    const crashing: StateStore = {
      path,
      load: () => file.load(),
      save(state: CanaryState) {
        file.save(state);
        if (state.stepped?.killSwitch?.appliedAt && !state.rollback) throw new Error('simulated crash');
      },
    };
    await expect(runSteppedCanary(options({ stack: 'production', stateFile: crashing }))).rejects.toThrow('simulated crash');
    expect(service.changes.map((c) => c.percent)).toEqual([5, 25, 0]);
    expect(renderCalls).toEqual([]);

    const resumed = await runSteppedCanary(options({ stack: 'production' }));
    expect(resumed).toMatchObject({ outcome: 'rolled_back', exitCode: 1 });
    expect(service.changes.map((c) => c.percent)).toEqual([5, 25, 0]);
    expect(renderCalls[0]).toBe('setEnvVar ENABLE_CONTEXT7_MEMORY=false');
    expect(report().killSwitch.failed).toBeNull();
  });

  it('refuses to start when the policy\'s last step is above the service\'s ceiling: nothing changed, said before step 1', async () => {
    service = new FakeExposureService({ adminToken: ADMIN_TOKEN, now: () => now, ceiling: 20 });
    service.requestsPerSecond = 2400;
    const result = await runSteppedCanary(options());
    expect(result).toMatchObject({ outcome: 'aborted', exitCode: 3 });
    expect(service.changes).toEqual([]);
    expect(result.state.decision).toMatchObject({ kind: 'abort', trigger: 'exposure_ceiling', reason: expect.stringMatching(/last step is 100% but the service's ceiling .* is 20%/) });
    expect(renderCalls).toEqual([]);
    expect(report().summary.exposureReachedPercent).toBe(0);
  });

  it('aborts without further action when the service refuses a step above a ceiling lowered mid-run, leaving the previous step in force', async () => {
    service.requestsPerSecond = 2400;
    const exposureAdmin = options().exposure!;
    // A redeploy with a lower ceiling after the first step was set.
    const lowering: typeof exposureAdmin = {
      read: () => exposureAdmin.read(),
      change: async (...args) => {
        const answer = await exposureAdmin.change(...args);
        service.ceiling = 20;
        return answer;
      },
    };
    const result = await runSteppedCanary(options({ exposure: lowering }));
    expect(result).toMatchObject({ outcome: 'aborted', exitCode: 3 });
    expect(service.changes.map((c) => c.percent)).toEqual([5]);
    expect(result.state.decision).toMatchObject({ kind: 'abort', trigger: 'exposure_unset', reason: expect.stringMatching(/above the ceiling 20.*exposure left at 5% \(the service reports it now\)/) });
    expect(renderCalls).toEqual([]);
    expect(report().summary.exposureReachedPercent).toBe(5);
  });

  it('reads the pre-exposure history once, before the first exposure change; a service without it falls back to the counters and says so', async () => {
    const asked: string[] = [];
    const changesWhenAsked: number[] = [];
    const probe: typeof service.probe = async (url, init) => {
      asked.push(`${init.method ?? 'GET'} ${new URL(url).pathname}${new URL(url).search}`);
      if (url.includes('/history')) changesWhenAsked.push(service.changes.length);
      return service.probe(url, init);
    };
    const warnings: string[] = [];
    const result = await runSteppedCanary(options({ probe, progress: { ...silentProgress, warn: (message) => warnings.push(message) } }));
    expect(result.outcome).toBe('promoted');
    const history = asked.filter((a) => a.includes('/api/metrics/memory/history'));
    expect(history).toEqual(['GET /api/metrics/memory/history?from=2026-11-17&to=2026-11-24&bucket=day&include=clusters']);
    // Before the first step's exposure change: no change was made yet when it was asked.
    expect(changesWhenAsked).toEqual([0]);
    expect(warnings).toContain('CUPED covariate: fell back to the counters since the instances started: the metrics history answered HTTP 404');
  });

  it('aborts when the admin API stops answering at a step change, and says the unanswered call may have been applied', async () => {
    let stalled = false;
    const probe: typeof service.probe = async (url, init) => {
      if (new URL(url).pathname === '/api/admin/exposure' && (stalled || (init.method === 'PUT' && (init.body as { percent: number }).percent === 25))) {
        stalled = true;
        return { status: null, error: 'timeout', message: 'no answer within 1000 ms' };
      }
      return service.probe(url, init);
    };
    const exposure = createExposureAdmin({ baseUrl: BASE_URL, adminToken: ADMIN_TOKEN, probe, timeoutMs: 1000, pollMs: 100, now: () => now, sleep: async (ms) => void (now += ms) });
    const result = await runSteppedCanary(options({ exposure }));
    expect(result).toMatchObject({ outcome: 'aborted', exitCode: 3 });
    expect(result.state.decision?.reason).toMatch(
      /could not set exposure to 25%: PUT \/api\/admin\/exposure 25%: no answer within 1000 ms; exposure left at 5% \(the previous step\), unless the unanswered call was applied/,
    );
    expect(renderCalls).toEqual([]);
  });

  it('aborts at once, changing nothing, without exposure admin access outside a dry run', async () => {
    const result = await runSteppedCanary(options({ exposure: undefined }));
    expect(result).toMatchObject({ outcome: 'aborted', exitCode: 3 });
    expect(result.state.decision?.reason).toMatch(/could not set exposure to 5%: no exposure admin access \(CANARY_ADMIN_TOKEN\)/);
    expect(result.state.measurements).toEqual([]);
    expect(service.changes).toEqual([]);
    expect(renderCalls).toEqual([]);
  });

  it('changes nothing in a dry run: no exposure change, no Render call, no state file', async () => {
    const result = await runSteppedCanary(options({ dryRun: true, exposure: undefined, stateFile: new InMemoryState() }));
    expect(service.changes).toEqual([]);
    expect(renderCalls).toEqual([]);
    expect(result.state.actions.some((a) => a.action === 'exposure' && a.detail.startsWith('dry run: would set exposure to 5%'))).toBe(true);
    // The fleet stays at its ceiling (100%): each step's rules are applied to the split as it is (issue 22 §5), so
    // a healthy fleet is judged step by step instead of waiting for a percentage that never comes.
    expect(result.state.stepped!.steps.map((step) => step.decisions.at(-1)?.kind)).toEqual(['advance', 'advance', 'advance', expect.stringMatching(/^(advance|promote)$/)]);
    for (const step of result.state.stepped!.steps) {
      for (const decision of step.decisions) expect(decision.reason).not.toMatch(/waiting for the change to reach every instance/);
    }
  });

  it('a dry run judges the cohorts as they are: degraded at the fleet\'s 25%, it would roll back (exit 6) and does nothing', async () => {
    service = new FakeExposureService({ adminToken: ADMIN_TOKEN, now: () => now, ceiling: 25 });
    service.requestsPerSecond = 2400;
    service.degradeFromPercent = 25;
    const lines: string[] = [];
    const progress = { ...silentProgress, info: (line: string) => lines.push(line) };
    const result = await runSteppedCanary(options({ dryRun: true, exposure: undefined, stateFile: new InMemoryState(), progress }));
    expect(result).toMatchObject({ outcome: 'would_roll_back', exitCode: 6 });
    expect(service.changes).toEqual([]);
    expect(renderCalls).toEqual([]);
    expect(lines.some((line) => /^dry run, judging the cohorts as they are \(25% exposed now; the step is 5%\): would step 1\/4/.test(line))).toBe(true);
  });

  it('a dry run with nothing exposed says there is nothing to judge, and holds', async () => {
    service = new FakeExposureService({ adminToken: ADMIN_TOKEN, now: () => now, ceiling: 0 });
    service.requestsPerSecond = 2400;
    const result = await runSteppedCanary(options({ dryRun: true, exposure: undefined, stateFile: new InMemoryState() }));
    expect(result.outcome).toBe('held');
    expect(result.state.decision).toMatchObject({ kind: 'hold', trigger: 'dry_run_nothing_to_judge', reason: expect.stringContaining('no treatment cohort to judge; a real run would set 5%') });
  });
});

describe('stepped and single-step state files', () => {
  it('are never mixed up: each canary refuses the other\'s state file, and the stepped one a file for other steps', async () => {
    const stepped = await runSteppedCanary(options({ stack: 'production' }));
    expect(stepped.outcome).toBe('signed_off');
    await expect(runCanary({ ...options({ stack: 'production' }), backfill: undefined } as never)).rejects.toThrow(/is a stepped canary's state/);
    const single = new StateFile(join(dir, 'single.json'));
    single.save({ version: 1, stack: 'production', baseUrl: BASE_URL, serviceId: 'srv-1', deployId: null, startedAtMs: now, startedAt: new Date(now).toISOString(), measurements: [], phase: 'analysing', actions: [] });
    await expect(runSteppedCanary(options({ stack: 'production', stateFile: single }))).rejects.toThrow(/is a single-step canary's state/);
    const fewerSteps = { ...policy, exposure: { ...policy.exposure, steps: policy.exposure.steps.slice(0, 2) } };
    await expect(runSteppedCanary(options({ stack: 'production', policy: fewerSteps }))).rejects.toThrow(/was written for steps 5 → 25 → 50 → 100/);
  });
});
