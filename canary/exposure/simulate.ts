/**
 * Generated stepped-canary timelines (tests and `npm run bench:canary`): a fleet whose scopes are split into the
 * two cohorts by the exposure percentage, each request drawn from its cohort's behaviour (5xx, fallback, Context7
 * errors, a log-normal latency binned with the service's own latencyBin). Seeded: the same seed, the same
 * timeline. Also the simulations that measure the comparison's false-positive rate and power.
 */
import type { CohortFigures, CohortTotals } from '../../service/contracts/http';
import { latencyBin, percentilesFromBins } from '../../service/domain/latency-bins';
import type { CanaryPolicy } from '../policy';
import { EXPOSURE_BUCKETS } from '../../service/domain/exposure';
import {
  CLUSTER_FIELD_COUNT,
  CLUSTER_FIELD_INDEX,
  ClusterCounters,
  clusterOfBucket,
  denseToTables,
  emptyDenseClusters,
  type ClusterField,
} from '../../service/domain/exposure-clusters';
import { seededRandom } from '../timelines/simulate';
import { analyzeStep, replayLooks, windowAt } from './analyze-step';
import { primeDense } from './clustered';
import { comparedFigures, compareLatency, compareRate } from './compare';
import type { CohortObservation, PreExposure, StepDecision } from './types';

/** How one cohort's requests behave. */
export interface CohortBehaviour {
  serverErrorRate: number;
  /** of reads: answered from the store because Context7 failed (the control never falls back) */
  fallbackRate: number;
  /** of Context7 calls */
  context7ErrorRate: number;
  latencyMedianMs: number;
  /** log-normal shape: sd of ln(latency) */
  latencySpread: number;
}

export const HEALTHY: CohortBehaviour = { serverErrorRate: 0.005, fallbackRate: 0.02, context7ErrorRate: 0.01, latencyMedianMs: 80, latencySpread: 0.5 };
/** The control reads the local store: no fallbacks, and Context7 is called only for its writes. */
export const HEALTHY_CONTROL: CohortBehaviour = { ...HEALTHY, fallbackRate: 0 };

export interface World {
  /** memory requests per second, over both cohorts */
  requestsPerSecond: number;
  /** the share of requests that are snippet reads (the rest are learning writes) */
  readShare: number;
  /** each cohort's behaviour at this exposure and time (policy seconds since the stepped canary started) */
  behaviour: (cohort: 'treatment' | 'control', percent: number, atSeconds: number) => CohortBehaviour;
  /** the scopes the requests come from; default: INDEPENDENT_SCOPES */
  scopes?: ScopeModel;
  /** seconds of traffic before the stepped canary, everything in the control (the pre-exposure covariate); default 0 */
  preSeconds?: number;
  /** false: observations carry no cluster tables, as from a service that predates them (faster); default true */
  clusterTables?: boolean;
  /** the share of requests served by an instance that never applied the percentage (it serves everyone as control) */
  staleInstanceShare?: number;
  /**
   * seconds of persisted metrics history before the step (everything in the control, drawn per scope in aggregate):
   * the step's first observation carries it as CUPED's covariate (CohortObservation.preExposure); default none
   */
  historySeconds?: number;
}

/**
 * Where requests come from. Each scope has a hash bucket (uniform, as sha256 gives), a request volume and its own
 * multipliers of the cohort's 5xx rate and latency (log-normal, mean 1): scope-level heterogeneity.
 */
export interface ScopeModel {
  count: number;
  /** Pareto tail index of scope volumes: smaller is heavier (1.1: a few scopes carry most requests); Infinity: equal */
  volumeTail: number;
  /** sd of ln(a scope's 5xx multiplier): 0 makes requests independent of their scope */
  errorSpread: number;
  /** sd of ln(a scope's latency multiplier) */
  latencySpread: number;
}

/** Many equal scopes behaving alike: requests as good as independent (today's simulation). */
export const INDEPENDENT_SCOPES: ScopeModel = { count: 5_000, volumeTail: Number.POSITIVE_INFINITY, errorSpread: 0, latencySpread: 0 };

