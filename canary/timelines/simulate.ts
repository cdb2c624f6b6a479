/**
 * A deterministic fleet simulator that writes the timeline corpus: instances serving traffic minute
 * by minute, their raw counters, and a poller sampling them through a load balancer. Seeded, so the
 * committed JSON files are reproducible with `npx tsx canary/timelines/generate.ts`.
 */
import type { MemoryMetrics } from '../../service/contracts/http';
import type { Measurement, Probe } from '../analysis/measurement';
import { zeroCounts, type Counts } from '../analysis/counters';

export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface InstanceSpec {
  id: string;
  /** memory requests per minute (snippet reads) */
  requestsPerMinute: number | ((minute: number) => number);
  /** share of reads answered by the cache */
  cacheHitRate: number;
  /** share of Context7 calls that fail (each failure is a fallback read) */
  errorRate: (minute: number) => number;
  latencyMs: (minute: number) => number;
  /**
   * share of store-bound reads the local store fails (a store outage: PostgreSQL refusing or hanging
   * past its deadline). Such a read is answered 503: a store error, never a fallback, even when
   * Context7 failed too, and its Context7 call still happens. Default: the store never fails.
   */
  storeErrorRate?: (minute: number) => number;
  /** minutes at which the process restarts: counters from zero, new startedAt */
  restartsAt?: number[];
  /** minutes at which counters drop to zero without a new startedAt (a metrics registry reset) */
  counterResetsAt?: number[];
  deployId?: string;
}

export interface ScenarioSpec {
  name: string;
  description: string;
  seed: number;
  deployId: string;
  instances: InstanceSpec[];
  pollIntervalSeconds?: number;
  durationMinutes?: number;
  /** what the metrics endpoint does at a measurement instead of answering well */
  metricsFault?: (minute: number, sampleIndex: number) => Probe | 'corrupt' | undefined;
  healthAt?: (minute: number) => Probe | undefined;
  context7Available?: (minute: number) => boolean;
}

interface InstanceState {
  spec: InstanceSpec;
  startedAt: string;
  totals: Counts;
  errorsByType: MemoryMetrics['errorsByType'];
}

const DEPLOY_TIME = Date.parse('2026-11-20T10:00:00.000Z');

