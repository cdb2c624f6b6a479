/**
 * A k6 run's context (scenario, thresholds, target, seed) read from k6's environment, and its summary built from
 * k6's summary data. One code path for both places that build it: the script's handleSummary (a direct `k6 run`
 * with REPORT_DIR) and the wrapper (`npm run load`, from `k6 run --summary-export`, so k6 still prints its own
 * end-of-test summary). Pure: no k6 or Node imports, so it runs in both.
 */
import { findSustainableRate, MIN_ACHIEVED_FRACTION, rateStepOf, rateSteps, stepWindow, targetRateAt, type BreakpointPlan, type StepStats } from './breakpoint.ts';
import { breakpointPlanFromEnv, isScenarioName, offeredLoadOf, scenarioConfig, stageAt, stageWindows, type ScenarioConfig, type ScenarioEnv, type ScenarioName, type StageWindow } from './scenarios.ts';
import { LOAD_TEST_LOCATION_PREFIX } from './scope.ts';
import { classifyK6Exit, k6Stats, summaryFromK6, withRunOutcome, type K6SummaryData, type LoadSummary, type StageStats } from './summary.ts';
import { evaluateThresholds, thresholdSpecs, type ThresholdSpec, type ThresholdsFile } from './thresholds.ts';
import { ENDPOINTS } from './traffic-mix.ts';

/** What k6's environment says about a run (`__ENV` in the script; the environment the wrapper gave k6). */
export interface K6Env extends ScenarioEnv {
  BASE_URL?: string;
  SCENARIO?: string;
  SEED?: string;
  RUN_NONCE?: string;
  LOAD_TEST_TOKEN?: string;
  [name: string]: string | undefined;
}

export interface K6RunContext {
  scenario: ScenarioName;
  config: ScenarioConfig;
  breakpointPlan?: BreakpointPlan;
  /** spike: its stages, each a window of the run */
  stages: StageWindow[];
  /** tags that get report-only thresholds, so k6's summary carries a sub-metric for each breakpoint step or stage */
  phaseTags: string[];
  specs: ThresholdSpec[];
  thresholdsSource: string;
  /** the base URL without a trailing slash */
  baseUrl: string;
  /** what reports name: never credentials, should a direct `k6 run` pass a URL with user:password@ */
  shownTarget: string;
  seed: number;
  loadTestTokenSent: boolean;
}

export const DEFAULT_SEED = 20261123;

function required(env: K6Env, name: string): string {
  const value = env[name];
  if (!value) throw new Error(`${name} is required (npm run load sets it)`);
  return value;
}

export function k6RunContext(env: K6Env, thresholdsFile: ThresholdsFile): K6RunContext {
  const baseUrl = required(env, 'BASE_URL').replace(/\/+$/, '');
  const scenario = required(env, 'SCENARIO');
  if (!isScenarioName(scenario)) throw new Error(`SCENARIO must be baseline, spike, soak or breakpoint, got ${JSON.stringify(scenario)}`);
  const config = scenarioConfig(scenario, env);
  const breakpointPlan = scenario === 'breakpoint' ? breakpointPlanFromEnv(env) : undefined;
  const stages = scenario === 'spike' ? stageWindows(config) : [];
  const phaseTags = breakpointPlan ? rateSteps(breakpointPlan).map((s) => `rate_step:${s}`) : stages.map((w) => `stage:${w.stage}`);
  return {
    scenario,
    config,
    breakpointPlan,
    stages,
    phaseTags,
    specs: thresholdSpecs(thresholdsFile.load),
    thresholdsSource: `${thresholdsFile.source} (${thresholdsFile.profile})`,
    baseUrl,
    shownTarget: baseUrl.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1'),
    seed: Number(env.SEED || String(DEFAULT_SEED)),
    loadTestTokenSent: Boolean(env.LOAD_TEST_TOKEN),
  };
}

/** The tags a request sent `elapsedSeconds` into the scenario carries beside its endpoint: its breakpoint step or spike stage. */
export function phaseTagsAt(ctx: K6RunContext, elapsedSeconds: number): Record<string, string> {
  if (ctx.breakpointPlan) return { rate_step: String(rateStepOf(targetRateAt(ctx.breakpointPlan, elapsedSeconds), ctx.breakpointPlan)) };
  if (ctx.stages.length > 0) return { stage: String(stageAt(ctx.stages, elapsedSeconds)) };
  return {};
}

