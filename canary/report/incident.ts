/**
 * incident.md, written beside the report when the canary rolled back or stopped on a failing store: the
 * timeline, the figures at the decision, the escalation path and contacts from the policy, and a postmortem
 * skeleton ("Document incident for postmortem"). Pure: from the report alone.
 */
import { describeLogJudgement } from '../logs/judge-logs';
import { formatMetric, METRIC_NAMES, type Bound, type CanaryPolicy } from '../policy';
import { describeRollbackDuration } from '../actions/rollback-timing';
import { escapeMarkdown as md } from './markdown';
import type { CanaryReport } from './report';
import { measuredOnIncidentLine } from './measured-on';

/** Whether a run gets an incident record: a rollback, or a store failure that stopped the rollout. */
export function needsIncidentRecord(report: CanaryReport): boolean {
  const decision = report.decision;
  if (!decision || report.dryRun) return false;
  return decision.kind === 'rollback' || (decision.kind === 'abort' && decision.trigger === 'store_errors');
}

function exceeds(value: number, bound: Bound): boolean {
  return 'above' in bound ? value > bound.above : value < bound.below;
}

/**
 * The onset estimate: the first poll at which any metric's point value was already on the bad side of the bound
 * in force, significant or not. It is earlier than the decision, which waits for statistical confidence.
 */
export function onsetEstimate(report: CanaryReport): { atSeconds: number; metric: string; value: number } | null {
  for (const step of report.steps) {
    for (const check of [...step.breachChecks, ...(step.storeChecks ?? [])]) {
      if (Number.isFinite(check.value) && check.sample > 0 && exceeds(check.value, check.bound)) {
        return { atSeconds: step.atSeconds, metric: check.metric, value: check.value };
      }
    }
  }
  return null;
}

/** Policy seconds to wall-clock time: the analysis may run on a compressed clock (--time-scale). */
function wallClock(report: CanaryReport, atSeconds: number): string {
  return new Date(Date.parse(report.summary.startedAt) + (atSeconds / report.timeScale) * 1000).toISOString();
}

export function renderIncident(report: CanaryReport): string {
  const { summary, decision } = report;
  if (!decision) throw new Error('an incident record needs a decision');
  const onset = onsetEstimate(report);
  const decided = report.steps[decision.stepIndex];
  const lines: string[] = [];
  const what = decision.kind === 'rollback' ? 'rolled back' : 'stopped: the local store is failing';
  lines.push(`# Incident: Context7 memory rollout ${what} (${summary.stack}, deploy ${md(summary.deployId)})`, '');
  lines.push(`- outcome: **${summary.outcome}**`);
  lines.push(measuredOnIncidentLine(report.measuredOn));
  lines.push(`- decision: ${decision.kind} (${decision.trigger}) at policy minute ${(decision.atSeconds / 60).toFixed(1)}: ${md(decision.reason)}`);
  if (report.rollbackDuration) lines.push(`- ${describeRollbackDuration(report.rollbackDuration)}`);
  lines.push(`- service: ${md(report.baseUrl)}${summary.serviceId ? ` (${md(summary.serviceId)})` : ''}; canary run by ${md(report.operator)}`, '');

  lines.push('## Timeline (UTC)', '');
  const events: Array<{ at: string; text: string }> = [{ at: summary.startedAt, text: 'analysis started (the deploy was live)' }];
  if (onset) {
    events.push({
      at: wallClock(report, onset.atSeconds),
      text: `onset estimate: ${onset.metric} first on the bad side of its bound (${formatMetric(onset.metric as never, onset.value)}) at policy minute ${(onset.atSeconds / 60).toFixed(1)}`,
    });
  }
  events.push({ at: report.rollbackDuration?.decidedAt ?? wallClock(report, decision.atSeconds), text: `decision: ${decision.kind} (${decision.trigger})` });
  for (const action of report.actions) events.push({ at: action.at, text: `${action.action}${action.ok ? '' : ' (FAILED)'}: ${md(action.detail)}` });
  events.sort((a, b) => a.at.localeCompare(b.at));
  lines.push('| time | event |', '|---|---|');
  // Action details are escaped where they are added (md): the pipes left are the table's own.
  for (const event of events) lines.push(`| ${md(event.at)} | ${event.text} |`);
  lines.push('');

  lines.push('## Figures at the decision', '');
  if (decided && decided.status === 'measured') {
    lines.push('| metric | last poll window | since the deploy |', '|---|---:|---:|');
    // storeErrorRate is one of the rate metrics already: each metric once.
    for (const metric of [...new Set([...METRIC_NAMES, 'storeErrorRate' as const])]) {
      const windowValue = decided.window.values?.[metric as keyof typeof decided.window.values];
      const cumulative = decided.cumulative.values[metric as keyof typeof decided.cumulative.values];
      const show = (value: number | undefined) => (value === undefined || !Number.isFinite(value) ? 'n/a' : formatMetric(metric as never, value));
      lines.push(`| ${metric} | ${show(windowValue)} | ${show(cumulative)} |`);
    }
    lines.push('', `Instances measured: ${md(decided.instances.join(', ')) || 'none'}. Health: ${md(decided.healthDetail)}.`);
  } else {
    lines.push(`No valid figures at the decision (${decided ? md(decided.notes.join('; ')) : 'no poll'}): the service itself was not answering.`);
  }
  lines.push('');

  const logs = report.secondSources?.logs;
  if (logs) {
    lines.push('## Render logs excerpt', '');
    lines.push(describeLogJudgement(logs), '');
    if (logs.excerpt.length) {
      lines.push('```');
      // Log text is the service's, not ours: it must not close the fence.
      for (const line of logs.excerpt) lines.push(`${line.timestamp}${line.instance ? ` ${line.instance}` : ''} ${line.message.slice(0, 300).replace(/`{3,}/g, "'''")}`);
      lines.push('```', '');
    }
  }
  for (const d of report.secondSources?.disagreements ?? []) lines.push(`- sources disagree at policy minute ${(d.atSeconds / 60).toFixed(1)}: ${md(d.detail)}`);
  if (report.secondSources?.disagreements.length) lines.push('');

  lines.push(...escalationAndPostmortem(report.policy));
  return lines.join('\n');
}

/** The escalation path and contacts from the policy, and the postmortem skeleton: every incident record ends so. */
export function escalationAndPostmortem(policy: CanaryPolicy): string[] {
  const lines = ['## Escalation path (runbook)', ''];
  policy.escalation.path.forEach((step, index) => lines.push(`${index + 1}. ${step}`));
  lines.push('', '**Contacts** (`escalation.contacts` in the canary policy):', '');
  for (const [name, contact] of Object.entries(policy.escalation.contacts)) {
    lines.push(`- ${name}: ${contact.trim() === '' ? '_not configured: set it in the canary policy_' : contact}`);
  }
  lines.push('');

  lines.push('## Postmortem', '');
  for (const heading of ['Summary', 'Impact (customers, duration, data)', 'Root cause', 'What went well', 'What went wrong', 'Action items (owner, due date)']) {
    lines.push(`### ${heading}`, '', '_to be written_', '');
  }
  return lines;
}