export function simulate(spec: ScenarioSpec): Measurement[] {
  const random = seededRandom(spec.seed);
  const poll = spec.pollIntervalSeconds ?? 120;
  const duration = spec.durationMinutes ?? 60;
  const binomial = (n: number, p: number) => {
    let k = 0;
    for (let i = 0; i < n; i++) if (random() < p) k++;
    return k;
  };
  const arrivals = (rate: number) => {
    const whole = Math.floor(rate);
    return whole + (random() < rate - whole ? 1 : 0);
  };
  const states: InstanceState[] = spec.instances.map((instance) => ({
    spec: instance,
    startedAt: new Date(DEPLOY_TIME - 5_000).toISOString(),
    totals: zeroCounts(),
    errorsByType: { network: 0, timeout: 0, api_error: 0, rate_limited: 0 },
  }));
  const measurements: Measurement[] = [];

  for (let minute = 1; minute <= duration; minute++) {
    for (const state of states) {
      const { spec: instance } = state;
      if (instance.restartsAt?.includes(minute)) {
        state.startedAt = new Date(DEPLOY_TIME + (minute - 1) * 60_000 + 30_000).toISOString();
        state.totals = zeroCounts();
      }
      if (instance.counterResetsAt?.includes(minute)) state.totals = zeroCounts();
      const rate = typeof instance.requestsPerMinute === 'function' ? instance.requestsPerMinute(minute) : instance.requestsPerMinute;
      const requests = arrivals(rate);
      const hits = binomial(requests, instance.cacheHitRate);
      const calls = requests - hits;
      const errors = binomial(calls, instance.errorRate(minute));
      const t = state.totals;
      t.requests += requests;
      t.cacheHits += hits;
      t.cacheMisses += calls;
      t.context7Requests += calls;
      t.context7Errors += errors;
      t.latencyCount += calls;
      for (let i = 0; i < calls; i++) t.latencyMsSum += Math.round(instance.latencyMs(minute) * (0.6 + 0.8 * random()));
      // Every read that misses the cache reads the local store too (the hybrid merge). Random draws
      // only when the store fails, so the scenarios without store faults stay as they were.
      const storeFailure = instance.storeErrorRate?.(minute) ?? 0;
      const storeErrors = storeFailure > 0 ? binomial(calls, storeFailure) : 0;
      // Of the reads Context7 failed, those whose store read failed too were 503s, not fallbacks.
      const failedBoth = storeErrors > 0 ? binomial(errors, storeErrors / calls) : 0;
      t.fallbacks += errors - failedBoth;
      t.storeRequests += calls;
      t.storeErrors += storeErrors;
      state.errorsByType.timeout += Math.floor(errors / 2);
      state.errorsByType.api_error += errors - Math.floor(errors / 2);
    }

    if ((minute * 60) % poll !== 0) continue;
    const samples: Probe[] = [];
    const seen = new Set<string>();
    // Sample through the "load balancer" until every instance is seen, as the live poller does.
    for (let i = 0, sinceNew = 0; i < 12 && seen.size < states.length && sinceNew < 3; i++, sinceNew++) {
      const state = states[Math.floor(random() * states.length)]!;
      const fault = spec.metricsFault?.(minute, i);
      if (fault === 'corrupt') {
        samples.push({ status: 200, body: corrupt(payloadOf(state, spec.deployId), samples.length) });
        continue;
      }
      if (fault) {
        samples.push(fault);
        continue;
      }
      if (!seen.has(state.spec.id)) sinceNew = -1;
      seen.add(state.spec.id);
      samples.push({ status: 200, body: payloadOf(state, spec.deployId) });
    }
    const available = spec.context7Available?.(minute) ?? true;
    measurements.push({
      atSeconds: minute * 60,
      samples,
      health: spec.healthAt?.(minute) ?? {
        status: 200,
        body: available ? { available: true, provider: 'context7' } : { available: false, reason: 'Context7 unreachable: timeout' },
      },
      config: { status: 200, body: { enableContext7Memory: true, context7Available: available } },
    });
  }
  return measurements;
}

function payloadOf(state: InstanceState, deployId: string): MemoryMetrics {
  const t = state.totals;
  const errorRate = t.context7Requests ? t.context7Errors / t.context7Requests : 0;
  const fallbackRate = t.requests ? t.fallbacks / t.requests : 0;
  const lookups = t.cacheHits + t.cacheMisses;
  const cacheHitRate = lookups ? t.cacheHits / lookups : 0;
  const avgLatency = t.latencyCount ? Math.round(t.latencyMsSum / t.latencyCount) : 0;
  const storeErrorRate = t.storeRequests ? t.storeErrors / t.storeRequests : 0;
  return {
    errorRate,
    errorRatePercent: errorRate * 100,
    fallbackRate,
    fallbackRatePercent: fallbackRate * 100,
    avgLatency,
    p95Latency: Math.round(avgLatency * 1.6),
    cacheHitRate,
    cacheHitRatePercent: cacheHitRate * 100,
    storeErrorRate,
    storeErrorRatePercent: storeErrorRate * 100,
    context7Requests: t.context7Requests,
    errorsByType: { ...state.errorsByType },
    cache: { hits: t.cacheHits, misses: t.cacheMisses, size: Math.min(500, t.cacheMisses), ttlMs: 300_000 },
    instanceId: state.spec.id,
    deployId: state.spec.deployId ?? deployId,
    startedAt: state.startedAt,
    totals: { ...t },
    scope: 'instance',
  };
}

/** Ways a metrics payload goes wrong in the field; each must be refused, never judged. */
function corrupt(payload: MemoryMetrics, variant: number): unknown {
  const copies: unknown[] = [
    { ...payload, totals: undefined },
    { ...payload, totals: { ...payload.totals, context7Errors: -4 } },
    { ...payload, errorRatePercent: 250 },
    '<html><body>502 Bad Gateway</body></html>',
    { ...payload, startedAt: 'yesterday' },
    { ...payload, totals: { ...payload.totals, requests: String(payload.totals.requests) } },
  ];
  return copies[variant % copies.length];
}
