/**
 * From a measurement (the raw metric samples the canary records) to a cohort observation for the step analysis.
 * Pure. Fleet figures (`scope: "fleet"`) are taken as they are; per-instance samples are summed (counters and
 * latency histograms add up; rates and percentiles are recomputed from the sums, never averaged). Every sample
 * is validated with the service contract by the same classifier today's analysis uses.
 */
import { classifySample, type Measurement } from '../analysis/measurement';
import { percentileFromBins } from '../../service/fleet/fleet-metrics';
import type { CohortFigures, CohortTotals, MemoryMetrics } from '../../service/contracts/http';
import type { CohortObservation } from './types';
import { sumClusterTables } from '../../service/domain/exposure-clusters';

export type ObservationResult = { ok: true; observation: CohortObservation } | { ok: false; detail: string };

export function observeCohorts(measurement: Measurement, deployId?: string, deployStartedAfter?: string): ObservationResult {
  const valid: MemoryMetrics[] = [];
  const problems: string[] = [];
  for (const sample of measurement.samples) {
    const classified = classifySample(sample, deployId, deployStartedAfter);
    if (classified.ok) valid.push(classified.metrics);
    else problems.push(`${classified.problem}: ${classified.detail}`);
  }
  if (valid.length === 0) return { ok: false, detail: problems[0] ?? 'no metric sample' };
  const fleet = valid.find((m) => m.scope === 'fleet');
  // One reading per instance: the last one seen (counters only grow within an epoch).
  const chosen = fleet ? [fleet] : [...new Map(valid.map((m) => [m.instanceId, m])).values()];
  const missing = chosen.find((m) => !m.cohorts || !m.exposure);
  if (missing) return { ok: false, detail: `instance ${missing.instanceId} reports no per-cohort figures (exposure, cohorts): the service predates progressive exposure` };
  const deployIds = new Set(chosen.map((m) => m.deployId));
  if (deployIds.size > 1) return { ok: false, detail: `instances report different deploys (${[...deployIds].join(', ')})` };
  return {
    ok: true,
    observation: {
      atSeconds: measurement.atSeconds,
      // The fleet applies the lowest percentage any instance applies, at the oldest version.
      exposure: {
        percent: Math.min(...chosen.map((m) => m.exposure!.percent)),
        ceiling: Math.min(...chosen.map((m) => m.exposure!.ceiling)),
        version: Math.min(...chosen.map((m) => m.exposure!.version)),
      },
      treatment: sumFigures(chosen.map((m) => m.cohorts!.treatment)),
      control: sumFigures(chosen.map((m) => m.cohorts!.control)),
      deployId: chosen[0]!.deployId,
      instancesSeen: fleet ? (fleet.instancesSeen ?? [fleet.instanceId]) : chosen.map((m) => m.instanceId),
      // Cluster tables add up like counters; only when every instance chosen reports them.
      ...(chosen.every((m) => m.clusters) ? { clusters: chosen.length === 1 ? chosen[0]!.clusters! : sumClusterTables(chosen.map((m) => m.clusters!)) } : {}),
    },
  };
}

export function sumFigures(figures: CohortFigures[]): CohortFigures {
  if (figures.length === 1) return figures[0]!;
  const totals: CohortTotals = { requests: 0, reads: 0, fallbacks: 0, serverErrors: 0, latencyMsSum: 0, latencyCount: 0, context7Requests: 0, context7Errors: 0 };
  const bins = new Map<number, number>();
  for (const f of figures) {
    for (const key of Object.keys(totals) as (keyof CohortTotals)[]) totals[key] += f.totals[key];
    for (const [bin, count] of Object.entries(f.latencyBins)) bins.set(Number(bin), (bins.get(Number(bin)) ?? 0) + count);
  }
  return figuresFrom(totals, bins);
}

/** A window's figures: `later` minus `earlier` (same counter epoch); null when a counter went down (a restart). */
export function diffFigures(later: CohortFigures, earlier: CohortFigures): CohortFigures | null {
  const totals = { ...later.totals };
  for (const key of Object.keys(totals) as (keyof CohortTotals)[]) {
    totals[key] = later.totals[key] - earlier.totals[key];
    if (totals[key] < 0) return null;
  }
  const bins = new Map<number, number>();
  for (const [bin, count] of Object.entries(later.latencyBins)) {
    const left = count - (earlier.latencyBins[bin] ?? 0);
    if (left < 0) return null;
    if (left > 0) bins.set(Number(bin), left);
  }
  return figuresFrom(totals, bins);
}

/** Rates and percentiles recomputed from counters and a histogram (never averaged). */
function figuresFrom(totals: CohortTotals, bins: Map<number, number>): CohortFigures {
  const rate = (k: number, n: number) => (n > 0 ? k / n : 0);
  return {
    totals,
    latencyBins: Object.fromEntries([...bins.entries()].sort((a, b) => a[0] - b[0]).map(([bin, count]) => [String(bin), count])),
    fallbackRate: rate(totals.fallbacks, totals.reads),
    serverErrorRate: rate(totals.serverErrors, totals.requests),
    errorRate: rate(totals.context7Errors, totals.context7Requests),
    p50LatencyMs: percentileFromBins(bins, 50),
    p95LatencyMs: percentileFromBins(bins, 95),
  };
}
