/**
 * `canary replay` of a stepped report (issue 22 §5): the run is walked again as a stepped run, with its steps, looks
 * and alpha, and the verdict is the stepped analysis's, never the whole-flag analysis's (which printed PROMOTE and
 * exited 0 for a run that rolled back). A replay that leaves the recorded path gives no verdict rather than a guess.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RenderPort } from '../../canary/actions/rollback';
import { analyzeStep } from '../../canary/exposure/analyze-step';
import { replaySteppedReport, steppedReportSchema } from '../../canary/exposure/replay';
import { runSteppedCanary, type SteppedPolicy, type SteppedRunOptions } from '../../canary/exposure/stepped-controller';
import { loadPolicy } from '../../canary/policy';
import { FAKE_COMMIT, FakeExposureService } from './support/fake-exposure-service';
import { steppedOptions } from './support/stepped-options';
import { compiledArgs } from '../../canary/compiled';

const REPO = join(__dirname, '../..');
const policy = loadPolicy(join(__dirname, 'fixtures/stepped-policy.yaml')) as SteppedPolicy;
const ADMIN_TOKEN = 'replay_stepped_test_ADMIN_token_value';
const BASE_URL = 'http://127.0.0.1:9';

let dir: string;
let now: number;
let service: FakeExposureService;

const render: RenderPort = {
  async listDeploys() {
    return [{ id: 'dep-live', status: 'live', commit: { id: FAKE_COMMIT } }];
  },
  async setEnvVar(_id, key, value) {
    if (key === 'ENABLE_CONTEXT7_MEMORY') service.flagOn = value === 'true';
  },
  async triggerDeploy() {
    return { id: 'dep-rollback', status: 'created' };
  },
  async waitForDeploy() {
    now += 30_000;
    return { status: 'live' };
  },
};

function options(): SteppedRunOptions {
  const sleep = async (ms: number) => {
    now += ms;
  };
  const notifier = { notify: async () => {} };
  return steppedOptions({ policy, service, dir, baseUrl: BASE_URL, adminToken: ADMIN_TOKEN, now: () => now, sleep, render, notifier, operator: 'replay-test', stack: 'production' });
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'replay-stepped-'));
  for (const stack of ['staging', 'production']) copyFileSync(join(REPO, `Pulumi.${stack}.yaml`), join(dir, `Pulumi.${stack}.yaml`));
  now = Date.parse('2026-12-01T12:00:00.000Z');
  service = new FakeExposureService({ adminToken: ADMIN_TOKEN, now: () => now, applyDelayMs: 200 });
  service.requestsPerSecond = 2400;
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const reportJson = () => JSON.parse(readFileSync(join(dir, 'report', 'report.json'), 'utf8'));
const cli = (timeline: string, ...extra: string[]) =>
  spawnSync(process.execPath, [...compiledArgs('canary/main.ts'), 'replay', '--timeline', timeline, ...extra], { cwd: REPO, encoding: 'utf8' });

describe('canary replay of a stepped report', () => {
  it('a run that rolled back at 25% replays as ROLLBACK at step 2, exit 1, MATCH (not PROMOTE, exit 0)', async () => {
    service.degradeFromPercent = 25;
    const run = await runSteppedCanary(options());
    expect(run.outcome).toBe('rolled_back');
    const replayed = cli(join(dir, 'report', 'report.json'));
    expect(replayed.stdout).toContain('stepped report: 5% → 25% → 50% → 100%');
    expect(replayed.stdout).toMatch(/step 1 \(5%\) look \d+ at policy minute [\d.]+: ADVANCE/);
    expect(replayed.stdout).toMatch(/DECISION: ROLLBACK at step 2 \(25%\) \(step_rollback\)/);
    expect(replayed.stdout).toContain('recorded: rollback (step_rollback) at step 2 -> MATCH');
    expect(replayed.stdout).not.toContain('PROMOTE');
    expect(replayed.status).toBe(1);
  }, 60_000);

  it('a healthy run replays as PROMOTE at the last step; a report without fromMeasurement (older) replays the same', async () => {
    await runSteppedCanary(options());
    const report = steppedReportSchema.parse(reportJson());
    const replayed = replaySteppedReport(report, policy, analyzeStep);
    expect(replayed.verdict).toMatchObject({ kind: 'promote', stepIndex: 3 });
    const older = { ...report, steps: report.steps.map(({ fromMeasurement: _f, ...step }) => step) };
    expect(replaySteppedReport(older, policy, analyzeStep).verdict).toMatchObject({ kind: 'promote', stepIndex: 3 });
    // The recorded looks per step are the replayed ones.
    const looks = report.steps.map((s) => s.looks);
    for (const [index, count] of looks.entries()) {
      expect(replayed.lines.filter((line) => line.startsWith(`step ${index + 1} (`) && line.includes(' look ')).length).toBe(count);
    }
  });

  it('a policy under which the run would still hold where it advanced gives no verdict (replay exits 2), never a guess', async () => {
    await runSteppedCanary(options());
    const strict = structuredClone(policy);
    strict.exposure.steps[0]!.minimumSamplesPerCohort = 10_000_000;
    const replayed = replaySteppedReport(steppedReportSchema.parse(reportJson()), strict, analyzeStep);
    expect(replayed.verdict).toBeNull();
    expect(replayed.noVerdict).toMatch(/step 1 \(5%\) would still hold where the recorded run advanced/);
  });
});
