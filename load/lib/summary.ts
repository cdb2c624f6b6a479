/**
 * The one summary shape every load run produces (k6, through load/lib/k6-report.ts, and the Node runner), so
 * load:compare can judge either against a committed baseline. Plus the readable Markdown report.
 * Pure: no k6 or Node imports.
 */
import type { Endpoint } from './traffic-mix.ts';
import type { ThresholdResult } from './thresholds.ts';
import type { BreakpointResult } from './breakpoint.ts';
import type { OfferedLoad } from './scenarios.ts';

export const SUMMARY_FORMAT = 'memory-load-summary/v1';

export interface LatencyStats {
  avg: number;
  min: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
}

export interface EndpointStats {
  requests: number;
  /** failed requests (transport error or unexpected status) / requests */
  errorRate: number;
  checksPassRate: number;
  latencyMs: LatencyStats;
}

export interface LoadSummary extends EndpointStats {
  format: typeof SUMMARY_FORMAT;
  tool: 'k6' | 'autocannon';
  scenario: string;
  /** the base URL that was targeted */
  target: string;
  startedAt: string | null;
  durationSeconds: number;
  /** completed requests per second over the run */
  throughputRps: number;
  endpoints: Partial<Record<Endpoint, EndpointStats>>;
  thresholds: ThresholdResult[];
  /** every threshold passed AND the run ran to its end: an interrupted run is never ok, whatever it measured so far */
  thresholdsOk: boolean;
  /** where the thresholds came from, e.g. `canary/policy.yaml (rollout)` */
  thresholdsSource: string;
  breakpoint?: BreakpointResult;
  /** free-form facts about the run (machine, rate, connections) */
  environment?: Record<string, string | number | boolean>;
  /** what the run offered the service: load:compare refuses to compare different offers */
  offered?: OfferedLoad;
  /** the read mix's seed (reproducible) and the run's nonce (in every learning write: new content each run) */
  traffic?: { seed: number; runNonce: string; scopePrefix: string };
  /** responses answered 429: a rate limiter spoke, not the service's capacity */
  rateLimited?: number;
  /** iterations the load generator started (k6: one request each) */
  iterations?: number;
  /**
   * k6's dropped_iterations: arrivals the open model offered but could not start (no free VU). The service never saw
   * them, so the offer was not delivered. Absent for the Node runner, which does not measure it.
   */
  droppedIterations?: number;
  /** spike runs: each k6 stage on its own, offered against achieved */
  stages?: StageStats[];
  /**
   * The load generator's machine, the same fields for k6 and the Node runner (load:compare reads them to note a
   * busy machine); the load average at the end is added by whoever outlives the run.
   */
  machine?: { cores?: number; cpuModel?: string; loadAverage1mAtStart?: number; loadAverage1mAtEnd?: number; node?: string };
  /** how the run ended: only the wrapper around k6 sees k6's exit code */
  run?: RunOutcome;
}

export type RunOutcomeKind = 'completed' | 'interrupted' | 'aborted_by_threshold' | 'aborted' | 'failed';

/** One stage of a ramping profile (spike): what it offered, and what the service was actually sent. */
export interface StageStats extends EndpointStats {
  /** 1-based, in k6's order */
  stage: number;
  fromRatePerSecond: number;
  toRatePerSecond: number;
  /** the stage's planned length */
  seconds: number;
  /** seconds of it the run actually lived through (shorter when it ended early) */
  secondsRun: number;
  /** requests / secondsRun; below the offer when k6 dropped iterations or the run ended early */
  achievedRatePerSecond: number;
}

export interface RunOutcome {
  outcome: RunOutcomeKind;
  /** k6's exit code (null for the Node runner) */
  exitCode: number | null;
  plannedDurationSeconds: number;
  actualDurationSeconds: number;
}

/** k6's own exit codes (errext): 99 thresholds failed, 105 external abort (Ctrl-C), 108 script abort. */
export const K6_EXIT = { thresholdsFailed: 99, externalAbort: 105, scriptAborted: 108 } as const;

/**
 * How a k6 run ended, from its exit code and how long it ran. A threshold with abortOnFail also exits 99, so a
 * run that failed thresholds well short of its plan was cut short by them. Without an exit code (handleSummary on a
 * direct `k6 run`), a run well short of its plan was interrupted if its thresholds held (only a failed threshold
 * aborts it otherwise), else aborted by them.
 */
