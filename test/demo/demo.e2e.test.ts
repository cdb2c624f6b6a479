/**
 * `npm run demo` end to end, as a newcomer runs it: the whole rehearsal as a child process. Each
 * claim in its summary is checked again from the artefacts it leaves (reports, stack file copy,
 * the production service's SQLite store, /proc), not taken on trust.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLAG_KEY, PINNED_COMMIT_KEY, readStackConfig } from '../../canary/actions/stack-file';
import { canaryReportSummarySchema } from '../../canary/report-summary';
import { groupAlive } from '../../demo/processes';
import { SECRET_MARKER } from '../../demo/rehearsal';
import { createSqliteStore } from '../../service/data-access/sqlite-store';
import { cohortOf } from '../../service/domain/exposure';
import { KILL_SWITCH_BOUND_SECONDS } from '../../demo/verdict';
import { compiledArgs } from '../../canary/compiled';
import { describeClocks, processesMentioning, settle, startDemo as startChild, type StartedDemo } from './support/demo-child';

const REPO = join(__dirname, '../..');
const runDirs: string[] = [];
/** Every demo this file started: a failed assertion must not leave one (and what it started) running. */
const children = new Set<ChildProcess>();

interface DemoRun {
  code: number | null;
  output: string;
  runDir: string;
  summary: Record<string, any>;
  /** the demo's own process (its process group's id) */
  pid: number;
}

/** A demo in a new run directory of its own. */
function startDemo(args: string[], env: NodeJS.ProcessEnv = { ...process.env, FORCE_COLOR: '0' }): StartedDemo {
  const runDir = mkdtempSync(join(tmpdir(), 'demo-e2e-'));
  runDirs.push(runDir);
  return startChild(runDir, args, env, children);
}

