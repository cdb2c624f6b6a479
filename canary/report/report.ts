/**
 * report.json: every poll (raw), every judgement, every action, and the summary infra's
 * production guard reads. `canary replay --timeline report.json` judges it again.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jsonIndentedTo } from '../actions/atomic-write';
import { judgeBackfill, type AnalysisResult, type BackfillJudgement } from '../analysis';
import { judgeMetric, type MetricJudgement } from '../analysis/judge';
import type { Measurement } from '../analysis/measurement';
import type { ActionRecord } from '../actions/state-file';
import { METRIC_NAMES, type CanaryPolicy } from '../policy';
import { canaryReportSummarySchema, type CanaryOutcome, type CanaryReportSummary } from '../report-summary';
import type { RollbackDuration } from '../actions/rollback-timing';
import { renderHtmlReport } from './html';
import { needsIncidentRecord, renderIncident } from './incident';
import { renderSignoff } from './signoff';
import { secondSourcesSummary, type SecondSourcesSummary } from './second-sources';
import { probeSummary, type ProbeSummary } from './probe';
import { syntheticSummary, type SyntheticPlanFacts, type SyntheticSummary } from './synthetic';
import type { ChecklistEntry } from './checklist';
import type { RenderPlatform } from '../../render/platform';

export interface CanaryReport {
  summary: CanaryReportSummary;
  /** measured against Render or an emulator (render/platform.ts): every format says it near the top */
  measuredOn: RenderPlatform;
  dryRun: boolean;
  baseUrl: string;
  operator: string;
  /** policy seconds per real second */
  timeScale: number;
  policy: CanaryPolicy;
  decision: AnalysisResult['decision'] | null;
  measurements: Measurement[];
  steps: AnalysisResult['steps'];
  checkpoints: AnalysisResult['checkpoints'];
  /** the runbook's 30-day success profile against the counts since the deploy: informational only */
  thirtyDayProfile: MetricJudgement[];
  /** the local store, judged apart from Context7: counts since the deploy and whether it breached */
  storeErrors: StoreErrorSummary;
  actions: ActionRecord[];
  /** decision to verified rollback, against the runbook's 5 minutes (null without a rollback) */
  rollbackDuration: RollbackDuration | null;
  /** the followed backfill's last status and its judgement (null when the canary did not follow one) */
  backfill: BackfillJudgement | null;
  /** Render logs, Render's platform metrics beside the service's own, and where the two sources disagree */
  secondSources: SecondSourcesSummary;
  /** the synthetic learning probe (Step 5): runs, failures by kind, the two criteria, the last result (null: none ran) */
  probe: ProbeSummary | null;
  /** the canary's own synthetic traffic (staging) and its share of the judged reads (null: none ran) */
  syntheticTraffic: SyntheticSummary | null;
  /** the runbook's human checkboxes, as the workflow's inputs recorded them (null: not run from the workflow) */
  checklist: ChecklistEntry[] | null;
}

export interface StoreErrorSummary {
  /** store-bound requests and those the store failed, since the deploy (null: nothing measured) */
  requests: number | null;
  errors: number | null;
  rate: number | null;
  bound: CanaryPolicy['storeErrors']['abortIf'];
  onBreach: CanaryPolicy['storeErrors']['onBreach'];
  /** the first significant breach, if the store ever breached (it decides the run) */
  breach: { atSeconds: number; scope: string; reason: string } | null;
}

/** What every canary report says of its run, whichever canary ran it. */
export interface RunFacts {
  stack: 'staging' | 'production';
  serviceId: string | null;
  outcome: CanaryOutcome;
  startedAt: string;
  finishedAt: string;
  /** the Render API the run talked to, or an emulator, or none (the caller knows: render/platform.ts) */
  measuredOn: RenderPlatform;
  dryRun: boolean;
  baseUrl: string;
  operator: string;
  timeScale: number;
  policy: CanaryPolicy;
  /** who confirmed the runbook's human checkboxes (the workflow's inputs); absent outside the workflow */
  checklist?: ChecklistEntry[];
}

