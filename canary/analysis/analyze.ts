/**
 * The canary's decision as a pure function of (policy, measurements): no I/O, no clock. The live
 * controller calls it after every poll with everything measured so far; `replay` calls it on a
 * recorded timeline; both get the same answer for the same data.
 */
import { type CanaryPolicy, type Checkpoint, type MetricName, type Bound, METRIC_NAMES } from '../policy';
import { addCounts, decreasedCounter, metricValues, subtractCounts, zeroCounts, type Counts, type MetricValues } from './counters';
import { judgeMetric, type MetricJudgement, type Verdict } from './judge';
import { wilsonInterval } from './stats';
import {
  classifyBackfill,
  classifyConfig,
  classifyHealth,
  classifySample,
  type BackfillStatus,
  type HealthState,
  type Measurement,
  type SampleProblem,
} from './measurement';
import type { MemoryMetrics } from '../../service/contracts/http';
import { judgeLogs, type LogJudgement, type LogReading } from '../logs/judge-logs';
import { judgeProbe, type ProbeJudgement, type ProbeRun } from '../probe/judge-probe';
import { judgePlatformReading, RENDER_PLATFORM_SOURCE, type ObservationJudgement, type SourceReading } from './observations';
import { findDisagreements, type Disagreement } from './disagreement';

export type DecisionKind = 'rollback' | 'promote' | 'hold' | 'abort';
/** `store_errors`: the local store failing (policy storeErrors), told apart from a Context7 `breach`. */
export type DecisionTrigger =
  | 'breach'
  | 'store_errors'
  | 'service_down'
  | 'never_reached'
  | 'immediate_checks'
  | 'checkpoint'
  | 'end'
  | 'measurement_errors'
  /** Render logs: startup failures, a crash loop, a flood of [MEMORY_ERROR] */
  | 'logs'
  /** Render's platform metrics (load balancer 5xx, p95 latency, instance memory growth) */
  | 'platform';

/** The alert's message when the store fails: said the same way in the decision, the webhook and the reports. */
export const STORE_FAILING_MESSAGE = 'the local store is failing; turning Context7 off cannot fix it';

export interface Decision {
  kind: DecisionKind;
  trigger: DecisionTrigger;
  reason: string;
  atSeconds: number;
  stepIndex: number;
}

export interface JudgedCheck extends MetricJudgement {
  /** what the counts cover: the last poll window, the checkpoint period so far, or since the deploy */
  scope: 'window' | 'period' | 'cumulative';
  /** for a re-judged inconclusive: the checkpoint it carried over from */
  carriedFrom?: string;
}

export interface CheckpointRecord {
  name: string;
  atMinute: number;
  judgedAtSeconds: number;
  judgements: JudgedCheck[];
  outcome: Verdict;
  /** the end-of-analysis judgement also checks health */
  health?: { verdict: Verdict; state: HealthState };
  /** and, when the canary followed one, the backfill: only a significant failure blocks promotion */
  backfill?: BackfillJudgement;
  /** "Render logs clean (no repeated errors)", when the canary read the logs; unread logs do not block */
  logsClean?: { verdict: Verdict; reason: string };
  /** the learning probe, when it ran: only a significant failure blocks promotion */
  probe?: ProbeJudgement;
}

export interface BackfillJudgement {
  verdict: 'pass' | 'fail' | 'not_judged';
  reason: string;
  status: BackfillStatus;
}

