/**
 * The 30-day verdict's record: report.json (summary, every day's counters and judgements), report.md (a table per
 * criterion, one row per day, with a bar), report.html (a chart per criterion) and signoff.md (the runbook's block).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MetricsHistoryResponse } from '../../service/contracts/metrics-history';
import { describeBound, formatMetric, type CanaryPolicy } from '../policy';
import { describeAbResults } from '../report/stepped';
import { costsVersusBenefits, type PeriodAbResults } from './ab-results';
import type { CriterionVerdict, ThirtyDayEvaluation } from './evaluate';
import { renderThirtyDayHtml } from './html';

export interface ThirtyDaySummary {
  schemaVersion: 1;
  kind: 'thirty-day-evaluation';
  profile: 'thirty-day';
  /** the post-rollout review this run is (day-1, week-1, month-1, day-30), null when run by hand */
  review: string | null;
  /** the production sign-off the review belongs to (reports/production/report.json summary.finishedAt) */
  signedOffAt: string | null;
  from: string;
  to: string;
  days: number;
  verdict: ThirtyDayEvaluation['verdict'];
  evaluatedAt: string;
  baseUrl: string;
}

export interface ThirtyDayReport {
  summary: ThirtyDaySummary;
  operator: string;
  policy: Pick<CanaryPolicy, 'confidence' | 'minimumSample' | 'thirtyDayProfile' | 'thirtyDayEvaluation'>;
  evaluation: ThirtyDayEvaluation;
  /** without the days' per-cluster tables (they are summarized in `abResults`) */
  history: MetricsHistoryResponse;
  /**
   * Month 1's A/B results over the period, per cohort with 95 % cluster intervals (reported, never acted on):
   * null when the history carried no per-cluster tables; absent when not asked for (other reviews)
   */
  abResults?: PeriodAbResults | null;
}

/** The Month-1 section: the A/B figures side by side and the runbook's Month-1 lines filled from them. */
function abSection(report: ThirtyDayReport): string[] {
  if (report.abResults === undefined) return [];
  const ab = report.abResults;
  if (!ab) {
    return [
      `## Month 1: A/B results`,
      ``,
      `No per-cluster tables in the history for this period (the service predates them, or recorded none): no A/B figures. ` +
        `- [ ] Analyze snippet effectiveness (A/B testing results) and - [ ] Review Context7 costs vs benefits stay open.`,
      ``,
    ];
  }
  return [
    `## Month 1: A/B results`,
    ``,
    `Over ${ab.daysWithClusters} of ${ab.days} day(s) with per-cluster tables; treatment = scopes exposed to Context7, control = the rest. ` +
      `Figures only: no verdict above depends on them.`,
    ``,
    ...describeAbResults(ab),
    ``,
    `- [x] Analyze snippet effectiveness (A/B testing results): the table above`,
    `- [x] Review Context7 costs vs benefits: ${costsVersusBenefits(ab)}`,
    ``,
  ];
}

const VERDICT_MARK = { pass: '✅ pass', fail: '❌ fail', inconclusive: '❔ inconclusive' } as const;

function bar(fraction: number): string {
  const width = 20;
  const filled = Math.max(0, Math.min(width, Math.round(fraction * width)));
  return `\`${'█'.repeat(filled)}${'·'.repeat(width - filled)}\``;
}

function criterionSection(criterion: CriterionVerdict): string[] {
  const { metric, bound } = criterion;
  const threshold = 'above' in bound ? bound.above : bound.below;
  // Bars are scaled so the threshold sits at half width: a glance tells which side each day is on.
  const scale = threshold > 0 ? 0.5 / threshold : 1;
  const rows = criterion.days.map(({ day, judgement: j }) => {
    const interval = j.lower === j.upper ? '' : `[${formatMetric(metric, j.lower)}, ${formatMetric(metric, j.upper)}]`;
    const value = Number.isFinite(j.value) ? formatMetric(metric, j.value) : 'n/a';
    return `| ${day} | ${value} | ${interval} | ${j.sample} | ${Number.isFinite(j.value) ? bar(j.value * scale) : ''} | ${VERDICT_MARK[j.verdict]} |`;
  });
  return [
    `### ${metric} ${describeBound(metric, bound)}: ${VERDICT_MARK[criterion.verdict]}`,
    ``,
    `Rule: ${criterion.rule === 'every-day' ? 'consistently (every day with enough sample must pass)' : 'over the whole period'}. ${criterion.reason}. ` +
      `Days: ${criterion.passDays} pass, ${criterion.failDays} fail, ${criterion.inconclusiveDays} inconclusive. ` +
      `Whole period: ${formatMetric(metric, criterion.period.value)} (${criterion.period.verdict}, ${criterion.period.reason}).`,
    ``,
    `| day | value | interval | n | (bound at mid-bar) | verdict |`,
    `|---|---|---|---|---|---|`,
    ...rows,
    ``,
  ];
}

