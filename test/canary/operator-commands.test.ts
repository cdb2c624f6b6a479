/**
 * Operators in the loop, two processes: a stepped canary runs in this process on a fake clock against an in-test
 * service (support/fake-exposure-service.ts, also served on loopback HTTP for `canary status`), and each command
 * (`canary status | pause | resume | promote | abort`) runs as a child process of the real CLI while the canary
 * waits for a look. The canary's clock only moves when it sleeps; the test runs a command from inside that sleep,
 * at a point chosen from the state file, so which look answers a request is deterministic.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RenderPort } from '../../canary/actions/rollback';
import { StateFile, type CanaryState } from '../../canary/actions/state-file';
import type { Notifier } from '../../canary/actions/webhook';
import { runSteppedCanary, type SteppedRunOptions } from '../../canary/exposure/stepped-controller';
import { readOperatorFile } from '../../canary/operator/requests';
import { loadPolicy, type CanaryPolicy } from '../../canary/policy';
import { FakeExposureService } from './support/fake-exposure-service';
import { recordingRender, steppedOptions } from './support/stepped-options';
import { canaryCli } from '../support/tsx-cli';
import { compiledArgs } from '../../canary/compiled';

const REPO = join(__dirname, '../..');
const POLICY_FILE = join(__dirname, 'fixtures/stepped-policy.yaml');
const basePolicy = loadPolicy(POLICY_FILE);
const ADMIN_TOKEN = 'operator_commands_test_ADMIN_never_recorded';
const BASE_URL = 'http://127.0.0.1:9';

let dir: string;
let now: number;
let service: FakeExposureService;
let renderCalls: string[];
let notes: { event: string; text: string; fields: Record<string, string> }[];
/** run from inside the canary's sleep: the canary waits while it runs */
let atSleep: (() => Promise<unknown>) | undefined;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The real CLI as another process; async, so this process (the canary's) is free while it runs. */
function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...compiledArgs('canary/main.ts'), ...args], {
      cwd: REPO,
      env: { ...process.env, CANARY_ADMIN_TOKEN: '', RENDER_API_KEY: '', CANARY_OPERATOR: '', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const statePath = () => join(dir, 'state.json');
const target = () => ['--stack', 'staging', '--state-file', statePath()];
const request = (command: string, actor: string, reason: string) => cli([command, ...target(), '--actor', actor, '--reason', reason]);
const state = (): CanaryState => new StateFile(statePath()).load()!;

const fakeRender = (): RenderPort => recordingRender(service, renderCalls, (ms) => (now += ms));

const notifier: Notifier = {
  async notify(event, text, fields) {
    notes.push({ event, text, fields });
  },
};

function options(policy: CanaryPolicy = basePolicy): SteppedRunOptions {
  const startedAt = now;
  const sleep = async (ms: number) => {
    now += ms;
    // A canary that never ends (a request never answered) fails the test instead of spinning on the fake clock.
    if (now - startedAt > 3_600_000) throw new Error('the canary ran over an hour of the fake clock');
    if (atSleep) await atSleep();
  };
  const run = { policy, service, dir, baseUrl: BASE_URL, adminToken: ADMIN_TOKEN, now: () => now, sleep, render: fakeRender(), notifier, operator: 'operator-test', statePath: statePath() };
  return { ...steppedOptions(run), operatorFile: `${statePath()}.operator.json` };
}

/** Runs `action` once, at the first sleep where `when(state)` holds. */
function once(when: (s: CanaryState) => boolean, action: () => Promise<void>): () => Promise<boolean> {
  let done = false;
  return async () => {
    if (done || !existsSync(statePath()) || !when(state())) return false;
    done = true;
    await action();
    return true;
  };
}

const stepLooks = (s: CanaryState, index: number) => s.stepped!.steps[index]!.decisions.length;
const policyNow = (s: CanaryState) => ((now - s.startedAtMs) / 1000) * 60;
const operatorActions = (s: CanaryState) => s.actions.filter((a) => a.action.startsWith('operator-') || a.action === 'manual-gate');

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'operator-commands-'));
  for (const stack of ['staging', 'production']) copyFileSync(join(REPO, `Pulumi.${stack}.yaml`), join(dir, `Pulumi.${stack}.yaml`));
  now = Date.now();
  service = new FakeExposureService({ adminToken: ADMIN_TOKEN, now: () => now, applyDelayMs: 200 });
  service.requestsPerSecond = 2400;
  renderCalls = [];
  notes = [];
  atSleep = undefined;
});

