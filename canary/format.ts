/** Plain-text views of an analysis for terminals and logs. */
import type { AnalysisResult, CheckpointRecord, Decision, StepRecord } from './analysis';
import type { MetricValues } from './analysis/counters';
import { describeBound, formatMetric, type MetricName } from './policy';
import type { CanaryOutcome } from './report-summary';

export function formatValues(values: MetricValues | null): string {
  if (!values) return 'n/a (reset)';
  return (
    `err ${formatMetric('errorRate', values.errorRate)} fb ${formatMetric('fallbackRate', values.fallbackRate)} ` +
    `hit ${formatMetric('cacheHitRate', values.cacheHitRate)} lat ${formatMetric('avgLatencyMs', values.avgLatencyMs)} calls ${values.context7Requests} ` +
    `store err ${formatMetric('storeErrorRate', values.storeErrorRate)}`
  );
}

export function formatStep(step: StepRecord): string {
  const minute = (step.atSeconds / 60).toFixed(1).padStart(5);
  if (step.status === 'measurement_error') return `${minute} min  ERROR     ${step.notes.join('; ')}`;
  const window = step.window.valid ? formatValues(step.window.values) : `window invalid (${step.window.invalidReason})`;
  const thresholds = Object.entries(step.thresholds)
    .map(([metric, bound]) => `${metric} ${describeBound(metric as MetricName, bound)}`)
    .join(', ');
  // The store's bound is in force from the deploy to the end, whatever the checkpoint.
  const storeBound = step.storeChecks[0]?.bound;
  const storeLimit = storeBound ? `; storeErrorRate ${describeBound('storeErrorRate', storeBound)}` : '';
  return `${minute} min  [${step.instances.join(',')}] window: ${window} | since deploy: ${formatValues(step.cumulative.values)} | limits (${step.activeCheckpoint}): ${thresholds}${storeLimit}`;
}

export function formatCheckpoint(record: CheckpointRecord): string {
  const lines = [`  ${record.name} (minute ${record.atMinute}, judged at ${(record.judgedAtSeconds / 60).toFixed(1)}): ${record.outcome.toUpperCase()}`];
  for (const j of record.judgements) {
    lines.push(
      `    ${j.verdict.padEnd(12)} ${j.metric} ${describeBound(j.metric, j.bound)} (${j.role === 'require' ? 'required' : 'rollback if'}): ` +
        `${formatMetric(j.metric, j.value)}, ${j.reason}${j.carriedFrom ? ` [carried from ${j.carriedFrom}]` : ''}`,
    );
  }
  if (record.health) lines.push(`    ${record.health.verdict.padEnd(12)} health ${record.health.state}`);
  return lines.join('\n');
}

export function formatAnalysis(result: AnalysisResult): string {
  const lines = [`deploy under analysis: ${result.deployId ?? '(none seen)'}`];
  for (const step of result.steps) {
    lines.push(formatStep(step));
    for (const record of step.checkpoints) lines.push(formatCheckpoint(record));
  }
  const d = result.decision;
  lines.push(d ? `DECISION: ${d.kind.toUpperCase()} at minute ${(d.atSeconds / 60).toFixed(1)} (${d.trigger}): ${d.reason}` : 'DECISION: none yet (analysis still running)');
  return lines.join('\n');
}

/**
 * Exit codes of `canary replay` and `canary run` (a replayed rollback counts as verified: nothing to
 * verify). 5 is its own code so automation can tell "the store is failing, nothing was rolled back"
 * from "the metrics were unreadable" (3).
 */
export const EXIT_CODES = { promoted: 0, signed_off: 0, rolled_back: 1, held: 2, aborted: 3, rollback_unverified: 4, aborted_store_failing: 5, would_roll_back: 6, usage: 64 } as const;

/** A live run's exit code: its outcome's name in EXIT_CODES. */
export const OUTCOME_EXIT_CODES: Record<CanaryOutcome, number> = {
  promoted: EXIT_CODES.promoted,
  signed_off: EXIT_CODES.signed_off,
  rolled_back: EXIT_CODES.rolled_back,
  held: EXIT_CODES.held,
  aborted: EXIT_CODES.aborted,
  rollback_unverified: EXIT_CODES.rollback_unverified,
  aborted_store_failing: EXIT_CODES.aborted_store_failing,
  // A dry run that would roll back did nothing: its own code, so automation never reads it as a rollback done.
  would_roll_back: EXIT_CODES.would_roll_back,
};

/** `canary replay`: the decision's code (a stepped report's too); 2 when there is none. */
export function replayExitCode(decision: { kind: Decision['kind']; trigger: string } | undefined): number {
  switch (decision?.kind) {
    case 'promote':
      return EXIT_CODES.promoted;
    case 'rollback':
      return EXIT_CODES.rolled_back;
    case 'abort':
      return decision.trigger === 'store_errors' ? EXIT_CODES.aborted_store_failing : EXIT_CODES.aborted;
    default:
      return EXIT_CODES.held;
  }
}
