/** report.html of the 30-day verdict: self-contained (inline SVG, no external assets), one chart per criterion. */
import { describeBound, formatMetric } from '../policy';
import { abResultsTable } from '../report/stepped-html';
import { costsVersusBenefits } from './ab-results';
import type { CriterionVerdict } from './evaluate';
import type { ThirtyDayReport } from './report';

const COLOURS = { pass: '#2e7d32', fail: '#c62828', inconclusive: '#9e9e9e' } as const;

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** One bar per day coloured by its verdict, the bound as a dashed line. */
function chart(criterion: CriterionVerdict): string {
  const width = 720;
  const height = 160;
  const pad = 30;
  const threshold = 'above' in criterion.bound ? criterion.bound.above : criterion.bound.below;
  const values = criterion.days.map((d) => (Number.isFinite(d.judgement.value) ? d.judgement.value : 0));
  const top = Math.max(threshold * 2, ...values) || 1;
  const slot = (width - pad) / Math.max(1, criterion.days.length);
  const y = (value: number) => height - pad - (value / top) * (height - 2 * pad);
  const bars = criterion.days
    .map(({ day, judgement }, i) => {
      const value = Number.isFinite(judgement.value) ? judgement.value : 0;
      const title = `${day}: ${formatMetric(criterion.metric, value)} (n=${judgement.sample}) ${judgement.verdict}: ${judgement.reason}`;
      return `<rect x="${(pad + i * slot + 1).toFixed(1)}" y="${y(value).toFixed(1)}" width="${Math.max(1, slot - 2).toFixed(1)}" height="${(height - pad - y(value)).toFixed(1)}" fill="${COLOURS[judgement.verdict]}"><title>${esc(title)}</title></rect>`;
    })
    .join('');
  const first = criterion.days[0]?.day ?? '';
  const last = criterion.days.at(-1)?.day ?? '';
  return `<svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(`${criterion.metric} per day`)}">
<line x1="${pad}" x2="${width}" y1="${y(threshold).toFixed(1)}" y2="${y(threshold).toFixed(1)}" stroke="#333" stroke-dasharray="4 3"/>
<text x="2" y="${(y(threshold) + 4).toFixed(1)}" font-size="10">${esc(formatMetric(criterion.metric, threshold))}</text>
${bars}
<text x="${pad}" y="${height - 8}" font-size="10">${esc(first)}</text><text x="${width - 70}" y="${height - 8}" font-size="10">${esc(last)}</text>
</svg>`;
}

function abHtml(report: ThirtyDayReport): string {
  if (report.abResults === undefined) return '';
  const ab = report.abResults;
  if (!ab) return '<section><h2>Month 1: A/B results</h2><p>No per-cluster tables in the history for this period: no A/B figures.</p></section>';
  return `<section><h2>Month 1: A/B results</h2>
<p>Over ${ab.daysWithClusters} of ${ab.days} day(s) with per-cluster tables. Figures only: no verdict depends on them.</p>
${abResultsTable(ab, 'A/B results over the period')}
<p>${esc(costsVersusBenefits(ab))}</p></section>`;
}

export function renderThirtyDayHtml(report: ThirtyDayReport): string {
  const { summary, evaluation } = report;
  const sections = evaluation.criteria
    .map(
      (c) => `<section><h2>${esc(`${c.metric} ${describeBound(c.metric, c.bound)}`)}: <span style="color:${COLOURS[c.verdict]}">${c.verdict}</span></h2>
<p>${esc(c.rule === 'every-day' ? 'Consistently: every day with enough sample must pass.' : 'Judged over the whole period.')} ${esc(c.reason)}. ${c.passDays} pass, ${c.failDays} fail, ${c.inconclusiveDays} inconclusive day(s).</p>
${chart(c)}</section>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>30-day verdict: ${esc(evaluation.verdict)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}section{margin-bottom:1.5rem}</style></head>
<body><h1>30-day verdict: <span style="color:${COLOURS[evaluation.verdict]}">${esc(evaluation.verdict)}</span></h1>
<p>Review ${esc(summary.review ?? 'by hand')}; period ${esc(summary.from)} to ${esc(summary.to)} (exclusive), ${summary.days} UTC day(s); ${esc(summary.baseUrl)} at ${esc(summary.evaluatedAt)}.</p>
${evaluation.daysWithoutData.length ? `<p>Days without any data: ${esc(evaluation.daysWithoutData.join(', '))}.</p>` : ''}
${abHtml(report)}
${sections}
</body></html>
`;
}