/** Waits for the demo's end and reads its summary (the short DEMO_SUMMARY line and the file it names). */
async function finished(demo: StartedDemo): Promise<DemoRun> {
  const code = await demo.closed;
  const output = demo.output();
  const line = output.split('\n').find((l) => l.startsWith('DEMO_SUMMARY '));
  expect(line, output).toBeDefined();
  // The line is short (issue 23): what happened and where the whole summary is; the detail is in the file.
  expect(line!.length).toBeLessThan(600);
  const short = JSON.parse(line!.slice('DEMO_SUMMARY '.length));
  const summary = JSON.parse(readFileSync(short.summaryFile, 'utf8'));
  expect(short).toMatchObject({ ok: summary.ok, mode: summary.mode, durationMs: summary.durationMs, summaryFile: join(demo.runDir, 'demo-summary.json') });
  // Stated, not asserted: the machine is shared.
  console.log(`${summary.mode} rehearsal: ${(summary.durationMs / 1000).toFixed(1)} s, clocks ${describeClocks(summary.clocks)}`);
  return { code, output, runDir: demo.runDir, summary, pid: demo.child.pid! };
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

async function expectNothingLeft(run: DemoRun): Promise<void> {
  const tracked = run.summary.processes as { role: string; pid: number; pgid: number }[];
  expect(tracked.some((p) => p.role.startsWith('canary:'))).toBe(true);
  expect(tracked.filter((p) => p.role.startsWith('service:')).length).toBeGreaterThanOrEqual(4);
  await settle(() => !tracked.some((p) => groupAlive(p.pgid)) && !groupAlive(run.pid) && processesMentioning(run.runDir).length === 0);
  expect(tracked.filter((p) => groupAlive(p.pgid)), 'process groups still alive').toEqual([]);
  expect(groupAlive(run.pid)).toBe(false);
  expect(processesMentioning(run.runDir)).toEqual([]);
}

function expectReports(run: DemoRun, stack: string, outcome: string) {
  for (const name of ['report.json', 'signoff.md', 'report.html']) expect(existsSync(join(run.runDir, 'reports', stack, name)), `${stack}/${name}`).toBe(true);
  const report = JSON.parse(readFileSync(join(run.runDir, 'reports', stack, 'report.json'), 'utf8'));
  const summary = canaryReportSummarySchema.parse(report.summary);
  expect(summary).toMatchObject({ stack, outcome });
  expect(run.output).toContain(join(run.runDir, 'reports', stack, 'report.html'));
  return report;
}

async function expectNoPatternLost(run: DemoRun): Promise<number> {
  const acknowledged = JSON.parse(readFileSync(join(run.runDir, 'acknowledged-patterns.json'), 'utf8')) as Record<string, string[]>;
  const store = createSqliteStore({ dataDir: join(run.runDir, 'data', 'production') });
  let count = 0;
  try {
    await store.migrate(); // already migrated by the service: a no-op that readies the statements
    for (const [scopeId, ids] of Object.entries(acknowledged)) {
      const stored = new Set((await store.exportScope(scopeId, new Date())).patterns.map((p) => p.id));
      for (const id of ids) {
        count++;
        expect(stored.has(id), `${scopeId}/${id}`).toBe(true);
      }
    }
  } finally {
    await store.close();
  }
  return count;
}

function expectNoSecretLeaked(run: DemoRun): void {
  expect(run.output).not.toContain(SECRET_MARKER);
  for (const file of filesUnder(run.runDir).filter((f) => !f.includes(`${join(run.runDir, 'data')}`))) {
    expect(readFileSync(file, 'utf8').includes(SECRET_MARKER), file).toBe(false);
  }
}

afterAll(() => {
  // A failed assertion must not leave a demo (and what it started) running.
  for (const child of children) if (child.pid && groupAlive(child.pid)) process.kill(-child.pid, 'SIGKILL');
  for (const dir of runDirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * The three demos of this file run one after another: each measures what the machine carries (demo/clock.ts) and
 * takes a share of it, so a demo started beside another steals the capacity the first one's clock was chosen for.
 * Side by side (tried in this session), the fault demo's staging on a 60x clock saw Render's platform p95 at 2.5 s
 * and rolled back (fresh-clone CI run, load 3). The tests still await their demo concurrently, in the order started.
 */
let fault: Promise<StartedDemo>;
let healthy: Promise<StartedDemo>;
let interrupted: Promise<StartedDemo>;

beforeAll(() => {
  const first = startDemo([]);
  fault = Promise.resolve(first);
  healthy = first.closed.then(() => startDemo(['--healthy']));
  interrupted = healthy.then(async (second) => {
    await second.closed;
    return startDemo([], { ...process.env });
  });
  // Unhandled until a test awaits them: they reject only if a spawn throws.
  for (const p of [healthy, interrupted]) p.catch(() => undefined);
});

describe('npm run demo', () => {
  it.concurrent('staging promotes; production steps 5 → 25 %, Context7 degrades at 25 %, caught there: kill switch, rollback verified and latched; no pattern lost; nothing left running', async () => {
    const run = await finished(await fault);
    expect(run.code, run.output).toBe(0);
    expect(run.summary).toMatchObject({ ok: true, mode: 'fault' });

    // Staging promoted, and the promotion pinned exactly its commit in the production stack copy.
    const staging = expectReports(run, 'staging', 'promoted');
    const stackFile = join(run.runDir, 'stacks', 'Pulumi.production.yaml');
    expect(readStackConfig(stackFile, PINNED_COMMIT_KEY)).toBe(staging.summary.deployId);

    // Production rolled back through Render, and every runbook verification passed.
    const production = expectReports(run, 'production', 'rolled_back');
    expect(production.decision.kind).toBe('rollback');

    // The stepped rollout: 5 % passed, Context7 degraded only once the service reported 25 %, and the canary caught
    // it at that step, the treatment worse than the control (its fallbacks against the control's).
    expect(production.kind).toBe('stepped');
    expect(production.steps.map((s: { percent: number }) => s.percent)).toEqual([5, 25, 50, 100]);
    expect(production.decision.stepIndex).toBe(1);
    expect(production.summary.exposureReachedPercent).toBe(5);
    expect(production.steps[2].startedAtSeconds).toBeNull();
    expect(run.summary.exposure.faultBeganAtPercent).toBe(25);
    expect(Math.max(...run.summary.exposure.seen.map((p: { percent: number }) => p.percent))).toBe(25);
    expect(run.summary.exposure.seen.at(-1).percent).toBe(0);
    const stepped = run.summary.stepped;
    expect(stepped).toMatchObject({ caughtAtStep: 2, caughtAtPercent: 25, highestExposurePercent: 25, controlHealthy: true, comparedAtPercent: 25 });
    // Caught by the runbook's thresholds on the treatment's own figures, and the reason says so: the demo compares no
    // fallbackRate with a control that never falls back (a threshold in disguise, issue 27).
    expect(stepped.decision.reason).toMatch(/treatment (fallbackRate|errorRate) breaches its threshold/);
    // Never exposed, recounted here by hash from the scopes the traffic reached: about 75 % (this pool hashes 44
    // of its 160 scopes under 25 %: 72.5 %).
    const reached = Object.entries(run.summary.traffic.production.requestsByScope as Record<string, number>).filter(([, n]) => n > 0).map(([id]) => id);
    const never = reached.filter((id) => cohortOf(id, 25) === 'control').length;
    expect(stepped.scopes).toMatchObject({ withTraffic: reached.length, neverExposed: never });
    expect(reached.length).toBeGreaterThan(100);
    expect(never / reached.length).toBeGreaterThan(0.65);
    // The kill switch: 0 % on every instance within seconds of the decision (a generous bound for a loaded machine:
    // the contract is "seconds", not a redeploy), recorded before the durable rollback, which was verified.
    expect(production.killSwitch).toMatchObject({ failed: null });
    expect(stepped.killSwitchSeconds).toBeGreaterThanOrEqual(0);
    expect(stepped.killSwitchSeconds).toBeLessThanOrEqual(KILL_SWITCH_BOUND_SECONDS);
    expect(stepped.rollbackSeconds).toBeGreaterThan(stepped.killSwitchSeconds);
    expect(production.rollbackDuration.withinBudget).toBe(true);
    const order = (production.actions as { action: string }[]).map((a) => a.action);
    expect(order.indexOf('kill-switch')).toBeGreaterThanOrEqual(0);
    expect(order.indexOf('kill-switch')).toBeLessThan(order.indexOf('set-env'));
    // The control stayed healthy at the caught step: no 5xx, its reads answered from the store.
    expect(production.steps[1].cohorts.control.totals.serverErrors).toBe(0);
    expect(production.steps[1].cohorts.control.totals.fallbacks).toBe(0);
    expect(production.steps[1].cohorts.treatment.totals.fallbacks).toBeGreaterThan(0);
    for (const fact of [/caught at step 2 of 4 \(25 % exposed\) by the thresholds: .*treatment (fallbackRate|errorRate) breaches its threshold/, /scopes: \d+ of the \d+ scopes the traffic reached were never exposed/, /kill switch: exposure 0 % on every instance [\d.]+ s after the decision; durable rollback/, /control healthy at the 25 % step/]) {
      expect(run.output).toMatch(fact);
    }
    const actions = production.actions as { action: string; ok: boolean }[];
    for (const step of ['set-env', 'trigger-deploy', 'deploy-live', 'latch']) expect(actions.some((a) => a.action === step && a.ok), step).toBe(true);
    const verifications = actions.filter((a) => a.action === 'verify');
    expect(verifications.length).toBe(4);
    expect(verifications.every((a) => a.ok)).toBe(true);
    expect(readFileSync(join(run.runDir, 'reports', 'production', 'signoff.md'), 'utf8')).toContain('**Rollback Needed**: YES');
    expect(run.summary.productionRenderFlag).toBe('false');
    expect(run.summary.faultStages.length).toBeGreaterThan(0);

    // The latch: the promotion turned the flag on, the rollback turned it off again.
    expect(run.summary.promotedStack.flag).toBe(true);
    expect(readStackConfig(stackFile, FLAG_KEY)).toBe(false);

    // No learned pattern lost: every acknowledged write is in production's SQLite store.
    const checked = await expectNoPatternLost(run);
    expect(checked).toBeGreaterThan(0);
    expect(checked).toBe(run.summary.patterns.acknowledged);

    await expectNothingLeft(run);
    expectNoSecretLeaked(run);
  }, 1_500_000);

  it.concurrent('--healthy promotes staging and steps production through 5 → 25 → 50 → 100 % to a sign-off', async () => {
    const run = await finished(await healthy);
    expect(run.code, run.output).toBe(0);
    expect(run.summary).toMatchObject({ ok: true, mode: 'healthy', productionRenderFlag: 'true', faultStages: [] });
    // Staging (today's single-step canary): the learning probe ran beside the analysis and passed both runbook
    // criteria, with its own key.
    expect(expectReports(run, 'staging', 'promoted').probe).toMatchObject({ verdict: 'pass', notRun: 0 });
    const signoff = readFileSync(join(run.runDir, 'reports', 'staging', 'signoff.md'), 'utf8');
    expect(signoff).toContain('**Post-call learning saves to Context7**: YES');
    expect(signoff).toContain('**Attestation shows correct source**: YES');
    // Production: every step passed, no kill switch.
    const production = expectReports(run, 'production', 'signed_off');
    expect(production.summary.exposureReachedPercent).toBe(100);
    expect(production.steps.every((s: { startedAtSeconds: number | null }) => s.startedAtSeconds !== null)).toBe(true);
    expect(production.killSwitch).toBeNull();
    expect(run.summary.stepped).toMatchObject({ caughtAtStep: null, exposureReachedPercent: 100, controlHealthy: true });
    expect(readStackConfig(join(run.runDir, 'stacks', 'Pulumi.production.yaml'), FLAG_KEY)).toBe(true);
    expect(await expectNoPatternLost(run)).toBeGreaterThan(0);
    await expectNothingLeft(run);
  }, 1_500_000);

  it.concurrent('Ctrl-C mid-rehearsal stops everything it started and exits 130', async () => {
    const demo = await interrupted;
    const { child, runDir } = demo;
    // Interrupt once services, traffic and the staging canary are all running.
    await demo.waitFor(/staging canary +\d/, 180_000);
    expect(demo.output()).toMatch(/staging canary +\d/);
    expect(processesMentioning(runDir).length).toBeGreaterThanOrEqual(3); // two services and the canary, at least
    child.kill('SIGINT');
    expect(await demo.closed, demo.output()).toBe(130);
    const output = demo.output();
    expect(output).toContain('SIGINT: stopping everything the demo started');
    // Reported as an interruption, consistently: never as a held promotion, never with "error": null.
    expect(output).toContain(`stopped; partial results in ${runDir}`);
    const summary = JSON.parse(readFileSync(join(runDir, 'demo-summary.json'), 'utf8'));
    expect(summary).toMatchObject({ ok: false, interrupted: true, error: 'interrupted by SIGINT' });
    const lines = output.trim().split('\n');
    expect(lines.find((line) => /^(PASS|FAIL|INTERRUPTED): /.test(line))).toMatch(/^INTERRUPTED: 0\/1 checks, [\d.]+ s; summary in /);
    expect(output).not.toMatch(/did not promote \(outcome held\)/);
    await settle(() => processesMentioning(runDir).length === 0);
    expect(processesMentioning(runDir)).toEqual([]);
  }, 420_000); // its demo starts after the two others have chosen their clocks

  // Asynchronous children only: this test runs beside the demos (it.concurrent), and a spawnSync would stall their
  // watchers in this worker. Two tsx start-ups took over 60 s together at load 17-20.
  it.concurrent('refuses bad arguments with exit 64 and starts nothing', async () => {
    const demo = (args: string[]) =>
      new Promise<{ code: number | null; text: string }>((resolve) => {
        let text = '';
        const c = spawn(process.execPath, [...compiledArgs('demo/main.ts'), ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
        c.stdout!.on('data', (d: Buffer) => (text += d.toString()));
        c.stderr!.on('data', (d: Buffer) => (text += d.toString()));
        c.on('close', (code) => resolve({ code, text }));
      });
    const out = await demo(['--time-scale', 'fast']);
    expect(out.code).toBe(64);
    expect(out.text).toContain('--time-scale must be a positive number');
    // A run directory holding an earlier run is refused too (its canary state files say "done").
    const used = mkdtempSync(join(tmpdir(), 'demo-e2e-'));
    runDirs.push(used);
    writeFileSync(join(used, 'earlier-run.txt'), 'x');
    const reused = await demo(['--run-dir', used]);
    expect(reused.code).toBe(64);
    expect(reused.text).toContain('must be a new or empty directory');
  }, 240_000);
});
