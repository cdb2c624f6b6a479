/**
 * The stepped canary's report.html: exposure over time (requested changes and what the fleet applied), each
 * step's cohorts side by side, each comparison's test, p-value and alpha, and the kill-switch and durable
 * rollback times. Self-contained like canary/report/html.ts, whose chart and look it reuses.
 */
import { describeRollbackDuration } from '../actions/rollback-timing';
import { actionTable, decisionLabel, esc, outcomeClassOf, outcomeWording, plotChart, REPORT_STYLE, rollbackStepsList, type Marker, type Series } from './html';
import { COHORT_ROWS, describeAbResults, describeKillSwitch, formatP, testShown, type SteppedReport } from './stepped';
import type { AbResults } from '../exposure/types';
import { measuredOnHtml } from './measured-on';

export function renderSteppedHtml(report: SteppedReport): string {
  const { summary, decision } = report;
  const outcomeClass = outcomeClassOf(summary.outcome);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Stepped canary report: ${esc(summary.stack)} ${esc(summary.deployId)} (${esc(summary.outcome)})</title>
<style>
${REPORT_STYLE}.s-applied { fill: none; stroke: #2f6fde; stroke-width: 2; } .p-applied { fill: #2f6fde; }
.s-requested { fill: none; stroke: #7b3fbf; stroke-width: 1.5; stroke-dasharray: 5 3; } .p-requested { fill: #7b3fbf; }
.worse { color: #8a1515; font-weight: 600; }
</style>
</head>
<body>
<h1>Context7 memory stepped canary: ${esc(summary.stack)}</h1>
${measuredOnHtml(report.measuredOn, esc)}
<p><span class="outcome ${outcomeClass}">${esc(outcomeWording(summary.outcome))}</span>
 deploy <code>${esc(summary.deployId)}</code>${summary.serviceId ? ` on <code>${esc(summary.serviceId)}</code>` : ''},
 ${esc(summary.startedAt)} &rarr; ${esc(summary.finishedAt)}${report.dryRun ? ' (dry run: no action taken)' : ''}.
 Steps ${report.steps.map((s) => `${s.percent}%`).join(' &rarr; ')}; exposure judged good up to <b>${summary.exposureReachedPercent ?? 0}%</b> (the highest step it advanced from or promoted at; the chart shows what was applied).</p>
<p>${decision ? `Decision at policy minute ${(decision.atSeconds / 60).toFixed(1)} (${esc(decision.trigger)}): ${esc(decision.reason)}` : 'No decision was reached.'}</p>
${timesSection(report)}${rollbackStepsList(report)}<h2>Exposure over time</h2>
<p>Solid blue: the percentage the fleet reported applying at each poll (the lowest of any instance). Dashed purple: the percentage the canary set. Black: the decision; orange: exposure changes and actions.</p>
${exposureChart(report)}
<h2>Steps</h2>
${report.steps.map((step) => stepSection(report, step)).join('\n')}
<h2>Actions</h2>
${actionTable(report)}
</body>
</html>
`;
}

function timesSection(report: SteppedReport): string {
  const rows: string[] = [];
  if (report.killSwitch) rows.push(`<tr><th>Kill switch</th><td>${esc(describeKillSwitch(report.killSwitch))}</td></tr>`);
  if (report.rollbackDuration) rows.push(`<tr><th>Durable rollback</th><td>${esc(describeRollbackDuration(report.rollbackDuration))}</td></tr>`);
  return rows.length ? `<h2>Rollback times</h2>\n<table class="times">${rows.join('')}</table>\n` : '';
}

function exposureChart(report: SteppedReport): string {
  const minute = (seconds: number) => seconds / 60;
  const applied: Series = { label: 'applied by the fleet', className: 'applied', points: report.exposureOverTime.map((p) => ({ minute: minute(p.atSeconds), value: p.appliedPercent })) };
  // The kill switch's confirmation is a reading of the fleet too: every instance at 0 from then on.
  const killed = report.killSwitch?.appliedAt ? Date.parse(report.killSwitch.appliedAt) : undefined;
  if (killed !== undefined) applied.points.push({ minute: minute(((killed - Date.parse(report.summary.startedAt)) / 1000) * report.timeScale), value: 0 });
  // The set percentage as a staircase: each change holds until the next.
  const requested: Series = { label: 'set by the canary', className: 'requested', points: [] };
  const changes = [...report.exposureChanges].sort((a, b) => a.atSeconds - b.atSeconds);
  const lastSeconds = Math.max(...applied.points.map((p) => p.minute * 60), ...changes.map((c) => c.atSeconds), 60);
  changes.forEach((change, i) => {
    const previous = changes[i - 1];
    if (previous) requested.points.push({ minute: minute(change.atSeconds), value: previous.percent });
    requested.points.push({ minute: minute(change.atSeconds), value: change.percent });
    if (i === changes.length - 1) requested.points.push({ minute: minute(lastSeconds), value: change.percent });
  });
  const markers: Marker[] = changes.map((c) => ({ minute: minute(c.atSeconds), label: c.kind === 'kill-switch' ? 'kill switch' : `${c.percent}%`, className: 'action' }));
  if (report.decision) markers.push({ minute: minute(report.decision.atSeconds), label: decisionLabel(report.decision.kind, report.dryRun), className: 'decision' });
  return plotChart(
    { name: 'exposurePercent', format: (v) => `${Math.round(v)}%`, yMaxAtLeast: 100 / 1.15, yMaxAtMost: 100 },
    [requested, applied],
    [],
    markers,
    [],
    Math.max(minute(lastSeconds), 1),
  );
}

function stepSection(report: SteppedReport, step: SteppedReport['steps'][number]): string {
  const title = `<h3>Step ${step.index + 1}: ${step.percent}%</h3>`;
  if (step.startedAtSeconds === null) return `${title}\n<p>Not reached.</p>`;
  const change = step.change?.seconds !== undefined ? `applied on every instance in ${step.change.seconds.toFixed(2)} s` : step.change?.failed ? esc(step.change.failed) : '';
  const decision = step.lastDecision;
  const cohorts = step.cohorts
    ? `<table class="cohorts"><thead><tr><th>policy minutes ${(step.cohorts.fromSeconds / 60).toFixed(1)}&ndash;${(step.cohorts.toSeconds / 60).toFixed(1)}</th><th>treatment (${step.percent}% of scopes)</th><th>control</th></tr></thead><tbody>${COHORT_ROWS.map(
        ([label, pick]) => `<tr><td>${esc(label)}</td><td>${esc(pick(step.cohorts!.treatment, 'treatment'))}</td><td>${esc(pick(step.cohorts!.control, 'control'))}</td></tr>`,
      ).join('')}</tbody></table>`
    : '<p>Fewer than two readable polls: no window to compare.</p>';
  const comparisons = decision?.comparisons.length
    ? `<table class="comparisons"><thead><tr><th>figure</th><th>test</th><th>treatment</th><th>control</th><th>p-value</th><th>alpha this look</th><th>result</th></tr></thead><tbody>${decision.comparisons
        .map(
          (c) =>
            `<tr><td>${esc(c.figure)}</td><td>${esc(testShown(c))}</td><td>${c.figure === 'latency' ? `${c.treatment.value.toFixed(0)} ms` : `${(c.treatment.value * 100).toFixed(2)}%`} (n ${c.treatment.n})</td><td>${
              c.figure === 'latency' ? `${c.control.value.toFixed(0)} ms` : `${(c.control.value * 100).toFixed(2)}%`
            } (n ${c.control.n})</td><td>${formatP(c.pValue)}</td><td>${formatP(c.alphaThisLook)}</td><td${c.verdict === 'worse' ? ' class="worse"' : ''}>${esc(c.verdict.replace('_', ' '))}<br><small>${esc(c.reason)}</small></td></tr>`,
        )
        .join('')}</tbody></table>`
    : '';
  return `${title}
<p>From policy minute ${(step.startedAtSeconds / 60).toFixed(1)}, ${step.looks} look(s)${change ? `; ${change}` : ''}.
${decision ? `Last look (${decision.look}): <b>${esc(decision.kind)}</b>: ${esc(decision.reason)}` : 'No decision.'}</p>
${cohorts}
${comparisons}
${decision?.plan ? `<p>Plan: ${esc(decision.plan.reason)}${decision.plan.extendedTo ? `; extended once to ${decision.plan.extendedTo}s for too little data` : ''}</p>${decision.plan.covariate ? `<p>${esc(decision.plan.covariate)}</p>` : ''}` : ''}
${decision?.sampleRatio ? `<p${decision.sampleRatio.ok ? '' : ' class="worse"'}>Exposure check: ${esc(decision.sampleRatio.reason)}</p>` : ''}
${decision?.abResults ? abResultsTable(decision.abResults, "A/B results over the step's window") : ''}`;
}

/** Month 1's A/B figures per cohort with their intervals: reported, never acted on (also the Month-1 review's page). */
export function abResultsTable(ab: AbResults, title: string): string {
  const rows = describeAbResults(ab).filter((line) => line.startsWith('| ') && !line.startsWith('| figure'));
  const cells = rows.map((line) => line.split('|').slice(1, -1).map((cell) => cell.trim()));
  return `<table class="ab"><caption>${esc(title)} (reported, never acted on; 95% intervals over scope clusters; ${ab.pricePerCall} ${esc(ab.currency)} per Context7 call)</caption><thead><tr><th>figure</th><th>treatment</th><th>control</th></tr></thead><tbody>${cells
    .map((row) => `<tr>${row.map((cell) => `<td>${esc(cell)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}