export interface StepRecord {
  index: number;
  atSeconds: number;
  status: 'measured' | 'measurement_error';
  /** instances whose figures were used */
  instances: string[];
  /** samples that could not be used, valid measurement or not */
  sampleProblems: { problem: SampleProblem | 'instance_scope'; detail: string }[];
  consecutiveErrors: number;
  health: HealthState;
  healthDetail: string;
  configDetail: string;
  window: { valid: boolean; invalidReason?: string; counts: Counts | null; values: MetricValues | null };
  period: { sinceSeconds: number; counts: Counts };
  cumulative: { counts: Counts; values: MetricValues };
  /** the checkpoint whose thresholds were in force */
  activeCheckpoint: string;
  thresholds: Partial<Record<MetricName, Bound>>;
  breachChecks: JudgedCheck[];
  /** storeErrorRate against policy.storeErrors.abortIf, over the window and the checkpoint period */
  storeChecks: JudgedCheck[];
  checkpoints: CheckpointRecord[];
  /** Render logs since the deploy, as of this step (absent without a log source) */
  logs?: StepLogs;
  /** the platform source's figures since the deploy, judged against policy.platform.rollbackIf */
  platform?: { error?: string; judgements: ObservationJudgement[] };
  /** the service's own figures and the platform's telling different stories */
  disagreements: Disagreement[];
  notes: string[];
}

/** A step's view of the logs: counts since the deploy, without lines or signatures (the result holds those once). */
export type StepLogs = Omit<LogJudgement, 'signatures' | 'excerpt' | 'readErrors' | 'repeated'> & { repeatedSignatures: number; readError?: string };

export interface AnalysisInput {
  /** the deploy under analysis; pinned from the first valid sample when absent */
  deployId?: string;
  /** the analysed Render deploy's creation time, when the canary has the Render API: older fleet figures are refused */
  deployStartedAfter?: string;
  measurements: Measurement[];
}

export interface AnalysisResult {
  deployId: string | null;
  steps: StepRecord[];
  checkpoints: CheckpointRecord[];
  /** undefined while the analysis is still running */
  decision: Decision | undefined;
  immediateChecksPassedAtSeconds: number | null;
  /** metrics still inconclusive and owed a pass before promotion */
  pending: { metric: MetricName; bound: Bound; from: string }[];
  /** the followed backfill's latest readable status (null: not followed, or never readable) */
  backfill: BackfillStatus | null;
  /** Render logs since the deploy (null: no log source) */
  logs: LogJudgement | null;
  /** the synthetic learning probe's runs so far, judged (null: no probe ran) */
  probe: ProbeJudgement | null;
  /** the latest platform reading's judgements (null: no platform source) */
  platform: { error?: string; judgements: ObservationJudgement[] } | null;
  /** every disagreement between the sources, once per kind (the first step that showed it) */
  disagreements: (Disagreement & { atSeconds: number })[];
}

interface Epoch {
  instanceId: string;
  startedAt: string;
  last: Counts;
}

