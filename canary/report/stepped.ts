/**
 * The stepped canary's reports (progressive exposure): report.json, signoff.md and report.html with each step's
 * cohorts side by side over the step's window, each comparison's test, p-value and alpha, exposure over time, and
 * the kill-switch and durable rollback times. The `summary` is the same contract infra reads
 * (canary/report-summary.ts), with `exposureReachedPercent`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Measurement } from '../analysis/measurement';
import { describeRollbackSteps } from '../actions/rollback-steps';
import { describeRollbackDuration, formatDuration, type RollbackDuration } from '../actions/rollback-timing';
import type { ActionRecord, CanaryState, ExposureChangeRecord } from '../actions/state-file';
import type { CanaryPolicy } from '../policy';
import { canaryReportSummarySchema, type CanaryOutcome, type CanaryReportSummary } from '../report-summary';
import type { CohortFigures } from '../../service/contracts/http';
import { diffFigures } from '../exposure/observe';
import type { RunFacts } from './report';
import { checklistIssues, checklistSignoffLines, type ChecklistEntry } from './checklist';
import { probeIssues, probeSignoffLines, type ProbeSummary } from './probe';
import { judgeProbe } from '../probe/judge-probe';
import type { AbCohort, AbFigure, AbResults, CohortComparison, CohortObservation, StepDecision } from '../exposure/types';
import { escalationAndPostmortem } from './incident';
import { escapeMarkdown as md } from './markdown';
import { renderSteppedHtml } from './stepped-html';
import type { RenderPlatform } from '../../render/platform';
import { jsonIndentedTo } from '../actions/atomic-write';
import { measuredOnIncidentLine, measuredOnSignoffLine } from './measured-on';

export interface SteppedStepReport {
  index: number;
  percent: number;
  /** policy seconds when the step's observation began (null: never reached) */
  startedAtSeconds: number | null;
  /** index into measurements of the step's first measurement (null: never reached): what replay judges it with */
  fromMeasurement?: number | null;
  /** the runtime change that set it: requested, applied on every instance, seconds */
  change: ExposureChangeRecord | null;
  looks: number;
  /** the step's last decision (its comparisons are the ones reported) */
  lastDecision: StepDecision | null;
  /** the cohorts over the step's window (its first to its last observation), side by side */
  cohorts: { fromSeconds: number; toSeconds: number; treatment: CohortFigures; control: CohortFigures } | null;
}

export interface ExposurePoint {
  atSeconds: number;
  /** what the fleet reported applying at that poll (lowest percentage of any instance) */
  appliedPercent: number;
}

export interface SteppedReport {
  summary: CanaryReportSummary;
  kind: 'stepped';
  /** measured against Render or an emulator (render/platform.ts): every format says it near the top */
  measuredOn: RenderPlatform;
  dryRun: boolean;
  baseUrl: string;
  operator: string;
  timeScale: number;
  policy: CanaryPolicy;
  decision: CanaryState['decision'] | null;
  steps: SteppedStepReport[];
  exposureOverTime: ExposurePoint[];
  /** policy seconds of each exposure change the canary requested, and the percentage */
  exposureChanges: { atSeconds: number; percent: number; appliedSeconds: number | null; kind: 'step' | 'kill-switch' }[];
  killSwitch: { requestedAt: string; appliedAt: string | null; secondsFromDecision: number | null; secondsFromRequest: number | null; instances: string[]; failed: string | null } | null;
  /** decision to the durable rollback verified (flag off, redeploy, latch, verify), against the runbook's 5 minutes */
  rollbackDuration: RollbackDuration | null;
  actions: ActionRecord[];
  measurements: Measurement[];
  /**
   * The learning probe's runs (runbook Step 5), judged as the whole-flag canary judges them. Reported only: the
   * stepped canary's decision does not use them (its rules are analyzeStep's). Null: no probe ran.
   */
  probe: ProbeSummary | null;
  /** the runbook's human checkboxes, as the workflow's inputs recorded them (null: not run from the workflow) */
  checklist: ChecklistEntry[] | null;
}

/** The run's facts as the whole-flag report takes them, and the stepped canary's own state. */
export interface SteppedReportInput extends RunFacts {
  state: CanaryState;
  /** the step's cohort observations from measurement index `from` on (the controller's own reading) */
  observationsOf: (from: number) => CohortObservation[];
  rollbackDuration: RollbackDuration | null;
  killSwitchSeconds: number | null;
}

