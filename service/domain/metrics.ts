/**
 * Memory metrics: raw monotonic counters plus the rates the runbook alerts on.
 * Semantics (also in the README):
 * - requests: snippet reads served with the flag on; fallbacks: those answered from the local store
 *   because Context7 failed, timed out, had its breaker open or has no key;
 * - cacheHits/cacheMisses: snippet reads that went through the cache;
 * - context7Requests/context7Errors/errorsByType/latency: logical search and upsert calls only.
 *   Health probes are excluded, so the runbook's baseline (context7Requests=0 after the checks) holds.
 * - storeRequests/storeErrors: memory requests that needed the local store, and those the store failed
 *   (StoreUnavailableError: timed out, refused, busy). A store failure is never a fallback or a Context7 error.
 * - probeRequests: memory requests in the canary's probe scopes (scope-id.ts PROBE_LOCATION_PREFIX). Everything such
 *   a request causes (its read, store use, cache use and Context7 calls) is left out of every other counter, so the
 *   canary's probe never moves the figures the canary judges.
 * - cohorts: the same memory requests split by progressive exposure into treatment and control (cohort-metrics.ts).
 * Rates are 0 when their denominator is 0.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { emptyTotals, ERROR_TYPES, type Context7ErrorType, type MemoryMetrics, type MetricTotals } from '../contracts/http';
import type { Context7CallOutcome } from '../context7/port';
import type { CacheStats } from '../cache/cache-port';
import { isProbeScopeId } from './scope-id';
import { CohortCounters, deriveCohorts, type CohortCountsByCohort, type CohortRequestOutcome } from './cohort-metrics';
import type { ClusterSlot, ClusterTables } from './exposure-clusters';

export type ReadOutcome = 'context7' | 'hybrid' | 'cache' | 'database';

export interface MetricsRecorder {
  /** One snippet read with the flag on: where it was answered from and whether it was a fallback. */
  recordRead(read: { source: ReadOutcome; fallback: boolean; cache: 'hit' | 'miss' | 'bypass' }): void;
  /** The Context7 client's observer: one call per logical call; health probes are ignored. */
  recordContext7Call(outcome: Context7CallOutcome): void;
  /** One memory request's use of the local store; `ok: false` when the store could not answer. */
  recordStoreCall(outcome: { ok: boolean }): void;
  /** One memory request in a probe scope; whatever it records meanwhile is dropped (see countedApartAsProbe). */
  recordProbeRequest(): void;
  /** One memory request of an exposure cohort, as the HTTP edge measured it (cohort-metrics.ts). */
  recordCohortRequest(slot: ClusterSlot, outcome: CohortRequestOutcome): void;
  snapshot(cache: CacheStats): Promise<MemoryMetrics>;
}

/**
 * Marks the work of one probe-scope request. The Context7 client's observer knows no scope, so the mark travels
 * with the request's async context: every counter recorded inside it is dropped, wherever it is recorded.
 */
const probeTraffic = new AsyncLocalStorage<true>();

export function countedApartAsProbe<T>(work: () => Promise<T>): Promise<T> {
  return probeTraffic.run(true, work);
}

/** Background work for a probe scope (the outbox drainer's or a backfill's send of probe patterns): counted nowhere. */
export function uncountedIfProbeScope<T>(scopeId: string, work: () => Promise<T>): Promise<T> {
  return isProbeScopeId(scopeId) ? countedApartAsProbe(work) : work();
}

/** True inside a probe-scope request: its counters must not be recorded. */
export function isProbeTraffic(): boolean {
  return probeTraffic.getStore() === true;
}

export interface MetricsIdentity {
  instanceId: string;
  deployId: string;
  startedAt: Date;
}

/** A ring of recent latencies: p95 over a bounded window, so memory stays flat under any load. */
export class LatencyWindow {
  private readonly values: number[] = [];
  private next = 0;
  constructor(private readonly capacity = 1024) {}

  add(value: number): void {
    if (this.values.length < this.capacity) this.values.push(value);
    else this.values[this.next] = value;
    this.next = (this.next + 1) % this.capacity;
  }

  /** Nearest-rank percentile; 0 with no samples. */
  percentile(p: number): number {
    if (this.values.length === 0) return 0;
    const sorted = [...this.values].sort((a, b) => a - b);
    const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
    return sorted[rank - 1];
  }
}

function ratio(numerator: number, denominator: number): number {
  return denominator === 0 ? 0 : numerator / denominator;
}

