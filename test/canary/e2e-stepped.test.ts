/**
 * The stepped canary end to end on loopback: the real service (started by the Render emulator's local platform)
 * with the exposure runtime and per-cohort metrics, the Context7 emulator, traffic over 400 scopes, and
 * `canary stepped` as a child process. A healthy rollout promotes through 5 -> 25 -> 50 -> 100; then Context7
 * degrades only once exposure reaches 25%, and the canary rolls back at that step: the kill switch first, then
 * the durable rollback through the Render API.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readStackConfig } from '../../canary/actions/stack-file';
import { canaryReportSummarySchema } from '../../canary/report-summary';
import { exposureAuditResponseSchema, exposureStateSchema } from '../../service/contracts/http';
import { E2E_ADMIN_TOKEN, useE2eRig, type E2eRig } from './support/e2e';
import { STEPPED_E2E_CLOCK, type SteppedClock } from './support/stepped-traffic';

const STEPPED_POLICY = join(__dirname, 'fixtures/stepped-e2e-policy.yaml');
/** 5 to 10 policy minutes a run: 1 to 2 minutes at 10x, up to 10 at the slowest clock (1x, a machine at load 30). */
const STEPPED_TEST_TIMEOUT_MS = 900_000;
// All the traffic comes from one address: at 10x it is some 100 requests a second, past the shared limit (3,000 a minute).
const RIG_ENV = [{ key: 'ADMIN_TOKEN', value: E2E_ADMIN_TOKEN }, { key: 'RATE_LIMIT_MAX', value: '0' }];
const admin = { authorization: `Bearer ${E2E_ADMIN_TOKEN}` };

function steppedArgs(rig: E2eRig, stack: 'staging' | 'production', name: string, timeScale: number): string[] {
  return [
    '--base-url', rig.serviceUrl,
    '--stack', stack,
    '--policy', STEPPED_POLICY,
    '--render-api-url', rig.render.url,
    '--render-service-id', rig.serviceId,
    '--state-file', join(rig.dir, `${name}-state.json`),
    '--report-dir', join(rig.dir, name),
    '--stack-dir', rig.dir,
    // The machine's clock (support/stepped-traffic.ts): 10x when it carries the traffic, slower when loaded.
    '--time-scale', String(timeScale),
  ];
}

async function exposureState(rig: E2eRig) {
  const res = await fetch(`${rig.serviceUrl}/api/admin/exposure`, { headers: admin, signal: AbortSignal.timeout(2000) });
  return exposureStateSchema.parse(await res.json());
}

async function audit(rig: E2eRig) {
  const res = await fetch(`${rig.serviceUrl}/api/admin/exposure/audit`, { headers: admin, signal: AbortSignal.timeout(2000) });
  // Oldest first (the endpoint answers newest first).
  return exposureAuditResponseSchema.parse(await res.json()).entries.sort((a, b) => a.version - b.version);
}

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

interface TaskNode {
  type: string;
  mode: string;
  tasks?: TaskNode[];
}
/** The tests of this file that will run (a `-t` filter skips the others). */
const testsToRun = (file: TaskNode): number => (file.tasks ?? []).reduce((n, t) => n + (t.type === 'suite' ? testsToRun(t) : t.mode === 'run' ? 1 : 0), 0);

interface SteppedTurn {
  clock: SteppedClock;
  sideBySide: boolean;
  /** Lets the next test run (called when this one has finished, its traffic stopped). */
  done(): void;
}

/**
 * The two tests share nothing (each has its own rig), so they run side by side when the machine carries both at the
 * fastest clock. Their clocks are measured at once, each under the other's measuring load, before either's traffic
 * starts. If either comes out below the fastest clock, they run one after the other instead, each on a clock
 * measured alone when its turn comes: two runs sharing a loaded machine would each get half the clock, and take
 * longer together than in turn. A partner that never arrives (its rig failed to start) is given up after `waitMs`.
 */