/** Clustered traffic at a strength: heavy-tailed volumes, and scope heterogeneity growing with `strength` (0..1+). */
export function clusteredScopes(strength: number, count = 2_000): ScopeModel {
  return { count, volumeTail: 1.2, errorSpread: 1.5 * strength, latencySpread: 0.6 * strength };
}

/**
 * A fleet at `requestsPerSecond` memory requests (5 a second: 600 a 2-minute poll), 80% reads; each cohort healthy
 * except where `treatment` (by exposure percentage) or `control` say otherwise.
 */
export function cohortWorld(treatment: (percent: number) => Partial<CohortBehaviour> = () => ({}), control: Partial<CohortBehaviour> = {}, requestsPerSecond = 5): World {
  return {
    requestsPerSecond,
    readShare: 0.8,
    behaviour: (cohort, percent) => (cohort === 'treatment' ? { ...HEALTHY, ...treatment(percent) } : { ...HEALTHY_CONTROL, ...control }),
  };
}

/** Treatment and control from one distribution (the treatment's fallbacks at the control's 0: nothing differs). */
export const NULL_WORLD = cohortWorld(() => ({ fallbackRate: 0 }));

/** Today's per-request tests: the policy's comparison by requests, and a world without cluster tables. */
export function perRequest(policy: CanaryPolicy): CanaryPolicy {
  const copy = structuredClone(policy);
  copy.exposure.comparison.method = 'per-request';
  return copy;
}
export function withoutClusterTables(world: World): World {
  return { ...world, clusterTables: false };
}

/** A world with another scope model (and pre-period). */
export function withScopes(world: World, scopes: ScopeModel, preSeconds = 0): World {
  return { ...world, scopes, preSeconds };
}

/**
 * The policy with no margins: the least favourable null, where the tests' level is reached exactly when the cohorts
 * behave alike. With margins, identical cohorts are further inside H0 and the false-positive rate is lower still.
 */
export function withoutMargins(policy: CanaryPolicy): CanaryPolicy {
  const tight = structuredClone(policy);
  tight.exposure.comparison.figures = {
    serverErrorRate: { test: 'two-proportion', minimumDifference: 0 },
    latency: { test: 'mann-whitney', minimumRelativeDifference: 0, minimumAddedMs: 0 },
  };
  return tight;
}

/** The fleet's cumulative cohort counters and cluster tables, advanced one poll at a time. */
export class SimulatedFleet {
  private readonly random: () => number;
  private readonly cohorts: Record<'treatment' | 'control', { totals: CohortTotals; bins: Map<number, number> }>;
  /** absent in legacy mode (no cluster tables): nothing to allocate per simulated fleet */
  private readonly clusters: ClusterCounters | null;
  private readonly scopeBucket: Int32Array;
  private readonly scopeHash: Uint32Array;
  private readonly cumulativeVolume: Float64Array;
  private readonly errorFactor: Float64Array;
  private readonly latencyFactor: Float64Array;
  private readonly snippetsFor: Float64Array;
  private readonly legacy: boolean;

