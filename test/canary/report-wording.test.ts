/** report.html says what decided, in plain words, and its legend follows the policy it was judged with. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyze } from '../../canary/analysis';
import { loadPolicy } from '../../canary/policy';
import { renderHtmlReport } from '../../canary/report/html';
import { plainLanguage } from '../../canary/report/plain-language';
import { buildReport } from '../../canary/report/report';
import { loadTimeline } from '../../canary/timeline';
import { noRenderPlatform } from '../../render/platform';

const REPO = join(__dirname, '../..');

function reportOf(policyFile: string, timelineFile: string) {
  const policy = loadPolicy(join(REPO, policyFile));
  const timeline = loadTimeline(join(REPO, timelineFile));
  const result = analyze(policy, { deployId: timeline.deployId, measurements: timeline.measurements });
  return buildReport({
    stack: 'production', serviceId: null, outcome: 'rolled_back', startedAt: '2026-11-24T10:00:00.000Z', finishedAt: '2026-11-24T11:00:00.000Z',
    measuredOn: noRenderPlatform('http://127.0.0.1:9'), dryRun: false, baseUrl: 'http://127.0.0.1:9', operator: 'test', timeScale: 1, policy, measurements: timeline.measurements, result, actions: [],
  });
}

describe('plain-language judgements', () => {
  it('say the figure, what it was a share of, and the limit', () => {
    expect(plainLanguage({ metric: 'errorRate', value: 0.34, sample: 3348, bound: { above: 0.05 }, role: 'breach' })).toBe(
      'Context7 errors were 34.0% of 3,348 Context7 calls; the limit was 5.00%',
    );
    expect(plainLanguage({ metric: 'cacheHitRate', value: 0.12, sample: 900, bound: { above: 0.2 }, role: 'require' })).toBe(
      'cache hits were 12.0% of 900 cache lookups; the floor was 20.0%',
    );
    expect(plainLanguage({ metric: 'avgLatencyMs', value: 1430, sample: 120, bound: { above: 1000 }, role: 'breach' })).toBe(
      'Context7 calls took 1430 ms on average over 120 calls; the limit was 1000 ms',
    );
  });
});

describe('report.html', () => {
  it('shows the judgement that decided a rollback between checkpoints, in the checkpoints table', () => {
    const report = reportOf('canary/policy.yaml', 'canary/timelines/step-regression-20min.json');
    expect(report.decision).toMatchObject({ kind: 'rollback', trigger: 'breach' });
    const html = renderHtmlReport(report);
    const table = html.slice(html.indexOf('<h2>Checkpoints</h2>'), html.indexOf('<h2>30-day profile'));
    expect(table).toMatch(/<tr class="bad"><td>decision \(poll at minute \d+\.\d, (last window|checkpoint period)\)<\/td><td>errorRate &gt; /);
    expect(table).toMatch(/Context7 errors were [\d.]+% of [\d,]+ Context7 calls; the limit was/);
  });

  it('names the success criteria minute from the policy (a 10-minute demo policy says 10)', () => {
    expect(renderHtmlReport(reportOf('canary/policy.yaml', 'canary/timelines/step-regression-20min.json'))).toContain('Dashed green: 60-minute success criteria');
    expect(renderHtmlReport(reportOf('demo/policy.yaml', 'canary/timelines/step-regression-20min.json'))).toContain('Dashed green: 10-minute success criteria');
  });
});
