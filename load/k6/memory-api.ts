/**
 * k6 load test for the memory service: `npm run load -- --base-url URL --scenario NAME` runs it.
 * Direct use: k6 run -e BASE_URL=... -e SCENARIO=baseline -e THRESHOLDS_FILE=/abs/thresholds.json \
 *   [-e REPORT_DIR=/abs/existing/dir] load/k6/memory-api.ts
 * The reports (summary.json, report.md) go to REPORT_DIR, by default the current directory: k6 cannot create a
 * directory, so REPORT_DIR must exist. Learning writes go to reserved load-test scopes, carry this run's nonce
 * (RUN_NONCE, or one made in setup()) and expire after PATTERN_TTL_HOURS (default 24).
 * Snippet reads and learning writes carry the service's caller key from MEMORY_API_KEY in k6's environment
 * (`MEMORY_API_KEY=... k6 run ...`, never `-e`, which would put it on the command line); no report names it.
 * LOAD_TEST_TOKEN (the environment, never -e: a flag shows in `ps` and shell history) is sent as X-Load-Test-Token,
 * so the service's rate limit lets these load-test scopes through; the summary only says whether one was sent.
 * Traffic mix, scope ids, checks, thresholds and the summary shape come from load/lib, shared with
 * the Node runner (npm run bench:load).
 */
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { sha256 } from 'k6/crypto';
import { Counter } from 'k6/metrics';
import type { Options } from 'k6/options';
import { buildScopePool, DEFAULT_SCOPE_POOL, LOAD_TEST_LOCATION_PREFIX } from '../lib/scope.ts';
import {
  createRng,
  createTrafficGenerator,
  DEFAULT_PATTERN_TTL_MS,
  ENDPOINTS,
  newRunNonce,
  type TrafficGenerator,
} from '../lib/traffic-mix.ts';
import { evaluateResponse } from '../lib/response-checks.ts';
import { evaluateThresholds, thresholdSpecs, toK6Thresholds, type ThresholdsFile } from '../lib/thresholds.ts';
import { K6_TREND_STATS, k6Stats, renderMarkdownReport, summaryFromK6, type K6SummaryData } from '../lib/summary.ts';
import { findSustainableRate, rateStepOf, rateSteps, targetRateAt, type StepStats } from '../lib/breakpoint.ts';
import { breakpointPlanFromEnv, isScenarioName, offeredLoadOf, scenarioConfig } from '../lib/scenarios.ts';
import { requestHeaders } from '../lib/credentials.ts';

function requiredEnv(name: string): string {
  const value = __ENV[name];
  if (!value) throw new Error(`${name} is required (npm run load sets it)`);
  return value;
}

const BASE_URL = requiredEnv('BASE_URL').replace(/\/+$/, '');
/** What reports name: never credentials, should a direct `k6 run` pass a URL with user:password@. */
const SHOWN_TARGET = BASE_URL.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1');
const SCENARIO = requiredEnv('SCENARIO');
if (!isScenarioName(SCENARIO)) throw new Error(`SCENARIO must be baseline, spike, soak or breakpoint, got ${JSON.stringify(SCENARIO)}`);
// The current directory unless told otherwise: k6 cannot create a directory, and handleSummary cannot report that
// a write failed (k6 prints the error and still exits 0).
const REPORT_DIR = (__ENV.REPORT_DIR || '.').replace(/\/+$/, '') || '/';
const SEED = Number(__ENV.SEED || '20261123');
/** The caller key: read here, sent as a header, and kept out of everything handleSummary writes. */
const MEMORY_API_KEY = __ENV.MEMORY_API_KEY || undefined;
// A secret: it goes into request headers and nowhere else (not tags, not the summary).
const LOAD_TEST_TOKEN = __ENV.LOAD_TEST_TOKEN || '';
const PATTERN_TTL_MS = __ENV.PATTERN_TTL_HOURS ? Number(__ENV.PATTERN_TTL_HOURS) * 3_600_000 : DEFAULT_PATTERN_TTL_MS;
if (!(PATTERN_TTL_MS > 0)) throw new Error(`PATTERN_TTL_HOURS must be a positive number, got ${JSON.stringify(__ENV.PATTERN_TTL_HOURS)}`);

const thresholdsFile = JSON.parse(open(requiredEnv('THRESHOLDS_FILE'))) as ThresholdsFile;
const specs = thresholdSpecs(thresholdsFile.load);