function percent(rate: number): number {
  return Math.round(rate * 10_000) / 100;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/** Derives the runbook's JSON from raw totals; shared by the instance and any fleet aggregation. */
export function deriveMetrics(
  totals: MetricTotals,
  errorsByType: Record<Context7ErrorType, number>,
  p95Latency: number,
  cache: CacheStats,
  identity: MetricsIdentity,
  cohorts?: CohortCountsByCohort,
  clusters?: ClusterTables,
): MemoryMetrics {
  const errorRate = ratio(totals.context7Errors, totals.context7Requests);
  const fallbackRate = ratio(totals.fallbacks, totals.requests);
  const cacheHitRate = ratio(totals.cacheHits, totals.cacheHits + totals.cacheMisses);
  const storeErrorRate = ratio(totals.storeErrors, totals.storeRequests);
  return {
    errorRate,
    errorRatePercent: percent(errorRate),
    fallbackRate,
    fallbackRatePercent: percent(fallbackRate),
    avgLatency: round(ratio(totals.latencyMsSum, totals.latencyCount)),
    p95Latency: round(p95Latency),
    cacheHitRate,
    cacheHitRatePercent: percent(cacheHitRate),
    storeErrorRate,
    storeErrorRatePercent: percent(storeErrorRate),
    context7Requests: totals.context7Requests,
    errorsByType: { ...errorsByType },
    cache: { hits: totals.cacheHits, misses: totals.cacheMisses, size: cache.size, ttlMs: cache.ttlMs },
    instanceId: identity.instanceId,
    deployId: identity.deployId,
    startedAt: identity.startedAt.toISOString(),
    totals: { ...totals },
    scope: 'instance',
    ...(cohorts ? { cohorts: deriveCohorts(cohorts) } : {}),
    ...(clusters ? { clusters } : {}),
  };
}

/** Listener for each counter change, so the Prometheus registry moves in lockstep. */
export interface MetricsListener {
  onRead?(read: { source: ReadOutcome; fallback: boolean; cache: 'hit' | 'miss' | 'bypass' }): void;
  onContext7Call?(outcome: Context7CallOutcome): void;
}

export class InstanceMetrics implements MetricsRecorder {
  readonly totals: MetricTotals = emptyTotals();
  readonly errorsByType: Record<Context7ErrorType, number> = Object.fromEntries(
    ERROR_TYPES.map((type) => [type, 0]),
  ) as Record<Context7ErrorType, number>;
  readonly cohorts = new CohortCounters();
  private readonly latencies = new LatencyWindow();
  private readonly listeners: MetricsListener[] = [];

  constructor(readonly identity: MetricsIdentity) {}

  addListener(listener: MetricsListener): void {
    this.listeners.push(listener);
  }

  recordRead(read: { source: ReadOutcome; fallback: boolean; cache: 'hit' | 'miss' | 'bypass' }): void {
    if (isProbeTraffic()) return;
    this.totals.requests += 1;
    if (read.fallback) {
      this.totals.fallbacks += 1;
      this.cohorts.recordFallback();
    }
    if (read.cache === 'hit') this.totals.cacheHits += 1;
    if (read.cache === 'miss') this.totals.cacheMisses += 1;
    for (const listener of this.listeners) listener.onRead?.(read);
  }

  recordContext7Call(outcome: Context7CallOutcome): void {
    if (outcome.operation === 'health' || isProbeTraffic()) return;
    this.totals.context7Requests += 1;
    if (!outcome.ok) {
      this.totals.context7Errors += 1;
      if (outcome.errorType) this.errorsByType[outcome.errorType] += 1;
    }
    this.totals.latencyMsSum += outcome.latencyMs;
    this.totals.latencyCount += 1;
    this.latencies.add(outcome.latencyMs);
    this.cohorts.recordContext7Call(outcome);
    for (const listener of this.listeners) listener.onContext7Call?.(outcome);
  }

  recordStoreCall(outcome: { ok: boolean }): void {
    if (isProbeTraffic()) return;
    this.totals.storeRequests += 1;
    if (!outcome.ok) this.totals.storeErrors += 1;
  }

  recordProbeRequest(): void {
    this.totals.probeRequests += 1;
  }

  recordCohortRequest(slot: ClusterSlot, outcome: CohortRequestOutcome): void {
    this.cohorts.recordRequest(slot, outcome);
  }

  p95(): number {
    return this.latencies.percentile(95);
  }

  async snapshot(cache: CacheStats): Promise<MemoryMetrics> {
    return deriveMetrics(this.totals, this.errorsByType, this.p95(), cache, this.identity, this.cohorts.counts, this.cohorts.clusters.tables());
  }
}