export function buildSteppedReport(input: SteppedReportInput): SteppedReport {
  const { state } = input;
  const stepped = state.stepped!;
  const policySecondsAt = (at: string) => ((Date.parse(at) - state.startedAtMs) / 1000) * input.timeScale;
  const summary = canaryReportSummarySchema.parse({
    schemaVersion: 1,
    stack: input.stack,
    deployId: state.deployId ?? 'unknown',
    serviceId: input.serviceId,
    outcome: input.outcome,
    startedAt: input.startedAt,
    finishedAt: input.finishedAt,
    exposureReachedPercent: stepped.exposureReachedPercent,
    measuredOnKind: input.measuredOn.kind,
  });
  const steps = stepped.steps.map((step, index): SteppedStepReport => {
    const observations = step.fromMeasurement === undefined ? [] : stepObservations(input, index);
    const first = observations[0];
    const last = observations.at(-1);
    const treatment = first && last && last !== first ? diffFigures(last.treatment, first.treatment) : null;
    const control = first && last && last !== first ? diffFigures(last.control, first.control) : null;
    return {
      index,
      percent: step.percent,
      startedAtSeconds: step.startedAtSeconds ?? null,
      fromMeasurement: step.fromMeasurement ?? null,
      change: step.change ?? null,
      looks: step.decisions.length,
      lastDecision: (step.decisions.at(-1) as StepDecision | undefined) ?? null,
      cohorts: first && last && treatment && control ? { fromSeconds: first.atSeconds, toSeconds: last.atSeconds, treatment, control } : null,
    };
  });
  const exposureOverTime = input.observationsOf(0).map((o) => ({ atSeconds: o.atSeconds, appliedPercent: o.exposure.percent }));
  const changes: SteppedReport['exposureChanges'] = stepped.steps.flatMap((step) =>
    step.change && !step.change.failed?.startsWith('dry run')
      ? [{ atSeconds: policySecondsAt(step.change.requestedAt), percent: step.percent, appliedSeconds: step.change.seconds ?? null, kind: 'step' as const }]
      : [],
  );
  const k = stepped.killSwitch;
  if (k) changes.push({ atSeconds: policySecondsAt(k.requestedAt), percent: 0, appliedSeconds: k.seconds ?? null, kind: 'kill-switch' });
  return {
    summary,
    kind: 'stepped',
    measuredOn: input.measuredOn,
    dryRun: input.dryRun,
    baseUrl: input.baseUrl,
    operator: input.operator,
    timeScale: input.timeScale,
    policy: input.policy,
    decision: state.decision ?? null,
    steps,
    exposureOverTime,
    exposureChanges: changes,
    killSwitch: k
      ? {
          requestedAt: k.requestedAt,
          appliedAt: k.appliedAt ?? null,
          secondsFromDecision: input.killSwitchSeconds,
          secondsFromRequest: k.seconds ?? null,
          instances: k.instances ?? [],
          failed: k.failed ?? null,
        }
      : null,
    rollbackDuration: input.rollbackDuration,
    probe: steppedProbeSummary(input),
    checklist: input.checklist ?? null,
    actions: state.actions,
    measurements: state.measurements,
  };
}

function steppedProbeSummary(input: SteppedReportInput): ProbeSummary | null {
  const runs = input.state.measurements.flatMap((m) => (m.probe ? [m.probe] : []));
  if (runs.length === 0) return null;
  return { policy: input.policy.probe, ...judgeProbe(input.policy.probe, input.policy.confidence, runs) };
}

function stepObservations(input: SteppedReportInput, index: number): CohortObservation[] {
  const steps = input.state.stepped!.steps;
  const from = steps[index]!.fromMeasurement!;
  const next = steps.slice(index + 1).find((s) => s.fromMeasurement !== undefined)?.fromMeasurement;
  const all = input.observationsOf(from);
  if (next === undefined) return all;
  // Only this step's polls: the next step's begin at its own first measurement.
  const cutoff = input.state.measurements[next]?.atSeconds ?? Number.POSITIVE_INFINITY;
  return all.filter((o) => o.atSeconds < cutoff);
}

export function formatPercent(rate: number): string {
  return `${(rate * 100).toFixed(2)}%`;
}

