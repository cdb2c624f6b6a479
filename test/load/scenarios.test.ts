import { describe, expect, it } from 'vitest';
import { findSustainableRate, rateStepOf, rateSteps, stepWindow, targetRateAt, type StepStats } from '../../load/lib/breakpoint';
import { breakpointPlanFromEnv, durationSeconds, offeredLoadOf, scenarioConfig, SCENARIO_NAMES, stageAt, stageWindows } from '../../load/lib/scenarios';

const step = (rate: number, ok: boolean, requests = 500): StepStats => ({
  rate,
  requests,
  errorRate: ok ? 0 : 0.2,
  checksPassRate: ok ? 1 : 0.8,
  latencyMs: { avg: 10, min: 1, p50: 9, p90: 15, p95: 20, p99: 30, max: 40 },
  thresholdsOk: ok,
});

describe('scenarios', () => {
  it('defines every scenario as an arrival-rate executor', () => {
    for (const name of SCENARIO_NAMES) expect(scenarioConfig(name, {}).executor).toMatch(/arrival-rate$/);
  });

  it('baseline and soak are steady, soak much longer, both overridable', () => {
    const baseline = scenarioConfig('baseline', {});
    const soak = scenarioConfig('soak', {});
    expect(baseline).toMatchObject({ executor: 'constant-arrival-rate', rate: 20, duration: '5m' });
    expect(soak).toMatchObject({ executor: 'constant-arrival-rate', duration: '2h' });
    expect(scenarioConfig('baseline', { RATE: '50', DURATION: '30s' })).toMatchObject({ rate: 50, duration: '30s' });
    expect(() => scenarioConfig('baseline', { RATE: 'fast' })).toThrow(/RATE/);
    expect(() => scenarioConfig('soak', { DURATION: '10 minutes' })).toThrow(/DURATION/);
  });

  it('spike surges to the peak and comes back to watch recovery', () => {
    const spike = scenarioConfig('spike', { RATE: '10' });
    if (spike.executor !== 'ramping-arrival-rate') throw new Error('spike must ramp');
    const targets = spike.stages.map((s) => s.target);
    expect(Math.max(...targets)).toBe(100);
    expect(targets[targets.length - 1]).toBe(10);
    expect(spike.maxVUs).toBeGreaterThanOrEqual(100);
  });

  it('spike honours DURATION, keeping its shape; breakpoint refuses it (its length is RAMP_SECONDS)', () => {
    const planned = (config: ReturnType<typeof scenarioConfig>) => offeredLoadOf(config).plannedDurationSeconds;
    expect(planned(scenarioConfig('spike', { RATE: '10' }))).toBe(260);
    const short = scenarioConfig('spike', { RATE: '10', DURATION: '52s' });
    if (short.executor !== 'ramping-arrival-rate') throw new Error('spike must ramp');
    expect(short.stages.map((s) => s.duration)).toEqual(['12s', '2s', '12s', '2s', '24s']);
    expect(planned(short)).toBe(52);
    expect(planned(scenarioConfig('spike', { RATE: '10', DURATION: '10m' }))).toBe(600);
    expect(() => scenarioConfig('spike', { DURATION: '3s' })).toThrow(/at least 5s/);
    expect(() => scenarioConfig('breakpoint', { DURATION: '1m' })).toThrow(/RAMP_SECONDS/);
  });

  it('says what each scenario offers: model, rate or profile, planned duration', () => {
    expect(durationSeconds('1h30m15s')).toBe(5415);
    expect(offeredLoadOf(scenarioConfig('baseline', { RATE: '40', DURATION: '2m' }))).toEqual({ model: 'open', ratePerSecond: 40, plannedDurationSeconds: 120 });
    expect(offeredLoadOf(scenarioConfig('spike', { RATE: '20' }))).toEqual({
      model: 'open',
      ratePerSecond: 200,
      // start rate, then each stage's target over that stage's own length (not a time since the start)
      profile: '20/s; 20/s over 60s, 200/s over 10s, 200/s over 60s, 20/s over 10s, 20/s over 120s',
      plannedDurationSeconds: 260,
    });
    expect(offeredLoadOf(scenarioConfig('breakpoint', { RATE: '10', MAX_RATE: '500', RAMP_SECONDS: '300' }))).toMatchObject({
      model: 'open',
      ratePerSecond: 500,
      plannedDurationSeconds: 300,
    });
  });

  it('spike stages are consecutive windows, and a request is placed in the stage it was sent in', () => {
    const windows = stageWindows(scenarioConfig('spike', { RATE: '20' }));
    expect(windows.map((w) => [w.stage, w.fromRate, w.toRate, w.startSeconds, w.seconds])).toEqual([
      [1, 20, 20, 0, 60],
      [2, 20, 200, 60, 10],
      [3, 200, 200, 70, 60],
      [4, 200, 20, 130, 10],
      [5, 20, 20, 140, 120],
    ]);
    expect([0, 59.9, 60, 69.9, 70, 139, 140, 259, 275].map((t) => stageAt(windows, t))).toEqual([1, 1, 2, 2, 3, 4, 5, 5, 5]);
    expect(stageWindows(scenarioConfig('baseline', {}))).toEqual([]);
  });

  it('breakpoint steps cover the ramp: seconds and average offered rate of each', () => {
    const plan = breakpointPlanFromEnv({ RATE: '10', MAX_RATE: '110', RAMP_SECONDS: '100', STEP_SIZE: '20' });
    expect(stepWindow(plan, 10)).toEqual({ startSeconds: 0, seconds: 10, offeredAverage: 15 });
    expect(stepWindow(plan, 20)).toEqual({ startSeconds: 10, seconds: 20, offeredAverage: 30 });
    expect(stepWindow(plan, 100)).toEqual({ startSeconds: 90, seconds: 10, offeredAverage: 105 });
    // the max rate itself is only reached as the ramp ends
    expect(stepWindow({ ...plan, maxRate: 100 }, 100).seconds).toBe(0);
  });

  it('breakpoint ramps linearly from the start to the max rate', () => {
    const plan = breakpointPlanFromEnv({ RATE: '10', MAX_RATE: '110', RAMP_SECONDS: '100', STEP_SIZE: '20' });
    expect(scenarioConfig('breakpoint', { RATE: '10', MAX_RATE: '110', RAMP_SECONDS: '100' })).toMatchObject({
      executor: 'ramping-arrival-rate',
      startRate: 10,
      stages: [{ duration: '100s', target: 110 }],
    });
    expect(targetRateAt(plan, 0)).toBe(10);
    expect(targetRateAt(plan, 50)).toBe(60);
    expect(targetRateAt(plan, 500)).toBe(110);
    expect(rateStepOf(59.9, plan)).toBe(40);
    // A ramp starting below the step size: its first step is named by the start rate, never "0".
    expect(rateStepOf(12, plan)).toBe(10);
    expect(rateSteps(plan)).toEqual([10, 20, 40, 60, 80, 100]);
    expect(rateSteps({ ...plan, startRate: 20 })).toEqual([20, 40, 60, 80, 100]);
    expect(() => breakpointPlanFromEnv({ RATE: '100', MAX_RATE: '50' })).toThrow(/exceed/);
  });
});

describe('sustainable rate', () => {
  it('is the highest step that held, below the first failing one', () => {
    const r = findSustainableRate([step(50, true), step(25, true), step(75, false), step(100, true)], 50);
    expect(r.sustainableRatePerSecond).toBe(50);
    expect(r.brokeAtRatePerSecond).toBe(75);
    expect(r.steps.map((s) => s.rate)).toEqual([25, 50, 75, 100]);
  });

  it('ignores steps with too few requests to judge (the partial step at the abort)', () => {
    const r = findSustainableRate([step(25, true), step(50, true), step(75, false, 10)], 50);
    expect(r).toMatchObject({ sustainableRatePerSecond: 50, brokeAtRatePerSecond: null });
  });

  it('reports none when the first step already fails', () => {
    expect(findSustainableRate([step(25, false), step(50, true)], 50)).toMatchObject({ sustainableRatePerSecond: null, brokeAtRatePerSecond: 25 });
  });
});
