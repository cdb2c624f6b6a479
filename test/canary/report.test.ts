import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { analyze } from '../../canary/analysis';
import { loadPolicy } from '../../canary/policy';
import { renderHtmlReport } from '../../canary/report/html';
import { buildReport, writeReports } from '../../canary/report/report';
import { canaryReportSummarySchema, type CanaryOutcome } from '../../canary/report-summary';
import { loadTimeline } from '../../canary/timeline';
import { DEFAULT_RENDER_BASE_URL } from '../../render/client';
import { renderPlatformOf, type RenderPlatform } from '../../render/platform';

const policy = loadPolicy(join(__dirname, '../../canary/policy.yaml'));
const dir = mkdtempSync(join(tmpdir(), 'canary-report-'));
let browser: Browser | undefined;

/** The rehearsal's emulator unless a test says Render. */
const EMULATOR = renderPlatformOf('http://127.0.0.1:10000/v1');

function reportFor(timelineName: string, outcome: CanaryOutcome, measuredOn: RenderPlatform = EMULATOR) {
  const timeline = loadTimeline(join(__dirname, `../../canary/timelines/${timelineName}.json`));
  const result = analyze(policy, { deployId: timeline.deployId, measurements: timeline.measurements });
  const started = Date.parse('2026-11-20T10:00:00.000Z');
  const actions =
    outcome === 'rolled_back'
      ? [
          { at: new Date(started + result.decision!.atSeconds * 1000 + 5_000).toISOString(), action: 'set-env', ok: true, detail: 'ENABLE_CONTEXT7_MEMORY=false on srv-1' },
          { at: new Date(started + result.decision!.atSeconds * 1000 + 200_000).toISOString(), action: 'deploy-live', ok: true, detail: 'deploy dep-1 is live' },
        ]
      : [];
  return buildReport({
    stack: 'staging',
    serviceId: 'srv-1',
    outcome,
    startedAt: new Date(started).toISOString(),
    finishedAt: new Date(started + 3_600_000).toISOString(),
    measuredOn,
    dryRun: false,
    baseUrl: 'http://127.0.0.1:1',
    operator: 'report-test',
    timeScale: 1,
    policy,
    measurements: timeline.measurements,
    result,
    actions,
  });
}

const CHROMIUM = '/usr/bin/chromium';

/** Debian's Chromium, launched once by the first test that needs it; missing, that test fails and says how to get it. */
async function headlessChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium), as ./scripts/test does`);
  }
  browser ??= await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  return browser;
}

afterAll(async () => {
  await browser?.close();
  if (process.env.KEEP_CANARY_REPORTS) console.log(`reports kept in ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
});

