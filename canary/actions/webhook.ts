/** Slack-compatible notifications (`{"text": ...}` plus blocks); a failed post never stops the canary. */
import { httpProbe, type HttpProbe } from '../sources/http';

export interface Notifier {
  notify(event: keyof typeof ICONS, text: string, fields: Record<string, string>): Promise<void>;
}

const ICONS = {
  rollback: ':rotating_light:',
  rollback_unverified: ':x:',
  promote: ':rocket:',
  signed_off: ':white_check_mark:',
  hold: ':pause_button:',
  abort: ':warning:',
  store_failing: ':fire:',
  /** the stepped canary: one message per step (canary/exposure/stepped-notify.ts) */
  advance: ':arrow_up:',
  gate: ':raised_hand:',
};

export function slackPayload(event: keyof typeof ICONS, text: string, fields: Record<string, string>) {
  const headline = `${ICONS[event]} Context7 memory canary: ${text}`;
  return {
    text: headline,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: headline } },
      { type: 'section', fields: Object.entries(fields).map(([k, v]) => ({ type: 'mrkdwn', text: `*${k}*\n${v}` })) },
    ],
  };
}

export function createWebhookNotifier(url: string, onWarning: (message: string) => void, probe: HttpProbe = httpProbe): Notifier {
  return {
    async notify(event, text, fields) {
      const answer = await probe(url, { method: 'POST', body: slackPayload(event, text, fields), timeoutMs: 5000 });
      // The URL itself is a secret (it authorises posting): never echo it.
      if (answer.error || answer.status === null || answer.status >= 300) {
        onWarning(`webhook post failed (${answer.status ?? answer.error}); continuing`);
      }
    },
  };
}

export const silentNotifier: Notifier = { async notify() {} };