  constructor(
    private readonly world: World,
    seed: number,
    private readonly deployId = 'dep-simulated',
  ) {
    this.random = seededRandom(seed);
    const empty = () => ({
      totals: { requests: 0, reads: 0, fallbacks: 0, serverErrors: 0, latencyMsSum: 0, latencyCount: 0, context7Requests: 0, context7Errors: 0 },
      bins: new Map<number, number>(),
    });
    this.cohorts = { treatment: empty(), control: empty() };
    // Without cluster tables: requests are drawn independently, each in the treatment with the percentage's chance.
    this.legacy = world.clusterTables === false;
    this.clusters = this.legacy ? null : new ClusterCounters();
    const model = this.legacy ? { ...INDEPENDENT_SCOPES, count: 0 } : (world.scopes ?? INDEPENDENT_SCOPES);
    const n = model.count;
    this.scopeBucket = new Int32Array(n);
    this.scopeHash = new Uint32Array(n);
    this.cumulativeVolume = new Float64Array(n);
    this.errorFactor = new Float64Array(n);
    this.latencyFactor = new Float64Array(n);
    this.snippetsFor = new Float64Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) {
      this.scopeBucket[i] = Math.floor(this.random() * EXPOSURE_BUCKETS);
      this.scopeHash[i] = Math.floor(this.random() * 2 ** 32);
      const volume = Number.isFinite(model.volumeTail) ? (1 - this.random()) ** (-1 / model.volumeTail) : 1;
      total += volume;
      this.cumulativeVolume[i] = total;
      this.errorFactor[i] = model.errorSpread > 0 ? Math.exp(model.errorSpread * this.gaussian() - (model.errorSpread * model.errorSpread) / 2) : 1;
      this.latencyFactor[i] = model.latencySpread > 0 ? Math.exp(model.latencySpread * this.gaussian() - (model.latencySpread * model.latencySpread) / 2) : 1;
      this.snippetsFor[i] = Math.floor(this.random() * 4);
    }
    for (let i = 0; i < n; i++) this.cumulativeVolume[i]! /= total;
    const pre = world.preSeconds ?? 0;
    if (pre > 0) this.serveFor(0, pre, 0);
  }

  /**
   * The metrics history's per-cluster control figures over `seconds` before the step, drawn per scope in aggregate
   * (requests Poisson, 5xx Poisson at the scope's own rate, latency sums normal): what a 7-day window holds.
   */
  history(seconds: number): PreExposure {
    const dense = emptyDenseClusters();
    const values = dense.control.values;
    const behaviour = this.world.behaviour('control', 0, 0);
    const latencyMean = behaviour.latencyMedianMs * Math.exp((behaviour.latencySpread * behaviour.latencySpread) / 2);
    const latencySd = latencyMean * Math.sqrt(Math.exp(behaviour.latencySpread * behaviour.latencySpread) - 1);
    const at = (cluster: number, field: ClusterField) => cluster * CLUSTER_FIELD_COUNT + CLUSTER_FIELD_INDEX[field];
    let previous = 0;
    for (let scope = 0; scope < this.cumulativeVolume.length; scope++) {
      const share = this.cumulativeVolume[scope]! - previous;
      previous = this.cumulativeVolume[scope]!;
      const requests = this.count(this.world.requestsPerSecond * seconds * share);
      if (requests === 0) continue;
      const cluster = clusterOfBucket(this.scopeBucket[scope]!);
      const errors = this.count(requests * Math.min(1, behaviour.serverErrorRate * this.errorFactor[scope]!));
      const meanMs = latencyMean * this.latencyFactor[scope]!;
      values[at(cluster, 'requests')]! += requests;
      values[at(cluster, 'reads')]! += Math.round(requests * this.world.readShare);
      values[at(cluster, 'serverErrors')]! += Math.min(requests, errors);
      values[at(cluster, 'latencyMsSum')]! += Math.max(0, requests * meanMs + Math.sqrt(requests) * latencySd * this.latencyFactor[scope]! * this.gaussian());
    }
    return { source: 'history', clusters: primeDense(denseToTables(dense), dense), note: `${(seconds / 86_400).toFixed(1)} simulated days` };
  }

  /** Serves `seconds` of traffic at `percent` exposure ending at `atSeconds`, then observes the fleet. */
  advance(percent: number, fromSeconds: number, atSeconds: number): CohortObservation {
    this.serveFor(percent, atSeconds - fromSeconds, atSeconds);
    return {
      atSeconds,
      exposure: { percent, ceiling: 100, version: 1 },
      treatment: this.figures('treatment'),
      control: this.figures('control'),
      deployId: this.deployId,
      instancesSeen: ['sim-1'],
      ...(this.clusters ? { clusters: primeDense(this.clusters.tables({ sketch: false }), this.clusters.dense()) } : {}),
    };
  }

  private serveFor(percent: number, seconds: number, atSeconds: number): void {
    const requests = this.poisson(this.world.requestsPerSecond * seconds);
    const behaviours = { treatment: this.world.behaviour('treatment', percent, atSeconds), control: this.world.behaviour('control', percent, atSeconds) };
    const exposed = Math.round(percent * 100);
    const staleShare = this.world.staleInstanceShare ?? 0;
    for (let i = 0; i < requests; i++) {
      if (this.legacy) {
        const cohort = this.random() * 100 < percent ? 'treatment' : 'control';
        this.serve(cohort, behaviours[cohort], -1);
        continue;
      }
      const scope = this.pickScope();
      const stale = staleShare > 0 && this.random() < staleShare;
      const cohort = !stale && this.scopeBucket[scope]! < exposed ? 'treatment' : 'control';
      this.serve(cohort, behaviours[cohort], scope);
    }
  }

  private pickScope(): number {
    const u = this.random();
    const c = this.cumulativeVolume;
    let low = 0;
    let high = c.length - 1;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (c[mid]! < u) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /** One request; `scope` -1: no scope (legacy mode, no cluster tables). */
  private serve(cohort: 'treatment' | 'control', behaviour: CohortBehaviour, scope: number): void {
    const state = this.cohorts[cohort];
    const totals = state.totals;
    totals.requests++;
    const clustered = scope >= 0;
    const cluster = clustered ? clusterOfBucket(this.scopeBucket[scope]!) : -1;
    const read = this.random() < this.world.readShare;
    // Every scope's writes reach Context7; only the treatment reads from it.
    const callsContext7 = !read || cohort === 'treatment';
    if (read) totals.reads++;
    if (callsContext7) {
      totals.context7Requests++;
      const failed = this.random() < behaviour.context7ErrorRate;
      if (failed) totals.context7Errors++;
      if (clustered) this.clusters!.recordContext7Call(cohort, cluster, !failed);
    }
    if (read && cohort === 'treatment' && this.random() < behaviour.fallbackRate) {
      totals.fallbacks++;
      if (clustered) this.clusters!.recordFallback(cluster);
    }
    const serverError = this.random() < Math.min(1, behaviour.serverErrorRate * (clustered ? this.errorFactor[scope]! : 1));
    if (serverError) totals.serverErrors++;
    const latency = behaviour.latencyMedianMs * (clustered ? this.latencyFactor[scope]! : 1) * Math.exp(behaviour.latencySpread * this.gaussian());
    totals.latencyMsSum += latency;
    totals.latencyCount++;
    const bin = latencyBin(latency);
    state.bins.set(bin, (state.bins.get(bin) ?? 0) + 1);
    if (clustered) this.clusters!.recordRequest(cohort, cluster, this.scopeHash[scope]!, read, serverError ? 503 : 200, latency, read ? this.snippetsFor[scope]! : 0);
  }

  private figures(cohort: 'treatment' | 'control'): CohortFigures {
    const { totals, bins } = this.cohorts[cohort];
    const ratio = (k: number, n: number) => (n > 0 ? k / n : 0);
    const latencyBins: Record<string, number> = {};
    for (const [bin, count] of bins) latencyBins[String(bin)] = count;
    const [p50LatencyMs, p95LatencyMs] = percentilesFromBins(bins, [50, 95]);
    return {
      totals: { ...totals },
      latencyBins,
      fallbackRate: ratio(totals.fallbacks, totals.reads),
      serverErrorRate: ratio(totals.serverErrors, totals.requests),
      errorRate: ratio(totals.context7Errors, totals.context7Requests),
      p50LatencyMs: p50LatencyMs!,
      p95LatencyMs: p95LatencyMs!,
    };
  }

  private gaussian(): number {
    // Box–Muller; 1 - random() is in (0, 1], so the log is finite.
    return Math.sqrt(-2 * Math.log(1 - this.random())) * Math.cos(2 * Math.PI * this.random());
  }

  private poisson(mean: number): number {
    // Normal approximation: the means here are hundreds of requests per poll.
    return Math.max(0, Math.round(mean + Math.sqrt(mean) * this.gaussian()));
  }

  /** Exact for small means (Knuth; a scope's requests or 5xx over the history), the normal approximation above. */
  private count(mean: number): number {
    if (mean >= 30) return this.poisson(mean);
    const limit = Math.exp(-mean);
    let k = 0;
    for (let product = this.random(); product > limit; product *= this.random()) k++;
    return k;
  }
}