describe('canary reports', () => {
  it('charts: a window below its minimum sample is drawn hollow with its n; a decision is labelled once; labels sit above the data', () => {
    const report = reportFor('healthy-low-traffic', 'promoted');
    const decision = report.decision!;
    // The decision's own action, at the same minute (a promote after a promote decision): labelled once, not twice.
    report.actions.push({ at: new Date(Date.parse(report.summary.startedAt) + decision.atSeconds * 1000).toISOString(), action: decision.kind, ok: true, detail: '' });
    const html = renderHtmlReport(report);
    const figure = (metric: string) => html.slice(html.indexOf(`<figure data-metric="${metric}">`), html.indexOf('</figure>', html.indexOf(`<figure data-metric="${metric}">`)));
    const errorRate = figure('errorRate');
    const hollow = [...errorRate.matchAll(/<circle class="p-window hollow"[^>]*><title>([^<]*)<\/title>/g)].map((m) => m[1]!);
    expect(hollow.length, 'low-traffic windows below the minimum sample').toBeGreaterThan(0);
    for (const title of hollow) expect(title).toMatch(new RegExp(`\\(n = \\d+, below the minimum sample of ${policy.minimumSample.context7Requests}: not judged\\)$`));
    expect(errorRate).toContain('open circles: a window below its minimum sample, not judged');
    for (const metric of ['errorRate', 'fallbackRate', 'cacheHitRate']) {
      const svg = figure(metric);
      const labels = [...svg.matchAll(/<text class="m-label"[^>]* y="([\d.]+)"[^>]*>([^<]*)<\/text>/g)].map((m) => ({ y: Number(m[1]), text: m[2]! }));
      expect(labels.filter((l) => l.text === decision.kind), `${metric}: ${decision.kind} labels`).toHaveLength(1);
      const circles = [...svg.matchAll(/<circle [^>]*cy="([\d.]+)"/g)].map((m) => Number(m[1]));
      expect(circles.length).toBeGreaterThan(0);
      // SVG y grows downwards: every label above (smaller y than) every data point, 100 % ones included.
      expect(Math.max(...labels.map((l) => l.y))).toBeLessThan(Math.min(...circles));
    }
  });


  it('embeds a valid summary for infra and fills in the sign-off block', () => {
    const report = reportFor('step-regression-20min', 'rolled_back');
    const paths = writeReports(join(dir, 'regression'), report);
    const json = JSON.parse(readFileSync(paths.json, 'utf8'));
    expect(canaryReportSummarySchema.parse(json.summary)).toMatchObject({ outcome: 'rolled_back', deployId: '3f2a9c1d7e4b' });
    expect(json.steps).toHaveLength(report.steps.length);
    expect(json.measurements.length).toBeGreaterThanOrEqual(report.steps.length);
    const signoff = readFileSync(paths.signoff, 'utf8');
    expect(signoff).toContain('**Rollout Completed By**: report-test');
    expect(signoff).toMatch(/\*\*Final Error Rate\*\*: \d+\.\d+% \(\d+ of \d+ Context7 calls\)/);
    expect(signoff).toMatch(/\*\*Final Fallback Rate\*\*: \d+\.\d+%/);
    expect(signoff).toContain('**Rollback Needed**: YES');
    expect(signoff).toContain('errorRate breached');
    expect(json.thirtyDayProfile.map((j: { metric: string }) => j.metric)).toEqual(['errorRate', 'fallbackRate', 'cacheHitRate', 'avgLatencyMs']);

    // A run's report replays as a timeline, to the same decision.
    const replayed = loadTimeline(paths.json);
    expect(replayed.deployId).toBe('3f2a9c1d7e4b');
    expect(analyze(policy, { deployId: replayed.deployId, measurements: replayed.measurements }).decision).toEqual(report.decision);

    const healthy = writeReports(join(dir, 'healthy'), reportFor('healthy-high-traffic', 'promoted'));
    const healthySignoff = readFileSync(healthy.signoff, 'utf8');
    expect(healthySignoff).toContain('**Rollback Needed**: NO');
    expect(healthySignoff).not.toMatch(/breach|rollback \(/);
    expect(healthySignoff).toMatch(/\*\*Final Store Error Rate\*\*: 0\.00% \(0 of \d+ requests that needed the local store; abort above 5\.00%\)/);
    expect(healthySignoff).not.toContain('Store Failing');
  });

  it('shows a store outage as its own finding: aborted, store failing, no rollback needed', () => {
    const report = reportFor('store-outage', 'aborted_store_failing');
    const paths = writeReports(join(dir, 'store-outage'), report);
    const json = JSON.parse(readFileSync(paths.json, 'utf8'));
    expect(json.summary.outcome).toBe('aborted_store_failing');
    expect(json.decision).toMatchObject({ kind: 'abort', trigger: 'store_errors' });
    expect(json.storeErrors).toMatchObject({ onBreach: 'abort', bound: { above: 0.05 }, breach: { atSeconds: 22 * 60, scope: 'window' } });
    expect(json.storeErrors.errors).toBeGreaterThan(100);
    expect(json.steps.at(-1).storeChecks.some((c: { verdict: string }) => c.verdict === 'fail')).toBe(true);
    const signoff = readFileSync(paths.signoff, 'utf8');
    expect(signoff).toContain('**Rollback Needed**: NO');
    expect(signoff).toContain('**Store Failing**: YES: the local store is failing; turning Context7 off cannot fix it.');
    expect(signoff).toMatch(/\*\*Final Store Error Rate\*\*: \d+\.\d+% \(\d+ of \d+ requests that needed the local store; abort above 5\.00%\)/);
    const html = readFileSync(paths.html, 'utf8');
    expect(html).toContain('aborted store failing');
    expect(html).toContain('the local store is failing; turning Context7 off cannot fix it.');
  });

  it.each([
    ['step-regression-20min', 'rolled_back', EMULATOR],
    ['flaky-metrics-endpoint', 'promoted', renderPlatformOf(DEFAULT_RENDER_BASE_URL)],
    ['store-outage', 'aborted_store_failing', EMULATOR],
  ] as const)('renders %s in headless Chromium: charts drawn, no console errors, what it was measured against on the first screen', async (name, outcome, measuredOn) => {
    const paths = writeReports(join(dir, `html-${name}`), reportFor(name, outcome, measuredOn));
    const page = await (await headlessChromium()).newPage({ viewport: { width: 900, height: 1200 } });
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('request', (request) => {
      if (!request.url().startsWith('file:')) problems.push(`external request: ${request.url()}`);
    });
    await page.goto(`file://${paths.html}`);
    const charts = await page.$$eval('svg.chart', (svgs) =>
      svgs.map((svg) => {
        const box = svg.getBoundingClientRect();
        return {
          metric: svg.closest('figure')?.getAttribute('data-metric'),
          width: box.width,
          height: box.height,
          points: svg.querySelectorAll('circle').length,
          thresholds: svg.querySelectorAll('line.r-rollback, line.r-success, line.r-abort').length,
          markers: svg.querySelectorAll('line.m-checkpoint, line.m-decision').length,
        };
      }),
    );
    // Emulator or Render: shown above the first chart, inside the first screen, as text a reader sees.
    const banner = page.locator('p.measured-on');
    expect(await banner.isVisible()).toBe(true);
    expect(await banner.getAttribute('data-measured-on')).toBe(measuredOn.kind);
    expect(await banner.innerText()).toContain(measuredOn.kind === 'render' ? 'Measured against: Render (api.render.com)' : 'Measured against: emulator (local platform at http://127.0.0.1:10000)');
    const bannerTop = (await banner.boundingBox())!.y;
    const firstChartTop = (await page.locator('svg.chart').first().boundingBox())!.y;
    expect(bannerTop).toBeLessThan(Math.min(firstChartTop, 1200));
    expect(charts.map((c) => c.metric)).toEqual(['errorRate', 'fallbackRate', 'avgLatencyMs', 'cacheHitRate', 'context7Requests', 'storeErrorRate']);
    for (const chart of charts) {
      expect(chart.width).toBeGreaterThan(300);
      expect(chart.height).toBeGreaterThan(80);
      expect(chart.points).toBeGreaterThan(3);
      expect(chart.markers).toBeGreaterThan(0);
    }
    expect(charts.find((c) => c.metric === 'errorRate')!.thresholds).toBeGreaterThanOrEqual(3);
    expect(charts.find((c) => c.metric === 'storeErrorRate')!.thresholds).toBe(1);
    if (name === 'store-outage') {
      // The outage is drawn: window points well above the abort bound after minute 20.
      const highPoints = await page.$$eval('figure[data-metric="storeErrorRate"] circle.p-window title', (titles) =>
        titles.map((t) => t.textContent ?? '').filter((text) => /: (9\d|100)\.\d%( \(n = \d+\))?$/.test(text)),
      );
      expect(highPoints.length).toBeGreaterThan(0);
    }
    if (name === 'flaky-metrics-endpoint') expect(await page.$$eval('text.err', (marks) => marks.length)).toBeGreaterThan(0);
    const screenshot = join(dirname(paths.html), 'report.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    expect(statSync(screenshot).size).toBeGreaterThan(10_000);
    await page.close();
    expect(problems).toEqual([]);
  }, 60_000);
});

function dirname(path: string): string {
  return path.slice(0, path.lastIndexOf('/'));
}
