/**
 * Fleet-wide memory metrics in Redis: any instance answers /api/metrics/memory for every instance of its deploy.
 *
 * Each instance keeps its own counters (InstanceMetrics) and writes their absolute values to its own hash, keyed by
 * instance id and process start ("incarnation"), every `flushIntervalMs` and before it answers; a reader sums the
 * hashes. Writing absolute values makes a retried or ambiguous write harmless (no double counting), and a
 * restarted process gets a new hash, so fleet totals stay monotonic. Counters are keyed by deploy id, so
 * during a rollout the new deploy's figures never mix with the old one's and the canary judges only the new code.
 * Context7 latencies go into per-minute histogram buckets (5% wide bins), from which the fleet's p95 over the
 * last `latencyWindowMinutes` is read. If Redis cannot answer, or cannot write and read back within
 * `timeoutMs`, the response falls back to this instance's own figures and says so (`scope: "instance"`).
 * The exposure cohorts' counters and request latency bins (domain/cohort-metrics.ts) ride in the same hash, as
 * absolute values too (fields `cohort:<cohort>:<counter>` and `cohort:<cohort>:bin:<bin>`), and are summed the same way.
 * Writes are single-flight: one in progress and at most one waiting behind it, shared by every caller that came
 * meanwhile, so a hanging Redis cannot make flushes queue up behind each other.
 * New scopes are the exception to summing (issue 23): behind a load balancer a scope reaches every instance, and
 * the canary's sample-ratio check must count it once. Each flush sets the bits of the scopes this instance saw
 * first since the last one in the deploy's own map (`seenScopes`, a Redis bitmap) in one script, which counts in
 * `newScopes` (per slot) only the bits nobody had set: each scope once fleet-wide, in the slot of the instance that
 * told first; a retried flush finds its bits set and counts nothing twice. The fleet view reads those counts.
 */
import type Redis from 'ioredis';
import { emptyTotals, ERROR_TYPES, METRIC_TOTAL_KEYS, type Context7ErrorType, type MemoryMetrics, type MetricTotals } from '../contracts/http';
import type { CacheStats } from '../cache/cache-port';
import type { Context7CallOutcome } from '../context7/port';
import { deriveMetrics, isProbeTraffic, type InstanceMetrics, type MetricsRecorder, type ReadOutcome } from '../domain/metrics';
import { COHORT_TOTAL_KEYS, emptyCohortCounts, type CohortCountsByCohort, type CohortRequestOutcome } from '../domain/cohort-metrics';
import { COHORTS, type Cohort } from '../domain/exposure';
import { addClusterTables, CLUSTER_SLOTS, clusterTablesSchema, denseToTables, emptyDenseClusters, SEEN_BITS, type ClusterSlot } from '../domain/exposure-clusters';

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
import type { DeployGeneration, DeployGenerationRegistry } from './deploy-generation';
import { latencyBin, percentileFromBins } from '../domain/latency-bins';
import { withinBudget } from './redis-connection';

// Where the fleet's readers have always found them.
export { latencyBin, latencyBinUpperMs, percentileFromBins } from '../domain/latency-bins';

export interface FleetMetricsOptions {
  /**
   * Which deploy this process belongs to (see deploy-generation.ts): the figures then cover that deploy generation
   * only. Without it they are keyed by commit, which mixes a rollback and a retry of the same commit (tests only).
   */
  generation?: { registry: DeployGenerationRegistry; fingerprint: string };
  redis: Redis;
  keyPrefix: string;
  flushIntervalMs?: number;
  /** Budget for a snapshot's write and read together (FLEET_METRICS_TIMEOUT_MS); past it, this instance answers alone. */
  timeoutMs?: number;
  latencyWindowMinutes?: number;
  /** How long a deploy's counters outlive its last flush. */
  retentionMs?: number;
  now?: () => Date;
  onError?: (error: Error) => void;
}

const TOTAL_FIELDS = METRIC_TOTAL_KEYS;

/**
 * KEYS: the deploy's scope bitmap and its new-scope counts; ARGV: first sightings (slot * SEEN_BITS + bit, see
 * exposure-clusters.ts packSighting). Sets each bit; counts, per slot, those that were not set yet. Atomic.
 */
const FIRST_SIGHTINGS_SCRIPT = `
local slots = {${CLUSTER_SLOTS.map((slot) => `'${slot}'`).join(', ')}}
local counts = {${CLUSTER_SLOTS.map(() => '0').join(', ')}}
for i = 1, #ARGV do
  local v = tonumber(ARGV[i])
  local slot = math.floor(v / ${SEEN_BITS}) + 1
  if redis.call('SETBIT', KEYS[1], v % ${SEEN_BITS}, 1) == 0 then counts[slot] = counts[slot] + 1 end
end
for s = 1, #slots do
  if counts[s] > 0 then redis.call('HINCRBY', KEYS[2], slots[s], counts[s]) end
end
return counts
`;
/** First sightings per script call: a few hundred KB of arguments at most. */
const SIGHTINGS_PER_CALL = 20_000;