export interface SteppedRun {
  decisions: StepDecision[];
  /** the last decision: promote, rollback, abort, or hold when the run ran out of polls */
  outcome: StepDecision;
  /** the highest percentage exposed */
  reachedPercent: number;
}

/**
 * Drives analyzeStep over a simulated fleet the way a controller would: poll, decide, move to the next step's
 * percentage on advance (the new step's first observation is its baseline), stop on promote/rollback/abort.
 * A simulation harness only: the live controller (canary/controller) does the I/O and the actions.
 */
export function runStepped(policy: CanaryPolicy, world: World, seed: number, maxPollsPerStep = 40): SteppedRun {
  const fleet = new SimulatedFleet(world, seed);
  const poll = policy.pollIntervalSeconds;
  const steps = policy.exposure.steps;
  const decisions: StepDecision[] = [];
  let now = 0;
  let reachedPercent = 0;
  for (let stepIndex = 0; stepIndex < steps.length; stepIndex++) {
    const percent = steps[stepIndex]!.percent;
    reachedPercent = percent;
    const observations = [fleet.advance(percent, now, now)];
    for (let pollIndex = 0; pollIndex < maxPollsPerStep; pollIndex++) {
      observations.push(fleet.advance(percent, now, now + poll));
      now += poll;
      const decision = analyzeStep(policy, stepIndex, observations);
      decisions.push(decision);
      if (decision.kind === 'hold') continue;
      if (decision.kind === 'advance') break;
      return { decisions, outcome: decision, reachedPercent };
    }
    const last = decisions[decisions.length - 1]!;
    if (last.kind === 'hold') return { decisions, outcome: last, reachedPercent };
  }
  return { decisions, outcome: decisions[decisions.length - 1]!, reachedPercent };
}