/**
 * The test a comparison actually ran, for the reports: a two-proportion comparison is a pooled z test, or Fisher's
 * exact test when a cohort expects too few events (canary/exposure/compare.ts says which in its reason; the
 * comparison's `test` field names the family only), or none yet below the minimum sample.
 */
export function testShown(c: CohortComparison): string {
  if (c.test !== 'two-proportion') return c.test;
  if (c.reason.includes("Fisher's exact")) return "Fisher's exact (one-sided)";
  if (c.reason.includes('pooled z')) return 'two-proportion z (pooled, one-sided)';
  return 'two-proportion (not run yet)';
}

export function describeComparison(c: CohortComparison): string {
  const value = (v: number) => (c.figure === 'latency' ? `${v.toFixed(0)} ms` : formatPercent(v));
  return (
    `${c.figure}: ${c.verdict.replace('_', ' ')} (${testShown(c)}; treatment ${value(c.treatment.value)} of ${c.treatment.n}, control ${value(c.control.value)} of ${c.control.n}; ` +
    `p = ${formatP(c.pValue)} against alpha ${formatP(c.alphaThisLook)} this look)`
  );
}

/**
 * Month 1's A/B figures ("Analyze snippet effectiveness", "Review Context7 costs vs benefits") over a step's window,
 * per cohort with 95 % cluster-robust intervals: reported figures, never acted on.
 */
export function describeAbResults(ab: AbResults): string[] {
  const figure = (f: AbFigure, digits = 2) => `${f.estimate.toFixed(digits)} [${f.lower.toFixed(digits)}, ${f.upper.toFixed(digits)}]`;
  const share = (f: AbFigure) => `${(f.estimate * 100).toFixed(1)}% [${(f.lower * 100).toFixed(1)}, ${(f.upper * 100).toFixed(1)}]`;
  const cost = (c: AbCohort['costPerThousandReads']) => `${c.estimate.toFixed(3)} [${c.lower.toFixed(3)}, ${c.upper.toFixed(3)}] ${ab.currency}`;
  return [
    `A/B results (reported, never acted on; 95% intervals over scope clusters; ${ab.pricePerCall} ${ab.currency} per Context7 call):`,
    ``,
    `| figure | treatment | control |`,
    `|---|---|---|`,
    `| snippets applied per read | ${figure(ab.treatment.snippetsPerRead)} | ${figure(ab.control.snippetsPerRead)} |`,
    `| reads with >= 1 snippet | ${share(ab.treatment.readsWithSnippetShare)} | ${share(ab.control.readsWithSnippetShare)} |`,
    `| Context7 calls per read | ${figure(ab.treatment.context7CallsPerRead)} | ${figure(ab.control.context7CallsPerRead)} |`,
    `| Context7 cost per 1,000 reads | ${cost(ab.treatment.costPerThousandReads)} | ${cost(ab.control.costPerThousandReads)} |`,
    `| reads (clusters) | ${ab.treatment.snippetsPerRead.reads} (${ab.treatment.snippetsPerRead.clusters}) | ${ab.control.snippetsPerRead.reads} (${ab.control.snippetsPerRead.clusters}) |`,
  ];
}

export function formatP(p: number): string {
  return p < 0.0001 ? p.toExponential(1) : p.toFixed(4);
}

export function describeKillSwitch(k: SteppedReport['killSwitch']): string {
  if (!k) return 'not used';
  if (k.failed || k.secondsFromDecision === null) return `NOT confirmed on every instance (${k.failed ?? 'no time recorded'})`;
  // Seconds to the hundredth: the kill switch's point is that it takes well under a minute.
  const fromDecision = k.secondsFromDecision < 60 ? `${k.secondsFromDecision.toFixed(2)} s` : formatDuration(k.secondsFromDecision);
  return `exposure 0% on every instance (${k.instances.join(', ') || 'confirmed by repeated reads'}) ${fromDecision} after the decision (${(k.secondsFromRequest ?? 0).toFixed(2)} s after the request)`;
}

