/**
 * The runbook's "Critical Validation" before any flag flips: scope ids come out as
 * scope:<location>:<agent>:<16-char hex>, from the real prompt, with no placeholders. Pure.
 */
import { generateScopeIdSync, isValidScopeId, promptHash } from '../service/domain/scope-id';

export interface ValidationCheck {
  name: string;
  ok: boolean;
  detail: string;
}

/** The runbook's own example call. */
export const RUNBOOK_EXAMPLE = { locationId: 'test', agentId: 'agent-1', promptText: 'You are a helpful assistant' } as const;

/** Words a leftover placeholder would contain; a real id never does. */
const PLACEHOLDER = /placeholder|todo|xxx|undefined|null|hash|<|>|\*/i;

export function validateScopeIds(trafficScopeIds: readonly string[]): ValidationCheck[] {
  const example = generateScopeIdSync(RUNBOOK_EXAMPLE);
  const [, location, agent, hash] = example.split(':');
  const invalidTraffic = trafficScopeIds.filter((id) => !isValidScopeId(id) || PLACEHOLDER.test(id.split(':').slice(1).join(':')));
  const otherPrompt = generateScopeIdSync({ ...RUNBOOK_EXAMPLE, promptText: `${RUNBOOK_EXAMPLE.promptText}.` });
  return [
    {
      name: 'output matches scope:*:*:*',
      ok: isValidScopeId(example) && location === RUNBOOK_EXAMPLE.locationId && agent === RUNBOOK_EXAMPLE.agentId,
      detail: example,
    },
    {
      name: 'promptHash is 16-character hex of the full prompt',
      ok: /^[0-9a-f]{16}$/.test(hash ?? '') && hash === promptHash(RUNBOOK_EXAMPLE.promptText),
      detail: hash ?? '(missing)',
    },
    {
      name: 'no placeholders or hardcoded values (a different prompt gives a different id)',
      ok: otherPrompt !== example && !PLACEHOLDER.test(`${location}:${agent}:${hash}`),
      detail: `${otherPrompt.split(':')[3]} != ${hash}`,
    },
    {
      name: 'every scope id the traffic will use is valid',
      ok: trafficScopeIds.length > 0 && invalidTraffic.length === 0,
      detail: invalidTraffic.length === 0 ? `${trafficScopeIds.length} ids` : `invalid: ${invalidTraffic.slice(0, 3).join(', ')}`,
    },
  ];
}
