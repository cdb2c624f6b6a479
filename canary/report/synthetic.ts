/**
 * The canary's own synthetic traffic in the reports: how much of the judged traffic it was. On a quiet staging it
 * is nearly all of it, and the report must say so: the verdict is then about our traffic, not customers'.
 */
import type { AnalysisResult } from '../analysis';
import type { Measurement } from '../analysis/measurement';
import type { SyntheticSnapshot } from '../synthetic/snapshot';

/** What the run planned (known to the controller, not to a measurement). */
export interface SyntheticPlanFacts {
  ratePerSecond: number;
  basis: string;
  /** the location of every synthetic scope */
  location: string;
  /** every synthetic learning write's expiresAt (the run's planned end) */
  patternsExpireAt: string;
}

export interface SyntheticSummary extends SyntheticPlanFacts {
  /** the synthetic counts at the last measured poll */
  atLastMeasurement: SyntheticSnapshot | null;
  /** memory reads (flag on) the canary judged since the deploy, at that poll */
  judgedReads: number | null;
  /**
   * The synthetic reads over the judged reads, at most 1 (null: nothing judged yet): counted just after the
   * measurement (readsAnsweredAfter) when recorded, which can include a few reads the service answered after its
   * metrics were read; `shareAtLeast` counts those answered before it (a lower bound).
   */
  shareOfJudgedReads: number | null;
  shareAtLeast: number | null;
}

export function syntheticSummary(plan: SyntheticPlanFacts | undefined, measurements: Measurement[], result: AnalysisResult): SyntheticSummary | null {
  if (!plan && !measurements.some((m) => m.synthetic)) return null;
  const last = [...result.steps].reverse().find((s) => s.status === 'measured');
  const snapshot = last ? (measurements[last.index]?.synthetic ?? null) : null;
  const judgedReads = last ? last.cumulative.counts.requests : null;
  const share = snapshot && judgedReads ? Math.min(1, (snapshot.readsAnsweredAfter ?? snapshot.readsAnswered) / judgedReads) : null;
  const atLeast = snapshot && judgedReads ? Math.min(1, snapshot.readsAnswered / judgedReads) : null;
  return {
    ratePerSecond: plan?.ratePerSecond ?? snapshot?.ratePerSecond ?? 0,
    basis: plan?.basis ?? 'not recorded (resumed run)',
    location: plan?.location ?? 'loadtest-canary',
    patternsExpireAt: plan?.patternsExpireAt ?? 'not recorded (resumed run)',
    atLastMeasurement: snapshot,
    judgedReads,
    shareOfJudgedReads: share,
    shareAtLeast: atLeast,
  };
}

const percent = (share: number) => `${(share * 100).toFixed(1)} %`;

/** The sign-off line. Absent (undefined) in older reports; null: the run drove no synthetic traffic. */
export function syntheticSignoffLines(summary: SyntheticSummary | null | undefined): string[] {
  if (summary === undefined) return [];
  if (summary === null) return ['**Synthetic Traffic**: none (the judged traffic was organic)  '];
  const s = summary.atLastMeasurement;
  const share =
    summary.shareOfJudgedReads === null || !s
      ? 'share of the judged traffic unknown (no measured poll)'
      : `${percent(summary.shareOfJudgedReads)} of the judged memory reads (${s.readsAnsweredAfter ?? s.readsAnswered} of ${summary.judgedReads}; at least ${percent(summary.shareAtLeast ?? 0)}) were the canary's own`;
  const problems = s ? [s.failedChecks && `${s.failedChecks} failed checks`, s.transportErrors && `${s.transportErrors} without answer`, s.unauthorized && `${s.unauthorized} refused 401/403`, s.skipped && `${s.skipped} not sent (service behind)`].filter(Boolean) : [];
  return [
    `**Synthetic Traffic**: ${share}; ${summary.ratePerSecond} req/s in ${summary.location} scopes` +
      `${s ? `, ${s.sent} sent, ${s.writesAnswered} learning writes` : ''}${problems.length ? ` (${problems.join(', ')})` : ''}; ` +
      `its patterns expire at ${summary.patternsExpireAt}  `,
  ];
}

export function syntheticIssues(summary: SyntheticSummary | null | undefined): string[] {
  const s = summary?.atLastMeasurement;
  if (!s) return [];
  const issues: string[] = [];
  if (s.unauthorized) issues.push(`synthetic traffic refused ${s.unauthorized} times (401/403): check CANARY_LOADTEST_KEY is the stack's canary-loadtest key`);
  if (s.transportErrors) issues.push(`${s.transportErrors} synthetic requests got no answer`);
  return issues;
}

/** report.html: the judged reads split into synthetic and other, as one bar, with the counts beside it. */
export function syntheticHtmlSection(summary: SyntheticSummary | null | undefined, esc: (text: string) => string): string {
  if (!summary) return '';
  const s = summary.atLastMeasurement;
  const share = summary.shareOfJudgedReads;
  const width = 400;
  const synthetic = share === null ? 0 : Math.round(share * width);
  const bar =
    share === null
      ? ''
      : `<svg width="${width}" height="18" role="img" aria-label="synthetic share of judged reads ${percent(share)}">` +
        `<rect x="0" y="0" width="${synthetic}" height="18" fill="#8a63d2"/><rect x="${synthetic}" y="0" width="${width - synthetic}" height="18" fill="#cfd8dc"/></svg>`;
  return `<h2>Synthetic traffic</h2>
<p>${share === null ? 'No measured poll: its share of the judged traffic is unknown.' : `<b>${percent(share)}</b> of the judged memory reads (${s!.readsAnsweredAfter ?? s!.readsAnswered} of ${summary.judgedReads}; at least ${percent(summary.shareAtLeast ?? 0)}) were the canary's own synthetic traffic (purple); the rest (grey) came from elsewhere.`}</p>
${bar}
<p>${esc(String(summary.ratePerSecond))} req/s in ${esc(summary.location)} scopes${s ? `: ${s.sent} sent, ${s.readsAnswered} reads and ${s.writesAnswered} learning writes answered, ${s.failedChecks} failed checks, ${s.transportErrors} without answer, ${s.unauthorized} refused, ${s.skipped} not sent` : ''}. Sized: ${esc(summary.basis)}. Its patterns expire at ${esc(summary.patternsExpireAt)}.</p>\n`;
}
