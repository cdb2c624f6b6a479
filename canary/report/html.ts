/**
 * report.html: one self-contained page (inline SVG and CSS, no scripts, no external requests)
 * plotting each metric over policy time against its thresholds, with checkpoints and actions marked.
 */
import { describeLogJudgement } from '../logs/judge-logs';
import { STORE_FAILING_MESSAGE, type MetricJudgement, type StepRecord } from '../analysis';
import type { MetricValues } from '../analysis/counters';
import { describeBound, formatMetric, RATE_METRICS, type Bound, type MetricName } from '../policy';
import type { CanaryReport } from './report';
import { plainLanguage } from './plain-language';
import { probeHtmlSection } from './probe';
import { syntheticHtmlSection } from './synthetic';
import { checklistHtmlSection } from './checklist';
import { measuredOnHtml } from './measured-on';
import { rollbackSteps } from '../actions/rollback-steps';
import type { CanaryOutcome } from '../report-summary';

const WIDTH = 760;
const HEIGHT = 230;
const MARGIN = { left: 64, right: 16, top: 16, bottom: 34 };

export interface Series {
  label: string;
  className: string;
  /** `hollow`: drawn as an open circle (a window below its minimum sample); `note`: added to the point's tooltip */
  points: { minute: number; value: number; hollow?: boolean; note?: string }[];
}

export interface Rule {
  label: string;
  className: string;
  fromMinute: number;
  toMinute: number;
  value: number;
}

export interface Marker {
  minute: number;
  label: string;
  className: string;
}

/** The reports' shared look (this page and the stepped canary's, canary/report/stepped-html.ts). */
export const REPORT_STYLE = `body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 820px; color: #1d2430; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.outcome { display: inline-block; padding: 2px 10px; border-radius: 12px; font-weight: 600; }
.measured-on { margin: 4px 0 8px; } .measured-on.emulator, .measured-on.none { color: #6b4e00; }
.good { background: #dcf5e3; color: #135c2a; } .warn { background: #fff1cc; color: #6b4e00; } .bad { background: #fde0e0; color: #8a1515; }
table { border-collapse: collapse; width: 100%; font-size: 13px; } td, th { border-bottom: 1px solid #e3e6ea; padding: 4px 6px; text-align: left; vertical-align: top; }
figure { margin: 12px 0 20px; } figcaption { font-weight: 600; margin-bottom: 4px; }
svg.chart { width: 100%; height: auto; background: #fafbfc; border: 1px solid #e3e6ea; border-radius: 6px; }
.axis line, .axis path { stroke: #9aa3ad; } .axis text, .legend text { fill: #4a5360; font-size: 11px; }
.grid { stroke: #eceff2; }
.s-window { fill: none; stroke: #2f6fde; stroke-width: 1.5; } .p-window { fill: #2f6fde; } .hollow { fill: #fff; stroke: #2f6fde; stroke-width: 1.5; }
.s-cumulative { fill: none; stroke: #7b3fbf; stroke-width: 2; stroke-dasharray: 5 3; } .p-cumulative { fill: #7b3fbf; }
.r-rollback { stroke: #d32f2f; stroke-width: 1.5; } .r-abort { stroke: #8d5a00; stroke-width: 2; stroke-dasharray: 10 3; } .r-success { stroke: #2e9d4f; stroke-width: 1.5; stroke-dasharray: 6 4; }
.m-checkpoint { stroke: #8d96a1; stroke-dasharray: 2 3; } .m-decision { stroke: #111; stroke-width: 2; } .m-action { stroke: #e07b00; stroke-width: 1.5; }
.m-label { font-size: 10px; fill: #333; } .err { fill: #d32f2f; }
code { background: #f1f3f5; padding: 0 3px; border-radius: 3px; }
`;