export function analyze(policy: CanaryPolicy, input: AnalysisInput): AnalysisResult {
  const measurements = [...input.measurements].sort((a, b) => a.atSeconds - b.atSeconds);
  const deployId = input.deployId ?? pinDeployId(measurements);
  const epochs: Epoch[] = [];
  /** instanceId|startedAt -> index in epochs of its current counter epoch */
  const currentEpoch = new Map<string, number>();
  const steps: StepRecord[] = [];
  const checkpointRecords: CheckpointRecord[] = [];
  let pending = new Map<MetricName, { bound: Bound; from: string }>();
  let nextCheckpoint = 0;
  let periodStart = { atSeconds: 0, counts: zeroCounts() };
  let consecutiveErrors = 0;
  let consecutiveDown = 0;
  let anyValid = false;
  /** Whether the service has answered well once: until then "down" may be a wrong URL, not a regression. */
  let seenHealthy = false;
  let fleetMode = false;
  let immediatePassedAt: number | null = null;
  let decision: Decision | undefined;
  let backfill: BackfillStatus | null = null;
  const logReadings: LogReading[] = [];
  let logs: LogJudgement | null = null;
  const probeRuns: ProbeRun[] = [];
  let platform: { error?: string; judgements: ObservationJudgement[] } | null = null;
  const disagreements: (Disagreement & { atSeconds: number })[] = [];

  for (const measurement of measurements) {
    if (decision) break;
    const index = steps.length;
    const minute = measurement.atSeconds / 60;
    const decide = (kind: DecisionKind, trigger: DecisionTrigger, reason: string) => {
      decision = { kind, trigger, reason, atSeconds: measurement.atSeconds, stepIndex: index };
    };

    const classified = measurement.samples.map((probe) => classifySample(probe, deployId, input.deployStartedAfter));
    const valid = classified.flatMap((s) => (s.ok ? [s.metrics] : []));
    const sampleProblems = classified.flatMap((s) => (s.ok ? [] : [{ problem: s.problem, detail: s.detail }]));
    const health = classifyHealth(measurement.health);
    const config = classifyConfig(measurement.config);
    if (measurement.backfill) {
      const status = classifyBackfill(measurement.backfill);
      // An unreadable status is a measurement problem, never a verdict: keep the last one that was read.
      if (status.state !== 'unreadable' || backfill === null) backfill = status;
    }
    if (valid.length > 0 || health.state === 'available' || health.state === 'unavailable' || config.ok) seenHealthy = true;
    const inForce = policy.checkpoints[Math.min(nextCheckpoint, policy.checkpoints.length - 1)]!;
    const step: StepRecord = {
      index,
      atSeconds: measurement.atSeconds,
      status: valid.length > 0 ? 'measured' : 'measurement_error',
      instances: [...new Set(valid.map((m) => (m.scope === 'fleet' ? `fleet(${(m.instancesSeen ?? [m.instanceId]).join('+')})` : m.instanceId)))],
      sampleProblems,
      consecutiveErrors: 0,
      health: health.state,
      healthDetail: health.detail,
      configDetail: config.detail,
      window: { valid: false, counts: null, values: null },
      period: { sinceSeconds: periodStart.atSeconds, counts: zeroCounts() },
      cumulative: { counts: sumEpochs(epochs), values: metricValues(sumEpochs(epochs)) },
      activeCheckpoint: inForce.name,
      thresholds: inForce.rollbackIf,
      breachChecks: [],
      storeChecks: [],
      checkpoints: [],
      disagreements: [],
      notes: [],
    };
    steps.push(step);

    // Second sources, read once per measurement: Render's logs and platform metrics, counts since the deploy.
    if (measurement.probe) probeRuns.push(measurement.probe);
    if (measurement.logs) {
      logReadings.push(measurement.logs);
      logs = judgeLogs(policy, logReadings);
      const { signatures: _s, excerpt: _e, readErrors: _r, repeated, ...counts } = logs;
      step.logs = { ...counts, repeatedSignatures: repeated.length, ...(measurement.logs.error ? { readError: measurement.logs.error } : {}) };
      if (measurement.logs.error) step.notes.push(`Render logs unreadable (${measurement.logs.error}): not judged this time`);
    }
    const platformReading = measurement.sources?.find((r: SourceReading) => r.source === RENDER_PLATFORM_SOURCE);
    if (platformReading) {
      if (platformReading.error) {
        step.platform = { error: platformReading.error, judgements: [] };
        step.notes.push(`Render platform metrics unreadable (${platformReading.error}): not judged this time`);
      } else {
        step.platform = { judgements: judgePlatformReading(platformReading, policy) };
        platform = step.platform;
      }
    }
    /** A breach the second sources show: judged after the store (a store outage is not the flag's fault). */
    const secondSourceBreach = (): [DecisionTrigger, string] | undefined => {
      const failed = step.platform?.judgements.find((j) => j.verdict === 'fail');
      if (step.logs?.breach && !step.logs.readError) return ['logs', step.logs.breach.reason];
      if (failed) return ['platform', `Render platform ${failed.name} breached policy.platform.rollbackIf: ${failed.reason}`];
      return undefined;
    };

    if (valid.length === 0) {
      // A measurement error is not a breach: hold, unless health says the whole service is down.
      consecutiveErrors++;
      consecutiveDown = health.state === 'down' ? consecutiveDown + 1 : 0;
      step.consecutiveErrors = consecutiveErrors;
      const what = sampleProblems[0] ? `${sampleProblems[0].problem}: ${sampleProblems[0].detail}` : 'no samples';
      step.notes.push(`metrics unreadable (${what}); health ${health.detail}`);
      step.period.counts = subtractCounts(step.cumulative.counts, periodStart.counts);
      if (consecutiveDown >= policy.measurement.serviceDownAfterConsecutive && !seenHealthy) {
        // Never seen answering: a mistyped URL or a deploy that never came up. Rolling back would act on a
        // service this run has no evidence about, so abort and change nothing.
        decide('abort', 'never_reached', `cannot reach the service: no answer since the analysis started (${health.detail}); nothing was changed`);
      } else if (consecutiveDown >= policy.measurement.serviceDownAfterConsecutive) {
        decide('rollback', 'service_down', `service down: metrics and health both failing for ${consecutiveDown} measurements (${health.detail})`);
      } else if (secondSourceBreach()) {
        // The service cannot report on itself (a crash loop, say), but Render can.
        const [trigger, reason] = secondSourceBreach()!;
        decide('rollback', trigger, `${reason} (the service's own metrics unreadable: ${what})`);
      } else if (consecutiveErrors > policy.measurement.maxConsecutiveErrors) {
        decide('abort', 'measurement_errors', `metrics unreadable for ${consecutiveErrors} measurements in a row (limit ${policy.measurement.maxConsecutiveErrors}): ${what}`);
      } else {
        step.notes.push(`holding (${consecutiveErrors}/${policy.measurement.maxConsecutiveErrors} consecutive measurement errors)`);
      }
      continue;
    }
    // Fleet-wide payloads (summed by the service across instances) are used alone: adding
    // per-instance figures to them would count the same calls twice.
    const fleet = valid.filter((m) => m.scope === 'fleet');
    const resets: string[] = [];
    let used = valid;
    let switchedToFleet = false;
    if (fleet.length > 0) {
      used = fleet;
      if (!fleetMode && anyValid) {
        epochs.length = 0;
        currentEpoch.clear();
        resets.push('switched to fleet-wide figures');
        switchedToFleet = true;
      }
      fleetMode = true;
    } else if (fleetMode) {
      used = [];
      step.sampleProblems.push({ problem: 'instance_scope', detail: 'only per-instance figures while judging fleet-wide ones (fleet store unavailable?)' });
    }
    if (used.length === 0) {
      consecutiveErrors++;
      step.status = 'measurement_error';
      step.consecutiveErrors = consecutiveErrors;
      step.notes.push('no fleet-wide figures in this measurement: holding');
      if (consecutiveErrors > policy.measurement.maxConsecutiveErrors) {
        decide('abort', 'measurement_errors', `no usable figures for ${consecutiveErrors} measurements in a row (limit ${policy.measurement.maxConsecutiveErrors})`);
      }
      continue;
    }
    consecutiveErrors = 0;
    consecutiveDown = 0;

    // Counters: one epoch per process lifetime; a new process or a counter going down starts a new one.
    // Fleet totals stay monotonic across restarts, so the fleet keeps one epoch however its start moves.
    const latest = new Map<string, MemoryMetrics>();
    for (const metrics of used) latest.set(metrics.scope === 'fleet' ? 'fleet' : `${metrics.instanceId}|${metrics.startedAt}`, metrics);
    let windowCounts = zeroCounts();
    for (const [identity, metrics] of latest) {
      const epochIndex = currentEpoch.get(identity);
      const epoch = epochIndex === undefined ? undefined : epochs[epochIndex];
      if (!epoch) {
        if (anyValid && !switchedToFleet) {
          const restarted = epochs.some((e) => e.instanceId === metrics.instanceId);
          resets.push(restarted ? `instance ${metrics.instanceId} restarted (new startedAt)` : `new instance ${metrics.instanceId}`);
        }
        currentEpoch.set(identity, epochs.push({ instanceId: metrics.instanceId, startedAt: metrics.startedAt, last: metrics.totals }) - 1);
        windowCounts = addCounts(windowCounts, metrics.totals);
        continue;
      }
      const decreased = decreasedCounter(epoch.last, metrics.totals);
      if (decreased) {
        resets.push(`counter ${decreased} went down on instance ${metrics.instanceId}`);
        currentEpoch.set(identity, epochs.push({ instanceId: metrics.instanceId, startedAt: metrics.startedAt, last: metrics.totals }) - 1);
        continue;
      }
      if (identity === 'fleet' && metrics.startedAt !== epoch.startedAt) {
        resets.push(`fleet counter epoch moved from ${epoch.startedAt} to ${metrics.startedAt}`);
        epoch.startedAt = metrics.startedAt;
      }
      windowCounts = addCounts(windowCounts, subtractCounts(metrics.totals, epoch.last));
      epoch.last = metrics.totals;
    }
    anyValid = true;
    const cumulative = sumEpochs(epochs);
    step.cumulative = { counts: cumulative, values: metricValues(cumulative) };
    step.window =
      resets.length === 0
        ? { valid: true, counts: windowCounts, values: metricValues(windowCounts) }
        : { valid: false, invalidReason: `reset: ${resets.join('; ')}`, counts: null, values: null };
    if (resets.length > 0) step.notes.push(`window invalid, not failed: ${resets.join('; ')}`);
    // Fleet totals replace the per-instance ones: the checkpoint period restarts from them.
    if (switchedToFleet) periodStart = { atSeconds: measurement.atSeconds, counts: cumulative };
    step.period = { sinceSeconds: periodStart.atSeconds, counts: subtractCounts(cumulative, periodStart.counts) };

    // Immediate checks: every endpoint answers 200 and Context7 is available, within the first minutes.
    if (immediatePassedAt === null && minute <= policy.immediateChecks.withinMinutes) {
      // Metrics answered (this branch only runs with a valid sample); the others as the policy lists them.
      const required = new Set<string>(policy.immediateChecks.endpoints);
      const answered = !required.has('/api/memory/health') || health.state === 'available' || health.state === 'unavailable';
      const configOk = !required.has('/api/config') || config.ok;
      const available = health.state === 'available' && config.context7Available === true && config.enabled === true;
      // "No startup errors in logs", when the logs were read (unread logs never block: a measurement problem).
      const noStartupErrors = !step.logs?.readable || step.logs.startupFailures <= policy.logs.maxStartupErrors;
      if (answered && configOk && noStartupErrors && (available || !policy.immediateChecks.requireContext7Available)) {
        immediatePassedAt = measurement.atSeconds;
        step.notes.push('immediate checks passed');
      }
    }

    // A significant breach of the thresholds in force rolls back at once.
    for (const [metric, bound] of boundsOf(inForce.rollbackIf)) {
      if (step.window.counts) step.breachChecks.push({ ...judgeMetric(metric, bound, 'breach', step.window.counts, policy), scope: 'window' });
      step.breachChecks.push({ ...judgeMetric(metric, bound, 'breach', step.period.counts, policy), scope: 'period' });
    }
    // The store failing is judged on its own bound, the same way, from the deploy to the end.
    const storeBound = policy.storeErrors.abortIf;
    if (step.window.counts) step.storeChecks.push({ ...judgeMetric('storeErrorRate', storeBound, 'breach', step.window.counts, policy), scope: 'window' });
    step.storeChecks.push({ ...judgeMetric('storeErrorRate', storeBound, 'breach', step.period.counts, policy), scope: 'period' });
    const scopeName = (check: JudgedCheck) => (check.scope === 'window' ? 'last window' : 'checkpoint period');
    const breach = step.breachChecks.find((check) => check.verdict === 'fail');
    const storeBreach = step.storeChecks.find((check) => check.verdict === 'fail');
    // Precedence: a store breach wins over a Context7 breach seen at the same poll. Rolling the flag
    // back cannot fix the store, and during a store outage Context7 may be the only path still
    // answering reads: a human decides, told about both.
    if (storeBreach) {
      const aborting = policy.storeErrors.onBreach === 'abort';
      const headline = aborting ? STORE_FAILING_MESSAGE : 'the local store is failing (policy storeErrors.onBreach: rollback)';
      const handOver = aborting ? ': roll back by hand if it persists once the store is back' : '';
      const alsoContext7 = breach ? `; Context7 breached too (${breach.metric} over the ${scopeName(breach)}: ${breach.reason})${handOver}` : '';
      decide(policy.storeErrors.onBreach, 'store_errors', `${headline}: storeErrorRate over the ${scopeName(storeBreach)}: ${storeBreach.reason}${alsoContext7}`);
      continue;
    }
    step.disagreements = findDisagreements({ health: health.state, breachChecks: step.breachChecks, platform: step.platform?.judgements ?? [] });
    for (const found of step.disagreements) {
      if (!disagreements.some((d) => d.kind === found.kind)) disagreements.push({ ...found, atSeconds: measurement.atSeconds });
      step.notes.push(`sources disagree: ${found.detail}`);
    }
    if (breach) {
      decide('rollback', 'breach', `${breach.metric} breached ${inForce.name} threshold over the ${scopeName(breach)}: ${breach.reason}`);
      continue;
    }
    const sourceBreach = secondSourceBreach();
    if (sourceBreach) {
      const [trigger, reason] = sourceBreach;
      const early = trigger === 'logs' && step.logs?.breach?.check === 'startup_errors' && immediatePassedAt === null;
      decide('rollback', early ? 'immediate_checks' : trigger, early ? `immediate check "No startup errors in logs" failed: ${reason}` : reason);
      continue;
    }

    // Checkpoints due by now, judged on the counts since the deploy; inconclusive carries over.
    while (nextCheckpoint < policy.checkpoints.length && minute >= policy.checkpoints[nextCheckpoint]!.atMinute) {
      const checkpoint = policy.checkpoints[nextCheckpoint]!;
      const record = judgeCheckpoint(policy, checkpoint, cumulative, pending, measurement.atSeconds);
      step.checkpoints.push(record);
      checkpointRecords.push(record);
      pending = new Map(record.judgements.filter((j) => j.verdict === 'inconclusive').map((j) => [j.metric, { bound: j.bound, from: j.carriedFrom ?? checkpoint.name }]));
      nextCheckpoint++;
      periodStart = { atSeconds: measurement.atSeconds, counts: cumulative };
      if (record.outcome === 'fail') {
        const failed = record.judgements.filter((j) => j.verdict === 'fail');
        decide('rollback', 'checkpoint', `${checkpoint.name} failed: ${failed.map((j) => `${j.metric} ${j.reason}`).join('; ')}`);
        break;
      }
    }
    if (decision) continue;

    if (immediatePassedAt === null && minute >= policy.immediateChecks.withinMinutes) {
      decide('rollback', 'immediate_checks', `immediate checks not passed within ${policy.immediateChecks.withinMinutes} minutes: health ${health.detail}; config ${config.detail}`);
      continue;
    }

    if (minute >= policy.durationMinutes) {
      const record = judgeEnd(policy, cumulative, pending, health.state, measurement.atSeconds, backfill, logs, probeRuns.length ? judgeProbe(policy.probe, policy.confidence, probeRuns) : null);
      step.checkpoints.push(record);
      checkpointRecords.push(record);
      pending = new Map(record.judgements.filter((j) => j.verdict === 'inconclusive').map((j) => [j.metric, { bound: j.bound, from: j.carriedFrom ?? 'success criteria' }]));
      const summary =
        record.judgements.map((j) => `${j.metric} ${j.verdict}`).join(', ') +
        (record.health ? `, health ${record.health.verdict}` : '') +
        (record.backfill ? `, backfill ${record.backfill.verdict.replace('_', ' ')} (${record.backfill.reason})` : '') +
        (record.logsClean ? `, Render logs clean ${record.logsClean.verdict}${record.logsClean.verdict === 'pass' ? '' : ` (${record.logsClean.reason})`}` : '') +
        (record.probe ? `, learning probe ${record.probe.verdict.replace('_', ' ')}` : '');
      if (record.outcome === 'pass') decide('promote', 'end', `all success criteria pass at minute ${policy.durationMinutes}: ${summary}`);
      else if (record.outcome === 'fail') decide(policy.onFailAtEnd, 'end', `success criteria failed: ${summary}`);
      else decide(policy.onInconclusiveAtEnd, 'end', `still inconclusive at minute ${policy.durationMinutes} (policy: ${policy.onInconclusiveAtEnd}): ${summary}`);
    }
  }

  return {
    deployId: deployId ?? null,
    steps,
    checkpoints: checkpointRecords,
    decision,
    immediateChecksPassedAtSeconds: immediatePassedAt,
    pending: [...pending].map(([metric, p]) => ({ metric, bound: p.bound, from: p.from })),
    backfill,
    logs,
    probe: probeRuns.length ? judgeProbe(policy.probe, policy.confidence, probeRuns) : null,
    platform,
    disagreements,
  };
}

