/**
 * Text from outside the canary (the service's answers, its deploy id and instance names, Render's log lines, error
 * messages) as Markdown shows it literally: no link, image, HTML, emphasis, table cell or heading of its own, and on
 * one line. report.html escapes the same strings for HTML; signoff.md and incident.md use this.
 */
export function escapeMarkdown(text: string): string {
  return text
    .replace(/\r?\n|\r/g, ' ')
    .replace(/[\\`*_[\]<>|~#]/g, (char) => `\\${char}`);
}
