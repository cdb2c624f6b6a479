/**
 * The 30-day verdict: the pure evaluation ("consistently" = every day with enough sample), the review schedule,
 * and `canary evaluate` against a real memory service whose store holds 30 days of two instances' counters.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emptyTotals, type MetricTotals } from '../../service/contracts/http';
import { loadPolicy, parsePolicy } from '../../canary/policy';
import { evaluateThirtyDays, evaluationPeriod, type DailyCounts } from '../../canary/thirty-day/evaluate';
import { dueReview, reviewSchedule } from '../../canary/thirty-day/review-schedule';
import { evaluateCommand, reviewDueCommand } from '../../canary/thirty-day/commands';
import { httpProbe } from '../../canary/sources/http';
import { startHarness, type Harness } from '../service/support/harness';
import { periodAbResults } from '../../canary/thirty-day/ab-results';
import { canaryCli } from '../support/tsx-cli';
import { abResults } from '../../canary/exposure/clustered-step';
import { ClusterCounters, addClusterTables, emptyDenseClusters, type ClusterTables } from '../../service/domain/exposure-clusters';

/**
 * Fixed per-cluster tables (absolute counts): treatment clusters 0 and 1 with 2 reads each, 2 snippets and 2
 * Context7 calls in cluster 0, none in cluster 1; control cluster 600 with 4 reads of 1 snippet, no call. Times k.
 */
function abTables(k: number): ClusterTables {
  const counters = new ClusterCounters();
  for (let i = 0; i < 2 * k; i++) {
    counters.recordRequest('treatment', 0, i, true, 200, 10, 1);
    counters.recordContext7Call('treatment', 0, true);
    counters.recordRequest('treatment', 1, 100 + i, true, 200, 10, 0);
    counters.recordRequest('control', 600, 200 + i, true, 200, 5, 1);
    counters.recordRequest('control', 600, 300 + i, true, 200, 5, 1);
  }
  return counters.tables({ sketch: false });
}

const policy = loadPolicy(join(__dirname, '../../canary/policy.yaml'));

/** A healthy day: 1% errors, 1% fallbacks, 50% cache hits, 50 ms, with `n` calls of each kind. */
function day(n: number, overrides: Partial<MetricTotals> = {}): MetricTotals {
  return {
    ...emptyTotals(),
    requests: n,
    fallbacks: Math.round(n * 0.01),
    context7Requests: n,
    context7Errors: Math.round(n * 0.01),
    cacheHits: n / 2,
    cacheMisses: n / 2,
    latencyMsSum: n * 50,
    latencyCount: n,
    ...overrides,
  };
}

function series(count: number, make: (index: number) => MetricTotals, start = '2026-03-01'): DailyCounts[] {
  return Array.from({ length: count }, (_, i) => ({
    day: new Date(Date.parse(`${start}T00:00:00Z`) + i * 86_400_000).toISOString().slice(0, 10),
    instances: 2,
    totals: make(i),
  }));
}

const PERIOD = { from: '2026-03-01', to: '2026-03-31' };
const criterion = (result: ReturnType<typeof evaluateThirtyDays>, metric: string) => result.criteria.find((c) => c.metric === metric)!;