/** Seconds of a window [start, start + seconds) that a run lasting `actualSeconds` lived through. */
function secondsRun(startSeconds: number, seconds: number, actualSeconds: number): number {
  return Math.max(0, Math.min(startSeconds + seconds, actualSeconds) - startSeconds);
}

function breakpointOf(data: K6SummaryData, ctx: K6RunContext, plan: BreakpointPlan, actualSeconds: number) {
  const slope = (plan.maxRate - plan.startRate) / plan.rampSeconds;
  const steps: StepStats[] = rateSteps(plan).map((rate) => {
    const stats = k6Stats(data, `{rate_step:${rate}}`);
    const window = stepWindow(plan, rate);
    const ran = secondsRun(window.startSeconds, window.seconds, actualSeconds);
    // The rate offered over the part of the step that ran (all of it, unless the run ended inside it).
    const offered = ran > 0 ? plan.startRate + slope * (window.startSeconds + ran / 2) : window.offeredAverage;
    const achieved = ran > 0 ? stats.requests / ran : 0;
    const thresholdsOk = evaluateThresholds(ctx.specs, stats).every((t) => t.ok) && achieved >= offered * MIN_ACHIEVED_FRACTION;
    // A step the ramp never offered for a moment (the max rate, reached as it ends) has no rate to speak of.
    return { rate, ...stats, thresholdsOk, seconds: Number(ran.toFixed(3)), ...(ran > 0 ? { achievedRatePerSecond: Number(achieved.toFixed(2)) } : {}) };
  });
  // A step needs ~2 s of traffic at its rate before its percentiles mean anything.
  return findSustainableRate(steps.filter((s) => s.requests > 0), Math.max(20, Math.round(plan.startRate * 2)));
}

function stagesOf(data: K6SummaryData, ctx: K6RunContext, actualSeconds: number): StageStats[] {
  return ctx.stages.map((w) => {
    const stats = k6Stats(data, `{stage:${w.stage}}`);
    const ran = secondsRun(w.startSeconds, w.seconds, actualSeconds);
    return {
      stage: w.stage,
      fromRatePerSecond: w.fromRate,
      toRatePerSecond: w.toRate,
      seconds: w.seconds,
      secondsRun: Number(ran.toFixed(3)),
      ...stats,
      achievedRatePerSecond: Number((ran > 0 ? stats.requests / ran : 0).toFixed(2)),
    };
  });
}

export interface K6RunEnd {
  /** k6's exit code, when the caller saw it (the wrapper); null inside handleSummary */
  exitCode: number | null;
  startedAt: string | null;
  runNonce: string;
}

/** The run's summary in the shared shape, with how it ended: an interrupted run's `thresholdsOk` is false. */
export function summarizeK6Run(data: K6SummaryData, ctx: K6RunContext, end: K6RunEnd): LoadSummary {
  const actualSeconds = (data.state?.testRunDurationMs ?? 0) / 1000;
  const breakpoint = ctx.breakpointPlan ? breakpointOf(data, ctx, ctx.breakpointPlan, actualSeconds) : undefined;
  const stages = stagesOf(data, ctx, actualSeconds);
  const offered = offeredLoadOf(ctx.config);
  const summary = summaryFromK6(data, {
    scenario: ctx.scenario,
    target: ctx.shownTarget,
    startedAt: end.startedAt,
    endpoints: ENDPOINTS,
    thresholdsSource: ctx.thresholdsSource,
    ...(breakpoint ? { breakpoint } : {}),
    environment: { k6Scenario: ctx.scenario, seed: ctx.seed, executor: ctx.config.executor, loadTestToken: ctx.loadTestTokenSent ? 'sent' : 'none' },
    offered,
    traffic: { seed: ctx.seed, runNonce: end.runNonce, scopePrefix: LOAD_TEST_LOCATION_PREFIX },
  });
  if (stages.length > 0) summary.stages = stages;
  // Per-step and per-stage thresholds only feed those tables; keep the summary's list to the run's own.
  summary.thresholds = summary.thresholds.filter((t) => t.metric.indexOf('rate_step:') < 0 && t.metric.indexOf('{stage:') < 0);
  const held = summary.thresholds.every((t) => t.ok);
  return withRunOutcome(summary, {
    outcome: classifyK6Exit(end.exitCode, actualSeconds, offered.plannedDurationSeconds, held),
    exitCode: end.exitCode,
    plannedDurationSeconds: offered.plannedDurationSeconds,
    actualDurationSeconds: actualSeconds,
  });
}