export function runFacts(
  run: Pick<RunFacts, 'stack' | 'serviceId' | 'measuredOn' | 'dryRun' | 'baseUrl' | 'operator' | 'timeScale' | 'policy' | 'checklist'>,
  state: { startedAt: string },
  outcome: CanaryOutcome,
  finishedAt: string,
): RunFacts {
  const { stack, serviceId, measuredOn, dryRun, baseUrl, operator, timeScale, policy, checklist } = run;
  return { stack, serviceId, outcome, startedAt: state.startedAt, finishedAt, measuredOn, dryRun, baseUrl, operator, timeScale, policy, ...(checklist ? { checklist } : {}) };
}

export interface ReportInput extends RunFacts {
  measurements: Measurement[];
  result: AnalysisResult;
  actions: ActionRecord[];
  rollbackDuration?: RollbackDuration | null;
  /** what the run's synthetic traffic planned, when it drove any */
  synthetic?: SyntheticPlanFacts;
}

export function buildReport(input: ReportInput): CanaryReport {
  const summary = canaryReportSummarySchema.parse({
    schemaVersion: 1,
    stack: input.stack,
    deployId: input.result.deployId ?? 'unknown',
    serviceId: input.serviceId,
    outcome: input.outcome,
    startedAt: input.startedAt,
    finishedAt: input.finishedAt,
    measuredOnKind: input.measuredOn.kind,
  });
  return {
    summary,
    measuredOn: input.measuredOn,
    dryRun: input.dryRun,
    baseUrl: input.baseUrl,
    operator: input.operator,
    timeScale: input.timeScale,
    policy: input.policy,
    decision: input.result.decision ?? null,
    measurements: input.measurements,
    steps: input.result.steps,
    checkpoints: input.result.checkpoints,
    thirtyDayProfile: thirtyDayProfile(input.policy, input.result),
    storeErrors: storeErrorSummary(input.policy, input.result),
    actions: input.actions,
    rollbackDuration: input.rollbackDuration ?? null,
    // The end's own judgement when the analysis got there; otherwise what the backfill had done by the decision.
    backfill: input.result.checkpoints.at(-1)?.backfill ?? (input.result.backfill ? judgeBackfill(input.policy, input.result.backfill) : null),
    secondSources: secondSourcesSummary(input.result),
    probe: probeSummary(input.policy, input.result),
    syntheticTraffic: syntheticSummary(input.synthetic, input.measurements, input.result),
    checklist: input.checklist ?? null,
  };
}

function storeErrorSummary(policy: CanaryPolicy, result: AnalysisResult): StoreErrorSummary {
  const last = [...result.steps].reverse().find((s) => s.status === 'measured');
  const counts = last?.cumulative.counts;
  const breachStep = result.steps.find((s) => s.storeChecks.some((c) => c.verdict === 'fail'));
  const breach = breachStep?.storeChecks.find((c) => c.verdict === 'fail');
  return {
    requests: counts ? counts.storeRequests : null,
    errors: counts ? counts.storeErrors : null,
    rate: last ? last.cumulative.values.storeErrorRate : null,
    bound: policy.storeErrors.abortIf,
    onBreach: policy.storeErrors.onBreach,
    breach: breachStep && breach ? { atSeconds: breachStep.atSeconds, scope: breach.scope, reason: breach.reason } : null,
  };
}

function thirtyDayProfile(policy: CanaryPolicy, result: AnalysisResult): MetricJudgement[] {
  const last = [...result.steps].reverse().find((s) => s.status === 'measured');
  if (!last) return [];
  return METRIC_NAMES.flatMap((metric) => {
    const bound = policy.thirtyDayProfile[metric];
    return bound ? [judgeMetric(metric, bound, 'require', last.cumulative.counts, policy)] : [];
  });
}

/** Writes report.json, signoff.md, report.html and, after a rollback, incident.md into `dir`; returns their paths. */
export function writeReports(dir: string, report: CanaryReport): { json: string; signoff: string; html: string; incident?: string } {
  mkdirSync(dir, { recursive: true });
  const paths: { json: string; signoff: string; html: string; incident?: string } = {
    json: join(dir, 'report.json'),
    signoff: join(dir, 'signoff.md'),
    html: join(dir, 'report.html'),
  };
  writeFileSync(paths.json, jsonIndentedTo(report, 3) + '\n');
  writeFileSync(paths.signoff, renderSignoff(report));
  writeFileSync(paths.html, renderHtmlReport(report));
  if (needsIncidentRecord(report)) {
    paths.incident = join(dir, 'incident.md');
    writeFileSync(paths.incident, renderIncident(report));
  }
  return paths;
}
