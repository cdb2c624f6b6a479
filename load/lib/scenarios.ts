/**
 * The four load scenarios as k6 scenario objects (plain data, so Node tests can check them).
 * Every figure can be overridden through k6 environment variables, which `npm run load` sets
 * from its flags. All scenarios are arrival-rate (open model): one iteration sends one request.
 */
import type { BreakpointPlan } from './breakpoint';

// Lib modules import each other for types only: k6 needs `.ts` specifiers at run time, Node's tsc refuses them.

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

export function scenarioConfig(name: ScenarioName, env: ScenarioEnv): ScenarioConfig {
  const rate = positiveNumber('RATE', env.RATE, SCENARIO_DEFAULTS.rate);
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
      // steady, a sudden surge, hold, drop, then watch the recovery at the floor rate
      return {
        executor: 'ramping-arrival-rate',
        startRate: rate,
        timeUnit: '1s',
        stages: [
          { duration: '1m', target: rate },
          { duration: '10s', target: peak },
          { duration: '1m', target: peak },
          { duration: '10s', target: rate },
          { duration: '2m', target: rate },
        ],
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