export const DEFAULT_FLEET_METRICS_TIMEOUT_MS = 250;

type ErrorCounts = Record<Context7ErrorType, number>;

const COHORT_BIN_FIELD = new RegExp(`^cohort:(${COHORTS.join('|')}):bin:(\\d+)$`);

/** This instance's cohort figures as absolute hash fields (see the header). */
function cohortFields(counts: CohortCountsByCohort): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const cohort of COHORTS) {
    for (const key of COHORT_TOTAL_KEYS) fields[`cohort:${cohort}:${key}`] = String(counts[cohort].totals[key]);
    for (const [bin, count] of counts[cohort].latencyBins) fields[`cohort:${cohort}:bin:${bin}`] = String(count);
  }
  return fields;
}

/** Adds one instance's hash fields to the fleet's cohort sums. */
function addCohortFields(sum: CohortCountsByCohort, fields: Record<string, string>): void {
  for (const cohort of COHORTS) {
    for (const key of COHORT_TOTAL_KEYS) sum[cohort].totals[key] += Number(fields[`cohort:${cohort}:${key}`] ?? 0);
  }
  for (const [field, value] of Object.entries(fields)) {
    const match = COHORT_BIN_FIELD.exec(field);
    if (!match) continue;
    const bins = sum[match[1] as Cohort].latencyBins;
    const bin = Number(match[2]);
    bins.set(bin, (bins.get(bin) ?? 0) + Number(value));
  }
}

export class RedisFleetMetrics implements MetricsRecorder {
  private readonly redis: Redis;
  /** null until this process knows its deploy generation: until then it answers with its own figures */
  private prefix: string | null;
  private generation: DeployGeneration | null = null;
  private resolving: Promise<void> | null = null;
  private readonly now: () => Date;
  private readonly retentionMs: number;
  private readonly windowMinutes: number;
  /** Latency bins per minute bucket, not yet written to Redis. */
  private pendingLatency = new Map<number, Map<number, number>>();
  private lastCacheSize = 0;
  private readonly timeoutMs: number;
  /** The write in progress, and the one that will start after it (joined by every caller meanwhile). */
  private flushing: Promise<void> | null = null;
  private nextFlush: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout | null;

  constructor(
    /** This process's own counters (what it served), behind the fleet view. */
    readonly instance: InstanceMetrics,
    private readonly options: FleetMetricsOptions,
  ) {
    this.redis = options.redis;
    this.now = options.now ?? (() => new Date());
    this.retentionMs = options.retentionMs ?? 7 * 86_400_000;
    this.windowMinutes = options.latencyWindowMinutes ?? 15;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_FLEET_METRICS_TIMEOUT_MS;
    this.prefix = options.generation ? null : `${options.keyPrefix}fleet:${instance.identity.deployId}:`;
    const interval = options.flushIntervalMs ?? 1_000;
    this.timer = interval > 0 ? setInterval(() => void this.flush().catch(() => undefined), interval) : null;
    this.timer?.unref();
    instance.cohorts.clusters.trackFirstSightings();
  }

  recordRead(read: { source: ReadOutcome; fallback: boolean; cache: 'hit' | 'miss' | 'bypass' }): void {
    this.instance.recordRead(read);
  }

  recordStoreCall(outcome: { ok: boolean }): void {
    this.instance.recordStoreCall(outcome);
  }

  recordProbeRequest(): void {
    this.instance.recordProbeRequest();
  }

  recordCohortRequest(slot: ClusterSlot, outcome: CohortRequestOutcome): void {
    this.instance.recordCohortRequest(slot, outcome);
  }

  recordContext7Call(outcome: Context7CallOutcome): void {
    this.instance.recordContext7Call(outcome);
    if (outcome.operation === 'health' || isProbeTraffic()) return; // not counted by the instance either
    const minute = Math.floor(this.now().getTime() / 60_000);
    const bins = this.pendingLatency.get(minute) ?? new Map<number, number>();
    const bin = latencyBin(outcome.latencyMs);
    bins.set(bin, (bins.get(bin) ?? 0) + 1);
    this.pendingLatency.set(minute, bins);
  }

  /**
   * Writes this instance's counters; resolves once a write that began after this call has landed, so a caller
   * sees the counts it recorded before calling. A write already in progress read the counters too early, so
   * callers join the one queued behind it: never more than two writes exist, however many callers wait.
   */
  flush(cacheSize?: number): Promise<void> {
    if (cacheSize !== undefined) this.lastCacheSize = cacheSize;
    if (this.nextFlush) return this.nextFlush;
    if (!this.flushing) return this.startFlush();
    const next = this.flushing
      .catch(() => undefined)
      .then(() => {
        this.nextFlush = null;
        return this.startFlush();
      });
    this.nextFlush = next;
    return next;
  }

