/**
 * The four load scenarios as k6 scenario objects (plain data, so Node tests can check them).
 * Every figure can be overridden through k6 environment variables, which `npm run load` sets
 * from its flags. All scenarios are arrival-rate (open model): one iteration sends one request.
 */
import type { BreakpointPlan } from './breakpoint.ts';

export const SCENARIO_NAMES = ['baseline', 'spike', 'soak', 'breakpoint'] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

export function isScenarioName(v: string | undefined): v is ScenarioName {
  return v !== undefined && (SCENARIO_NAMES as readonly string[]).indexOf(v) >= 0;
}

interface Stage {
  duration: string;
  target: number;
}
export type ScenarioConfig =
  | { executor: 'constant-arrival-rate'; rate: number; timeUnit: '1s'; duration: string; preAllocatedVUs: number; maxVUs: number; gracefulStop: string }
  | { executor: 'ramping-arrival-rate'; startRate: number; timeUnit: '1s'; stages: Stage[]; preAllocatedVUs: number; maxVUs: number; gracefulStop: string };

/** Overrides, as k6 reads them from __ENV (strings). */
export interface ScenarioEnv {
  RATE?: string;
  DURATION?: string;
  PEAK_RATE?: string;
  MAX_RATE?: string;
  RAMP_SECONDS?: string;
  STEP_SIZE?: string;
}

export const SCENARIO_DEFAULTS = {
  /** steady requests per second for baseline, soak and the spike's floor */
  rate: 20,
  baselineDuration: '5m',
  soakDuration: '2h',
  /** the spike's peak, as a multiple of the floor rate */
  spikeFactor: 10,
} as const;

function positiveNumber(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return n;
}

const DURATION = /^(\d+h)?(\d+m)?(\d+s)?$/;
function duration(name: string, raw: string | undefined, fallback: string): string {
  if (raw === undefined || raw === '') return fallback;
  if (!DURATION.test(raw) || raw === '') throw new Error(`${name} must be a k6 duration like 30s, 5m or 1h30m, got ${JSON.stringify(raw)}`);
  return raw;
}

/** Enough VUs to keep the arrival rate when each request takes up to ~1 s. */
function vus(rate: number): { preAllocatedVUs: number; maxVUs: number } {
  return { preAllocatedVUs: Math.max(5, Math.ceil(rate / 4)), maxVUs: Math.max(50, Math.ceil(rate * 2)) };
}

export const DEFAULT_BREAKPOINT_PLAN: BreakpointPlan = { startRate: 10, maxRate: 1000, rampSeconds: 20 * 60, stepSize: 25 };

export function validateBreakpointPlan(p: BreakpointPlan): BreakpointPlan {
  if (!(p.startRate >= 1)) throw new Error(`breakpoint start rate must be >= 1, got ${p.startRate}`);
  if (!(p.maxRate > p.startRate)) throw new Error(`breakpoint max rate (${p.maxRate}) must exceed the start rate (${p.startRate})`);
  if (!(p.rampSeconds >= 1)) throw new Error(`breakpoint ramp must last >= 1 s, got ${p.rampSeconds}`);
  if (!(p.stepSize >= 1) || !Number.isInteger(p.stepSize)) throw new Error(`breakpoint step size must be a positive integer, got ${p.stepSize}`);
  return p;
}

export function breakpointPlanFromEnv(env: ScenarioEnv): BreakpointPlan {
  return validateBreakpointPlan({
    startRate: positiveNumber('RATE', env.RATE, DEFAULT_BREAKPOINT_PLAN.startRate),
    maxRate: positiveNumber('MAX_RATE', env.MAX_RATE, DEFAULT_BREAKPOINT_PLAN.maxRate),
    rampSeconds: positiveNumber('RAMP_SECONDS', env.RAMP_SECONDS, DEFAULT_BREAKPOINT_PLAN.rampSeconds),
    stepSize: positiveNumber('STEP_SIZE', env.STEP_SIZE, DEFAULT_BREAKPOINT_PLAN.stepSize),
  });
}

/** The spike's shape in seconds: steady, a sudden surge, hold, drop, then the recovery at the floor rate. */
const SPIKE_SHAPE_SECONDS = [60, 10, 60, 10, 120] as const;
const SPIKE_DEFAULT_SECONDS = SPIKE_SHAPE_SECONDS.reduce((a, b) => a + b, 0);

/** Seconds in a k6 duration string like 1h30m or 45s. */
export function durationSeconds(text: string): number {
  const match = DURATION.exec(text);
  if (!match || text === '') throw new Error(`not a k6 duration: ${JSON.stringify(text)}`);
  return (parseInt(match[1] ?? '0', 10) * 3600) + (parseInt(match[2] ?? '0', 10) * 60) + parseInt(match[3] ?? '0', 10);
}

