/**
 * The learning probe in the reports (runbook Step 5 and its two success criteria): report.json's `probe` section,
 * the sign-off's two lines and report.html's section. Older reports (replayed) have no probe: nothing is shown.
 */
import type { AnalysisResult } from '../analysis';
import type { CanaryPolicy } from '../policy';
import type { ProbeCriterion, ProbeJudgement, ProbeRun } from '../probe/judge-probe';

export interface ProbeSummary {
  policy: CanaryPolicy['probe'];
  runs: number;
  judged: number;
  notRun: number;
  failuresByKind: ProbeJudgement['failuresByKind'];
  savesToContext7: ProbeCriterion;
  attestation: ProbeCriterion;
  verdict: ProbeJudgement['verdict'];
  lastResult: ProbeRun | null;
}

/** The end's own judgement when the analysis got there; otherwise the probe's runs up to the decision. */
export function probeSummary(policy: CanaryPolicy, result: AnalysisResult): ProbeSummary | null {
  const judgement = result.checkpoints.at(-1)?.probe ?? result.probe;
  if (!judgement) return null;
  return { policy: policy.probe, ...judgement };
}

function answer(criterion: ProbeCriterion): string {
  if (criterion.verdict === 'pass') return 'YES';
  if (criterion.verdict === 'fail') return 'NO';
  return criterion.verdict === 'not_run' ? 'NOT SHOWN (the probe could not run)' : 'NOT SHOWN (inconclusive)';
}

/** "Post-call learning saves to Context7" and "Attestation shows correct source", from the runbook's criteria. */
export function probeSignoffLines(probe: ProbeSummary | null | undefined): string[] {
  if (probe === undefined) return [];
  if (probe === null) {
    return [
      `**Post-call learning saves to Context7**: NOT SHOWN (no learning probe ran: CANARY_PROBE_KEY not set)  `,
      `**Attestation shows correct source**: NOT SHOWN (no learning probe ran)  `,
    ];
  }
  return [
    `**Post-call learning saves to Context7**: ${answer(probe.savesToContext7)} (${probe.savesToContext7.reason})  `,
    `**Attestation shows correct source**: ${answer(probe.attestation)} (${probe.attestation.reason})  `,
  ];
}

/** A failing probe (or one that never could run) is an issue worth naming in the sign-off. */
export function probeIssues(probe: ProbeSummary | null | undefined): string[] {
  if (!probe) return [];
  const issues: string[] = [];
  if (probe.verdict === 'fail') issues.push(`learning probe failed: ${probe.lastResult?.detail ?? ''}`.trim());
  if (probe.notRun) issues.push(`${probe.notRun} learning probe(s) could not run (${probe.failuresByKind.not_run} measurement problems)`);
  return issues;
}

export function probeHtmlSection(probe: ProbeSummary | null | undefined, esc: (text: string) => string): string {
  if (!probe) return '';
  const cls = probe.verdict === 'fail' ? 'bad' : probe.verdict === 'pass' ? 'good' : '';
  const kinds = Object.entries(probe.failuresByKind)
    .map(([kind, count]) => `${esc(kind.replaceAll('_', ' '))}: ${count}`)
    .join(', ');
  return `<h2>Learning probe</h2>
<p class="${cls}">${probe.runs} probe(s), ${probe.judged} judged: <b>${esc(probe.verdict.replace('_', ' '))}</b>.
Saves to Context7: ${esc(answer(probe.savesToContext7))} (${esc(probe.savesToContext7.reason)}).
Attestation source: ${esc(answer(probe.attestation))} (${esc(probe.attestation.reason)}).</p>
<p>Failures by kind: ${kinds}.${probe.lastResult ? ` Last: ${esc(probe.lastResult.outcome)} at policy minute ${(probe.lastResult.atSeconds / 60).toFixed(1)}, ${esc(probe.lastResult.detail)}.` : ''}</p>\n`;
}