  private startFlush(): Promise<void> {
    const run = this.flushOnce().finally(() => {
      if (this.flushing === run) this.flushing = null;
    });
    this.flushing = run;
    return run;
  }

  /** Joins or creates this process's deploy generation; retried by the next flush if Redis cannot answer now. */
  resolveGeneration(): Promise<void> {
    const config = this.options.generation;
    if (!config || this.generation) return Promise.resolve();
    this.resolving ??= config.registry
      .resolve({
        instanceId: this.instance.identity.instanceId,
        fingerprint: config.fingerprint,
        commit: this.instance.identity.deployId,
        now: this.now(),
      })
      .then((generation) => {
        this.generation = generation;
        this.prefix = `${this.options.keyPrefix}fleet:${generation.id}:`;
      })
      .finally(() => {
        this.resolving = null;
      });
    return this.resolving;
  }

  /** The deploy generation these figures cover, once known. */
  get deployGeneration(): DeployGeneration | null {
    return this.generation;
  }

  /** This instance's cluster tables as one hash field, re-encoded only when a count moved since the last flush. */
  private encodedClusters(): string {
    const clusters = this.instance.cohorts.clusters;
    if (this.clustersEncoded?.version !== clusters.version) this.clustersEncoded = { version: clusters.version, json: JSON.stringify(clusters.tables()) };
    return this.clustersEncoded.json;
  }

  private clustersEncoded: { version: number; json: string } | null = null;

  private get incarnation(): string {
    return `${this.instance.identity.instanceId}@${this.instance.identity.startedAt.toISOString()}`;
  }

  private async flushOnce(): Promise<void> {
    if (!this.prefix) await this.resolveGeneration();
    const prefix = this.prefix!;
    const counters: Record<string, string> = {};
    for (const field of TOTAL_FIELDS) counters[field] = String(this.instance.totals[field]);
    for (const type of ERROR_TYPES) counters[`error:${type}`] = String(this.instance.errorsByType[type]);
    Object.assign(counters, cohortFields(this.instance.cohorts.counts));
    counters.clusters = this.encodedClusters();
    counters.startedAt = this.instance.identity.startedAt.toISOString();
    const latency = this.pendingLatency;
    this.pendingLatency = new Map();
    const sightings = this.instance.cohorts.clusters.takeFirstSightings();
    const nowMs = this.now().getTime();
    const multi = this.redis.multi();
    for (let from = 0; from < sightings.length; from += SIGHTINGS_PER_CALL) {
      multi.eval(FIRST_SIGHTINGS_SCRIPT, 2, `${prefix}seenScopes`, `${prefix}newScopes`, ...sightings.slice(from, from + SIGHTINGS_PER_CALL).map(String));
    }
    multi.hset(`${prefix}counters:${this.incarnation}`, counters);
    multi.hset(`${prefix}incarnations`, this.incarnation, String(nowMs));
    multi.hset(`${prefix}instances`, this.instance.identity.instanceId, String(nowMs));
    multi.hset(`${prefix}cacheSize`, this.instance.identity.instanceId, String(this.lastCacheSize));
    if (this.generation && this.options.generation) {
      // The heartbeat that lets a crash-restarted peer rejoin this deploy rides on every flush.
      const beat = this.options.generation.registry.heartbeatCommands(this.generation.id, this.instance.identity.instanceId, this.now());
      multi.hset(beat.key, beat.field, beat.value);
      multi.pexpire(beat.key, beat.ttlMs);
    }
    for (const [minute, bins] of latency) {
      const key = `${prefix}latency:${minute}`;
      for (const [bin, count] of bins) multi.hincrby(key, String(bin), count);
      multi.pexpire(key, (this.windowMinutes + 2) * 60_000);
    }
    for (const key of [`counters:${this.incarnation}`, 'incarnations', 'instances', 'cacheSize', 'seenScopes', 'newScopes']) {
      multi.pexpire(`${prefix}${key}`, this.retentionMs);
    }
    try {
      const results = await multi.exec();
      const failed = results?.find(([error]) => error);
      if (!results || failed) throw failed?.[0] ?? new Error('Redis MULTI aborted');
    } catch (error) {
      // Sightings go again with the next flush: bits this one did set then count nothing twice.
      this.instance.cohorts.clusters.returnFirstSightings(sightings);
      // Keep the latencies for the next flush (counters are absolute: the next flush rewrites them anyway),
      // but only minutes still inside the p95 window, so a long outage cannot grow this map.
      const oldestKept = Math.floor(nowMs / 60_000) - this.windowMinutes;
      for (const [minute, bins] of latency) {
        if (minute < oldestKept) continue;
        const pending = this.pendingLatency.get(minute) ?? new Map<number, number>();
        for (const [bin, count] of bins) pending.set(bin, (pending.get(bin) ?? 0) + count);
        this.pendingLatency.set(minute, pending);
      }
      this.options.onError?.(error as Error);
      throw error;
    }
  }