export function classifyK6Exit(exitCode: number | null, actualSeconds: number, plannedSeconds: number, thresholdsHeld = true): RunOutcomeKind {
  if (exitCode === null) {
    const short = plannedSeconds > 0 && actualSeconds < plannedSeconds * 0.95;
    if (!short) return 'completed';
    return thresholdsHeld ? 'interrupted' : 'aborted_by_threshold';
  }
  if (exitCode === 0) return 'completed';
  if (exitCode === K6_EXIT.thresholdsFailed) return plannedSeconds > 0 && actualSeconds < plannedSeconds * 0.95 ? 'aborted_by_threshold' : 'completed';
  if (exitCode === K6_EXIT.externalAbort || exitCode === 130 || exitCode === 143) return 'interrupted';
  if (exitCode === K6_EXIT.scriptAborted) return 'aborted';
  return 'failed';
}

/** A run whose figures stand for its scenario: it ran to the end (a breakpoint ends when its thresholds abort it). */
export function isUsableRun(s: Pick<LoadSummary, 'run' | 'scenario'>): boolean {
  if (!s.run) return true;
  if (s.run.outcome === 'completed') return true;
  return s.run.outcome === 'aborted_by_threshold' && s.scenario === 'breakpoint';
}

/** The one-word verdict of a run: an interrupted run is never a PASS, whatever its thresholds said so far. */
export function verdictOf(s: LoadSummary): string {
  if (!isUsableRun(s)) return s.run!.outcome.replace(/_/g, ' ').toUpperCase();
  return s.thresholdsOk ? 'PASS' : 'FAIL';
}

/** Records how the run ended; `thresholdsOk` then holds only for a run that ran to its end with every threshold met. */
export function withRunOutcome(s: LoadSummary, run: RunOutcome): LoadSummary {
  const next: LoadSummary = { ...s, run };
  next.thresholdsOk = s.thresholds.every((t) => t.ok) && isUsableRun(next);
  return next;
}

/** Exact statistics over latency samples (ms); the Node runner keeps every sample of a bounded run. */
export function latencyStatsFromSamples(samples: readonly number[]): LatencyStats {
  if (samples.length === 0) return { avg: 0, min: 0, p50: 0, p90: 0, p95: 0, p99: 0, max: 0 };
  const sorted = samples.slice().sort((a, b) => a - b);
  // k6 interpolates percentiles linearly between ranks; do the same so both tools agree.
  const pct = (p: number) => {
    const rank = (p / 100) * (sorted.length - 1);
    const lo = Math.floor(rank);
    const hi = Math.min(lo + 1, sorted.length - 1);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
  };
  let sum = 0;
  for (const s of sorted) sum += s;
  return { avg: sum / sorted.length, min: sorted[0], p50: pct(50), p90: pct(90), p95: pct(95), p99: pct(99), max: sorted[sorted.length - 1] };
}

// ---- k6 handleSummary data -------------------------------------------------------------------

export interface K6MetricData {
  type: string;
  values: Record<string, number>;
  thresholds?: Record<string, { ok: boolean }>;
}
export interface K6SummaryData {
  metrics: Record<string, K6MetricData | undefined>;
  state?: { testRunDurationMs?: number };
  /** what setup() returned */
  setup_data?: unknown;
}

/** The trend statistics the k6 script asks for, so every LatencyStats field is present. */
export const K6_TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count'];

function k6Latency(metric: K6MetricData | undefined): LatencyStats {
  const v = metric?.values ?? {};
  const n = (key: string) => (typeof v[key] === 'number' ? v[key] : 0);
  return { avg: n('avg'), min: n('min'), p50: n('med'), p90: n('p(90)'), p95: n('p(95)'), p99: n('p(99)'), max: n('max') };
}

function k6Rate(metric: K6MetricData | undefined, whenAbsent: number): number {
  const rate = metric?.values?.rate;
  return typeof rate === 'number' ? rate : whenAbsent;
}