afterEach(() => {
  atSleep = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe('canary pause / resume / status against a running stepped canary', () => {
  it('pause holds step 1 past its length while looks go on; status shows it from another process; resume lets it finish', async () => {
    const { url, server } = await service.listen();
    let statusWhilePaused: CliResult | undefined;
    let paused: CliResult | undefined;
    let resumed: CliResult | undefined;
    const pause = once((s) => stepLooks(s, 0) >= 1, async () => {
      paused = await request('pause', 'oncall-amy', 'marketing launch at noon');
    });
    // Three step lengths at 5%, then: status (every instance's exposure over HTTP), then resume.
    const resume = once((s) => s.stepped!.stepIndex === 0 && policyNow(s) > 3 * 90, async () => {
      statusWhilePaused = await cli(['status', ...target(), '--base-url', url, '--policy', POLICY_FILE, '--json'], { CANARY_ADMIN_TOKEN: ADMIN_TOKEN });
      resumed = await request('resume', 'oncall-amy', 'launch done');
    });
    atSleep = async () => {
      if (!(await pause())) await resume();
    };
    try {
      const result = await runSteppedCanary(options());
      expect(result.outcome).toBe('promoted');
      expect(paused, 'pause ran').toBeDefined();
      expect(paused!.code, paused!.stderr).toBe(0);
      expect(paused!.stdout).toContain('queued pause by oncall-amy');
      expect(resumed!.code, resumed!.stderr).toBe(0);

      const s = result.state;
      // Held at 5% for over three step lengths, looks going on, then the normal walk.
      expect(s.stepped!.steps[1]!.startedAtSeconds!).toBeGreaterThan(3 * 90);
      expect(stepLooks(s, 0)).toBeGreaterThan(basePolicy.exposure.comparison.maxLooksPerStep);
      expect(service.changes.map((c) => c.percent)).toEqual([5, 25, 50, 100]);
      const operator = operatorActions(s);
      expect(operator.map((a) => a.action)).toEqual(['operator-pause', 'operator-hold', 'operator-resume']);
      expect(operator[0]!.detail).toMatch(/^applied: pause by oncall-amy \(marketing launch at noon\)/);
      expect(operator[1]!.detail).toMatch(/paused by oncall-amy .*would have advanced to 25%/);
      // The report carries each request with its actor and reason.
      const report = JSON.parse(readFileSync(join(dir, 'report', 'report.json'), 'utf8'));
      expect(JSON.stringify(report.actions)).toContain('resume by oncall-amy (launch done)');
      // One message for the hold, naming the exact command that lifts it; no secret in any message.
      const hold = notes.find((n) => n.event === 'hold')!;
      expect(hold.text).toMatch(/^held at 5%: paused by oncall-amy/);
      expect(hold.fields.next).toBe(`npm run canary -- resume --stack staging --state-file '${statePath()}' --reason 'hold over'`);
      expect(JSON.stringify(notes)).not.toContain(ADMIN_TOKEN);

      // Status, from the other process while paused: the step, every instance, the comparisons, the what-if.
      expect(statusWhilePaused!.code, statusWhilePaused!.stderr).toBe(0);
      const status = JSON.parse(statusWhilePaused!.stdout);
      expect(status).toMatchObject({ stack: 'staging', phase: 'analysing', step: { number: 1, of: 4, percent: 5 }, operator: { paused: { by: 'oncall-amy' } } });
      expect(status.live).toMatchObject({ source: 'admin', percent: 5, ceiling: 100, lagging: [] });
      expect(status.live.instances.map((i: { instanceId: string; percent: number }) => [i.instanceId, i.percent])).toEqual([['srv-a', 5], ['srv-b', 5]]);
      expect(status.latestLook.comparisons.map((c: { figure: string }) => c.figure).sort()).toEqual(['fallbackRate', 'latency', 'serverErrorRate']);
      for (const c of status.latestLook.comparisons) expect(c.pValue).toBeGreaterThanOrEqual(0);
      expect(status.ifStepEndedNow).toMatchObject({ analysis: 'advance', canary: 'advance to 25%' });
      expect(status.operator.canary).toMatchObject({ pid: process.pid, timeScale: 60, running: true });
      expect(status.timing.nextLookInSeconds).toBeGreaterThanOrEqual(0);
      expect(statusWhilePaused!.stdout).not.toContain(ADMIN_TOKEN);

      // After the run: status still answers, from the state alone (the service gone).
      server.close();
      const after = await cli(['status', ...target(), '--policy', POLICY_FILE]);
      expect(after.code, after.stderr).toBe(0);
      expect(after.stdout).toMatch(/phase: done, outcome promoted/);
      expect(after.stdout).toContain('answered: resume by oncall-amy: applied');
      expect(after.stdout).toMatch(/note: the service's exposure \(GET \/api\/metrics\/memory\): network/);
    } finally {
      server.close();
    }
  }, 120_000);
});

describe('canary promote against a running stepped canary', () => {
  it('under a policy that forbids skipping the comparison: refused before anything was compared, applied once it concluded', async () => {
    let early: CliResult | undefined;
    let later: CliResult | undefined;
    // Queued while step 1's percentage is being set: answered at its baseline look, which compares nothing.
    const first = once((s) => s.stepped!.steps[0]!.change === undefined, async () => {
      early = await request('promote', 'oncall-bo', 'in a hurry');
    });
    // Queued after the baseline: answered at the first look with a window, whose comparisons all concluded not
    // worse (the fake's traffic is ample): the promote skips the rest of the step's time, not its comparison.
    const second = once((s) => stepLooks(s, 0) === 1, async () => {
      later = await request('promote', 'oncall-bo', 'comparison is in');
    });
    atSleep = async () => (await first()) || (await second());
    const result = await runSteppedCanary(options());
    expect(early!.code, early!.stderr).toBe(0);
    expect(later!.code, later!.stderr).toBe(0);
    expect(result.outcome).toBe('promoted');
    const [refused, applied] = operatorActions(result.state);
    expect(refused).toMatchObject({ action: 'operator-promote', ok: false });
    expect(refused!.detail).toMatch(/^refused: promote by oncall-bo \(in a hurry\).*forbids skipping the comparison .* compared nothing yet/);
    expect(applied).toMatchObject({ action: 'operator-promote', ok: true });
    expect(applied!.detail).toMatch(/^applied: promote by oncall-bo \(comparison is in\)/);
    const step1 = result.state.stepped!.steps[0]!;
    expect(step1.decisions.at(-1)!.comparisons.every((c: { verdict: string }) => c.verdict === 'not_worse')).toBe(true);
    expect(result.state.stepped!.steps[1]!.startedAtSeconds!).toBeLessThan(90);
    expect(service.changes[1]).toMatchObject({ percent: 25, actor: 'oncall-bo' });
  }, 120_000);

  it('advances at once when the policy lets it skip the comparison, named in the exposure audit and the report', async () => {
    const lenient = structuredClone(basePolicy);
    lenient.operator.promoteMaySkipComparison = true;
    atSleep = once((s) => stepLooks(s, 0) === 1, async () => {
      await request('promote', 'oncall-bo', 'approved by the launch review');
    });
    const result = await runSteppedCanary(options(lenient));
    expect(result.outcome).toBe('promoted');
    // Step 2 began at the next look, well before step 1's 90 s.
    expect(result.state.stepped!.steps[1]!.startedAtSeconds!).toBeLessThan(90);
    expect(service.changes[1]).toMatchObject({ percent: 25, actor: 'oncall-bo' });
    expect(service.changes[1]!.reason).toContain('promoted by oncall-bo: approved by the launch review');
    expect(operatorActions(result.state)[0]).toMatchObject({ action: 'operator-promote', ok: true });
    expect(notes[0]).toMatchObject({ event: 'advance', text: "step 1 of 4 (5%) passed on oncall-bo's promote; next 25%" });
  }, 120_000);

  it('racing an automatic rollback at the same look: the rollback stands, the promote is answered superseded', async () => {
    const lenient = structuredClone(basePolicy);
    lenient.operator.promoteMaySkipComparison = true;
    service.degradeFromPercent = 25;
    // A rehearsal finds the look of step 2 at which the canary rolls back on its own (the fake is deterministic).
    const rehearsal = await runSteppedCanary(options(lenient));
    expect(rehearsal.state.decision).toMatchObject({ kind: 'rollback', trigger: 'step_rollback', stepIndex: 1 });
    const rollbackLook = stepLooks(rehearsal.state, 1);
    expect(rollbackLook).toBeGreaterThanOrEqual(2);

    rmSync(dir, { recursive: true, force: true });
    dir = mkdtempSync(join(tmpdir(), 'operator-commands-'));
    for (const stack of ['staging', 'production']) copyFileSync(join(REPO, `Pulumi.${stack}.yaml`), join(dir, `Pulumi.${stack}.yaml`));
    now = Date.now();
    service = new FakeExposureService({ adminToken: ADMIN_TOKEN, now: () => now, applyDelayMs: 200 });
    service.requestsPerSecond = 2400;
    service.degradeFromPercent = 25;
    renderCalls = [];
    // The promote is queued in the wait just before that look: the canary sees both at once.
    atSleep = once((s) => s.stepped!.stepIndex === 1 && stepLooks(s, 1) === rollbackLook - 1, async () => {
      const queued = await request('promote', 'oncall-cy', 'push it to 50');
      expect(queued.code, queued.stderr).toBe(0);
    });
    const result = await runSteppedCanary(options(lenient));
    expect(result.outcome).toBe('rolled_back');
    expect(result.state.decision).toMatchObject({ kind: 'rollback', trigger: 'step_rollback', stepIndex: 1 });
    expect(stepLooks(result.state, 1)).toBe(rollbackLook);
    expect(service.changes.map((c) => c.percent)).toEqual([5, 25, 0]);
    const [promote] = operatorActions(result.state);
    expect(promote).toMatchObject({ action: 'operator-promote', ok: true });
    expect(promote!.detail).toMatch(/^superseded: promote by oncall-cy \(push it to 50\).*the canary decided rollback \(step_rollback\) at this look/);
    const answered = readOperatorFile(`${statePath()}.operator.json`).requests[0]!.answer;
    expect(answered).toMatchObject({ outcome: 'superseded', stepIndex: 1 });
  }, 180_000);
});

describe('canary abort against a running stepped canary', () => {
  it('is the kill switch then the durable rollback, as an automatic rollback, with the operator as the audit\'s actor', async () => {
    let aborted: CliResult | undefined;
    atSleep = once((s) => s.stepped!.stepIndex === 1 && stepLooks(s, 1) >= 1, async () => {
      aborted = await request('abort', 'oncall-dee', 'customer reports of stale memory');
    });
    const result = await runSteppedCanary(options());
    expect(aborted!.code, aborted!.stderr).toBe(0);
    expect(result).toMatchObject({ outcome: 'rolled_back', exitCode: 1 });
    expect(result.state.decision).toMatchObject({ kind: 'rollback', trigger: 'operator_abort', stepIndex: 1 });
    expect(result.state.decision!.reason).toBe('aborted by oncall-dee at 25% exposure: customer reports of stale memory');
    expect(service.changes.map((c) => [c.percent, c.actor])).toEqual([[5, 'canary'], [25, 'canary'], [0, 'oncall-dee']]);
    expect(renderCalls).toEqual(['setEnvVar ENABLE_CONTEXT7_MEMORY=false', 'triggerDeploy c0ffee1234567', 'waitForDeploy dep-rollback']);
    expect(result.state.stepped!.killSwitch).toMatchObject({ percent: 0, instances: ['srv-a', 'srv-b'] });
    expect(notes.at(-1)).toMatchObject({ event: 'rollback' });
    expect(notes.at(-1)!.fields.reason).toContain('aborted by oncall-dee');
  }, 120_000);
});

describe('manual gates', () => {
  it('stop before 50% until an operator runs the exact command the webhook sent', async () => {
    const gated = structuredClone(basePolicy);
    gated.operator.manualGatesBeforePercent = [50];
    let approved: CliResult | undefined;
    atSleep = once(
      (s) => notes.some((n) => n.event === 'gate') && policyNow(s) > s.stepped!.steps[1]!.startedAtSeconds! + 2 * 90,
      async () => {
        const command = notes.find((n) => n.event === 'gate')!.fields.next!;
        expect(command).toMatch(/^npm run canary -- promote --stack staging --state-file '.*' --reason 'gate before 50% approved'$/);
        approved = await new Promise<CliResult>((resolve) => {
          const child = spawn('bash', ['-c', `${command.replace(/^npm run canary --/, [process.execPath, ...compiledArgs('canary/main.ts')].map((word) => `"${word}"`).join(' '))} --actor release-manager`], { cwd: REPO });
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          child.on('close', (code) => resolve({ code, stdout, stderr }));
        });
      },
    );
    const result = await runSteppedCanary(options(gated));
    expect(approved!.code, approved!.stderr).toBe(0);
    expect(result.outcome).toBe('promoted');
    expect(notes.filter((n) => n.event === 'gate')).toHaveLength(1);
    const gate = notes.find((n) => n.event === 'gate')!;
    expect(gate.text).toMatch(/^held at 25%: step 2 \(25%\) passed; the policy's manual gate stops before 50%/);
    // Held at the gate (two step lengths after step 2 began, when the test approves), then 50% set on the release manager's word.
    const steps = result.state.stepped!.steps;
    expect(steps[2]!.startedAtSeconds! - steps[1]!.startedAtSeconds!).toBeGreaterThan(2 * 90);
    expect(service.changes.map((c) => [c.percent, c.actor])).toEqual([[5, 'canary'], [25, 'canary'], [50, 'release-manager'], [100, 'canary']]);
    expect(operatorActions(result.state).map((a) => a.action)).toEqual(['manual-gate', 'operator-promote']);
  }, 120_000);
});

describe('operator command usage', () => {
  it('refuses a request without a reason, without a rollout, after it finished, or carrying a credential (exit 64, nothing queued)', async () => {
    const run = (args: string[], env: Record<string, string> = {}) => canaryCli(args, { env: { ...process.env, CANARY_OPERATOR: 'ops', ...env } });
    // Runs that do not depend on each other start at once: their start-up overlaps (test/support/tsx-cli.ts).
    const [noReason, noState] = await Promise.all([run(['pause', ...target()]), run(['abort', ...target(), '--reason', 'x'])]);
    expect(noReason.status).toBe(64);
    expect(noReason.stderr).toContain('pause needs --reason TEXT');
    expect(noState.status).toBe(64);
    expect(noState.stderr).toContain('no canary state at');
    const short = structuredClone(basePolicy);
    short.exposure.steps = short.exposure.steps.slice(0, 1);
    await runSteppedCanary(options(short));
    const [finished, leaking] = await Promise.all([
      run(['promote', ...target(), '--reason', 'x']),
      run(['pause', ...target(), '--reason', `token ${ADMIN_TOKEN}`], { CANARY_ADMIN_TOKEN: ADMIN_TOKEN }),
    ]);
    expect(finished.status).toBe(64);
    expect(finished.stderr).toContain('the rollout is past its steps (phase done, outcome promoted');
    expect(leaking.status).toBe(64);
    expect(leaking.stderr).toContain('contains a credential');
    expect(leaking.stderr).not.toContain(ADMIN_TOKEN);
    expect(readOperatorFile(`${statePath()}.operator.json`).requests).toEqual([]);
  }, 240_000);
});