/**
 * "Backfill completes without fatal errors" and "Sync errors < 5% of total", on what the backfill did so far. A
 * fatal failure or an error rate significantly above the bound fails; anything it cannot yet tell (too few
 * items, an interval straddling the bound, no job, an interrupted job the fleet will resume) is reported and
 * does not block promotion ("Do not wait for completion").
 */
export function judgeBackfill(policy: CanaryPolicy, status: BackfillStatus): BackfillJudgement {
  const { maxErrorRate, minimumItems } = policy.backfill;
  const bound = `${(maxErrorRate * 100).toFixed(1)}%`;
  if (status.state === 'failed') return { verdict: 'fail', reason: `the backfill failed: ${status.detail}`, status };
  if (status.state === 'none' || status.state === 'unreadable') return { verdict: 'not_judged', reason: status.detail, status };
  const items = status.synced + status.errors;
  const rate = items > 0 ? status.errors / items : 0;
  const shown = `${(rate * 100).toFixed(1)}% sync errors (${status.errors} of ${items})`;
  if (items < minimumItems) return { verdict: 'not_judged', reason: `${shown}: fewer than ${minimumItems} items to judge`, status };
  const interval = wilsonInterval(status.errors, items, policy.confidence);
  if (interval.lower > maxErrorRate) return { verdict: 'fail', reason: `${shown}, significantly above ${bound}`, status };
  if (interval.upper <= maxErrorRate) return { verdict: 'pass', reason: `${shown}, below ${bound}${status.state === 'running' ? ' so far (still running)' : ''}`, status };
  return { verdict: 'not_judged', reason: `${shown}: too close to ${bound} to tell`, status };
}