/** Stats for one tag filter (`{endpoint:snippets}`), or the whole run with an empty filter. */
export function k6Stats(data: K6SummaryData, tagFilter: string): EndpointStats {
  const duration = data.metrics[`http_req_duration${tagFilter}`];
  return {
    requests: duration?.values?.count ?? 0,
    errorRate: k6Rate(data.metrics[`http_req_failed${tagFilter}`], 0),
    checksPassRate: k6Rate(data.metrics[`checks${tagFilter}`], 1),
    latencyMs: k6Latency(duration),
  };
}

/** Every threshold k6 evaluated, with its verdict and the value it judged when we can tell. */
export function k6ThresholdResults(data: K6SummaryData): ThresholdResult[] {
  const results: ThresholdResult[] = [];
  for (const name of Object.keys(data.metrics).sort()) {
    const metric = data.metrics[name];
    if (!metric?.thresholds) continue;
    for (const expression of Object.keys(metric.thresholds)) {
      const statistic = expression.replace(/\s/g, '').split(/[<>=!]/)[0];
      const key = statistic === 'p(50)' ? 'med' : statistic;
      const actual = metric.values[key];
      results.push({ metric: name, expression, ok: metric.thresholds[expression].ok, ...(typeof actual === 'number' ? { actual } : {}) });
    }
  }
  return results;
}

export interface K6SummaryMeta {
  scenario: string;
  target: string;
  startedAt: string | null;
  endpoints: readonly Endpoint[];
  thresholdsSource: string;
  breakpoint?: BreakpointResult;
  environment?: Record<string, string | number | boolean>;
  offered?: OfferedLoad;
  traffic?: LoadSummary['traffic'];
  machine?: LoadSummary['machine'];
}

export function summaryFromK6(data: K6SummaryData, meta: K6SummaryMeta): LoadSummary {
  const durationSeconds = (data.state?.testRunDurationMs ?? 0) / 1000;
  const totals = k6Stats(data, '');
  const endpoints: Partial<Record<Endpoint, EndpointStats>> = {};
  for (const endpoint of meta.endpoints) {
    const stats = k6Stats(data, `{endpoint:${endpoint}}`);
    if (stats.requests > 0) endpoints[endpoint] = stats;
  }
  const thresholds = k6ThresholdResults(data);
  const reqs = data.metrics.http_reqs?.values;
  return {
    format: SUMMARY_FORMAT,
    tool: 'k6',
    scenario: meta.scenario,
    target: meta.target,
    startedAt: meta.startedAt,
    durationSeconds,
    ...totals,
    requests: reqs?.count ?? totals.requests,
    throughputRps: reqs?.rate ?? (durationSeconds > 0 ? totals.requests / durationSeconds : 0),
    endpoints,
    thresholds,
    thresholdsOk: thresholds.every((t) => t.ok),
    thresholdsSource: meta.thresholdsSource,
    ...(meta.breakpoint ? { breakpoint: meta.breakpoint } : {}),
    ...(meta.environment ? { environment: meta.environment } : {}),
    ...(meta.offered ? { offered: meta.offered } : {}),
    ...(meta.traffic ? { traffic: meta.traffic } : {}),
    ...(meta.machine ? { machine: meta.machine } : {}),
    rateLimited: data.metrics.rate_limited?.values?.count ?? 0,
    iterations: data.metrics.iterations?.values?.count ?? 0,
    // k6 creates the metric on the first drop: absent means none were dropped.
    droppedIterations: data.metrics.dropped_iterations?.values?.count ?? 0,
  };
}

/**
 * The JSON `k6 run --summary-export FILE` writes (k6's legacy layout: each metric's values flattened, a rate's
 * `rate` renamed `value`, thresholds as {expression: failed}), back into handleSummary's layout. The export drops
 * the run's duration, so it is taken from a counter's count/rate, else from `fallbackDurationSeconds`.
 */
