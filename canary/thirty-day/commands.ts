/**
 * The I/O edge of the 30-day verdict and the post-rollout reviews (canary/main.ts dispatches here):
 *   evaluate --profile thirty-day --base-url URL [--days N] [--until YYYY-MM-DD] [--report-dir DIR] [--policy FILE]
 *            [--review ID --signed-off-at ISO] [--ab]
 *     month-1 (or --ab) also reads the per-cluster tables and reports the A/B results (never acted on)
 *     exit 0 pass, 1 fail, 2 inconclusive, 3 history unreadable (nothing written), 64 usage
 *   review-due [--reports-dir DIR] [--today YYYY-MM-DD] [--output FILE]
 *     appends review=, from=, to=, days=, signed_off_at= to FILE (e.g. $GITHUB_OUTPUT) when a review is due; exit 0
 */
import { appendFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { canaryReportSummarySchema } from '../report-summary';
import type { CanaryPolicy } from '../policy';
import type { HttpProbe } from '../sources/http';
import { EVALUATE_EXIT_CODES, evaluateThirtyDays, evaluationPeriod } from './evaluate';
import { describeAbResults } from '../report/stepped';
import { periodAbResults } from './ab-results';
import type { MetricsHistoryResponse } from '../../service/contracts/metrics-history';
import { HistoryUnreadableError, readDailyHistory } from './history-source';
import { writeThirtyDayReports, type ThirtyDayReport } from './report';
import { dueReview, REVIEW_IDS, type RecordedReview } from './review-schedule';

export class ThirtyDayUsageError extends Error {}

const isoDay = /^\d{4}-\d{2}-\d{2}$/;

function validDay(value: string, flag: string): string {
  if (!isoDay.test(value) || Number.isNaN(Date.parse(`${value}T00:00:00Z`))) throw new ThirtyDayUsageError(`${flag} must be a date YYYY-MM-DD`);
  return value;
}

export interface EvaluateDeps {
  policy: CanaryPolicy;
  probe: HttpProbe;
  now: () => Date;
  operator: string;
  log: (line: string) => void;
}

export async function evaluateCommand(values: Record<string, string | boolean | undefined>, deps: EvaluateDeps): Promise<number> {
  if (values.profile !== 'thirty-day') throw new ThirtyDayUsageError('evaluate needs --profile thirty-day');
  const baseUrl = values['base-url'];
  if (typeof baseUrl !== 'string' || !/^https?:\/\/[^/]+/.test(baseUrl)) throw new ThirtyDayUsageError('evaluate needs --base-url http(s)://HOST[:PORT]');
  const days = values.days === undefined ? deps.policy.thirtyDayEvaluation.days : Number(values.days);
  if (!Number.isInteger(days) || days < 1 || days > 92) throw new ThirtyDayUsageError('--days must be a whole number from 1 to 92');
  // Only complete days: the period ends before today (UTC) unless --until says otherwise.
  const until = typeof values.until === 'string' ? validDay(values.until, '--until') : deps.now().toISOString().slice(0, 10);
  const review = typeof values.review === 'string' ? values.review : null;
  if (review !== null && !(REVIEW_IDS as readonly string[]).includes(review)) throw new ThirtyDayUsageError(`--review must be one of ${REVIEW_IDS.join(', ')}`);
  const signedOffAt = typeof values['signed-off-at'] === 'string' ? values['signed-off-at'] : null;
  if (signedOffAt !== null && Number.isNaN(Date.parse(signedOffAt))) throw new ThirtyDayUsageError('--signed-off-at must be an ISO date-time');
  const reportDir = resolve(typeof values['report-dir'] === 'string' ? values['report-dir'] : join('reports', 'production', 'thirty-day'));

  const period = evaluationPeriod(until, days);
  // Month 1 (or --ab by hand) also reads the per-cluster tables for the A/B results.
  const withAb = review === 'month-1' || values.ab === true;
  let history: MetricsHistoryResponse | Error;
  try {
    history = await readDailyHistory(deps.probe, { baseUrl, ...period, includeClusters: withAb, timeoutMs: deps.policy.measurement.timeoutSeconds * 1000 });
  } catch (error) {
    if (!(error instanceof HistoryUnreadableError)) throw error;
    // A service older than the per-cluster history refuses include=clusters (400): judge without the A/B figures.
    const older = withAb && / HTTP 400: /.test(error.message);
    history = older ? await readDailyHistory(deps.probe, { baseUrl, ...period, timeoutMs: deps.policy.measurement.timeoutSeconds * 1000 }).catch((e: unknown) => e as Error) : error;
    if (history instanceof Error) {
      deps.log(`30-day verdict: the history could not be read, nothing judged: ${history.message}`);
      return EVALUATE_EXIT_CODES.unreadable;
    }
    deps.log(`A/B results: the service has no per-cluster history (${error.message.slice(0, 120)}); judged without them`);
  }
  const evaluation = evaluateThirtyDays(deps.policy, history.days, period);
  const { context7PricePerCall, currency } = deps.policy.exposure.comparison;
  const abResults = withAb ? periodAbResults(history.days, context7PricePerCall, currency) : undefined;
  const report: ThirtyDayReport = {
    summary: {
      schemaVersion: 1,
      kind: 'thirty-day-evaluation',
      profile: 'thirty-day',
      review,
      signedOffAt: signedOffAt === null ? null : new Date(signedOffAt).toISOString(),
      ...period,
      days,
      verdict: evaluation.verdict,
      evaluatedAt: deps.now().toISOString(),
      baseUrl,
    },
    operator: deps.operator,
    policy: {
      confidence: deps.policy.confidence,
      minimumSample: deps.policy.minimumSample,
      thirtyDayProfile: deps.policy.thirtyDayProfile,
      thirtyDayEvaluation: deps.policy.thirtyDayEvaluation,
    },
    evaluation,
    // The cluster tables are large and summarized in abResults: report.json keeps the daily counters only.
    history: { ...history, days: history.days.map(({ clusters: _clusters, ...day }) => day) },
    ...(abResults === undefined ? {} : { abResults }),
  };
  const paths = writeThirtyDayReports(reportDir, report);
  for (const criterion of evaluation.criteria) deps.log(`  ${criterion.verdict.padEnd(12)} ${criterion.metric} (${criterion.rule}): ${criterion.reason}`);
  if (abResults) for (const line of describeAbResults(abResults)) deps.log(`  ${line}`);
  else if (abResults === null) deps.log('  A/B results: the history has no per-cluster tables for this period');
  deps.log(`30-day verdict ${period.from}..${period.to}: ${evaluation.verdict.toUpperCase()} (${paths.json}, ${paths.markdown}, ${paths.signoff})`);
  return EVALUATE_EXIT_CODES[evaluation.verdict];
}

const recordedSummarySchema = z.object({ summary: z.object({ review: z.string(), signedOffAt: z.string().nullable() }) });

/** The last production sign-off from the committed report, or null when the last production run was not one. */
export function readSignOff(reportsDir: string): string | null {
  const file = join(reportsDir, 'report.json');
  if (!existsSync(file)) return null;
  const parsed = z.object({ summary: canaryReportSummarySchema }).safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) throw new ThirtyDayUsageError(`${file}: not a canary report: ${parsed.error.issues[0]?.message ?? ''}`);
  const { summary } = parsed.data;
  return summary.stack === 'production' && summary.outcome === 'signed_off' ? new Date(summary.finishedAt).toISOString() : null;
}