function judgeCheckpoint(
  policy: CanaryPolicy,
  checkpoint: Checkpoint,
  cumulative: Counts,
  pending: Map<MetricName, { bound: Bound; from: string }>,
  atSeconds: number,
): CheckpointRecord {
  const judgements: JudgedCheck[] = boundsOf(checkpoint.rollbackIf).map(([metric, bound]) => ({
    ...judgeMetric(metric, bound, 'breach', cumulative, policy),
    scope: 'cumulative',
  }));
  for (const [metric, carried] of pending) {
    // A metric this checkpoint judges again is settled by the newer judgement.
    if (checkpoint.rollbackIf[metric]) continue;
    judgements.push({ ...judgeMetric(metric, carried.bound, 'breach', cumulative, policy), scope: 'cumulative', carriedFrom: carried.from });
  }
  return { name: checkpoint.name, atMinute: checkpoint.atMinute, judgedAtSeconds: atSeconds, judgements, outcome: combine(judgements.map((j) => j.verdict)) };
}

function judgeEnd(
  policy: CanaryPolicy,
  cumulative: Counts,
  pending: Map<MetricName, { bound: Bound; from: string }>,
  health: HealthState,
  atSeconds: number,
  backfill: BackfillStatus | null,
  logs: LogJudgement | null,
  probe: ProbeJudgement | null,
): CheckpointRecord {
  const criteria = policy.successCriteria;
  const judgements: JudgedCheck[] = boundsOf(criteria.require).map(([metric, bound]) => ({
    ...judgeMetric(metric, bound, 'require', cumulative, policy),
    scope: 'cumulative',
  }));
  for (const [metric, carried] of pending) {
    if (criteria.require[metric]) continue;
    judgements.push({ ...judgeMetric(metric, carried.bound, 'breach', cumulative, policy), scope: 'cumulative', carriedFrom: carried.from });
  }
  const verdicts = judgements.map((j) => j.verdict);
  let healthVerdict: CheckpointRecord['health'];
  if (criteria.requireHealthAvailable) {
    const verdict: Verdict = health === 'available' ? 'pass' : health === 'unavailable' ? 'fail' : 'inconclusive';
    healthVerdict = { verdict, state: health };
    verdicts.push(verdict);
  }
  const backfillVerdict = backfill ? judgeBackfill(policy, backfill) : undefined;
  if (backfillVerdict?.verdict === 'fail') verdicts.push('fail');
  const logsClean = logs
    ? {
        verdict: logs.clean,
        reason: !logs.readable
          ? 'the logs could not be read: not judged'
          : logs.repeated.length
            ? `repeated errors: ${logs.repeated.map((r) => `${r.count}x "${r.signature.slice(0, 100)}"`).join('; ')}`
            : logs.breach
              ? logs.breach.reason
              : 'no repeated errors',
      }
    : undefined;
  if (logsClean?.verdict === 'fail') verdicts.push('fail');
  // Like the backfill: a probe that could not run or is still inconclusive is reported, and does not block.
  if (probe?.verdict === 'fail') verdicts.push('fail');
  return {
    name: 'success criteria',
    atMinute: criteria.atMinute,
    judgedAtSeconds: atSeconds,
    judgements,
    outcome: combine(verdicts),
    ...(healthVerdict ? { health: healthVerdict } : {}),
    ...(backfillVerdict ? { backfill: backfillVerdict } : {}),
    ...(logsClean ? { logsClean } : {}),
    ...(probe ? { probe } : {}),
  };
}

function combine(verdicts: Verdict[]): Verdict {
  if (verdicts.includes('fail')) return 'fail';
  if (verdicts.includes('inconclusive')) return 'inconclusive';
  return 'pass';
}

function boundsOf(bounds: Partial<Record<MetricName, Bound>>): [MetricName, Bound][] {
  return METRIC_NAMES.flatMap((metric) => (bounds[metric] ? [[metric, bounds[metric]] as [MetricName, Bound]] : []));
}

function sumEpochs(epochs: Epoch[]): Counts {
  return epochs.reduce((sum, epoch) => addCounts(sum, epoch.last), zeroCounts());
}

/** Without an explicit deploy, the first sample that passes the contract names it. */
function pinDeployId(measurements: Measurement[]): string | undefined {
  for (const measurement of measurements) {
    for (const probe of measurement.samples) {
      const sample = classifySample(probe, undefined);
      if (sample.ok) return sample.metrics.deployId;
    }
  }
  return undefined;
}
