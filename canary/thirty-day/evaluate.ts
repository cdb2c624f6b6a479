/**
 * The 30-day verdict, pure: policy + daily counters -> verdict. No clock, no I/O.
 *
 * Each criterion of `thirtyDayProfile` is judged on every day (Wilson interval at the policy's confidence, the
 * policy's minimum sample per day) and on the whole period's summed counts.
 * - A criterion in `thirtyDayEvaluation.everyDay` ("consistently") passes when no day and not the period fails,
 *   and at most `maxInconclusiveDays` days are inconclusive (too little traffic, no data); it fails when any day
 *   or the period significantly fails; otherwise it is inconclusive.
 * - Any other criterion takes the period's verdict (its days are reported, never decisive).
 * The verdict: fail if any criterion fails, else inconclusive if any is, else pass.
 */
import type { MetricTotals } from '../../service/contracts/http';
import { addCounts, metricValues, zeroCounts } from '../analysis/counters';
import { judgeMetric, type MetricJudgement, type Verdict } from '../analysis/judge';
import type { Bound, CanaryPolicy, MetricName } from '../policy';

export const EVALUATED_METRICS = ['errorRate', 'fallbackRate', 'cacheHitRate', 'avgLatencyMs'] as const;
export type EvaluatedMetric = (typeof EVALUATED_METRICS)[number];

export interface DailyCounts {
  /** UTC day YYYY-MM-DD */
  day: string;
  instances: number;
  totals: MetricTotals;
}

export interface DayJudgement {
  day: string;
  judgement: MetricJudgement;
}

export interface CriterionVerdict {
  metric: EvaluatedMetric;
  bound: Bound;
  /** every-day: "consistently", each day must pass; period: judged on the summed counts */
  rule: 'every-day' | 'period';
  verdict: Verdict;
  reason: string;
  period: MetricJudgement;
  days: DayJudgement[];
  passDays: number;
  failDays: number;
  inconclusiveDays: number;
}

export interface ThirtyDayEvaluation {
  verdict: Verdict;
  from: string;
  /** exclusive */
  to: string;
  days: number;
  /** days with no instance reporting at all (service down, or no history recorded yet) */
  daysWithoutData: string[];
  maxInconclusiveDays: number;
  criteria: CriterionVerdict[];
  /** summed counters of the whole period */
  totals: MetricTotals;
  values: ReturnType<typeof metricValues>;
}

function judgeCriterion(
  metric: EvaluatedMetric,
  bound: Bound,
  series: readonly DailyCounts[],
  periodTotals: MetricTotals,
  policy: CanaryPolicy,
): CriterionVerdict {
  const rule = policy.thirtyDayEvaluation.everyDay.includes(metric) ? 'every-day' : 'period';
  const days = series.map((d) => ({ day: d.day, judgement: judgeMetric(metric as MetricName, bound, 'require', d.totals, policy) }));
  const period = judgeMetric(metric as MetricName, bound, 'require', periodTotals, policy);
  const count = (verdict: Verdict) => days.filter((d) => d.judgement.verdict === verdict).length;
  const [passDays, failDays, inconclusiveDays] = [count('pass'), count('fail'), count('inconclusive')];
  const allowed = policy.thirtyDayEvaluation.maxInconclusiveDays;
  const base = { metric, bound, rule, period, days, passDays, failDays, inconclusiveDays } as const;
  if (rule === 'period') {
    return { ...base, verdict: period.verdict, reason: `over the period: ${period.reason}` };
  }
  if (failDays > 0) {
    const failed = days.filter((d) => d.judgement.verdict === 'fail').map((d) => d.day);
    return { ...base, verdict: 'fail', reason: `failed on ${failDays} day(s): ${failed.join(', ')}` };
  }
  if (period.verdict === 'fail') return { ...base, verdict: 'fail', reason: `over the period: ${period.reason}` };
  if (inconclusiveDays > allowed) {
    return { ...base, verdict: 'inconclusive', reason: `${inconclusiveDays} inconclusive day(s), more than the ${allowed} allowed` };
  }
  if (period.verdict === 'inconclusive') return { ...base, verdict: 'inconclusive', reason: `over the period: ${period.reason}` };
  return {
    ...base,
    verdict: 'pass',
    reason: `passed on ${passDays} of ${days.length} day(s)${inconclusiveDays ? ` (${inconclusiveDays} inconclusive, ${allowed} allowed)` : ''}`,
  };
}

/** `series` must hold every day of [from, to) once, in order (the history endpoint returns exactly that). */
export function evaluateThirtyDays(policy: CanaryPolicy, series: readonly DailyCounts[], period: { from: string; to: string }): ThirtyDayEvaluation {
  const totals = series.reduce((sum, d) => addCounts(sum, d.totals), zeroCounts());
  const criteria = EVALUATED_METRICS.flatMap((metric) => {
    const bound = policy.thirtyDayProfile[metric];
    return bound ? [judgeCriterion(metric, bound, series, totals, policy)] : [];
  });
  const verdicts = criteria.map((c) => c.verdict);
  const verdict: Verdict = verdicts.includes('fail') ? 'fail' : verdicts.includes('inconclusive') || verdicts.length === 0 ? 'inconclusive' : 'pass';
  return {
    verdict,
    from: period.from,
    to: period.to,
    days: series.length,
    daysWithoutData: series.filter((d) => d.instances === 0).map((d) => d.day),
    maxInconclusiveDays: policy.thirtyDayEvaluation.maxInconclusiveDays,
    criteria,
    totals,
    values: metricValues(totals),
  };
}

/** The period: `days` complete UTC days ending before `until` (a YYYY-MM-DD day, exclusive). */
export function evaluationPeriod(until: string, days: number): { from: string; to: string } {
  const to = new Date(`${until}T00:00:00Z`);
  return { from: new Date(to.getTime() - days * 86_400_000).toISOString().slice(0, 10), to: until };
}

export const EVALUATE_EXIT_CODES = { pass: 0, fail: 1, inconclusive: 2, unreadable: 3, usage: 64 } as const;
