/**
 * Compares a load run with a committed baseline: flags a regression beyond a margin in p95
 * latency, error rate or throughput, for the whole run and for each endpoint with enough traffic.
 * Pure; load/cli/compare.ts is the command around it.
 */
import type { Endpoint } from './traffic-mix.ts';
import type { OfferedLoad } from './scenarios.ts';
import { isUsableRun, type EndpointStats, type LoadSummary } from './summary.ts';

export interface CompareMargins {
  /** p95 may grow by this fraction of the baseline's... */
  p95Relative: number;
  /** ...plus this many ms, so sub-millisecond loopback figures don't flag noise */
  p95AbsoluteMs: number;
  /** error rate may grow by this much (absolute: 0.01 = one percentage point) */
  errorRateAbsolute: number;
  /** throughput may fall by this fraction of the baseline's */
  throughputRelative: number;
  /** endpoints with fewer requests than this (in either run) are reported, not judged */
  minEndpointRequests: number;
}

export const DEFAULT_MARGINS: CompareMargins = {
  p95Relative: 0.25,
  p95AbsoluteMs: 5,
  errorRateAbsolute: 0.01,
  throughputRelative: 0.15,
  minEndpointRequests: 100,
};

export interface Comparison {
  scope: string;
  measure: 'p95 latency ms' | 'error rate' | 'throughput req/s' | 'sustainable req/s';
  baseline: number;
  current: number;
  /** the worst value the current run may have without being a regression */
  limit: number;
  regression: boolean;
}

export interface CompareResult {
  comparisons: Comparison[];
  regressions: Comparison[];
  /** facts a reader should see: different scenarios, skipped endpoints */
  notes: string[];
}

function p95Check(scope: string, b: EndpointStats, c: EndpointStats, m: CompareMargins): Comparison {
  const limit = b.latencyMs.p95 * (1 + m.p95Relative) + m.p95AbsoluteMs;
  return { scope, measure: 'p95 latency ms', baseline: b.latencyMs.p95, current: c.latencyMs.p95, limit, regression: c.latencyMs.p95 > limit };
}

function errorCheck(scope: string, b: EndpointStats, c: EndpointStats, m: CompareMargins): Comparison {
  const limit = b.errorRate + m.errorRateAbsolute;
  return { scope, measure: 'error rate', baseline: b.errorRate, current: c.errorRate, limit, regression: c.errorRate > limit };
}

export function validateMargins(m: CompareMargins): CompareMargins {
  for (const key of Object.keys(m) as Array<keyof CompareMargins>) {
    if (!(typeof m[key] === 'number' && m[key] >= 0 && Number.isFinite(m[key]))) throw new Error(`margin ${key} must be a finite number >= 0, got ${m[key]}`);
  }
  if (m.throughputRelative >= 1) throw new Error('margin throughputRelative must be below 1');
  return m;
}

/**
 * The load generator's machine: `machine`, which k6 runs and the Node runner both write; summaries recorded before
 * that kept the Node runner's figures in `environment` (cpus, loadAverage1mAtStart).
 */
function machineOf(s: LoadSummary): { cores?: number; loadAverage1mAtStart?: number } {
  const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
  return {
    cores: s.machine?.cores ?? num(s.environment?.cpus),
    loadAverage1mAtStart: s.machine?.loadAverage1mAtStart ?? num(s.environment?.loadAverage1mAtStart),
  };
}

/** A busy machine slows every figure: say so when either run started with more runnable work than cores. */
function machineLoadNote(baseline: LoadSummary, current: LoadSummary): string | undefined {
  const load = (s: LoadSummary) => machineOf(s).loadAverage1mAtStart;
  const cpus = (s: LoadSummary) => machineOf(s).cores;
  const b = load(baseline);
  const c = load(current);
  const n = cpus(current) ?? cpus(baseline);
  if (typeof b !== 'number' || typeof c !== 'number' || typeof n !== 'number') return undefined;
  if (b <= n && c <= n) return undefined;
  return `machine was busy (1-minute load average at start: baseline ${b}, current ${c}, on ${n} cores): a regression may be contention, re-run on a quiet machine before trusting it`;
}

