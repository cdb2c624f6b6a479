/**
 * signoff.md and incident.md show what the service and Render said literally (issue 22 §4): a service string with
 * Markdown (a link, an image, HTML, a table cell, emphasis, a new line) is escaped, as report.html escapes it for
 * HTML; the incident's figures list each metric once.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyze } from '../../canary/analysis';
import { loadPolicy } from '../../canary/policy';
import { renderIncident } from '../../canary/report/incident';
import { escapeMarkdown } from '../../canary/report/markdown';
import { buildReport } from '../../canary/report/report';
import { renderSignoff } from '../../canary/report/signoff';
import { loadTimeline } from '../../canary/timeline';
import { renderPlatformOf } from '../../render/platform';

const policy = loadPolicy(join(__dirname, '../../canary/policy.yaml'));
const HOSTILE = 'boom [click here](https://evil.example/x) ![img](https://evil.example/i.png) <script>alert(1)</script> | cell **bold**\n# heading';

function hostileReport() {
  const timeline = loadTimeline(join(__dirname, '../../canary/timelines/slow-drift.json'));
  const result = analyze(policy, { deployId: timeline.deployId, measurements: timeline.measurements });
  const decidedAt = Date.parse('2026-11-20T10:00:00.000Z') + result.decision!.atSeconds * 1000;
  return buildReport({
    stack: 'production',
    serviceId: 'srv-1',
    outcome: 'rollback_unverified',
    startedAt: '2026-11-20T10:00:00.000Z',
    finishedAt: '2026-11-20T11:00:00.000Z',
    measuredOn: renderPlatformOf('http://127.0.0.1:10000/v1'),
    dryRun: false,
    baseUrl: 'http://127.0.0.1:1',
    operator: 'report-test',
    timeScale: 1,
    policy,
    measurements: timeline.measurements,
    result,
    actions: [{ at: new Date(decidedAt + 5_000).toISOString(), action: 'verify', ok: false, detail: `snippets: the service answered ${HOSTILE}` }],
  });
}

describe('Markdown reports escape what others said', () => {
  it('escapeMarkdown leaves no live markup and no new line', () => {
    const escaped = escapeMarkdown(HOSTILE);
    expect(escaped).not.toMatch(/\n/);
    expect(escaped).not.toMatch(/(^|[^\\])\[click/);
    expect(escaped).not.toMatch(/(^|[^\\])<script/);
    expect(escaped).not.toMatch(/(^|[^\\])\|/);
    expect(escaped).toContain('\\*\\*bold\\*\\*');
  });

  it('signoff.md and incident.md carry the service text escaped, never raw', () => {
    const report = hostileReport();
    for (const text of [renderSignoff(report), renderIncident(report)]) {
      expect(text).toContain(escapeMarkdown(HOSTILE));
      expect(text).not.toContain('[click here](https://evil.example/x)');
      expect(text).not.toContain('<script>');
      expect(text).not.toContain('\n# heading');
    }
  });

  it('incident.md lists storeErrorRate once', () => {
    const incident = renderIncident(hostileReport());
    const figures = incident.slice(incident.indexOf('## Figures'), incident.indexOf('##', incident.indexOf('## Figures') + 3));
    expect(figures.match(/^\| storeErrorRate \|/gm)).toHaveLength(1);
  });
});