describe('evaluateThirtyDays (pure)', () => {
  it('passes when every day passes each criterion of the profile', () => {
    const result = evaluateThirtyDays(policy, series(30, () => day(2000)), PERIOD);
    expect(result.verdict).toBe('pass');
    expect(result.criteria.map((c) => [c.metric, c.rule, c.verdict])).toEqual([
      ['errorRate', 'every-day', 'pass'],
      ['fallbackRate', 'period', 'pass'],
      ['cacheHitRate', 'period', 'pass'],
      ['avgLatencyMs', 'period', 'pass'],
    ]);
    expect(criterion(result, 'errorRate').passDays).toBe(30);
  });

  it('"consistently": one day significantly above 3% fails the error rate, though the 30-day average is fine', () => {
    const result = evaluateThirtyDays(policy, series(30, (i) => (i === 11 ? day(2000, { context7Errors: 200 }) : day(2000))), PERIOD);
    expect(result.values.errorRate).toBeLessThan(0.03);
    expect(result.verdict).toBe('fail');
    expect(criterion(result, 'errorRate')).toMatchObject({ verdict: 'fail', failDays: 1, reason: 'failed on 1 day(s): 2026-03-12' });
  });

  it('a period-only criterion takes the period verdict: one bad fallback day does not decide it', () => {
    const result = evaluateThirtyDays(policy, series(30, (i) => (i === 3 ? day(2000, { fallbacks: 400 }) : day(2000))), PERIOD);
    expect(criterion(result, 'fallbackRate')).toMatchObject({ verdict: 'pass', failDays: 1 });
    expect(result.verdict).toBe('pass');
  });

  it('days below the minimum sample are inconclusive; more than the allowed number make the verdict inconclusive', () => {
    const allowed = policy.thirtyDayEvaluation.maxInconclusiveDays;
    const quiet = (count: number) => series(30, (i) => (i < count ? day(10) : day(2000)));
    const within = evaluateThirtyDays(policy, quiet(allowed), PERIOD);
    expect(criterion(within, 'errorRate')).toMatchObject({ verdict: 'pass', inconclusiveDays: allowed });
    const beyond = evaluateThirtyDays(policy, quiet(allowed + 1), PERIOD);
    expect(criterion(beyond, 'errorRate')).toMatchObject({ verdict: 'inconclusive', inconclusiveDays: allowed + 1 });
    expect(beyond.verdict).toBe('inconclusive');
  });

  it('a day with no instance at all is listed, and counts as inconclusive', () => {
    const days = series(30, () => day(2000));
    days[5] = { day: days[5]!.day, instances: 0, totals: emptyTotals() };
    const result = evaluateThirtyDays(policy, days, PERIOD);
    expect(result.daysWithoutData).toEqual(['2026-03-06']);
    expect(criterion(result, 'errorRate').inconclusiveDays).toBe(1);
  });

  it('a latency above 150 ms over the period fails', () => {
    const result = evaluateThirtyDays(policy, series(30, () => day(2000, { latencyMsSum: 2000 * 180 })), PERIOD);
    expect(criterion(result, 'avgLatencyMs').verdict).toBe('fail');
    expect(result.verdict).toBe('fail');
  });

  it('the policy section is defaulted for older policies and validated', () => {
    const text = readFileSync(join(__dirname, '../../canary/policy.yaml'), 'utf8');
    const without = text.replace(/^thirtyDayEvaluation:\n(  .*\n)+/m, '');
    expect(without).not.toMatch(/thirtyDayEvaluation/);
    expect(parsePolicy(without).thirtyDayEvaluation).toEqual({ days: 30, everyDay: ['errorRate'], maxInconclusiveDays: 3 });
    expect(() => parsePolicy(text.replace('everyDay: [errorRate]', 'everyDay: [storeErrorRate]'))).toThrow(/everyDay/);
  });

  it('the period is the N complete UTC days before --until', () => {
    expect(evaluationPeriod('2026-03-31', 30)).toEqual(PERIOD);
  });
});