export function compareSummaries(baseline: LoadSummary, current: LoadSummary, margins: CompareMargins = DEFAULT_MARGINS): CompareResult {
  validateMargins(margins);
  const notes: string[] = [];
  if (baseline.scenario !== current.scenario) notes.push(`scenario differs: baseline "${baseline.scenario}", current "${current.scenario}"`);
  if (baseline.tool !== current.tool) notes.push(`tool differs: baseline ${baseline.tool}, current ${current.tool} (figures are less comparable)`);

  const loadNote = machineLoadNote(baseline, current);
  if (loadNote) notes.push(loadNote);

  const comparisons: Comparison[] = [p95Check('all', baseline, current, margins), errorCheck('all', baseline, current, margins)];
  const minThroughput = baseline.throughputRps * (1 - margins.throughputRelative);
  comparisons.push({
    scope: 'all',
    measure: 'throughput req/s',
    baseline: baseline.throughputRps,
    current: current.throughputRps,
    limit: minThroughput,
    regression: current.throughputRps < minThroughput,
  });

  // A breakpoint's headline: the highest rate that held. Compare it like throughput.
  const bRate = baseline.breakpoint?.sustainableRatePerSecond;
  const cRate = current.breakpoint?.sustainableRatePerSecond;
  if (typeof bRate === 'number' && current.breakpoint) {
    const limit = bRate * (1 - margins.throughputRelative);
    const value = cRate ?? 0;
    comparisons.push({ scope: 'all', measure: 'sustainable req/s', baseline: bRate, current: value, limit, regression: value < limit });
  }

  for (const endpoint of Object.keys(baseline.endpoints) as Endpoint[]) {
    const b = baseline.endpoints[endpoint];
    const c = current.endpoints[endpoint];
    if (!b) continue;
    if (!c) {
      notes.push(`endpoint ${endpoint}: in the baseline, absent from the current run`);
      continue;
    }
    if (b.requests < margins.minEndpointRequests || c.requests < margins.minEndpointRequests) {
      notes.push(`endpoint ${endpoint}: too few requests to judge (baseline ${b.requests}, current ${c.requests}, need ${margins.minEndpointRequests})`);
      continue;
    }
    comparisons.push(p95Check(endpoint, b, c, margins), errorCheck(endpoint, b, c, margins));
  }
  return { comparisons, regressions: comparisons.filter((c) => c.regression), notes };
}

function fmt(measure: Comparison['measure'], n: number): string {
  if (measure === 'error rate') return `${(n * 100).toFixed(2)}%`;
  return n.toFixed(measure === 'p95 latency ms' ? 2 : measure === 'sustainable req/s' ? 0 : 1);
}

export function renderComparison(result: CompareResult): string {
  const lines = ['scope      measure             baseline     current      limit        verdict'];
  for (const c of result.comparisons) {
    lines.push(
      [c.scope.padEnd(10), c.measure.padEnd(19), fmt(c.measure, c.baseline).padEnd(12), fmt(c.measure, c.current).padEnd(12), fmt(c.measure, c.limit).padEnd(12), c.regression ? 'REGRESSION' : 'ok'].join(' '),
    );
  }
  for (const n of result.notes) lines.push(`note: ${n}`);
  lines.push(result.regressions.length === 0 ? 'no regression beyond the margins' : `${result.regressions.length} regression(s) beyond the margins`);
  return lines.join('\n');
}

/**
 * What a run offered the service. Summaries written before `offered` existed are read from the Node runner's
 * environment (closed loop or a set rate, with its connections); anything else is unknown.
 */
export function offeredLoadOfSummary(s: LoadSummary): OfferedLoad | undefined {
  if (s.offered) return s.offered;
  const env = s.environment ?? {};
  const connections = typeof env.connections === 'number' ? env.connections : undefined;
  if (env.offeredRatePerSecond === 'closed loop') return { model: 'closed', connections, plannedDurationSeconds: s.durationSeconds };
  if (typeof env.offeredRatePerSecond === 'number') return { model: 'open', ratePerSecond: env.offeredRatePerSecond, plannedDurationSeconds: s.durationSeconds };
  return undefined;
}

function describeOffer(o: OfferedLoad): string {
  if (o.model === 'closed') return `a closed loop of ${o.connections ?? '?'} connections`;
  return o.profile ? `an open-model profile ${o.profile}` : `an open model at ${o.ratePerSecond} req/s`;
}

function sameOffer(a: OfferedLoad, b: OfferedLoad): boolean {
  return a.model === b.model && a.ratePerSecond === b.ratePerSecond && a.profile === b.profile && a.connections === b.connections;
}

/**
 * Reasons two runs must not be compared at all (load:compare exits 2): a run that did not run to its end (its
 * figures stand for nothing), or runs that offered different load, where a lower throughput is the offer, not a
 * regression. The second can be overridden on purpose.
 */
export function comparabilityProblems(baseline: LoadSummary, current: LoadSummary, options: { allowDifferentLoad?: boolean } = {}): string[] {
  const problems: string[] = [];
  for (const [name, s] of [['baseline', baseline], ['current', current]] as const) {
    if (!isUsableRun(s)) {
      const run = s.run!;
      problems.push(
        `the ${name} run was ${run.outcome.replace(/_/g, ' ')}${run.exitCode === null ? '' : ` (k6 exit ${run.exitCode})`} after ` +
          `${run.actualDurationSeconds.toFixed(1)} s of ${run.plannedDurationSeconds} s planned: it is not a run to compare`,
      );
    }
  }
  if (options.allowDifferentLoad) return problems;
  const b = offeredLoadOfSummary(baseline);
  const c = offeredLoadOfSummary(current);
  if (!b || !c) {
    problems.push(`the ${!b ? 'baseline' : 'current'} summary does not record the load it offered: re-record it, or pass --allow-different-load`);
  } else if (!sameOffer(b, c)) {
    problems.push(`the runs offered different load (baseline: ${describeOffer(b)}; current: ${describeOffer(c)}): pass --allow-different-load to compare anyway`);
  }
  return problems;
}