export function renderSteppedSignoff(report: SteppedReport): string {
  const { summary, decision } = report;
  const issues: string[] = [];
  if (decision && decision.kind !== 'promote') issues.push(`${decision.kind} (${decision.trigger}): ${md(decision.reason)}`);
  for (const action of report.actions.filter((a) => !a.ok)) issues.push(`${action.action} failed: ${md(action.detail)}`);
  issues.push(...probeIssues(report.probe).map(md), ...checklistIssues(report.checklist).map(md));
  if (report.dryRun) issues.push('dry run: decided only, no action taken');
  const lines = [
    `## Sign-Off`,
    ``,
    `**Rollout Completed By**: ${md(report.operator)} (stepped canary, ${summary.stack}, deploy ${md(summary.deployId)})  `,
    measuredOnSignoffLine(report.measuredOn),
    `**Date/Time**: ${summary.finishedAt}  `,
    `**Steps**: ${report.steps.map((s) => `${s.percent}%`).join(' → ')}  `,
    `**Exposure Reached**: ${summary.exposureReachedPercent ?? 0}% (the highest step judged not worse than the control)  `,
    // Older stepped reports have no probe field: nothing is shown for them.
    ...probeSignoffLines(report.probe),
    `**Issues Encountered**: ${issues.length ? issues.join('; ') : 'None'}  `,
    `**Rollback Needed**: ${decision?.kind === 'rollback' ? (report.dryRun ? 'YES, but this was a dry run: nothing was rolled back' : 'YES') : 'NO'}`,
  ];
  lines.push(...checklistSignoffLines(report.checklist));
  if (report.killSwitch) lines.push(``, `**Kill Switch Time**: ${describeKillSwitch(report.killSwitch)}`);
  const steps = describeRollbackSteps(report.actions);
  if (steps) lines.push(``, `**Rollback Steps**: ${steps}`);
  if (report.rollbackDuration) lines.push(``, `**Rollback Time** (durable: flag off, redeploy, latch, verify): ${describeRollbackDuration(report.rollbackDuration)}`);
  lines.push(``, `### Steps`, ``);
  for (const step of report.steps) {
    if (step.startedAtSeconds === null) {
      lines.push(`- **${step.percent}%**: not reached`);
      continue;
    }
    const applied = step.change?.seconds !== undefined ? `applied on every instance in ${step.change.seconds.toFixed(2)} s` : step.change?.failed ? `change: ${md(step.change.failed)}` : '';
    lines.push(`- **${step.percent}%** (from policy minute ${(step.startedAtSeconds / 60).toFixed(1)}, ${step.looks} look(s)${applied ? `, ${applied}` : ''}): ${step.lastDecision ? `${step.lastDecision.kind.toUpperCase()}: ${md(step.lastDecision.reason)}` : 'no decision'}`);
    if (step.cohorts) {
      lines.push(``, `  | figure | treatment | control |`, `  |---|---|---|`);
      for (const [label, pick] of COHORT_ROWS) lines.push(`  | ${label} | ${pick(step.cohorts.treatment, 'treatment')} | ${pick(step.cohorts.control, 'control')} |`);
      lines.push(``);
    }
    for (const c of step.lastDecision?.comparisons ?? []) lines.push(`  - ${describeComparison(c)}`);
    const last = step.lastDecision;
    if (last?.plan) lines.push(`  - plan: ${last.plan.reason}${last.plan.extendedTo ? `; extended once to ${last.plan.extendedTo}s for too little data` : ''}`);
    if (last?.plan?.covariate) lines.push(`  - ${last.plan.covariate}`);
    if (last?.sampleRatio) lines.push(`  - exposure check: ${last.sampleRatio.reason}`);
    if (last?.abResults) lines.push(``, ...describeAbResults(last.abResults).map((line) => `  ${line}`), ``);
  }
  lines.push(``, `Outcome: **${summary.outcome}**${decision ? ` at policy minute ${(decision.atSeconds / 60).toFixed(1)}` : ''}. Started ${summary.startedAt}.`, ``);
  return lines.join('\n');
}

/** The cohort figures the reports put side by side, over a step's window. */
export const COHORT_ROWS: [string, (f: CohortFigures, cohort: 'treatment' | 'control') => string][] = [
  ['requests', (f) => String(f.totals.requests)],
  ['reads', (f) => String(f.totals.reads)],
  ['5xx rate', (f) => `${formatPercent(f.serverErrorRate)} (${f.totals.serverErrors})`],
  ['fallback rate', (f) => `${formatPercent(f.fallbackRate)} (${f.totals.fallbacks})`],
  // The control's reads never call Context7 (they read the store); its Context7 calls are its learning writes, which
  // every cohort sends on. Said in the cell, so a failing Context7 beside a healthy control reads as what it is.
  [
    'Context7 error rate',
    (f, cohort) =>
      `${formatPercent(f.errorRate)} (${f.totals.context7Errors} of ${f.totals.context7Requests})` +
      (cohort === 'control' ? ': its learning writes only (its reads use the local store, and a write is acknowledged to it while Context7 fails)' : ''),
  ],
  ['mean latency', (f) => (f.totals.latencyCount ? `${(f.totals.latencyMsSum / f.totals.latencyCount).toFixed(0)} ms` : 'n/a')],
  ['p50 / p95 latency', (f) => `${f.p50LatencyMs.toFixed(0)} / ${f.p95LatencyMs.toFixed(0)} ms`],
];