describe('Month 1 A/B results over a period (pure)', () => {
  const historyDay = (d: string, clusters?: ClusterTables) => ({ day: d, instances: 1, incarnations: 1, totals: emptyTotals(), ...(clusters ? { clusters } : {}) });

  it('per cohort, with the cluster-robust 95% interval worked by hand, and the cost at the price per call', () => {
    const ab = periodAbResults([historyDay('2026-03-01', abTables(1)), historyDay('2026-03-02')], 0.002, 'EUR')!;
    expect(ab).toMatchObject({ daysWithClusters: 1, days: 2, pricePerCall: 0.002, currency: 'EUR' });
    // Treatment: clusters (2 snippets / 2 reads) and (0 / 2): r = 0.5, residuals +-1/4, variance 2/1 * 2/16 = 0.25.
    const half = 1.959963984540054 * 0.5;
    expect(ab.treatment.snippetsPerRead).toMatchObject({ estimate: 0.5, clusters: 2, reads: 4 });
    expect(ab.treatment.snippetsPerRead.lower).toBeCloseTo(0.5 - half, 6);
    expect(ab.treatment.snippetsPerRead.upper).toBeCloseTo(0.5 + half, 6);
    expect(ab.treatment.readsWithSnippetShare.estimate).toBe(0.5);
    expect(ab.treatment.context7CallsPerRead.estimate).toBe(0.5);
    expect(ab.treatment.costPerThousandReads.estimate).toBeCloseTo(1, 12); // 0.5 calls per read * 0.002 * 1000
    expect(ab.treatment.costPerThousandReads.lower).toBe(0); // a cost below zero is not shown
    // Control: one cluster, so no variance over clusters: an interval without bounds, said as such.
    expect(ab.control.snippetsPerRead).toMatchObject({ estimate: 1, clusters: 1, reads: 4, upper: Number.POSITIVE_INFINITY });
    expect(ab.control.context7CallsPerRead.estimate).toBe(0);
  });

  it('sums the days and uses the stepped canary\'s estimator itself; no day with tables is null', () => {
    const days = [historyDay('2026-03-01', abTables(1)), historyDay('2026-03-02', abTables(3))];
    const window = emptyDenseClusters();
    addClusterTables(window, abTables(4));
    const pre = { values: new Float64Array(window.treatment.values.length), sketch: new Float64Array(0) };
    const { daysWithClusters, days: count, ...figures } = periodAbResults(days, 0.001, 'USD')!;
    expect(figures).toEqual(abResults({ window, pre }, 0.001, 'USD'));
    expect([daysWithClusters, count]).toEqual([2, 2]);
    expect(figures.treatment.snippetsPerRead.reads).toBe(16);
    expect(periodAbResults([historyDay('2026-03-01')], 0.001, 'USD')).toBeNull();
  });
});

