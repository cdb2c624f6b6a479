/**
 * k6 load test for the memory service: `npm run load -- --base-url URL --scenario NAME` runs it.
 * Direct use: k6 run --no-usage-report -e BASE_URL=... -e SCENARIO=baseline -e THRESHOLDS_FILE=/abs/thresholds.json \
 *   [-e REPORT_DIR=/abs/existing/dir] load/k6/memory-api.ts
 * Without REPORT_DIR, handleSummary returns nothing, so k6 prints its own end-of-test summary (k6 prints it only
 * when handleSummary returns nothing); that is how the wrapper runs it, reading the figures from
 * `--summary-export`. With REPORT_DIR (which must exist: k6 cannot create a directory) it writes summary.json and
 * report.md there instead. Learning writes go to reserved load-test scopes, carry this run's nonce
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
import { buildScopePool, DEFAULT_SCOPE_POOL } from '../lib/scope.ts';
import {
  createRng,
  createTrafficGenerator,
  DEFAULT_PATTERN_TTL_MS,
  ENDPOINTS,
  newRunNonce,
  type TrafficGenerator,
} from '../lib/traffic-mix.ts';
import { evaluateResponse } from '../lib/response-checks.ts';
import { toK6Thresholds, type ThresholdsFile } from '../lib/thresholds.ts';
import { K6_TREND_STATS, renderMarkdownReport, type K6SummaryData } from '../lib/summary.ts';
import { k6RunContext, phaseTagsAt, summarizeK6Run } from '../lib/k6-report.ts';
import { requestHeaders } from '../lib/credentials.ts';

const THRESHOLDS_FILE = __ENV.THRESHOLDS_FILE;
if (!THRESHOLDS_FILE) throw new Error('THRESHOLDS_FILE is required (npm run load sets it)');
const thresholdsFile = JSON.parse(open(THRESHOLDS_FILE)) as ThresholdsFile;
/** Scenario, thresholds, target and seed: built by the same code the wrapper uses to read the summary export. */
const ctx = k6RunContext(__ENV, thresholdsFile);
// Reports only when asked: otherwise handleSummary returns nothing and k6 prints its own summary.
const REPORT_DIR = __ENV.REPORT_DIR ? __ENV.REPORT_DIR.replace(/\/+$/, '') || '/' : undefined;
/** The caller key: read here, sent as a header, and kept out of everything handleSummary writes. */
const MEMORY_API_KEY = __ENV.MEMORY_API_KEY || undefined;
// A secret: it goes into request headers and nowhere else (not tags, not the summary).
const LOAD_TEST_TOKEN = __ENV.LOAD_TEST_TOKEN || '';
const PATTERN_TTL_MS = __ENV.PATTERN_TTL_HOURS ? Number(__ENV.PATTERN_TTL_HOURS) * 3_600_000 : DEFAULT_PATTERN_TTL_MS;
if (!(PATTERN_TTL_MS > 0)) throw new Error(`PATTERN_TTL_HOURS must be a positive number, got ${JSON.stringify(__ENV.PATTERN_TTL_HOURS)}`);

const rateLimited = new Counter('rate_limited');

export const options: Options = {
  scenarios: { [ctx.scenario]: ctx.config },
  thresholds: toK6Thresholds(ctx.specs, { endpoints: ENDPOINTS, abortOnFail: ctx.scenario === 'breakpoint', reportOnlyTags: ctx.phaseTags }),
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
      random: createRng(ctx.seed + exec.vu.idInTest),
      writerId: `k6-vu${exec.vu.idInTest}`,
      runNonce: data.runNonce,
      patternTtlMs: PATTERN_TTL_MS,
    });
  const plan = traffic.next();
  // The breakpoint step or spike stage this request belongs to, so the report can show each apart.
  const tags: Record<string, string> = { endpoint: plan.endpoint, ...phaseTagsAt(ctx, (Date.now() - exec.scenario.startTime) / 1000) };
  const res = http.request(plan.method, `${ctx.baseUrl}${plan.path}`, plan.body ?? null, {
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

/**
 * Never returns `stdout`: that would replace k6's own summary. Without REPORT_DIR it returns nothing, and k6 prints
 * its summary; with it, it writes summary.json and report.md (k6 then prints none, which is k6's rule).
 */
export function handleSummary(data: K6SummaryData): Record<string, string> | undefined {
  if (REPORT_DIR === undefined) return undefined;
  const durationMs = data.state?.testRunDurationMs ?? 0;
  const summary = summarizeK6Run(data, ctx, {
    // No exit code in here: a run well short of its plan reads as interrupted (or aborted by a threshold).
    exitCode: null,
    startedAt: new Date(Date.now() - durationMs).toISOString(),
    runNonce: __ENV.RUN_NONCE || (data.setup_data as SetupData | undefined)?.runNonce || 'unknown',
  });
  return {
    [`${REPORT_DIR}/summary.json`]: `${JSON.stringify(summary, null, 2)}\n`,
    [`${REPORT_DIR}/report.md`]: renderMarkdownReport(summary),
  };
}
