/**
 * The second sources in the reports: Render logs and Render's platform metrics, beside the service's own
 * figures, and the sources' disagreements. Shared by report.json, report.html, signoff.md and incident.md.
 */
import type { AnalysisResult } from '../analysis';
import type { ObservationJudgement } from '../analysis/observations';
import { describeLogJudgement, type LogJudgement } from '../logs/judge-logs';
import { formatMetric } from '../policy';

export interface SecondSourcesSummary {
  /** Render logs since the deploy (null: the canary had no log source) */
  logs: LogJudgement | null;
  /** Render's platform figures beside the service's own (null: no platform source) */
  platform: {
    error?: string;
    judgements: ObservationJudgement[];
    /** the service's own figures since the deploy, for comparison */
    service: { errorRate: number | null; avgLatencyMs: number | null; health: string | null };
  } | null;
  disagreements: AnalysisResult['disagreements'];
}

export function secondSourcesSummary(result: AnalysisResult): SecondSourcesSummary {
  const last = [...result.steps].reverse().find((s) => s.status === 'measured');
  return {
    logs: result.logs,
    platform: result.platform
      ? {
          ...result.platform,
          service: {
            errorRate: last ? last.cumulative.values.errorRate : null,
            avgLatencyMs: last ? last.cumulative.values.avgLatencyMs : null,
            health: result.steps.at(-1)?.health ?? null,
          },
        }
      : null,
    disagreements: result.disagreements,
  };
}

export function describeObservationJudgement(j: ObservationJudgement): string {
  const value = j.name === 'http5xxRate' ? formatMetric('errorRate', j.value) : j.name === 'p95LatencyMs' ? `${j.value.toFixed(0)} ms` : `${j.value.toFixed(1)} MB`;
  const bound = 'above' in j.bound ? `> ${j.bound.above}` : `< ${j.bound.below}`;
  return `${j.name} ${value} (n=${j.sample}; rollback ${bound}): ${j.verdict} (${j.reason})`;
}

/** Sign-off lines: the logs and the platform's figures, one line each. */
export function secondSourceSignoffLines(s: SecondSourcesSummary): string[] {
  const lines: string[] = [];
  if (s.logs) lines.push(`**Render Logs**: ${describeLogJudgement(s.logs)}; clean: ${s.logs.clean.toUpperCase()}  `);
  if (s.platform) {
    lines.push(
      `**Render Platform Metrics**: ${s.platform.error ? `not read (${s.platform.error})` : s.platform.judgements.map(describeObservationJudgement).join('; ') || 'nothing measured yet'}  `,
    );
  }
  return lines;
}

/** Issues for the sign-off: disagreements, unread logs, log breaches and repeated errors. */
export function secondSourceIssues(s: SecondSourcesSummary): string[] {
  const issues = s.disagreements.map((d) => `sources disagree at policy minute ${(d.atSeconds / 60).toFixed(1)}: ${d.detail}`);
  if (s.logs && !s.logs.readable) issues.push(`Render logs could not be read (${s.logs.readErrors.at(-1) ?? 'no answer'}): not judged`);
  if (s.logs?.repeated.length) issues.push(`repeated errors in the Render logs: ${s.logs.repeated.map((r) => `${r.count}x "${r.signature.slice(0, 100)}"`).join('; ')}`);
  if (s.logs && s.logs.memoryErrors > 0 && !s.logs.breach) issues.push(`${s.logs.memoryErrors} [MEMORY_ERROR] line(s) in the Render logs (investigate)`);
  return issues;
}