/** Reviews already written under DIR/reviews/<id>/report.json. */
export function readRecordedReviews(reportsDir: string): RecordedReview[] {
  const dir = join(reportsDir, 'reviews');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const file = join(dir, name, 'report.json');
    if (!existsSync(file)) return [];
    const parsed = recordedSummarySchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
    return parsed.success ? [{ review: parsed.data.summary.review, signedOffAt: parsed.data.summary.signedOffAt }] : [];
  });
}

export function reviewDueCommand(values: Record<string, string | boolean | undefined>, deps: { now: () => Date; log: (line: string) => void }): number {
  const reportsDir = resolve(typeof values['reports-dir'] === 'string' ? values['reports-dir'] : join('reports', 'production'));
  const today = typeof values.today === 'string' ? validDay(values.today, '--today') : deps.now().toISOString().slice(0, 10);
  const signedOffAt = readSignOff(reportsDir);
  if (!signedOffAt) {
    deps.log(`no production sign-off in ${join(reportsDir, 'report.json')}: no review is due`);
    return 0;
  }
  const due = dueReview(signedOffAt, readRecordedReviews(reportsDir), today);
  if (!due) {
    deps.log(`production signed off ${signedOffAt}: no review due on ${today}`);
    return 0;
  }
  const lines = [`review=${due.review}`, `from=${due.from}`, `to=${due.to}`, `days=${due.days}`, `signed_off_at=${signedOffAt}`];
  deps.log(`production signed off ${signedOffAt}: ${due.review} review due (${due.from}..${due.to}, ${due.days} day(s))`);
  if (typeof values.output === 'string') appendFileSync(values.output, `${lines.join('\n')}\n`);
  else process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