function turnsForSteppedRuns(waitMs = 120_000) {
  const measurements: Promise<SteppedClock>[] = [];
  let allArrived!: () => void;
  const arrived = new Promise<void>((resolve) => (allArrived = resolve));
  let giveUp: NodeJS.Timeout | undefined;
  let previousTurn = Promise.resolve();
  return async (file: TaskNode, measure: () => Promise<SteppedClock>): Promise<SteppedTurn> => {
    const mine = arrived.then(measure);
    measurements.push(mine);
    giveUp ??= setTimeout(allArrived, waitMs);
    if (measurements.length >= testsToRun(file)) {
      clearTimeout(giveUp);
      allArrived();
    }
    const all = await Promise.allSettled(measurements);
    const clock = await mine;
    if (all.every((m) => m.status === 'fulfilled' && m.value.timeScale >= STEPPED_E2E_CLOCK.max)) return { clock, sideBySide: true, done: () => undefined };
    let done!: () => void;
    const waitFor = previousTurn;
    previousTurn = new Promise<void>((resolve) => (done = resolve));
    await waitFor;
    try {
      return { clock: await measure(), sideBySide: false, done };
    } catch (error) {
      done();
      throw error;
    }
  };
}
const takeTurn = turnsForSteppedRuns();

describe.concurrent('stepped canary end to end', () => {
  describe('healthy', () => {
    const e2e = useE2eRig(RIG_ENV);
    it('promotes a healthy stepped rollout through every step and records the exposure reached', async ({ task, onTestFinished }) => {
      const { rig } = e2e;
      const { clock, sideBySide, done } = await takeTurn(task.file, () => e2e.chooseSteppedClock());
      onTestFinished(done);
      console.info(`stepped e2e (healthy): ${clock.requestsPerPolicyMinute} requests a policy minute at ${clock.timeScale}x (measured ${clock.capacityPerSecond} requests/s; ${sideBySide ? 'side by side' : 'one after the other'})`);
      e2e.startSteppedTraffic(clock.timeScale);
      const canary = e2e.runCanary(steppedArgs(rig, 'staging', 'healthy', clock.timeScale), 'stepped', { CANARY_ADMIN_TOKEN: E2E_ADMIN_TOKEN });
      const code = await canary.exit;
      const traffic = await e2e.stopTraffic();
      const output = canary.output();
      expect(code, `${output}\ntraffic at ${clock.timeScale}x: ${JSON.stringify(traffic)}`).toBe(0);
      const canaryChanges = (await audit(rig)).filter((entry) => entry.actor === 'canary').map((entry) => entry.toPercent);
      expect(canaryChanges).toEqual([5, 25, 50, 100]);
      const report = readJson(join(rig.dir, 'healthy', 'report.json'));
      expect(canaryReportSummarySchema.parse(report.summary)).toMatchObject({ stack: 'staging', outcome: 'promoted', exposureReachedPercent: 100 });
      expect(readStackConfig(join(rig.dir, 'Pulumi.production.yaml'), 'memory-rollout:enableContext7Memory')).toBe(true);
      for (const text of [output, readFileSync(join(rig.dir, 'healthy', 'report.json'), 'utf8'), readFileSync(join(rig.dir, 'healthy-state.json'), 'utf8')]) {
        expect(text).not.toContain(E2E_ADMIN_TOKEN);
      }
    }, STEPPED_TEST_TIMEOUT_MS);
  });

  describe('degraded', () => {
    const e2e = useE2eRig(RIG_ENV);
    it('rolls back at 25% when Context7 degrades only there: kill switch in seconds, then flag off, redeploy, latch, verify; the control unaffected', async ({ task, onTestFinished }) => {
      const { rig } = e2e;
      rig.context7.resetFaults();
      const { clock, sideBySide, done } = await takeTurn(task.file, () => e2e.chooseSteppedClock());
      onTestFinished(done);
      console.info(`stepped e2e (degraded): ${clock.requestsPerPolicyMinute} requests a policy minute at ${clock.timeScale}x (measured ${clock.capacityPerSecond} requests/s; ${sideBySide ? 'side by side' : 'one after the other'})`);
      e2e.startSteppedTraffic(clock.timeScale);
      // Context7 degrades once the fleet applies 25% (and stays degraded).
      let degradedAt: number | undefined;
      const watcher = (async () => {
        while (degradedAt === undefined) {
          const state = await exposureState(rig).catch(() => undefined);
          if (state && state.percent >= 25 && state.percent < 100) {
            rig.context7.setFaults({ errorRate: 0.8 });
            degradedAt = state.percent;
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      const canary = e2e.runCanary(steppedArgs(rig, 'production', 'degraded', clock.timeScale), 'stepped', { CANARY_ADMIN_TOKEN: E2E_ADMIN_TOKEN });
      const code = await canary.exit;
      const stats = (await e2e.stopTraffic())!;
      degradedAt ??= -1;
      await watcher;
      const output = canary.output();
      expect(code, `${output}\ntraffic at ${clock.timeScale}x: ${JSON.stringify(stats)}`).toBe(1);
      expect(degradedAt).toBe(25);
      expect(stats.sent).toBeGreaterThan(100);

      // The canary's changes in this run: 5, 25, then the kill switch; 50 was never set.
      const changes = (await audit(rig)).filter((entry) => entry.actor === 'canary').map((entry) => entry.toPercent);
      expect(changes.slice(-3)).toEqual([5, 25, 0]);

      const report = readJson(join(rig.dir, 'degraded', 'report.json'));
      expect(report.summary).toMatchObject({ outcome: 'rolled_back', exposureReachedPercent: 5 });
      expect(report.decision).toMatchObject({ kind: 'rollback', trigger: 'step_rollback', stepIndex: 1 });
      // The kill switch stopped exposure on every instance within seconds of the decision (the contract;
      // generous for a loaded machine), well before the durable rollback was verified.
      expect(report.killSwitch.failed).toBeNull();
      expect(report.killSwitch.secondsFromDecision).toBeLessThan(10);
      expect(report.rollbackDuration.seconds).toBeGreaterThan(report.killSwitch.secondsFromDecision);
      expect(report.rollbackDuration.withinBudget).toBe(true);
      // The measured times, for the run's log (the README quotes them).
      console.info(`stepped e2e: kill switch ${report.killSwitch.secondsFromDecision.toFixed(2)} s after the decision (${report.killSwitch.secondsFromRequest.toFixed(2)} s after the request); durable rollback verified ${report.rollbackDuration.seconds.toFixed(1)} s after the decision`);

      // At the failing step: the treatment fell back, the control (75% of scopes) did not, and answered no 5xx.
      const step = report.steps[1];
      expect(step.percent).toBe(25);
      expect(step.cohorts.treatment.totals.fallbacks).toBeGreaterThan(0);
      expect(step.cohorts.control.totals).toMatchObject({ fallbacks: 0, serverErrors: 0 });
      const share = step.cohorts.control.totals.requests / (step.cohorts.control.totals.requests + step.cohorts.treatment.totals.requests);
      expect(share).toBeGreaterThan(0.6);
      expect(share).toBeLessThan(0.9);

      // The durable rollback: the flag is off through Render, latched in the stack file, and the service says so.
      const env = await rig.client.listEnvVars(rig.serviceId);
      expect(env.find((v) => v.key === 'ENABLE_CONTEXT7_MEMORY')?.value).toBe('false');
      expect(readStackConfig(join(rig.dir, 'Pulumi.production.yaml'), 'memory-rollout:enableContext7Memory')).toBe(false);
      expect(await (await fetch(`${rig.serviceUrl}/api/config`)).json()).toMatchObject({ enableContext7Memory: false });
      const signoff = readFileSync(join(rig.dir, 'degraded', 'signoff.md'), 'utf8');
      expect(signoff).toMatch(/\*\*Kill Switch Time\*\*: exposure 0% on every instance/);
      expect(signoff).toMatch(/\*\*Rollback Time\*\* \(durable/);
      for (const text of [output, readFileSync(join(rig.dir, 'degraded', 'report.json'), 'utf8')]) expect(text).not.toContain(E2E_ADMIN_TOKEN);
    }, STEPPED_TEST_TIMEOUT_MS);
  });
});