export function k6DataFromSummaryExport(exported: unknown, fallbackDurationSeconds: number): K6SummaryData {
  const root = (exported ?? {}) as { metrics?: Record<string, Record<string, unknown>>; setup_data?: unknown };
  if (typeof root.metrics !== 'object' || root.metrics === null) throw new Error('not a k6 summary export: no metrics');
  const metrics: Record<string, K6MetricData> = {};
  for (const name of Object.keys(root.metrics)) {
    const flat = root.metrics[name] ?? {};
    const values: Record<string, number> = {};
    let thresholds: Record<string, { ok: boolean }> | undefined;
    for (const key of Object.keys(flat)) {
      const v = flat[key];
      if (key === 'thresholds' && typeof v === 'object' && v !== null) {
        thresholds = {};
        for (const [expression, failed] of Object.entries(v as Record<string, unknown>)) thresholds[expression] = { ok: failed === false };
      } else if (typeof v === 'number') {
        values[key] = v;
      }
    }
    // Rates are the only metrics with passes/fails; the export renamed their `rate` to `value`.
    const isRate = 'passes' in values && 'fails' in values && 'value' in values;
    if (isRate) {
      values.rate = values.value!;
      delete values.value;
    }
    const type = isRate ? 'rate' : 'avg' in values ? 'trend' : 'count' in values ? 'counter' : 'gauge';
    metrics[name] = { type, values, ...(thresholds ? { thresholds } : {}) };
  }
  let durationSeconds = fallbackDurationSeconds;
  for (const counter of ['iterations', 'http_reqs']) {
    const v = metrics[counter]?.values;
    if (v && typeof v.count === 'number' && typeof v.rate === 'number' && v.count > 0 && v.rate > 0) {
      durationSeconds = v.count / v.rate;
      break;
    }
  }
  return { metrics, state: { testRunDurationMs: durationSeconds * 1000 }, setup_data: root.setup_data };
}

// ---- readable report ----------------------------------------------------------------------

function ms(n: number): string {
  return n >= 100 ? n.toFixed(0) : n.toFixed(2);
}
function pct(rate: number): string {
  return `${(rate * 100).toFixed(2)}%`;
}

function describeOffered(o: OfferedLoad): string {
  if (o.model === 'closed') return `closed loop, ${o.connections ?? '?'} connections, ${o.plannedDurationSeconds} s planned`;
  return `open model, ${o.profile ? `rate profile ${o.profile} (peak ${o.ratePerSecond} req/s)` : `${o.ratePerSecond} req/s`}, ${o.plannedDurationSeconds} s planned`;
}

function rate(n: number | undefined): string {
  return n === undefined ? '' : n.toFixed(1);
}