export function renderThirtyDayMarkdown(report: ThirtyDayReport): string {
  const { summary, evaluation } = report;
  return [
    `# 30-day verdict: ${VERDICT_MARK[evaluation.verdict]}`,
    ``,
    `Review: ${summary.review ?? 'by hand'}${summary.signedOffAt ? ` (production sign-off ${summary.signedOffAt})` : ''}. ` +
      `Period: ${summary.from} to ${summary.to} (exclusive), ${summary.days} UTC day(s), from ${summary.baseUrl} at ${summary.evaluatedAt}.`,
    ``,
    `| criterion | rule | verdict | why |`,
    `|---|---|---|---|`,
    ...evaluation.criteria.map((c) => `| ${c.metric} ${describeBound(c.metric, c.bound)} | ${c.rule} | ${VERDICT_MARK[c.verdict]} | ${c.reason} |`),
    ``,
    evaluation.daysWithoutData.length
      ? `Days without any data (service down, or history not recorded yet): ${evaluation.daysWithoutData.join(', ')}.`
      : `Every day has data.`,
    `Statistics: Wilson intervals at ${report.policy.confidence * 100}% confidence; minimum sample per day: ` +
      `${report.policy.minimumSample.context7Requests} Context7 calls, ${report.policy.minimumSample.memoryRequests} memory reads, ` +
      `${report.policy.minimumSample.cacheLookups} cache lookups; up to ${evaluation.maxInconclusiveDays} inconclusive day(s) allowed.`,
    `Not judged here: "Zero customer-impacting incidents" and the business metrics (see the incident records and the team's review).`,
    ``,
    ...abSection(report),
    `## Per day`,
    ``,
    ...evaluation.criteria.flatMap(criterionSection),
  ].join('\n');
}

export function renderThirtyDaySignoff(report: ThirtyDayReport): string {
  const { summary, evaluation } = report;
  const t = evaluation.totals;
  const issues = evaluation.criteria.filter((c) => c.verdict !== 'pass').map((c) => `${c.metric} ${c.verdict}: ${c.reason}`);
  if (evaluation.daysWithoutData.length) issues.push(`${evaluation.daysWithoutData.length} day(s) without data`);
  return [
    `## Sign-Off`,
    ``,
    `**Rollout Completed By**: ${report.operator} (30-day verdict${summary.review ? `, review ${summary.review}` : ''}, ${summary.from} to ${summary.to})  `,
    `**Date/Time**: ${summary.evaluatedAt}  `,
    `**Final Error Rate**: ${formatMetric('errorRate', evaluation.values.errorRate)} (${t.context7Errors} of ${t.context7Requests} Context7 calls over the period)  `,
    `**Final Fallback Rate**: ${formatMetric('fallbackRate', evaluation.values.fallbackRate)} (${t.fallbacks} of ${t.requests} memory reads)  `,
    `**Cache Hit Rate**: ${formatMetric('cacheHitRate', evaluation.values.cacheHitRate)}; **Avg Latency**: ${formatMetric('avgLatencyMs', evaluation.values.avgLatencyMs)}  `,
    `**Issues Encountered**: ${issues.length ? issues.join('; ') : 'None'}  `,
    // The verdict judges; rolling back a rollout a month old is a person's decision, so it is stated, not taken.
    `**Rollback Needed**: ${evaluation.verdict === 'fail' ? 'TO DECIDE (the success metrics failed: see report.md)' : 'NO'}`,
    ``,
    ...(report.abResults ? [`**Context7 Costs vs Benefits**: ${costsVersusBenefits(report.abResults)}  `, ``] : []),
    `Outcome: **${evaluation.verdict}**.`,
    ``,
  ].join('\n');
}

export function writeThirtyDayReports(dir: string, report: ThirtyDayReport): { json: string; markdown: string; html: string; signoff: string } {
  mkdirSync(dir, { recursive: true });
  const paths = { json: join(dir, 'report.json'), markdown: join(dir, 'report.md'), html: join(dir, 'report.html'), signoff: join(dir, 'signoff.md') };
  writeFileSync(paths.json, JSON.stringify(report, null, 1) + '\n');
  writeFileSync(paths.markdown, renderThirtyDayMarkdown(report));
  writeFileSync(paths.html, renderThirtyDayHtml(report));
  writeFileSync(paths.signoff, renderThirtyDaySignoff(report));
  return paths;
}
