/**
 * A state file acts only on the run it belongs to (issue 22 §1): the stack, the Render service, the base URL and the
 * analysed deploy are compared before anything is measured or changed; a resumed run re-reads Render's live
 * deploy; an incomplete file is refused with exit 64, never a TypeError.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ListedDeploy, RenderPort } from '../../canary/actions/rollback';
import { readStateUnbound } from '../../canary/actions/state-binding';
import { StateFile, StateFileError, type CanaryState } from '../../canary/actions/state-file';
import { runCanary, type CanaryRunOptions } from '../../canary/controller';
import { analyzeStep } from '../../canary/exposure/analyze-step';
import { runSteppedCanary } from '../../canary/exposure/stepped-controller';
import { loadPolicy } from '../../canary/policy';
import { silentProgress } from '../../canary/progress';
import { IN_PROCESS_RENDER } from '../../render/platform';
import { compiledArgs } from '../../canary/compiled';

const REPO = join(__dirname, '../..');
const policy = loadPolicy(join(__dirname, 'fixtures/e2e-policy.yaml'));
const steppedPolicy = loadPolicy(join(__dirname, 'fixtures/stepped-policy.yaml'));
const COMMIT_A = 'a1b2c3d4e5f6a7b8';
const COMMIT_B = 'b2c3d4e5f6a7b8c9';

let dir: string;
let renderCalls: string[];
let measured: number;
let liveDeploys: ListedDeploy[];

function render(): RenderPort {
  return {
    async listDeploys() {
      return liveDeploys;
    },
    async setEnvVar(_id, key, value) {
      renderCalls.push(`setEnvVar ${key}=${value}`);
    },
    async triggerDeploy() {
      renderCalls.push('triggerDeploy');
      return { id: 'dep-rollback' };
    },
    async waitForDeploy() {
      renderCalls.push('waitForDeploy');
      return { status: 'live' };
    },
  };
}

function options(overrides: Partial<CanaryRunOptions> = {}): CanaryRunOptions {
  let now = Date.parse('2026-12-01T10:00:00.000Z');
  return {
    policy,
    stack: 'production',
    baseUrl: 'http://127.0.0.1:4100',
    serviceId: 'srv-test',
    source: {
      measure: async () => {
        measured++;
        throw new Error('this run must not measure');
      },
    },
    stateFile: new StateFile(join(dir, 'state.json')),
    stackDir: dir,
    reportDir: join(dir, 'report'),
    timeScale: 60,
    dryRun: false,
    render: render(),
    measuredOn: IN_PROCESS_RENDER,
    notifier: { notify: async () => {} },
    probe: async () => ({ status: 200, body: {} }),
    progress: silentProgress,
    operator: 'binding-test',
    now: () => now,
    sleep: async (ms) => {
      now += ms;
    },
    ...overrides,
  };
}

/** A finished run of another service, turned back to "acting" on a rollback: the reproduction. */
function foreignActingState(): CanaryState {
  return {
    version: 1,
    stack: 'production',
    baseUrl: 'http://127.0.0.1:4999',
    serviceId: 'srv-other',
    deployId: COMMIT_B,
    startedAtMs: Date.parse('2026-11-30T10:00:00.000Z'),
    startedAt: '2026-11-30T10:00:00.000Z',
    measurements: [],
    phase: 'acting',
    decision: { kind: 'rollback', trigger: 'breach', reason: 'errorRate 40%', atSeconds: 600, stepIndex: 0 },
    analysedDeploy: { id: 'dep-other', createdAt: '2026-11-30T09:59:00.000Z', commit: COMMIT_B },
    actions: [],
  };
}

/** This service's own run, interrupted while acting. */
function ownActingState(decision: CanaryState['decision'] = { kind: 'rollback', trigger: 'breach', reason: 'errorRate 40%', atSeconds: 600, stepIndex: 0 }): CanaryState {
  return {
    ...foreignActingState(),
    baseUrl: 'http://127.0.0.1:4100',
    serviceId: 'srv-test',
    deployId: COMMIT_A,
    decision,
    analysedDeploy: { id: 'dep-a', createdAt: '2026-11-30T09:59:00.000Z', commit: COMMIT_A },
  };
}

