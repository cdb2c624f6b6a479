/** The runbook's "Sign-Off" block, filled in from a canary report. */
import { STORE_FAILING_MESSAGE } from '../analysis';
import { formatMetric } from '../policy';
import { escapeMarkdown as md } from './markdown';
import type { CanaryReport } from './report';
import { describeRollbackSteps } from '../actions/rollback-steps';
import { describeRollbackDuration } from '../actions/rollback-timing';
import { secondSourceIssues, secondSourceSignoffLines } from './second-sources';
import { probeIssues, probeSignoffLines } from './probe';
import { syntheticIssues, syntheticSignoffLines } from './synthetic';
import { checklistIssues, checklistSignoffLines } from './checklist';
import { measuredOnSignoffLine } from './measured-on';

export function renderSignoff(report: CanaryReport): string {
  const { summary, decision } = report;
  const lastMeasured = [...report.steps].reverse().find((s) => s.status === 'measured');
  const totals = lastMeasured?.cumulative.counts;
  const values = lastMeasured?.cumulative.values;
  const errorRate = values && totals ? `${formatMetric('errorRate', values.errorRate)} (${totals.context7Errors} of ${totals.context7Requests} Context7 calls)` : 'not measured';
  const fallbackRate = values && totals ? `${formatMetric('fallbackRate', values.fallbackRate)} (${totals.fallbacks} of ${totals.requests} memory reads)` : 'not measured';
  const store = report.storeErrors;
  const storeErrorRate =
    store.rate !== null
      ? `${formatMetric('storeErrorRate', store.rate)} (${store.errors} of ${store.requests} requests that needed the local store; ${store.onBreach} above ${formatMetric('storeErrorRate', store.bound.above)})`
      : 'not measured';
  const rollbackNeeded = decision?.kind === 'rollback';
  const storeFailing = decision?.trigger === 'store_errors';

  const issues: string[] = [];
  if (decision && decision.kind !== 'promote') issues.push(`${decision.kind} (${decision.trigger}): ${md(decision.reason)}`);
  const errors = report.steps.filter((s) => s.status === 'measurement_error').length;
  if (errors) issues.push(`${errors} measurement(s) with unreadable metrics`);
  const resets = report.steps.filter((s) => s.status === 'measured' && !s.window.valid).length;
  if (resets) issues.push(`${resets} counter reset(s) (restarts or new instances)`);
  const failedActions = report.actions.filter((a) => !a.ok);
  for (const action of failedActions) issues.push(`${action.action} failed: ${md(action.detail)}`);
  // Older reports (replayed) have no second sources. Their issues quote the service and Render: escaped.
  if (report.secondSources) issues.push(...secondSourceIssues(report.secondSources).map(md));
  issues.push(...probeIssues(report.probe).map(md));
  issues.push(...syntheticIssues(report.syntheticTraffic).map(md));
  issues.push(...checklistIssues(report.checklist).map(md));
  if (report.dryRun) issues.push('dry run: decided only, no action taken');

  return [
    `## Sign-Off`,
    ``,
    `**Rollout Completed By**: ${md(report.operator)} (canary, ${summary.stack}, deploy ${md(summary.deployId)})  `,
    measuredOnSignoffLine(report.measuredOn),
    `**Date/Time**: ${summary.finishedAt}  `,
    `**Final Error Rate**: ${errorRate}  `,
    `**Final Fallback Rate**: ${fallbackRate}  `,
    `**Final Store Error Rate**: ${storeErrorRate}  `,
    ...(report.secondSources ? secondSourceSignoffLines(report.secondSources) : []),
    ...probeSignoffLines(report.probe),
    ...syntheticSignoffLines(report.syntheticTraffic),
    `**Issues Encountered**: ${issues.length ? issues.join('; ') : 'None'}  `,
    `**Rollback Needed**: ${rollbackNeeded ? (report.dryRun ? 'YES, but this was a dry run: nothing was rolled back' : 'YES') : 'NO'}${storeFailing ? '  ' : ''}`,
    ...(storeFailing
      ? [
          decision.kind === 'abort'
            ? `**Store Failing**: YES: ${STORE_FAILING_MESSAGE}. The flag was left as it was; fix the store, then canary again.`
            : `**Store Failing**: YES: the policy (storeErrors.onBreach: rollback) turned the flag off anyway.`,
        ]
      : []),
    ...rollbackStepLines(report),
    ...checklistSignoffLines(report.checklist),
    ``,
    `Outcome: **${summary.outcome}**${decision ? ` at policy minute ${(decision.atSeconds / 60).toFixed(1)}` : ''}. Started ${summary.startedAt}.`,
    ``,
  ].join('\n');
}

/** The rollback's steps (flag, then code), one line, only when a rollback ran. */
function rollbackStepLines(report: CanaryReport): string[] {
  const steps = describeRollbackSteps(report.actions);
  const lines = steps ? [``, `**Rollback Steps**: ${steps}`] : [];
  if (report.rollbackDuration) lines.push(``, `**Rollback Time**: ${describeRollbackDuration(report.rollbackDuration)}`);
  if (report.backfill) {
    const verdict = report.backfill.verdict === 'not_judged' ? 'not judged' : report.backfill.verdict.toUpperCase();
    lines.push(``, `**Backfill**: ${report.backfill.status.detail}: ${verdict} (${report.backfill.reason})`);
  }
  return lines;
}