/** One step's observations: a baseline and `polls` polls at the step's percentage. */
export function stepTimeline(policy: CanaryPolicy, stepIndex: number, world: World, seed: number, polls: number): CohortObservation[] {
  const fleet = new SimulatedFleet(world, seed);
  const percent = policy.exposure.steps[stepIndex]!.percent;
  const poll = policy.pollIntervalSeconds;
  const history = world.historySeconds ? fleet.history(world.historySeconds) : undefined;
  const observations = [{ ...fleet.advance(percent, 0, 0), ...(history ? { preExposure: history } : {}) }];
  for (let i = 1; i <= polls; i++) observations.push(fleet.advance(percent, (i - 1) * poll, i * poll));
  return observations;
}

export interface RateEstimate {
  runs: number;
  hits: number;
  rate: number;
  /** the binomial standard error of `rate` */
  standardError: number;
}

function estimateOf(hits: number, runs: number): RateEstimate {
  const rate = hits / runs;
  return { runs, hits, rate, standardError: Math.sqrt((rate * (1 - rate)) / runs) };
}

/** The polls a step takes to reach its analysis length. */
export function pollsPerStep(policy: CanaryPolicy, stepIndex: number): number {
  return Math.ceil(policy.exposure.steps[stepIndex]!.analysisSeconds / policy.pollIntervalSeconds);
}

/**
 * The share of null steps (treatment and control behave the same) in which some look says "worse": with the
 * policy's alpha spending through analyzeStep, or naively, every look testing each figure at its full share of
 * alpha with nothing spent. Looks at every poll up to the step's analysis length.
 */