const write = (state: unknown, name = 'state.json') => {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(state));
  return path;
};
const stackFile = () => readFileSync(join(dir, 'Pulumi.production.yaml'), 'utf8');

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'canary-state-binding-'));
  for (const stack of ['staging', 'production']) copyFileSync(join(REPO, `Pulumi.${stack}.yaml`), join(dir, `Pulumi.${stack}.yaml`));
  renderCalls = [];
  measured = 0;
  liveDeploys = [{ id: 'dep-a', status: 'live', commit: { id: COMMIT_A } }];
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('a state file acts only on the run it belongs to', () => {
  it('refuses another service\'s "acting" state: no Render call, no latch, no measurement, the differences named', async () => {
    write(foreignActingState());
    const before = stackFile();
    const refused = runCanary(options());
    await expect(refused).rejects.toThrow(StateFileError);
    await expect(refused).rejects.toThrow(/Render service: the file's srv-other, this run's srv-test; base URL: the file's http:\/\/127\.0\.0\.1:4999, this run's http:\/\/127\.0\.0\.1:4100/);
    await expect(refused).rejects.toThrow(/use a new --state-file/);
    expect(renderCalls).toEqual([]);
    expect(measured).toBe(0);
    expect(stackFile()).toBe(before);
  });

  it('--resume never overrides another service\'s file', async () => {
    write(foreignActingState());
    await expect(runCanary(options({ resume: true }))).rejects.toThrow(/belongs to another run/);
    expect(renderCalls).toEqual([]);
  });

  it('refuses a resumed rollback when Render\'s live deploy is no longer the one decided about; --resume after a look finishes it', async () => {
    write(ownActingState());
    liveDeploys = [{ id: 'dep-b', status: 'live', commit: { id: COMMIT_B } }, { id: 'dep-a', status: 'deactivated', commit: { id: COMMIT_A } }];
    const refused = runCanary(options());
    await expect(refused).rejects.toThrow(StateFileError);
    await expect(refused).rejects.toThrow(new RegExp(`about deploy dep-a \\(commit ${COMMIT_A}\\), but Render's live deploy of srv-test is now deploy dep-b \\(commit ${COMMIT_B}\\)[\\s\\S]*--resume`));
    expect(renderCalls).toEqual([]);

    const resumed = await runCanary(options({ resume: true }));
    expect(resumed.outcome).not.toBe('promoted');
    expect(renderCalls[0]).toBe('setEnvVar ENABLE_CONTEXT7_MEMORY=false');
  });

  it('a resumed decision acts when the live deploy is the one decided about', async () => {
    write(ownActingState({ kind: 'hold', trigger: 'inconclusive', reason: 'too little traffic', atSeconds: 600, stepIndex: 0 }));
    const result = await runCanary(options());
    expect(result.outcome).toBe('held');
    expect(measured).toBe(0);
  });

  it('accepts a live deploy the file\'s own rollback created, recorded or requested before a crash', async () => {
    write({ ...ownActingState(), rollback: { envSetAt: 't', renderDeployId: 'dep-rollback', deployLiveAt: 't', latchedAt: 't' }, phase: 'done', outcome: 'rolled_back' });
    liveDeploys = [{ id: 'dep-rollback', status: 'live', commit: { id: COMMIT_A } }];
    expect((await runCanary(options())).outcome).toBe('rolled_back');

    write({ ...ownActingState(), phase: 'done', outcome: 'rolled_back', rollback: { envSetAt: 't', deployRequestedAt: 't', deploysBefore: ['dep-a'] } });
    liveDeploys = [{ id: 'dep-unrecorded', status: 'live', commit: { id: COMMIT_A } }];
    expect((await runCanary(options())).outcome).toBe('rolled_back');
    expect(renderCalls).toEqual([]);
  });

  it('a finished file for an older deploy never answers for the new one (it would exit 0 for a deploy it never saw)', async () => {
    write({ ...ownActingState(), phase: 'done', outcome: 'signed_off' });
    liveDeploys = [{ id: 'dep-b', status: 'live', commit: { id: COMMIT_B } }];
    await expect(runCanary(options())).rejects.toThrow(/finished \(signed_off\) a run about deploy dep-a/);
  });

  it('a resumed "acting" phase that cannot read the live deploy waits for a look (--resume)', async () => {
    write(ownActingState());
    const blind: RenderPort = { ...render(), listDeploys: async () => { throw new Error('Render answered 503'); } };
    await expect(runCanary(options({ render: blind }))).rejects.toThrow(/cannot be read \(Render answered 503\)[\s\S]*--resume/);
    expect(renderCalls).toEqual([]);
  });

  it('an incomplete file ("acting" with no decision) is refused as a state file, never a TypeError', async () => {
    const { decision: _dropped, ...incomplete } = ownActingState();
    write(incomplete);
    const refused = runCanary(options());
    await expect(refused).rejects.toThrow(StateFileError);
    await expect(refused).rejects.toThrow(/is incomplete \(decision is missing: the phase is "acting" but nothing was decided\)/);
    expect(renderCalls).toEqual([]);
  });

  it('the stepped canary follows the same rule: another service\'s file, and an incomplete stepped file', async () => {
    const stepped = {
      ...foreignActingState(),
      stepped: { stepIndex: 0, steps: steppedPolicy.exposure!.steps.map((s) => ({ percent: s.percent, decisions: [] })), exposureReachedPercent: 0 },
    };
    write(stepped);
    const run = () =>
      runSteppedCanary({ ...options(), policy: steppedPolicy as never, exposure: undefined, analyzeStep, applyTimeoutMs: 1000 });
    await expect(run()).rejects.toThrow(/belongs to another run \(Render service: the file's srv-other/);
    write({ ...stepped, serviceId: 'srv-test', baseUrl: 'http://127.0.0.1:4100', stepped: { ...stepped.stepped, stepIndex: 99 } });
    await expect(run()).rejects.toThrow(/incomplete \(stepped\.stepIndex 99 is past the \d+ steps/);
    expect(renderCalls).toEqual([]);
  });

  it('a read-only reader loads any parseable state, incomplete or bound elsewhere, without refusing', () => {
    const { decision: _dropped, ...incomplete } = foreignActingState();
    const path = write(incomplete);
    const read = readStateUnbound(path);
    expect(read.state?.serviceId).toBe('srv-other');
    expect(read.problem).toMatch(/decision is missing/);
    expect(readStateUnbound(join(dir, 'absent.json'))).toEqual({ problem: expect.stringContaining('no state file') });
  });

  it('the CLI exits 64 with the difference and the way out', () => {
    const path = write(foreignActingState(), 'cli-state.json');
    const run = spawnSync(
      process.execPath,
      [...compiledArgs('canary/main.ts'), 'run', '--stack', 'production', '--base-url', 'http://127.0.0.1:4100', '--state-file', path, '--report-dir', join(dir, 'cli-report'), '--stack-dir', dir],
      { cwd: REPO, encoding: 'utf8', env: { ...process.env, RENDER_API_KEY: '' } },
    );
    expect(run.status).toBe(64);
    expect(run.stderr).toMatch(/belongs to another run \(Render service: the file's srv-other, this run's \(none\); base URL/);
    expect(run.stderr).not.toMatch(/TypeError/);
  }, 60_000);
});
