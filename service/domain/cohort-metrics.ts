/**
 * Per-cohort figures of progressive exposure (exposure.ts): memory requests in exposed scopes (treatment) and in
 * the others (control), measured the same way for both so that a canary can compare them.
 *
 * - Requests, reads, 5xx answers and request latency are measured at the HTTP edge (service/http/cohort-edge.ts)
 *   for /api/memory/snippets and /patterns requests with a valid, permitted scope id, while the flag is on.
 * - Fallbacks and Context7 calls are recorded deep inside the request (the memory domain, the Context7 client's
 *   observer), where no scope is known: the request's cohort travels in its async context (withinCohort), as the
 *   probe mark does (metrics.ts). Work outside a request (outbox drainer, backfill) belongs to no cohort.
 * - A fallback is a treatment read answered from the local store because Context7 failed. Control reads answer
 *   from the local store by design: they are never fallbacks.
 * - Probe scopes are counted in neither cohort (they are counted apart as probeRequests).
 * Counters are monotonic and the latency histogram cumulative, so a window is the difference of two snapshots.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { cohortTotalsSchema, type CohortFigures, type CohortTotals } from '../contracts/http';
import type { Context7CallOutcome } from '../context7/port';
import { cohortOf, type Cohort } from './exposure';
import { latencyBin, percentileFromBins } from './latency-bins';
import { isProbeScopeId } from './scope-id';
import { ClusterCounters, type ClusterSlot } from './exposure-clusters';

export const COHORT_TOTAL_KEYS = cohortTotalsSchema.keyof().options;

export function emptyCohortTotals(): CohortTotals {
  return Object.fromEntries(COHORT_TOTAL_KEYS.map((key) => [key, 0])) as CohortTotals;
}

/** One cohort's raw figures: what an instance keeps, and what a fleet sums across instances. */
export interface CohortCounts {
  totals: CohortTotals;
  /** request latency bin (latency-bins.ts) -> requests, since start */
  latencyBins: Map<number, number>;
}

export type CohortCountsByCohort = Record<Cohort, CohortCounts>;
export type CohortFiguresByCohort = Record<Cohort, CohortFigures>;

export function emptyCohortCounts(): CohortCountsByCohort {
  return {
    treatment: { totals: emptyCohortTotals(), latencyBins: new Map() },
    control: { totals: emptyCohortTotals(), latencyBins: new Map() },
  };
}

/** One memory request as the HTTP edge saw it. */
export interface CohortRequestOutcome {
  /** a snippet read (POST /api/memory/snippets), else a learning write */
  read: boolean;
  status: number;
  latencyMs: number;
  /** the scope's exposure cluster and 32 hash bits apart from its bucket (exposure-clusters.ts); absent: not counted per cluster */
  cluster?: number;
  scopeHash?: number;
  /** snippets the read returned */
  snippets?: number;
}

/** The percentage of scopes exposed right now (0 with the flag off). The exposure runtime implements it. */
export interface ExposurePercentSource {
  percent(): number;
}

/** The cohort a memory request counts in: none with the flag off or for a probe scope. */
export function cohortOfRequest(scopeId: string, flagOn: boolean, exposure: ExposurePercentSource): Cohort | null {
  if (!flagOn || isProbeScopeId(scopeId)) return null;
  return cohortOf(scopeId, exposure.percent());
}

/** A request's cohort and exposure cluster as one number (no object per request): cohort bit + 2 * (cluster + 1). */
const requestCohort = new AsyncLocalStorage<number>();

/**
 * Runs one request's work with its cohort (and its exposure cluster, exposure-clusters.ts, when known) attached,
 * so counters recorded anywhere inside know them.
 */
export function withinCohort<T>(cohort: Cohort, work: () => T, cluster = -1): T {
  return requestCohort.run((cohort === 'treatment' ? 0 : 1) + 2 * (cluster + 1), work);
}

/** The cohort of the request whose work is running, or null outside a cohort request. */
export function currentCohort(): Cohort | null {
  const code = requestCohort.getStore();
  return code === undefined ? null : (code & 1) === 0 ? 'treatment' : 'control';
}

/** The exposure cluster of the request whose work is running, or -1 when unknown. */
export function currentCluster(): number {
  const code = requestCohort.getStore();
  return code === undefined ? -1 : (code >> 1) - 1;
}

function ratio(numerator: number, denominator: number): number {
  return denominator === 0 ? 0 : numerator / denominator;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/** The contract's figures of one cohort from its raw counts. Rates are 0 when their denominator is 0. */
export function deriveCohortFigures(counts: CohortCounts): CohortFigures {
  const { totals, latencyBins } = counts;
  return {
    totals: { ...totals },
    latencyBins: Object.fromEntries([...latencyBins.entries()].sort(([a], [b]) => a - b).map(([bin, count]) => [String(bin), count])),
    fallbackRate: ratio(totals.fallbacks, totals.reads),
    serverErrorRate: ratio(totals.serverErrors, totals.requests),
    errorRate: ratio(totals.context7Errors, totals.context7Requests),
    p50LatencyMs: round(percentileFromBins(latencyBins, 50)),
    p95LatencyMs: round(percentileFromBins(latencyBins, 95)),
  };
}

export function deriveCohorts(counts: CohortCountsByCohort): CohortFiguresByCohort {
  return { treatment: deriveCohortFigures(counts.treatment), control: deriveCohortFigures(counts.control) };
}

/** This process's cohort counters, and the same requests per exposure cluster (exposure-clusters.ts). */
export class CohortCounters {
  readonly counts: CohortCountsByCohort = emptyCohortCounts();
  readonly clusters = new ClusterCounters();

  /** A memory request: per cohort (flag on), and per cluster in its slot (`off` while the flag is off). */
  recordRequest(slot: ClusterSlot, outcome: CohortRequestOutcome): void {
    if (outcome.cluster !== undefined) {
      const o = outcome;
      this.clusters.recordRequest(slot, o.cluster!, o.scopeHash ?? 0, o.read, o.status, o.latencyMs, o.snippets ?? 0);
    }
    if (slot === 'off') return;
    const { totals, latencyBins } = this.counts[slot];
    totals.requests += 1;
    if (outcome.read) totals.reads += 1;
    if (outcome.status >= 500) totals.serverErrors += 1;
    const latencyMs = Math.max(0, outcome.latencyMs);
    totals.latencyMsSum += latencyMs;
    totals.latencyCount += 1;
    const bin = latencyBin(latencyMs);
    latencyBins.set(bin, (latencyBins.get(bin) ?? 0) + 1);
  }

  /** A read answered from the local store because Context7 failed: a fallback of the treatment only. */
  recordFallback(): void {
    if (currentCohort() !== 'treatment') return;
    this.counts.treatment.totals.fallbacks += 1;
    this.clusters.recordFallback(currentCluster());
  }

  /** A logical Context7 call (health probes are not counted): attributed to the running request's cohort. */
  recordContext7Call(outcome: Context7CallOutcome): void {
    const cohort = currentCohort();
    if (!cohort || outcome.operation === 'health') return;
    const { totals } = this.counts[cohort];
    totals.context7Requests += 1;
    if (!outcome.ok) totals.context7Errors += 1;
    this.clusters.recordContext7Call(cohort, currentCluster(), outcome.ok);
  }

  figures(): CohortFiguresByCohort {
    return deriveCohorts(this.counts);
  }
}