const isBreakpoint = SCENARIO === 'breakpoint';
const breakpointPlan = isBreakpoint ? breakpointPlanFromEnv(__ENV) : undefined;
const stepTags = breakpointPlan ? rateSteps(breakpointPlan).map((s) => `rate_step:${s}`) : [];

const scenario = scenarioConfig(SCENARIO, __ENV);
const rateLimited = new Counter('rate_limited');

export const options: Options = {
  scenarios: { [SCENARIO]: scenario },
  thresholds: toK6Thresholds(specs, { endpoints: ENDPOINTS, abortOnFail: isBreakpoint, reportOnlyTags: stepTags }),
  summaryTrendStats: K6_TREND_STATS,
};

const scopeIds = buildScopePool(DEFAULT_SCOPE_POOL, (text) => sha256(text, 'hex')).map((s) => s.scopeId);

let traffic: TrafficGenerator | undefined;

interface SetupData {
  runNonce: string;
}

/** Runs once: one nonce for the whole run, shared by every VU and seen again by handleSummary. */
export function setup(): SetupData {
  return { runNonce: __ENV.RUN_NONCE || newRunNonce() };
}

export default function (data: SetupData): void {
  // Each VU gets its own deterministic stream; __VU is only known once iterations run.
  traffic =
    traffic ??
    createTrafficGenerator({
      scopeIds,
      random: createRng(SEED + exec.vu.idInTest),
      writerId: `k6-vu${exec.vu.idInTest}`,
      runNonce: data.runNonce,
      patternTtlMs: PATTERN_TTL_MS,
    });
  const plan = traffic.next();
  const tags: Record<string, string> = { endpoint: plan.endpoint };
  if (breakpointPlan) {
    const elapsedSeconds = (Date.now() - exec.scenario.startTime) / 1000;
    tags.rate_step = String(rateStepOf(targetRateAt(breakpointPlan, elapsedSeconds), breakpointPlan));
  }
  const res = http.request(plan.method, `${BASE_URL}${plan.path}`, plan.body ?? null, {
    headers: requestHeaders(plan, { memoryApiKey: MEMORY_API_KEY, loadTestToken: LOAD_TEST_TOKEN }),
    tags,
    timeout: '10s',
  });
  if (res.status === 429) rateLimited.add(1, tags);
  const checkers: Record<string, () => boolean> = {};
  for (const result of evaluateResponse(plan, res.status, typeof res.body === 'string' ? res.body : null)) {
    checkers[result.name] = () => result.ok;
  }
  check(res, checkers, tags);
}

export function handleSummary(data: K6SummaryData): Record<string, string> {
  let breakpoint;
  if (breakpointPlan) {
    const steps: StepStats[] = rateSteps(breakpointPlan).map((rate) => {
      const stats = k6Stats(data, `{rate_step:${rate}}`);
      return { rate, ...stats, thresholdsOk: evaluateThresholds(specs, stats).every((t) => t.ok) };
    });
    // A step needs ~2 s of traffic at its rate before its percentiles mean anything.
    breakpoint = findSustainableRate(steps.filter((s) => s.requests > 0), Math.max(20, Math.round(breakpointPlan.startRate * 2)));
  }
  const durationMs = data.state?.testRunDurationMs ?? 0;
  const summary = summaryFromK6(data, {
    scenario: SCENARIO,
    target: SHOWN_TARGET,
    startedAt: new Date(Date.now() - durationMs).toISOString(),
    endpoints: ENDPOINTS,
    thresholdsSource: `${thresholdsFile.source} (${thresholdsFile.profile})`,
    ...(breakpoint ? { breakpoint } : {}),
    environment: { k6Scenario: SCENARIO, seed: SEED, executor: scenario.executor, loadTestToken: LOAD_TEST_TOKEN ? 'sent' : 'none' },
    offered: offeredLoadOf(scenario),
    traffic: { seed: SEED, runNonce: __ENV.RUN_NONCE || (data.setup_data as SetupData | undefined)?.runNonce || 'unknown', scopePrefix: LOAD_TEST_LOCATION_PREFIX },
  });
  // Per-step thresholds only feed the breakpoint table; keep the summary's list to the run's own.
  summary.thresholds = summary.thresholds.filter((t) => t.metric.indexOf('rate_step:') < 0);
  summary.thresholdsOk = summary.thresholds.every((t) => t.ok);
  const report = renderMarkdownReport(summary);
  return {
    [`${REPORT_DIR}/summary.json`]: `${JSON.stringify(summary, null, 2)}\n`,
    [`${REPORT_DIR}/report.md`]: report,
    stdout: `${report}\n`,
  };
}
