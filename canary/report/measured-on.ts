/**
 * What a canary report was measured against (render/platform.ts), said near the top of every format: report.json's
 * `measuredOn`, a sign-off line, an incident line and report.html's first paragraph. An emulator's times (its
 * deploy phases are configurable, and short in rehearsals) are not Render's, so the reports say which it was.
 */
import type { RenderPlatform } from '../../render/platform';
import { escapeMarkdown as md } from './markdown';

/** The label, and for an emulator the warning that its times are its own. */
export function describeMeasuredOn(platform: RenderPlatform): string {
  return platform.kind === 'emulator' ? `${platform.label}: its deploy and rollback times are the emulator's, not Render's` : platform.label;
}

export function measuredOnSignoffLine(platform: RenderPlatform): string {
  return `**Measured Against**: ${md(describeMeasuredOn(platform))}  `;
}

export function measuredOnIncidentLine(platform: RenderPlatform): string {
  return `- measured against: ${md(describeMeasuredOn(platform))}`;
}

export function measuredOnHtml(platform: RenderPlatform, esc: (text: string) => string): string {
  return `<p class="measured-on ${platform.kind}" data-measured-on="${platform.kind}">Measured against: <b>${esc(describeMeasuredOn(platform))}</b></p>`;
}