describe('Month 1 against a service older than the per-cluster history', () => {
  it('a 400 on include=clusters is judged without the A/B figures, and said so', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'thirty-day-old-'));
    const urls: string[] = [];
    const days = Array.from({ length: 30 }, (_, i) => ({
      day: new Date(Date.parse('2026-03-01T00:00:00Z') + i * 86_400_000).toISOString().slice(0, 10),
      instances: 1,
      incarnations: 1,
      totals: day(2000),
    }));
    const limits: (number | undefined)[] = [];
    const probe = async (url: string, options: { maxBodyBytes?: number }) => {
      urls.push(url);
      limits.push(options.maxBodyBytes);
      return url.includes('include=clusters')
        ? { status: 400, body: { error: 'Invalid history query' }, latencyMs: 1 }
        : { status: 200, body: { bucket: 'day', from: '2026-03-01', to: '2026-03-31', intervalMs: 60_000, retentionDays: 35, days }, latencyMs: 1 };
    };
    const log: string[] = [];
    try {
      const code = await evaluateCommand(
        { profile: 'thirty-day', 'base-url': 'http://127.0.0.1:9', until: '2026-03-31', 'report-dir': dir, review: 'month-1', 'signed-off-at': '2026-02-28T15:00:00Z' },
        { policy, probe: probe as never, now: () => new Date('2026-03-31T06:00:00Z'), operator: 'test', log: (line) => log.push(line) },
      );
      expect(code).toBe(0);
      expect(urls.map((u) => u.includes('include=clusters'))).toEqual([true, false]);
      // A month of cluster tables may pass the probe's default 1 MB: that read allows 16 MB.
      expect(limits).toEqual([16_000_000, undefined]);
      expect(JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')).abResults).toBeNull();
      expect(readFileSync(join(dir, 'report.md'), 'utf8')).toMatch(/No per-cluster tables in the history for this period/);
      expect(log.join('\n')).toMatch(/no per-cluster history .*HTTP 400.*judged without them/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the post-rollout review schedule (pure)', () => {
  const signedOffAt = '2026-04-10T15:20:00.000Z';

  it('judges complete days after the sign-off day: Day 1, Week 1, Day 30 and the calendar Month 1', () => {
    expect(reviewSchedule(signedOffAt).map((w) => [w.review, w.from, w.to, w.days])).toEqual([
      ['day-1', '2026-04-11', '2026-04-12', 1],
      ['week-1', '2026-04-11', '2026-04-18', 7],
      ['day-30', '2026-04-11', '2026-05-11', 30],
      ['month-1', '2026-04-11', '2026-05-11', 30],
    ]);
    // Month 1 after a January 31st: February's last day.
    expect(reviewSchedule('2027-01-30T08:00:00Z').find((w) => w.review === 'month-1')).toMatchObject({ from: '2027-01-31', to: '2027-02-28', days: 28 });
  });

  it('is due on its day, not before, and not again once recorded for this sign-off', () => {
    expect(dueReview(signedOffAt, [], '2026-04-11')).toBeNull();
    expect(dueReview(signedOffAt, [], '2026-04-12')?.review).toBe('day-1');
    expect(dueReview(signedOffAt, [{ review: 'day-1', signedOffAt }], '2026-04-12')).toBeNull();
    // A review recorded for an earlier sign-off does not count.
    expect(dueReview(signedOffAt, [{ review: 'day-1', signedOffAt: '2026-01-01T00:00:00.000Z' }], '2026-04-12')?.review).toBe('day-1');
  });

  it('catches up a missed review within the grace days, earliest first, then gives up on it', () => {
    expect(dueReview(signedOffAt, [], '2026-04-18')?.review).toBe('day-1');
    expect(dueReview(signedOffAt, [{ review: 'day-1', signedOffAt }], '2026-04-18')?.review).toBe('week-1');
    expect(dueReview(signedOffAt, [{ review: 'day-1', signedOffAt }], '2026-04-26')).toBeNull();
  });

  it('when Day 30 and Month 1 fall on one day, Day 30 runs first and Month 1 the next run', () => {
    const done = [{ review: 'day-1', signedOffAt }, { review: 'week-1', signedOffAt }];
    expect(dueReview(signedOffAt, done, '2026-05-11')?.review).toBe('day-30');
    expect(dueReview(signedOffAt, [...done, { review: 'day-30', signedOffAt }], '2026-05-12')?.review).toBe('month-1');
  });
});

describe('canary evaluate against a real memory service', () => {
  let harness: Harness;
  let scratch: string;
  const until = '2026-03-31';
  const instanceStarted = '2026-01-01T00:00:00.000Z';

  beforeAll(async () => {
    harness = await startHarness();
    scratch = mkdtempSync(join(tmpdir(), 'thirty-day-'));
  });
  afterAll(async () => {
    await harness?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  /** Two instances record their absolute counters at noon every day, from the day before the period. */
  async function recordDays(instancePrefix: string, perDay: (dayIndex: number, instance: number) => MetricTotals): Promise<void> {
    for (const instance of [0, 1]) {
      let cumulative = emptyTotals();
      for (let i = -1; i < 30; i += 1) {
        const delta = perDay(i, instance);
        cumulative = Object.fromEntries(Object.entries(cumulative).map(([k, v]) => [k, v + delta[k as keyof MetricTotals]])) as MetricTotals;
        const noon = new Date(Date.parse('2026-03-01T12:00:00Z') + i * 86_400_000).toISOString();
        await harness.service.store.recordMetricsSample({
          instanceId: `${instancePrefix}-${instance}`,
          deployId: 'deploy-1',
          startedAt: instanceStarted,
          intervalStart: noon,
          recordedAt: noon,
          totals: cumulative,
        });
      }
    }
  }

  const lines: string[] = [];
  const run = (reportDir: string, extra: Record<string, string> = {}) =>
    evaluateCommand(
      { profile: 'thirty-day', 'base-url': harness.url, until, 'report-dir': reportDir, ...extra },
      { policy, probe: httpProbe, now: () => new Date('2026-03-31T06:00:00Z'), operator: 'test', log: (line) => lines.push(line) },
    );

  it('a healthy month passes (exit 0) and writes report.json, report.md with a row per day, report.html with a chart per criterion, and the sign-off', async () => {
    await recordDays('healthy', () => day(1000));
    const dir = join(scratch, 'pass');
    expect(await run(dir, { review: 'day-30', 'signed-off-at': '2026-02-28T15:00:00Z' })).toBe(0);
    const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    expect(report.summary).toMatchObject({ kind: 'thirty-day-evaluation', review: 'day-30', signedOffAt: '2026-02-28T15:00:00.000Z', from: '2026-03-01', to: until, days: 30, verdict: 'pass' });
    expect(report.evaluation.totals.context7Requests).toBe(30 * 2 * 1000);
    expect(report.history.days).toHaveLength(30);
    const markdown = readFileSync(join(dir, 'report.md'), 'utf8');
    expect(markdown).toMatch(/^# 30-day verdict: ✅ pass/);
    expect(markdown.match(/^\| 2026-03-\d\d \|/gm)).toHaveLength(30 * 4);
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(html.match(/<svg /g)).toHaveLength(4);
    expect(html.match(/<rect /g)).toHaveLength(30 * 4);
    expect(html).not.toMatch(/(src|href)="https?:/);
    const signoff = readFileSync(join(dir, 'signoff.md'), 'utf8');
    expect(signoff).toMatch(/## Sign-Off/);
    expect(signoff).toMatch(/\*\*Final Error Rate\*\*: 1\.00% \(600 of 60000 Context7 calls over the period\)/);
    expect(signoff).toMatch(/\*\*Rollback Needed\*\*: NO/);
  });

  it('the Month-1 review reads the per-cluster history and shows the A/B results per cohort, with intervals, never acted on', async () => {
    // One incarnation's cluster rows: absolute counts at each day's end, from the day before the period.
    const startedAt = '2026-02-20T00:00:00.000Z';
    for (let i = -1; i < 30; i += 1) {
      const d = new Date(Date.parse('2026-03-01T00:00:00Z') + i * 86_400_000).toISOString().slice(0, 10);
      await harness.service.store.recordMetricsClusters({ instanceId: 'ab-0', startedAt, day: d, recordedAt: `${d}T23:00:00.000Z`, clusters: abTables(i + 2) });
    }
    const dir = join(scratch, 'month-1');
    lines.length = 0;
    // 30 days to 03-31: the healthy month of the first test, so the verdict passes; the A/B figures do not change it.
    expect(await run(dir, { review: 'month-1', 'signed-off-at': '2026-02-28T15:00:00Z' })).toBe(0);
    const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    // 30 days of 2 x k reads per treatment cluster over the period: the period's counts are abTables(31) - abTables(1).
    expect(report.abResults).toMatchObject({ daysWithClusters: 30, days: 30, pricePerCall: policy.exposure.comparison.context7PricePerCall });
    expect(report.abResults.treatment.snippetsPerRead).toMatchObject({ estimate: 0.5, reads: 4 * 30, clusters: 2 });
    expect(report.abResults.control.readsWithSnippetShare).toMatchObject({ estimate: 1, reads: 4 * 30 });
    expect(report.history.days.some((d: object) => 'clusters' in d)).toBe(false);
    const markdown = readFileSync(join(dir, 'report.md'), 'utf8');
    expect(markdown).toMatch(/## Month 1: A\/B results/);
    expect(markdown).toMatch(/^\| snippets applied per read \| 0\.50 \[-0\.\d\d, 1\.\d\d\] \| 1\.00 \[/m);
    expect(markdown).toMatch(/^\| Context7 calls per read \| 0\.50 \[/m);
    expect(markdown).toMatch(/^- \[x\] Review Context7 costs vs benefits: Context7 costs vs benefits: per 1,000 reads the treatment cost 0\.500 USD/m);
    expect(readFileSync(join(dir, 'report.html'), 'utf8')).toMatch(/<table class="ab"><caption>A\/B results over the period/);
    expect(readFileSync(join(dir, 'signoff.md'), 'utf8')).toMatch(/\*\*Context7 Costs vs Benefits\*\*: /);
    expect(lines.some((line) => line.includes('| reads with >= 1 snippet |'))).toBe(true);

    // Another review reads no cluster tables and shows no A/B section.
    const week = join(scratch, 'week-1');
    expect(await run(week, { review: 'week-1', 'signed-off-at': '2026-02-28T15:00:00Z', days: '28' })).toBe(0);
    expect(JSON.parse(readFileSync(join(week, 'report.json'), 'utf8')).abResults).toBeUndefined();
    expect(readFileSync(join(week, 'report.md'), 'utf8')).not.toMatch(/A\/B results/);
  });

  it('one instance with a bad day fails the error rate (exit 1) and names the day', async () => {
    // The healthy instances of the last test are still there: their days add to these.
    await recordDays('badday', (i, instance) => (i === 19 && instance === 1 ? day(1000, { context7Errors: 300 }) : day(1000)));
    const dir = join(scratch, 'fail');
    // 29 days: another range than the last test's, which the service may still serve from its short cache.
    expect(await run(dir, { days: '29' })).toBe(1);
    const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    expect(report.evaluation.criteria[0]).toMatchObject({ metric: 'errorRate', verdict: 'fail', reason: 'failed on 1 day(s): 2026-03-20' });
    expect(readFileSync(join(dir, 'signoff.md'), 'utf8')).toMatch(/\*\*Rollback Needed\*\*: TO DECIDE/);
  });

  it('days before the history began are inconclusive (exit 2)', async () => {
    const dir = join(scratch, 'early');
    expect(await run(dir, { until: '2026-03-10', days: '30' })).toBe(2);
    const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    // 02-08..02-28: the instances' first sample (02-28 noon) only sets their baseline, so data starts on 03-01.
    expect(report.evaluation.daysWithoutData).toHaveLength(21);
    expect(report.evaluation.daysWithoutData.at(-1)).toBe('2026-02-28');
  });

  it('an unreachable service is exit 3 and writes nothing; bad arguments are exit 64', async () => {
    const dir = join(scratch, 'unreachable');
    // Both runs at once: their start-up overlaps (test/support/tsx-cli.ts).
    const [unreachable, usage] = await Promise.all([
      canaryCli(['evaluate', '--profile', 'thirty-day', '--base-url', 'http://127.0.0.1:9', '--report-dir', dir]),
      canaryCli(['evaluate', '--profile', 'sixty-minute', '--base-url', 'http://127.0.0.1:9']),
    ]);
    expect(unreachable.status).toBe(3);
    expect(unreachable.stdout).toMatch(/could not be read/);
    expect(existsSync(dir)).toBe(false);
    expect(usage.status).toBe(64);
    expect(usage.stderr).toMatch(/--profile thirty-day/);
  }, 180_000);

  it('review-due reads the committed sign-off and the recorded reviews', async () => {
    const reports = join(scratch, 'reports-production');
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(join(reports, 'reviews', 'day-1'), { recursive: true });
    const summary = { schemaVersion: 1, stack: 'production', deployId: 'abc', serviceId: null, outcome: 'signed_off', startedAt: '2026-02-28T14:00:00.000Z', finishedAt: '2026-02-28T15:00:00.000Z' };
    writeFileSync(join(reports, 'report.json'), JSON.stringify({ summary }));
    writeFileSync(join(reports, 'reviews', 'day-1', 'report.json'), JSON.stringify({ summary: { review: 'day-1', signedOffAt: summary.finishedAt } }));
    const output = join(scratch, 'github-output');
    const log: string[] = [];
    expect(reviewDueCommand({ 'reports-dir': reports, today: '2026-03-08', output }, { now: () => new Date(), log: (l) => log.push(l) })).toBe(0);
    expect(readFileSync(output, 'utf8')).toBe('review=week-1\nfrom=2026-03-01\nto=2026-03-08\ndays=7\nsigned_off_at=2026-02-28T15:00:00.000Z\n');
    // A production run that was not a sign-off (a rollback) schedules nothing.
    writeFileSync(join(reports, 'report.json'), JSON.stringify({ summary: { ...summary, outcome: 'rolled_back' } }));
    rmSync(output);
    expect(reviewDueCommand({ 'reports-dir': reports, today: '2026-03-08', output }, { now: () => new Date(), log: (l) => log.push(l) })).toBe(0);
    expect(existsSync(output)).toBe(false);
  });
});
