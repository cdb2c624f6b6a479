/**
 * This service's own credentials must never become memory: a pattern is stored, sent to Context7 (a third party)
 * and read back by every agent in its scope. A request carrying one is refused whole, so nothing is stored or sent,
 * and the refusal names where it was found, never what.
 *
 * Matching is exact substring on the decoded text (keys included; numbers as JSON writes them), so only a full
 * credential matches: a refusal confirms no more than the admin endpoint's own 401/200 would.
 */

export interface CredentialFinding {
  /** Where in the request, to the field (never into metadata keys, which may themselves hold the credential). */
  path: (string | number)[];
}

function containsAny(text: string, credentials: readonly string[]): boolean {
  for (const credential of credentials) if (credential !== '' && text.includes(credential)) return true;
  return false;
}

/** True when any string, key or number inside a JSON value contains a credential; iterative, so depth is no risk. */
export function jsonContainsCredential(value: unknown, credentials: readonly string[]): boolean {
  if (credentials.length === 0) return false;
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const item = pending.pop();
    if (typeof item === 'string') {
      if (containsAny(item, credentials)) return true;
    } else if (typeof item === 'number') {
      if (containsAny(JSON.stringify(item), credentials)) return true;
    } else if (item !== null && typeof item === 'object') {
      for (const [key, child] of Object.entries(item)) {
        if (containsAny(key, credentials)) return true;
        pending.push(child);
      }
    }
  }
  return false;
}

type PatternInputLike = string | { content: string; metadata?: Record<string, unknown> };

/** Every field of a learning write that carries a credential: the scope id, each content and each metadata. */
export function credentialsInPatternsRequest(
  request: { scopeId: string; patterns: readonly PatternInputLike[] },
  credentials: readonly string[],
): CredentialFinding[] {
  const findings: CredentialFinding[] = [];
  if (containsAny(request.scopeId, credentials)) findings.push({ path: ['scopeId'] });
  request.patterns.forEach((input, index) => {
    const { content, metadata } = typeof input === 'string' ? { content: input, metadata: undefined } : input;
    if (containsAny(content, credentials)) findings.push({ path: typeof input === 'string' ? ['patterns', index] : ['patterns', index, 'content'] });
    if (metadata !== undefined && jsonContainsCredential(metadata, credentials)) findings.push({ path: ['patterns', index, 'metadata'] });
  });
  return findings;
}

/** A snippet read's text goes to Context7 as its search query (and into cache keys): the same rule applies. */
export function credentialsInSnippetsRequest(request: { scopeId: string; query?: string }, credentials: readonly string[]): CredentialFinding[] {
  const findings: CredentialFinding[] = [];
  if (containsAny(request.scopeId, credentials)) findings.push({ path: ['scopeId'] });
  if (request.query !== undefined && containsAny(request.query, credentials)) findings.push({ path: ['query'] });
  return findings;
}
