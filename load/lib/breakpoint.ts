/**
 * Breakpoint runs: the arrival rate ramps up until the thresholds fail. Requests are tagged with
 * the rate step they were sent at, each step is judged on its own, and the sustainable rate is
 * the highest step that held (with every step below it holding too). Pure.
 */
import type { EndpointStats } from './summary.ts';

export interface BreakpointPlan {
  startRate: number;
  maxRate: number;
  rampSeconds: number;
  /** width of a reporting step, req/s */
  stepSize: number;
}

/** The arrival rate a linear ramp has reached after `elapsedSeconds`. */
export function targetRateAt(p: BreakpointPlan, elapsedSeconds: number): number {
  const t = Math.min(Math.max(elapsedSeconds / p.rampSeconds, 0), 1);
  return p.startRate + (p.maxRate - p.startRate) * t;
}

/**
 * The step a rate falls in, named by its lower edge, except that the first step is named by the start rate: a ramp
 * starting at 10 req/s with 25-wide steps sends nothing below 10, so its first step is "10", not "0".
 */
export function rateStepOf(rate: number, p: Pick<BreakpointPlan, 'stepSize' | 'startRate'>): number {
  return Math.max(Math.floor(rate / p.stepSize) * p.stepSize, p.startRate);
}

/** Every step the ramp passes through, ascending. */
export function rateSteps(p: BreakpointPlan): number[] {
  const steps: number[] = [rateStepOf(p.startRate, p)];
  for (let s = Math.floor(p.startRate / p.stepSize) * p.stepSize + p.stepSize; s <= p.maxRate; s += p.stepSize) steps.push(s);
  return steps;
}

export interface StepStats extends EndpointStats {
  rate: number;
  /** the step held: its thresholds passed and it achieved at least MIN_ACHIEVED_FRACTION of its offered rate */
  thresholdsOk: boolean;
  /** seconds the run spent in this step */
  seconds?: number;
  /** requests / seconds: below the offer when the generator dropped iterations or fell behind */
  achievedRatePerSecond?: number;
}

/** A step only holds if the service was actually sent (and answered) this share of the offered rate. */
export const MIN_ACHIEVED_FRACTION = 0.9;

export interface BreakpointResult {
  sustainableRatePerSecond: number | null;
  brokeAtRatePerSecond: number | null;
  minRequestsPerStep: number;
  steps: StepStats[];
}

/**
 * Steps with fewer than `minRequestsPerStep` requests (the partial step at the abort) are not
 * judged. The first judged failing step breaks the run; the judged step below it is sustainable.
 */
export function findSustainableRate(steps: StepStats[], minRequestsPerStep: number): BreakpointResult {
  const ordered = steps.slice().sort((a, b) => a.rate - b.rate);
  let sustainable: number | null = null;
  let brokeAt: number | null = null;
  for (const step of ordered) {
    if (step.requests < minRequestsPerStep) continue;
    if (!step.thresholdsOk) {
      brokeAt = step.rate;
      break;
    }
    sustainable = step.rate;
  }
  return { sustainableRatePerSecond: sustainable, brokeAtRatePerSecond: brokeAt, minRequestsPerStep, steps: ordered };
}

/**
 * The part of the ramp a step covers: from the rate it starts at (the start rate for the first step) to the next step
 * edge (or the max rate), as seconds into the run and the average rate offered over them.
 */
export function stepWindow(p: BreakpointPlan, step: number): { startSeconds: number; seconds: number; offeredAverage: number } {
  const slope = (p.maxRate - p.startRate) / p.rampSeconds;
  const lo = Math.max(step, p.startRate);
  const hi = Math.min(Math.floor(step / p.stepSize) * p.stepSize + p.stepSize, p.maxRate);
  if (!(hi > lo) || !(slope > 0)) return { startSeconds: (lo - p.startRate) / (slope || 1), seconds: 0, offeredAverage: lo };
  return { startSeconds: (lo - p.startRate) / slope, seconds: (hi - lo) / slope, offeredAverage: (lo + hi) / 2 };
}