  /**
   * The deploy's figures summed over every instance that reported (this one's latest counts included), or this
   * instance's own if Redis fails or cannot write and read them back within the budget.
   */
  async snapshot(cache: CacheStats): Promise<MemoryMetrics> {
    try {
      return await withinBudget('fleet metrics', this.timeoutMs, async (budget) => {
        await this.flush(cache.size);
        budget.throwIfAborted(); // nobody waits for this read any more
        return this.readFleet(cache);
      });
    } catch {
      return this.instance.snapshot(cache);
    }
  }

  private async readFleet(cache: CacheStats): Promise<MemoryMetrics> {
    const prefix = this.prefix;
    if (!prefix) throw new Error('deploy generation not known yet');
    const incarnations = Object.keys(await this.redis.hgetall(`${prefix}incarnations`));
    const currentMinute = Math.floor(this.now().getTime() / 60_000);
    const pipeline = this.redis.pipeline();
    pipeline.hgetall(`${prefix}instances`);
    pipeline.hgetall(`${prefix}cacheSize`);
    for (let i = 0; i < this.windowMinutes; i += 1) pipeline.hgetall(`${prefix}latency:${currentMinute - i}`);
    for (const incarnation of incarnations) pipeline.hgetall(`${prefix}counters:${incarnation}`);
    pipeline.hgetall(`${prefix}newScopes`);
    const results = await pipeline.exec();
    if (!results) throw new Error('Redis pipeline aborted');
    const failed = results.find(([error]) => error);
    if (failed) throw failed[0];
    const value = (i: number) => results[i]![1];
    const instances = value(0) as Record<string, string>;
    const cacheSizes = value(1) as Record<string, string>;
    const bins = new Map<number, number>();
    for (let i = 0; i < this.windowMinutes; i += 1) {
      for (const [bin, count] of Object.entries(value(2 + i) as Record<string, string>)) {
        bins.set(Number(bin), (bins.get(Number(bin)) ?? 0) + Number(count));
      }
    }
    const totals = emptyTotals();
    const errors = Object.fromEntries(ERROR_TYPES.map((t) => [t, 0])) as ErrorCounts;
    const cohorts = emptyCohortCounts();
    const clusters = emptyDenseClusters();
    let epochMs: number | null = null;
    for (let i = 0; i < incarnations.length; i += 1) {
      const counters = value(2 + this.windowMinutes + i) as Record<string, string>;
      for (const field of TOTAL_FIELDS) totals[field] += Number(counters[field] ?? 0);
      for (const type of ERROR_TYPES) errors[type] += Number(counters[`error:${type}`] ?? 0);
      addCohortFields(cohorts, counters);
      // An instance that predates the cluster tables, or wrote an unreadable field, adds nothing to them.
      const tables = counters.clusters ? clusterTablesSchema.safeParse(safeJson(counters.clusters)) : undefined;
      if (tables?.success) addClusterTables(clusters, tables.data);
      // The fleet's counter epoch began when its earliest contributing process started.
      const started = counters.startedAt ? Date.parse(counters.startedAt) : Number.NaN;
      if (!Number.isNaN(started) && (epochMs === null || started < epochMs)) epochMs = started;
    }
    // Each scope once, not once per instance that saw it (see the header): the deploy's own count replaces the sum.
    const newScopes = value(2 + this.windowMinutes + incarnations.length) as Record<string, string>;
    for (const slot of CLUSTER_SLOTS) clusters.newScopes[slot] = Number(newScopes[slot] ?? 0);
    const size = Object.values(cacheSizes).reduce((sum, n) => sum + Number(n), 0);
    const metrics = deriveMetrics(
      totals,
      errors,
      percentileFromBins(bins, 95),
      { ...cache, size },
      {
        instanceId: this.instance.identity.instanceId,
        deployId: this.instance.identity.deployId,
        startedAt: epochMs === null ? this.instance.identity.startedAt : new Date(epochMs),
      },
      cohorts,
      { ...denseToTables(clusters), newScopesFleetWide: true },
    );
    return {
      ...metrics,
      scope: 'fleet',
      instancesSeen: Object.keys(instances).sort(),
      ...(this.generation ? { deployGeneration: this.generation.id, deployStartedAt: this.generation.startedAt } : {}),
    };
  }

  /** Stops the timer and writes the last change, so a deploy's SIGTERM loses no counts. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush().catch(() => undefined);
  }
}