export function falsePositiveRate(policy: CanaryPolicy, stepIndex: number, world: World, runs: number, seed: number, mode: 'spending' | 'naive'): RateEstimate {
  return falsePositiveRates([{ policy, mode }], stepIndex, world, runs, seed)[0]!;
}

/**
 * falsePositiveRate of several rules (policies differing in their comparison, and modes) on the same seeded
 * timelines, each timeline generated once: the same estimates as one call each, for the generator's share of the cost
 * once. The policies must agree on what the timelines are made of (the step's percentage, its looks, the poll).
 */
export function falsePositiveRates(rules: { policy: CanaryPolicy; mode: 'spending' | 'naive' }[], stepIndex: number, world: World, runs: number, seed: number): RateEstimate[] {
  const first = rules[0]!.policy;
  const polls = pollsPerStep(first, stepIndex);
  for (const { policy } of rules) {
    if (policy.exposure.steps[stepIndex]!.percent !== first.exposure.steps[stepIndex]!.percent || policy.pollIntervalSeconds !== first.pollIntervalSeconds || pollsPerStep(policy, stepIndex) !== polls) {
      throw new RangeError('falsePositiveRates: the rules must share the step\'s percentage, analysis length and poll interval');
    }
  }
  const hits = rules.map(() => 0);
  for (let run = 0; run < runs; run++) {
    const observations = stepTimeline(first, stepIndex, world, seed + run, polls);
    rules.forEach(({ policy, mode }, i) => {
      if (nullStepFlagged(policy, stepIndex, observations, polls, mode)) hits[i]!++;
    });
  }
  return hits.map((n) => estimateOf(n, runs));
}

function nullStepFlagged(policy: CanaryPolicy, stepIndex: number, observations: CohortObservation[], polls: number, mode: 'spending' | 'naive'): boolean {
  const step = policy.exposure.steps[stepIndex]!;
  const comparison = policy.exposure.comparison;
  const figures = comparedFigures(comparison);
  // analyzeStep's comparisons at every look at once: the replay analyzeStep does at each poll, kept per look.
  if (mode === 'spending') return replayLooks(policy, step, observations).perLook.some((look) => look.some((c) => c.verdict === 'worse'));
  let flagged = false;
  for (let look = 1; look <= polls && !flagged; look++) {
    const window = windowAt(observations, look, step)!;
    const alpha = comparison.alpha / figures.length;
    flagged = figures.some((figure) => {
      if (figure === 'latency') {
        return compareLatency(window.treatment.latencyBins, window.control.latencyBins, comparison.figures.latency!, alpha, step.minimumSamplesPerCohort).verdict === 'worse';
      }
      const pick = (t: CohortTotals) =>
        figure === 'serverErrorRate' ? { events: t.serverErrors, n: t.requests } : figure === 'fallbackRate' ? { events: t.fallbacks, n: t.reads } : { events: t.context7Errors, n: t.context7Requests };
      return compareRate(figure, pick(window.treatment.totals), pick(window.control.totals), comparison.figures[figure]!.minimumDifference, alpha, step.minimumSamplesPerCohort).verdict === 'worse';
    });
  }
  return flagged;
}

/** The share of steps with a real regression that roll back within the step's analysis length, and when. */
export function detectionRate(policy: CanaryPolicy, stepIndex: number, world: World, runs: number, seed: number): RateEstimate & { medianLook: number } {
  const polls = pollsPerStep(policy, stepIndex);
  let hits = 0;
  const looks: number[] = [];
  for (let run = 0; run < runs; run++) {
    const observations = stepTimeline(policy, stepIndex, world, seed + run, polls);
    for (let look = 1; look <= polls; look++) {
      if (analyzeStep(policy, stepIndex, observations.slice(0, look + 1)).kind === 'rollback') {
        hits++;
        looks.push(look);
        break;
      }
    }
  }
  looks.sort((a, b) => a - b);
  return { ...estimateOf(hits, runs), medianLook: looks.length > 0 ? looks[Math.floor(looks.length / 2)]! : Number.NaN };
}