export function renderHtmlReport(report: CanaryReport): string {
  const { summary, policy, decision } = report;
  const endMinute = Math.max(policy.durationMinutes, ...report.steps.map((s) => s.atSeconds / 60));
  const markers = markersOf(report);
  const errorMinutes = report.steps.filter((s) => s.status === 'measurement_error').map((s) => s.atSeconds / 60);
  const charts = (['errorRate', 'fallbackRate', 'avgLatencyMs', 'cacheHitRate', 'context7Requests', 'storeErrorRate'] as const).map((metric) =>
    chart(metric, seriesOf(report.steps, metric, report.policy), rulesOf(report, metric, endMinute), markers, errorMinutes, endMinute),
  );
  const outcomeClass = outcomeClassOf(summary.outcome);

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Canary report: ${esc(summary.stack)} ${esc(summary.deployId)} (${esc(summary.outcome)})</title>
<style>
${REPORT_STYLE}</style>
</head>
<body>
<h1>Context7 memory canary: ${esc(summary.stack)}</h1>
${measuredOnHtml(report.measuredOn, esc)}
<p><span class="outcome ${outcomeClass}">${esc(outcomeWording(summary.outcome))}</span>
 deploy <code>${esc(summary.deployId)}</code>${summary.serviceId ? ` on <code>${esc(summary.serviceId)}</code>` : ''},
 ${esc(summary.startedAt)} &rarr; ${esc(summary.finishedAt)}${report.dryRun ? ' (dry run: no action taken)' : ''}.</p>
<p>${decision ? `Decision at policy minute ${(decision.atSeconds / 60).toFixed(1)} (${esc(decision.trigger)}): ${esc(decision.reason)}` : 'No decision was reached.'}</p>
${rollbackStepsList(report)}<h2>Metrics over time</h2>
<p>Solid blue: the last poll window. Dashed purple: since the deploy. Red: rollback thresholds in force. Long-dashed brown: the store-error bound (policy storeErrors; red when it is set to roll back).
Dashed green: ${policy.successCriteria.atMinute}-minute success criteria. Grey dotted: checkpoints. Black: the decision. Orange: actions. Red crosses: unreadable measurements.</p>
${charts.join('\n')}
<h2>Local store</h2>
${storeSection(report)}${backfillSection(report)}${probeHtmlSection(report.probe, esc)}${syntheticHtmlSection(report.syntheticTraffic, esc)}${checklistHtmlSection(report.checklist, esc)}${secondSourcesSection(report)}
<h2>Checkpoints</h2>
${checkpointTable(report)}
<h2>30-day profile (informational)</h2>
${profileTable(report)}
<h2>Actions</h2>
${actionTable(report)}
<h2>Polls</h2>
${pollTable(report)}
<p>Policy: poll every ${policy.pollIntervalSeconds} s, ${policy.durationMinutes} minutes, ${Math.round(policy.confidence * 100)}% Wilson intervals,
minimum samples ${policy.minimumSample.context7Requests}/${policy.minimumSample.memoryRequests}/${policy.minimumSample.cacheLookups}/${policy.minimumSample.storeRequests}
(Context7 calls / memory requests / cache lookups / store requests); store errors above ${formatMetric('storeErrorRate', policy.storeErrors.abortIf.above)}: ${policy.storeErrors.onBreach}.</p>
</body>
</html>
`;
}

function seriesOf(steps: StepRecord[], metric: MetricName, policy: CanaryReport['policy']): Series[] {
  const measured = steps.filter((s) => s.status === 'measured');
  const pick = (values: MetricValues | null) => (values ? values[metric] : undefined);
  const series: Series[] = [];
  if (metric !== 'context7Requests') {
    // A window below its minimum sample is drawn hollow, its n in the tooltip: a 100 % of 3 calls judges nothing.
    const minimum = minimumSampleOf(metric, policy);
    series.push({
      label: 'last window',
      className: 'window',
      points: measured.flatMap((s) => {
        const v = pick(s.window.values);
        const n = s.window.counts ? denominator(metric, s) : 0;
        if (v === undefined || n <= 0) return [];
        const below = minimum !== undefined && n < minimum;
        return [{ minute: s.atSeconds / 60, value: v, ...(below ? { hollow: true, note: `n = ${n}, below the minimum sample of ${minimum}: not judged` } : { note: `n = ${n}` }) }];
      }),
    });
  }
  series.push({
    label: metric === 'context7Requests' ? 'Context7 calls since deploy' : 'since deploy',
    className: 'cumulative',
    points: measured.map((s) => ({ minute: s.atSeconds / 60, value: s.cumulative.values[metric] })),
  });
  return series;
}

/** The minimum sample the policy asks of a metric's window (canary/policy.ts minimumSample), if it has one. */
function minimumSampleOf(metric: MetricName, policy: CanaryReport['policy']): number | undefined {
  const m = policy.minimumSample;
  if (metric === 'errorRate' || metric === 'avgLatencyMs') return m.context7Requests;
  if (metric === 'fallbackRate') return m.memoryRequests;
  if (metric === 'cacheHitRate') return m.cacheLookups;
  return undefined;
}

function denominator(metric: MetricName, step: StepRecord): number {
  const c = step.window.counts!;
  if (metric === 'errorRate' || metric === 'avgLatencyMs') return c.context7Requests;
  if (metric === 'fallbackRate') return c.requests;
  if (metric === 'cacheHitRate') return c.cacheHits + c.cacheMisses;
  if (metric === 'storeErrorRate') return c.storeRequests;
  return 1;
}

function thresholdOf(bound: Bound): number {
  return 'above' in bound ? bound.above : bound.below;
}

function rulesOf(report: CanaryReport, metric: MetricName, endMinute: number): Rule[] {
  const rules: Rule[] = [];
  if (metric === 'storeErrorRate') {
    // Judged apart from the checkpoints: one bound from the deploy to the end.
    const { abortIf, onBreach } = report.policy.storeErrors;
    return [{ label: `${onBreach} ${describeBound(metric, abortIf)}`, className: onBreach, fromMinute: 0, toMinute: endMinute, value: abortIf.above }];
  }
  let from = 0;
  report.policy.checkpoints.forEach((checkpoint, index) => {
    const last = index === report.policy.checkpoints.length - 1;
    const to = last ? endMinute : checkpoint.atMinute;
    const bound = checkpoint.rollbackIf[metric];
    if (bound) rules.push({ label: `rollback ${describeBound(metric, bound)}`, className: 'rollback', fromMinute: from, toMinute: to, value: thresholdOf(bound) });
    from = checkpoint.atMinute;
  });
  const required = report.policy.successCriteria.require[metric];
  if (required) rules.push({ label: `required ${describeBound(metric, required)}`, className: 'success', fromMinute: 0, toMinute: endMinute, value: thresholdOf(required) });
  return rules;
}

function markersOf(report: CanaryReport): Marker[] {
  const markers: Marker[] = report.policy.checkpoints.map((c) => ({ minute: c.atMinute, label: `${c.atMinute}′`, className: 'checkpoint' }));
  markers.push({ minute: report.policy.durationMinutes, label: `${report.policy.durationMinutes}′`, className: 'checkpoint' });
  // A dry run decided, and did nothing: its marker says what it would have done.
  if (report.decision) markers.push({ minute: report.decision.atSeconds / 60, label: decisionLabel(report.decision.kind, report.dryRun), className: 'decision' });
  const started = Date.parse(report.summary.startedAt);
  // The decision's own action (promote after a promote decision) is the decision's marker: not labelled twice.
  const seen = new Set<string>(report.decision ? [report.decision.kind] : []);
  for (const action of report.actions) {
    const minute = ((Date.parse(action.at) - started) / 1000) * report.timeScale / 60;
    // One marker per kind of action: the chart shows when, the table shows every detail.
    if (!Number.isFinite(minute) || seen.has(action.action) || ['verify', 'deploy-status'].includes(action.action)) continue;
    seen.add(action.action);
    markers.push({ minute, label: report.dryRun ? `would ${action.action} (dry run)` : action.action, className: 'action' });
  }
  return markers;
}

function chart(metric: MetricName, series: Series[], rules: Rule[], markers: Marker[], errorMinutes: number[], endMinute: number): string {
  const isRate = (RATE_METRICS as readonly string[]).includes(metric);
  const format = (v: number) => formatMetric(metric, metric === 'context7Requests' ? Math.round(v) : v);
  return plotChart({ name: metric, yMaxAtMost: isRate ? 1 : undefined, yMaxAtLeast: isRate ? 0.01 : 1, format }, series, rules, markers, errorMinutes, endMinute);
}

export interface ChartSpec {
  /** the figure's name: caption, data-metric attribute, aria label */
  name: string;
  format: (value: number) => string;
  yMaxAtLeast: number;
  yMaxAtMost?: number | undefined;
}

/** One inline-SVG line chart over policy minutes: series, horizontal rules, vertical markers, unreadable polls. */
export function plotChart(spec: ChartSpec, series: Series[], rules: Rule[], markers: Marker[], errorMinutes: number[], endMinute: number): string {
  const metric = spec.name;
  const values = [...series.flatMap((s) => s.points.map((p) => p.value)), ...rules.map((r) => r.value)];
  let yMax = Math.max(...values, spec.yMaxAtLeast) * 1.15;
  if (spec.yMaxAtMost !== undefined) yMax = Math.min(spec.yMaxAtMost, yMax);
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const x = (minute: number) => MARGIN.left + (Math.min(Math.max(minute, 0), endMinute) / endMinute) * plotW;
  // Marker labels close together go on separate rows, in a band above the plot: never over each other, never over
  // the data (a rate at 100 % sits on the plot's top edge).
  const labelRows: { marker: Marker; row: number }[] = [];
  const rowEnds: number[] = [];
  for (const marker of [...markers].sort((a, b) => a.minute - b.minute)) {
    const mx = x(marker.minute);
    let row = rowEnds.findIndex((end) => end < mx);
    if (row === -1) row = rowEnds.push(0) - 1;
    rowEnds[row] = mx + 6 * marker.label.length + 6;
    labelRows.push({ marker, row });
  }
  const top = MARGIN.top + 12 * rowEnds.length;
  const plotH = HEIGHT - top - MARGIN.bottom;
  const y = (value: number) => top + plotH - (Math.min(value, yMax) / yMax) * plotH;
  const fmt = spec.format;
  const parts: string[] = [];

  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    parts.push(`<line class="grid" x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/>`);
    parts.push(`<text class="axis" x="${MARGIN.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" font-size="11" fill="#4a5360">${esc(fmt(v))}</text>`);
  }
  const step = endMinute > 30 ? 10 : endMinute > 10 ? 5 : 1;
  for (let m = 0; m <= endMinute + 1e-9; m += step) {
    parts.push(`<text x="${x(m).toFixed(1)}" y="${HEIGHT - MARGIN.bottom + 16}" text-anchor="middle" font-size="11" fill="#4a5360">${m}</text>`);
  }
  parts.push(`<text x="${WIDTH - MARGIN.right}" y="${HEIGHT - 4}" text-anchor="end" font-size="11" fill="#4a5360">policy minutes since deploy</text>`);
  parts.push(`<g class="axis"><line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${top + plotH}" y2="${top + plotH}"/><line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${top}" y2="${top + plotH}"/></g>`);

  for (const { marker, row } of labelRows) {
    const mx = x(marker.minute);
    parts.push(`<line class="m-${marker.className}" x1="${mx.toFixed(1)}" x2="${mx.toFixed(1)}" y1="${MARGIN.top + 12 * row}" y2="${top + plotH}"><title>${esc(marker.label)} at minute ${marker.minute.toFixed(1)}</title></line>`);
    const nearRightEdge = mx + 6 * marker.label.length > WIDTH - MARGIN.right;
    parts.push(
      `<text class="m-label" x="${(nearRightEdge ? mx - 3 : mx + 3).toFixed(1)}" y="${MARGIN.top + 8 + 12 * row}"${nearRightEdge ? ' text-anchor="end"' : ''}>${esc(marker.label)}</text>`,
    );
  }
  for (const rule of rules) {
    const ry = y(rule.value).toFixed(1);
    parts.push(`<line class="r-${rule.className}" x1="${x(rule.fromMinute).toFixed(1)}" x2="${x(rule.toMinute).toFixed(1)}" y1="${ry}" y2="${ry}"><title>${esc(rule.label)}</title></line>`);
  }
  for (const s of series) {
    if (s.points.length > 1) {
      const d = s.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.minute).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ');
      parts.push(`<path class="s-${s.className}" d="${d}"/>`);
    }
    for (const p of s.points) {
      parts.push(
        `<circle class="p-${s.className}${p.hollow ? ' hollow' : ''}" cx="${x(p.minute).toFixed(1)}" cy="${y(p.value).toFixed(1)}" r="${p.hollow ? 3 : 2.5}"><title>${esc(s.label)} at minute ${p.minute.toFixed(1)}: ${esc(fmt(p.value))}${p.note ? ` (${esc(p.note)})` : ''}</title></circle>`,
      );
    }
  }
  for (const minute of errorMinutes) {
    parts.push(`<text class="err" x="${x(minute).toFixed(1)}" y="${top + plotH - 3}" text-anchor="middle" font-size="12">×<title>metrics unreadable at minute ${minute.toFixed(1)}</title></text>`);
  }
  const hollow = series.some((s) => s.points.some((p) => p.hollow));
  const legend = [...rules.map((r) => esc(r.label)), ...(hollow ? ['open circles: a window below its minimum sample, not judged'] : [])].join(' · ');
  return `<figure data-metric="${metric}">
<figcaption>${esc(metric)}${legend ? ` <small>(${legend})</small>` : ''}</figcaption>
<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${esc(metric)} over time">
${parts.join('\n')}
</svg>
</figure>`;
}

function checkpointTable(report: CanaryReport): string {
  const row = (when: string, j: MetricJudgement & { carriedFrom?: string }, emphasis = false) =>
    `<tr${emphasis ? ' class="bad"' : ''}><td>${esc(when)}</td><td>${esc(j.metric)} ${esc(describeBound(j.metric, j.bound))}${j.carriedFrom ? ` (carried from ${esc(j.carriedFrom)})` : ''}</td><td>${esc(formatMetric(j.metric, j.value))}</td><td><b>${j.verdict}</b></td><td>${esc(plainLanguage(j))}<br><small>${esc(j.reason)}</small></td></tr>`;
  // A breach decided between checkpoints lives in that poll's own checks: show the judgement that decided.
  const decision = report.decision;
  const decidingStep = decision ? report.steps[decision.stepIndex] : undefined;
  const deciding = decidingStep
    ? [...decidingStep.breachChecks, ...(decidingStep.storeChecks ?? [])].filter((j) => j.verdict === 'fail')
    : [];
  const decidedInCheckpoint = decidingStep?.checkpoints.some((c) => c.outcome === 'fail') ?? false;
  const decidingRows = decidedInCheckpoint
    ? []
    : deciding.map((j) => row(`decision (poll at minute ${(decidingStep!.atSeconds / 60).toFixed(1)}, ${j.scope === 'window' ? 'last window' : 'checkpoint period'})`, j, true));
  const rows = [
    ...decidingRows,
    ...report.checkpoints.flatMap((c) => [
      ...c.judgements.map((j) => row(c.name, j, j.verdict === 'fail')),
      ...(c.health ? [`<tr><td>${esc(c.name)}</td><td>health available</td><td>${esc(c.health.state)}</td><td><b>${c.health.verdict}</b></td><td></td></tr>`] : []),
    ]),
  ];
  if (rows.length === 0) return '<p>No checkpoint was reached.</p>';
  return `<table><thead><tr><th>checkpoint</th><th>criterion</th><th>value</th><th>verdict</th><th>why</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function profileTable(report: CanaryReport): string {
  if (report.thirtyDayProfile.length === 0) return '<p>Nothing measured.</p>';
  return `<table><thead><tr><th>criterion</th><th>value since deploy</th><th>verdict</th><th>why</th></tr></thead><tbody>${report.thirtyDayProfile
    .map((j) => `<tr><td>${esc(j.metric)} ${esc(describeBound(j.metric, j.bound))}</td><td>${esc(formatMetric(j.metric, j.value))}</td><td>${j.verdict}</td><td>${esc(j.reason)}</td></tr>`)
    .join('')}</tbody></table>`;
}

function storeSection(report: CanaryReport): string {
  const store = report.storeErrors;
  const decidedByStore = report.decision?.trigger === 'store_errors';
  const rows = [
    ['requests that needed the store, since the deploy', store.requests === null ? 'not measured' : String(store.requests)],
    ['failed by the store (503)', store.errors === null ? 'not measured' : String(store.errors)],
    ['store error rate', store.rate === null ? 'not measured' : formatMetric('storeErrorRate', store.rate)],
    ['policy', `${store.onBreach} when significantly above ${formatMetric('storeErrorRate', store.bound.above)} over a poll window or checkpoint period`],
    ['breach', store.breach ? `at minute ${(store.breach.atSeconds / 60).toFixed(1)} over the ${store.breach.scope === 'window' ? 'last window' : 'checkpoint period'}: ${store.breach.reason}` : 'none'],
  ];
  const alert = decidedByStore && report.decision?.kind === 'abort' ? `<p class="bad"><b>${esc(STORE_FAILING_MESSAGE)}.</b> The canary stopped without promoting or rolling back.</p>` : '';
  return `${alert}<table><tbody>${rows.map(([k, v]) => `<tr><td>${esc(k!)}</td><td>${esc(v!)}</td></tr>`).join('')}</tbody></table>`;
}

/** Render logs and Render's platform metrics beside the service's own figures, and the sources' disagreements. */
function secondSourcesSection(report: CanaryReport): string {
  const s = report.secondSources;
  if (!s || (!s.logs && !s.platform)) return '';
  const parts: string[] = [];
  if (s.disagreements.length) {
    parts.push(`<h2>Sources disagree</h2>\n<ul class="disagreements">${s.disagreements
      .map((d) => `<li class="bad">at policy minute ${(d.atSeconds / 60).toFixed(1)}: ${esc(d.detail)}</li>`)
      .join('')}</ul>`);
  }
  if (s.platform) {
    const own = s.platform.service;
    const rows = s.platform.judgements.map(
      (j) => `<tr><td>${esc(j.name)}</td><td>${esc(j.name === 'http5xxRate' ? formatMetric('errorRate', j.value) : j.name === 'p95LatencyMs' ? `${j.value.toFixed(0)} ms` : `${j.value.toFixed(1)} MB`)}</td><td>${j.sample}</td><td class="${j.verdict === 'fail' ? 'bad' : ''}">${j.verdict}</td><td>${esc(j.reason)}</td></tr>`,
    );
    parts.push(`<h2>Render platform metrics</h2>
<p>Render's load balancer and instances, independent of what the service reports. The service's own figures since the deploy:
error rate ${own.errorRate === null ? 'not measured' : esc(formatMetric('errorRate', own.errorRate))}, average latency ${own.avgLatencyMs === null ? 'not measured' : `${own.avgLatencyMs.toFixed(0)} ms`}, health ${esc(own.health ?? 'unknown')}.</p>
${s.platform.error ? `<p class="warn">Last read failed: ${esc(s.platform.error)} (a measurement problem, not a breach).</p>` : ''}<table class="platform"><thead><tr><th>figure</th><th>value since deploy</th><th>sample</th><th>verdict</th><th>why</th></tr></thead><tbody>${rows.join('')}</tbody></table>`);
  }
  if (s.logs) {
    const l = s.logs;
    const signatures = l.signatures.slice(0, 10).map((g) => `<tr><td>${g.count}</td><td>${esc(g.kinds.join(', '))}</td><td><code>${esc(g.signature)}</code></td></tr>`);
    parts.push(`<h2>Render logs</h2>
<p class="${l.clean === 'fail' ? 'bad' : l.clean === 'pass' ? 'good' : 'warn'}">${esc(describeLogJudgement(l))}. Clean: <b>${l.clean}</b>.</p>
${signatures.length ? `<table class="log-signatures"><thead><tr><th>count</th><th>kind</th><th>error signature</th></tr></thead><tbody>${signatures.join('')}</tbody></table>` : ''}`);
  }
  return `${parts.join('\n')}\n`;
}

/** Runbook Step 4: the followed backfill's progress and its judgement. */
function backfillSection(report: CanaryReport): string {
  const b = report.backfill;
  if (!b) return '';
  const cls = b.verdict === 'fail' ? 'bad' : b.verdict === 'pass' ? 'good' : '';
  return `<h2>Backfill</h2>\n<p class="${cls}">${esc(b.status.detail)}: <b>${esc(b.verdict.replace('_', ' '))}</b> (${esc(b.reason)})</p>
<progress max="100" value="${Math.round(b.status.progressPercent)}">${Math.round(b.status.progressPercent)}%</progress>\n`;
}

/** The rollback's steps (flag, then code) above the charts, so what was rolled back is read first. */
export function rollbackStepsList(report: Pick<CanaryReport, 'actions'>): string {
  const steps = rollbackSteps(report.actions);
  if (steps.length === 0) return '';
  return `<h2>Rollback steps</h2>\n<ol class="rollback-steps">${steps
    .map((s) => `<li><b>${esc(s.action)}</b> ${s.ok ? 'ok' : '<b>not ok</b>'}: ${esc(s.detail)}</li>`)
    .join('')}</ol>\n`;
}

export function actionTable(report: Pick<CanaryReport, 'actions'>): string {
  if (report.actions.length === 0) return '<p>No actions.</p>';
  return `<table><thead><tr><th>time</th><th>action</th><th>ok</th><th>detail</th></tr></thead><tbody>${report.actions
    .map((a) => `<tr><td>${esc(a.at)}</td><td>${esc(a.action)}</td><td>${a.ok ? 'yes' : '<b>no</b>'}</td><td>${esc(a.detail)}</td></tr>`)
    .join('')}</tbody></table>`;
}

function pollTable(report: CanaryReport): string {
  const rows = report.steps.map((s) => {
    const v = s.window.values;
    const window =
      s.status === 'measurement_error'
        ? 'unreadable'
        : v
          ? `err ${formatMetric('errorRate', v.errorRate)}, fb ${formatMetric('fallbackRate', v.fallbackRate)}, lat ${formatMetric('avgLatencyMs', v.avgLatencyMs)}, store err ${formatMetric('storeErrorRate', v.storeErrorRate)}`
          : 'invalid (reset)';
    return `<tr><td>${(s.atSeconds / 60).toFixed(1)}</td><td>${esc(s.instances.join(', ') || '-')}</td><td>${esc(window)}</td><td>${esc(s.health)}</td><td>${esc(s.notes.join('; '))}</td></tr>`;
  });
  return `<table><thead><tr><th>minute</th><th>instances</th><th>last window</th><th>health</th><th>notes</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

export function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A decision's name on the charts: a dry run's is what it would have done. */
export function decisionLabel(kind: string, dryRun: boolean): string {
  return dryRun ? `would ${kind} (dry run)` : kind;
}

/** The outcome as the badge says it: a dry run's rollback is one that was not done. */
export function outcomeWording(outcome: CanaryOutcome): string {
  return outcome === 'would_roll_back' ? 'would roll back (dry run: nothing was done)' : outcome.replaceAll('_', ' ');
}

/** The report's colour for an outcome: good, warn (held, or a dry run that would roll back) or bad. */
export function outcomeClassOf(outcome: CanaryOutcome): 'good' | 'warn' | 'bad' {
  return outcome === 'promoted' || outcome === 'signed_off' ? 'good' : outcome === 'held' || outcome === 'would_roll_back' ? 'warn' : 'bad';
}