/** The spike's stages stretched or shrunk to `totalSeconds`, keeping its proportions (each stage >= 1 s). */
function spikeStages(rate: number, peak: number, totalSeconds: number): Stage[] {
  const targets = [rate, peak, peak, rate, rate];
  const seconds = SPIKE_SHAPE_SECONDS.map((share) => Math.max(1, Math.round((share * totalSeconds) / SPIKE_DEFAULT_SECONDS)));
  // The recovery stage takes the rounding, so the stages add up to exactly what was asked.
  seconds[seconds.length - 1] = Math.max(1, totalSeconds - seconds.slice(0, -1).reduce((a, b) => a + b, 0));
  return seconds.map((duration, i) => ({ duration: `${duration}s`, target: targets[i]! }));
}

export function scenarioConfig(name: ScenarioName, env: ScenarioEnv): ScenarioConfig {
  const rate = positiveNumber('RATE', env.RATE, SCENARIO_DEFAULTS.rate);
  if (name === 'breakpoint' && env.DURATION) throw new Error('DURATION does not apply to breakpoint: its length is RAMP_SECONDS');
  switch (name) {
    case 'baseline':
    case 'soak':
      return {
        executor: 'constant-arrival-rate',
        rate,
        timeUnit: '1s',
        duration: duration('DURATION', env.DURATION, name === 'baseline' ? SCENARIO_DEFAULTS.baselineDuration : SCENARIO_DEFAULTS.soakDuration),
        ...vus(rate),
        gracefulStop: '30s',
      };
    case 'spike': {
      const peak = positiveNumber('PEAK_RATE', env.PEAK_RATE, rate * SCENARIO_DEFAULTS.spikeFactor);
      const total = env.DURATION ? durationSeconds(duration('DURATION', env.DURATION, '')) : SPIKE_DEFAULT_SECONDS;
      if (total < SPIKE_SHAPE_SECONDS.length) throw new Error(`DURATION for spike must be at least ${SPIKE_SHAPE_SECONDS.length}s, got ${env.DURATION}`);
      return {
        executor: 'ramping-arrival-rate',
        startRate: rate,
        timeUnit: '1s',
        stages: spikeStages(rate, peak, total),
        ...vus(peak),
        gracefulStop: '30s',
      };
    }
    case 'breakpoint': {
      const plan = breakpointPlanFromEnv(env);
      return {
        executor: 'ramping-arrival-rate',
        startRate: plan.startRate,
        timeUnit: '1s',
        stages: [{ duration: `${Math.round(plan.rampSeconds)}s`, target: plan.maxRate }],
        ...vus(plan.maxRate),
        gracefulStop: '10s',
      };
    }
  }
}

/** What a run offers the service, so load:compare can refuse to compare different offers. */
export interface OfferedLoad {
  /** open: arrivals at a set rate whatever the answers (k6's arrival-rate executors); closed: N callers in a loop */
  model: 'open' | 'closed';
  /** open model: the constant rate, or the highest rate of a profile */
  ratePerSecond?: number;
  /**
   * open model with a changing rate: the start rate, then each k6 stage as "the rate it ramps to, over its length",
   * e.g. "20/s; 20/s over 60s, 200/s over 10s, 200/s over 60s, 20/s over 10s, 20/s over 120s" (a 60 s hold at 20,
   * a 10 s surge to 200, ...). Each length is the stage's own, not a time since the start.
   */
  profile?: string;
  /** closed model: concurrent callers */
  connections?: number;
  plannedDurationSeconds: number;
}

/** The run a scenario plans, from its k6 scenario object (k6 adds gracefulStop only if iterations overrun). */
export function offeredLoadOf(config: ScenarioConfig): OfferedLoad {
  if (config.executor === 'constant-arrival-rate') {
    return { model: 'open', ratePerSecond: config.rate, plannedDurationSeconds: durationSeconds(config.duration) };
  }
  const planned = config.stages.reduce((sum, stage) => sum + durationSeconds(stage.duration), 0);
  return {
    model: 'open',
    ratePerSecond: Math.max(config.startRate, ...config.stages.map((stage) => stage.target)),
    profile: `${config.startRate}/s; ${config.stages.map((stage) => `${stage.target}/s over ${durationSeconds(stage.duration)}s`).join(', ')}`,
    plannedDurationSeconds: planned,
  };
}

/** One stage of a ramping-arrival-rate scenario as a window of the run, for tagging and reporting. */
export interface StageWindow {
  /** 1-based */
  stage: number;
  fromRate: number;
  toRate: number;
  startSeconds: number;
  seconds: number;
}

/** The stages of a ramping scenario (spike) as consecutive windows; none for a constant rate. */
export function stageWindows(config: ScenarioConfig): StageWindow[] {
  if (config.executor !== 'ramping-arrival-rate') return [];
  const windows: StageWindow[] = [];
  let from = config.startRate;
  let start = 0;
  config.stages.forEach((stage, i) => {
    const seconds = durationSeconds(stage.duration);
    windows.push({ stage: i + 1, fromRate: from, toRate: stage.target, startSeconds: start, seconds });
    from = stage.target;
    start += seconds;
  });
  return windows;
}

/** The stage running `elapsedSeconds` into the scenario (the last one after its end, during the graceful stop). */
export function stageAt(windows: readonly StageWindow[], elapsedSeconds: number): number {
  for (const w of windows) if (elapsedSeconds < w.startSeconds + w.seconds) return w.stage;
  return windows.length > 0 ? windows[windows.length - 1]!.stage : 0;
}