export function renderMarkdownReport(s: LoadSummary): string {
  const lines: string[] = [];
  // A limiter answering is the first thing a reader must know: every figure below is then the limiter's.
  if (s.rateLimited && s.rateLimited > 0) {
    lines.push(`> limited: ${s.rateLimited} × 429 (a rate limiter answered: these figures measure it, not the service's capacity)`);
    lines.push('');
  }
  // So is an offer that was not delivered: the service saw less load than the scenario names.
  if (s.droppedIterations && s.droppedIterations > 0) {
    const offered = s.droppedIterations + (s.iterations ?? 0);
    lines.push(
      `> dropped: ${s.droppedIterations} of ${offered} offered iterations (${((s.droppedIterations / offered) * 100).toFixed(1)}%): ` +
        'k6 had no free VU to start them, so the service was sent less than the offered rate',
    );
    lines.push('');
  }
  lines.push(`# Load report: ${s.scenario} (${s.tool})`);
  lines.push('');
  lines.push(`- target: \`${s.target}\``);
  if (s.startedAt) lines.push(`- started: ${s.startedAt}`);
  lines.push(`- duration: ${s.durationSeconds.toFixed(1)} s, ${s.requests} requests, ${s.throughputRps.toFixed(1)} req/s`);
  if (s.droppedIterations !== undefined) lines.push(`- iterations: ${s.iterations ?? '?'} started, ${s.droppedIterations} dropped`);
  if (s.run) {
    lines.push(
      `- outcome: **${s.run.outcome.replace(/_/g, ' ')}**${s.run.exitCode === null ? '' : ` (k6 exit ${s.run.exitCode})`}, ` +
        `ran ${s.run.actualDurationSeconds.toFixed(1)} s of ${s.run.plannedDurationSeconds} s planned`,
    );
  }
  if (s.offered) lines.push(`- offered: ${describeOffered(s.offered)}`);
  if (s.traffic) lines.push(`- traffic: seed ${s.traffic.seed}, run nonce \`${s.traffic.runNonce}\`, scopes \`scope:${s.traffic.scopePrefix}*\``);
  if (s.machine) {
    const m = s.machine;
    lines.push(
      `- load generator: ${m.cores ?? '?'} cores${m.cpuModel ? ` (${m.cpuModel})` : ''}, 1-minute load average ${m.loadAverage1mAtStart ?? '?'} at start, ` +
        `${m.loadAverage1mAtEnd ?? '?'} at end${m.node ? `, Node ${m.node}` : ''}`,
    );
  }
  lines.push(`- thresholds (${s.thresholdsSource}): **${verdictOf(s)}**`);
  if (s.environment) {
    lines.push(`- environment: ${Object.keys(s.environment).map((k) => `${k}=${String(s.environment?.[k])}`).join(', ')}`);
  }
  lines.push('');
  lines.push('| endpoint | requests | error rate | checks passed | avg ms | p50 ms | p95 ms | p99 ms | max ms |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  const row = (name: string, e: EndpointStats) =>
    `| ${name} | ${e.requests} | ${pct(e.errorRate)} | ${pct(e.checksPassRate)} | ${ms(e.latencyMs.avg)} | ${ms(e.latencyMs.p50)} | ${ms(e.latencyMs.p95)} | ${ms(e.latencyMs.p99)} | ${ms(e.latencyMs.max)} |`;
  lines.push(row('**all**', s));
  for (const name of Object.keys(s.endpoints) as Endpoint[]) {
    const e = s.endpoints[name];
    if (e) lines.push(row(name, e));
  }
  lines.push('');
  lines.push('| threshold | expression | measured | result |');
  lines.push('|---|---|---:|---|');
  for (const t of s.thresholds) {
    lines.push(`| \`${t.metric}\` | \`${t.expression}\` | ${t.actual === undefined ? '' : Number(t.actual.toFixed(4))} | ${t.ok ? 'pass' : '**FAIL**'} |`);
  }
  if (s.stages && s.stages.length > 0) {
    lines.push('');
    lines.push('## Stages');
    lines.push('');
    lines.push('| stage | offered req/s | seconds run | requests | achieved req/s | error rate | avg ms | p95 ms |');
    lines.push('|---:|---|---:|---:|---:|---:|---:|---:|');
    for (const st of s.stages) {
      const offered = st.fromRatePerSecond === st.toRatePerSecond ? `${st.toRatePerSecond}` : `${st.fromRatePerSecond} → ${st.toRatePerSecond}`;
      lines.push(
        `| ${st.stage} | ${offered} over ${st.seconds} s | ${st.secondsRun.toFixed(1)} | ${st.requests} | ${rate(st.achievedRatePerSecond)} | ${pct(st.errorRate)} | ${ms(st.latencyMs.avg)} | ${ms(st.latencyMs.p95)} |`,
      );
    }
  }
  if (s.breakpoint) {
    const b = s.breakpoint;
    lines.push('');
    lines.push('## Breakpoint');
    lines.push('');
    lines.push(`- sustainable rate: **${b.sustainableRatePerSecond === null ? 'none (the first step already failed)' : `${b.sustainableRatePerSecond} req/s`}**`);
    lines.push(`- broke at: ${b.brokeAtRatePerSecond === null ? 'did not break (thresholds held up to the highest rate tried)' : `${b.brokeAtRatePerSecond} req/s`}`);
    lines.push('');
    lines.push('| target rate req/s | achieved req/s | requests | error rate | checks passed | avg ms | p95 ms | held |');
    lines.push('|---:|---:|---:|---:|---:|---:|---:|---|');
    for (const st of b.steps) {
      lines.push(
        `| ${st.rate} | ${rate(st.achievedRatePerSecond)} | ${st.requests} | ${pct(st.errorRate)} | ${pct(st.checksPassRate)} | ${ms(st.latencyMs.avg)} | ${ms(st.latencyMs.p95)} | ` +
          `${st.requests < b.minRequestsPerStep ? 'too few requests' : st.thresholdsOk ? 'pass' : '**FAIL**'} |`,
      );
    }
    lines.push('');
    lines.push('A step holds when its thresholds pass and it achieved at least 90% of the rate it offered.');
  }
  lines.push('');
  return lines.join('\n');
}