/**
 * incident.md after a stepped rollback: what was exposed and for how long, the kill-switch and rollback times, the
 * timeline, the cohorts side by side at the deciding step, then the escalation path and postmortem skeleton.
 */
export function renderSteppedIncident(report: SteppedReport): string {
  const { summary, decision } = report;
  if (!decision) throw new Error('an incident record needs a decision');
  const step = report.steps[decision.stepIndex];
  const reached = Math.max(0, ...report.exposureOverTime.map((p) => p.appliedPercent));
  const lines = [
    `# Incident: Context7 memory stepped rollout rolled back at ${step?.percent ?? '?'}% (${summary.stack}, deploy ${md(summary.deployId)})`,
    '',
    `- outcome: **${summary.outcome}**`,
    measuredOnIncidentLine(report.measuredOn),
    `- decision: ${decision.kind} (${decision.trigger}) at policy minute ${(decision.atSeconds / 60).toFixed(1)}: ${md(decision.reason)}`,
    `- exposure: at most ${reached}% of scopes read from Context7 (the fleet's own report at each poll); ${100 - reached}% were never exposed`,
    `- kill switch: ${describeKillSwitch(report.killSwitch)}`,
    ...(report.rollbackDuration ? [`- durable rollback: ${describeRollbackDuration(report.rollbackDuration)}`] : []),
    `- service: ${md(report.baseUrl)}${summary.serviceId ? ` (${md(summary.serviceId)})` : ''}; canary run by ${md(report.operator)}`,
    '',
    '## Timeline (UTC)',
    '',
    '| time | event |',
    '|---|---|',
  ];
  const events = [{ at: summary.startedAt, text: 'stepped canary started' }, ...report.actions.map((a) => ({ at: a.at, text: `${a.action}${a.ok ? '' : ' (FAILED)'}: ${md(a.detail)}` }))];
  if (report.rollbackDuration) events.push({ at: report.rollbackDuration.decidedAt, text: `decision: ${decision.kind} (${decision.trigger})` });
  events.sort((a, b) => a.at.localeCompare(b.at));
  for (const event of events) lines.push(`| ${md(event.at)} | ${event.text} |`);
  lines.push('', `## Cohorts at the deciding step (${step?.percent ?? '?'}%)`, '');
  if (step?.cohorts) {
    lines.push('| figure | treatment | control |', '|---|---|---|');
    for (const [label, pick] of COHORT_ROWS) lines.push(`| ${label} | ${pick(step.cohorts.treatment, 'treatment')} | ${pick(step.cohorts.control, 'control')} |`);
    lines.push('');
  } else lines.push('No window at the deciding step (fewer than two readable polls).', '');
  for (const c of step?.lastDecision?.comparisons ?? []) lines.push(`- ${describeComparison(c)}`);
  lines.push('', ...escalationAndPostmortem(report.policy));
  return lines.join('\n');
}

export function writeSteppedReports(dir: string, report: SteppedReport): { json: string; signoff: string; html: string; incident?: string } {
  mkdirSync(dir, { recursive: true });
  const paths: { json: string; signoff: string; html: string; incident?: string } = { json: join(dir, 'report.json'), signoff: join(dir, 'signoff.md'), html: join(dir, 'report.html') };
  writeFileSync(paths.json, jsonIndentedTo(report, 3) + '\n');
  writeFileSync(paths.signoff, renderSteppedSignoff(report));
  writeFileSync(paths.html, renderSteppedHtml(report));
  if (report.decision?.kind === 'rollback' && !report.dryRun) {
    paths.incident = join(dir, 'incident.md');
    writeFileSync(paths.incident, renderSteppedIncident(report));
  }
  return paths;
}
