/**
 * The runbook's pre-rollout checkboxes that no software can check ("All Phase 1 & 2 tasks complete", "Team briefed
 * on rollout procedure", "Rollback procedure reviewed", "Monitoring dashboards ready"): recorded, never invented.
 * The workflow takes who confirmed each as an input and passes it in the environment; the reports carry it, and an
 * item nobody confirmed says so.
 */

import { escapeMarkdown } from './markdown';

export const CHECKLIST_ITEMS = [
  { id: 'phaseTasks', env: 'ROLLOUT_CONFIRMED_PHASE_TASKS', runbook: 'All Phase 1 & 2 tasks complete' },
  { id: 'teamBriefed', env: 'ROLLOUT_CONFIRMED_TEAM_BRIEFED', runbook: 'Team briefed on rollout procedure' },
  { id: 'rollbackReviewed', env: 'ROLLOUT_CONFIRMED_ROLLBACK_REVIEWED', runbook: 'Rollback procedure reviewed' },
  { id: 'dashboardsReady', env: 'ROLLOUT_CONFIRMED_DASHBOARDS_READY', runbook: 'Monitoring dashboards ready' },
] as const;

export interface ChecklistEntry {
  id: (typeof CHECKLIST_ITEMS)[number]['id'];
  runbook: string;
  /** who confirmed it, as recorded (null: nobody did) */
  confirmedBy: string | null;
}

/** A name, as typed into a workflow input: one line, printable, at most 100 characters. */
function cleanName(raw: string | undefined): string | null {
  const name = (raw ?? '').replace(/[\u0000-\u001f\u007f]/g, ' ').replace(/\s+/g, ' ').trim();
  return name ? name.slice(0, 100) : null;
}

export function readChecklist(env: Record<string, string | undefined>): ChecklistEntry[] {
  return CHECKLIST_ITEMS.map((item) => ({ id: item.id, runbook: item.runbook, confirmedBy: cleanName(env[item.env]) }));
}

/** The sign-off's lines: absent for reports without a checklist (older ones, or runs outside the workflow). */
export function checklistSignoffLines(entries: ChecklistEntry[] | null | undefined): string[] {
  if (!entries) return [];
  return [
    ``,
    `**Pre-Rollout Checklist** (people, not software: recorded from the workflow's inputs)  `,
    ...entries.map((e) =>
      e.confirmedBy ? `- [x] ${e.runbook}: confirmed by ${escapeMarkdown(e.confirmedBy)}` : `- [ ] ${e.runbook}: NOT CONFIRMED (nobody recorded it)`,
    ),
  ];
}

export function checklistIssues(entries: ChecklistEntry[] | null | undefined): string[] {
  const missing = (entries ?? []).filter((e) => !e.confirmedBy);
  return missing.length ? [`pre-rollout checklist not confirmed: ${missing.map((e) => `"${e.runbook}"`).join(', ')}`] : [];
}


/** report.html: the checklist as recorded. */
export function checklistHtmlSection(entries: ChecklistEntry[] | null | undefined, esc: (text: string) => string): string {
  if (!entries) return '';
  const items = entries.map((e) => `<li class="${e.confirmedBy ? 'good' : 'bad'}">${esc(e.runbook)}: ${e.confirmedBy ? `confirmed by ${esc(e.confirmedBy)}` : 'NOT CONFIRMED (nobody recorded it)'}</li>`);
  return `<h2>Pre-rollout checklist</h2>\n<p>People, not software: recorded from the workflow's inputs.</p>\n<ul>${items.join('')}</ul>\n`;
}
