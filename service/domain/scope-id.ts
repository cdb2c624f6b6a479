/**
 * Scope ids keep one agent's learned memory away from every other's: training leakage is the
 * runbook's critical risk. Format: scope:<locationId>:<agentId>:<16 hex chars of sha256(prompt)>.
 */
import { createHash } from 'node:crypto';

/** Ids are plain identifiers: no separators, wildcards, whitespace or look-alike unicode. */
const SEGMENT = '[A-Za-z0-9_-]{1,64}';
export const SCOPE_ID_PATTERN = new RegExp(`^scope:(${SEGMENT}):(${SEGMENT}):([0-9a-f]{16})$`);
export const SCOPE_ID_MAX_LENGTH = 6 + 64 + 1 + 64 + 1 + 16;

export interface ScopeParts {
  locationId: string;
  agentId: string;
  promptText: string;
}

export class InvalidScopeIdError extends Error {
  constructor(readonly received: string) {
    super(`Invalid scopeId format: ${describe(received)}`);
    this.name = 'InvalidScopeIdError';
  }
}

/** Truncates and escapes what we echo back, so a hostile id cannot flood a log line. */
function describe(value: string): string {
  const shown = value.length > 80 ? `${value.slice(0, 80)}…(${value.length} chars)` : value;
  return JSON.stringify(shown);
}

export function promptHash(promptText: string): string {
  return createHash('sha256').update(promptText, 'utf8').digest('hex').slice(0, 16);
}

function assertSegment(name: string, value: string): void {
  if (!new RegExp(`^${SEGMENT}$`).test(value)) {
    throw new Error(`${name} must match ${SEGMENT}, got ${describe(value)}`);
  }
}

/** Async to match the runbook's `generateScopeId(...).then(console.log)`. */
export async function generateScopeId({ locationId, agentId, promptText }: ScopeParts): Promise<string> {
  return generateScopeIdSync({ locationId, agentId, promptText });
}

export function generateScopeIdSync({ locationId, agentId, promptText }: ScopeParts): string {
  assertSegment('locationId', locationId);
  assertSegment('agentId', agentId);
  if (typeof promptText !== 'string' || promptText.length === 0) {
    throw new Error('promptText must be a non-empty string (the full system prompt)');
  }
  return `scope:${locationId}:${agentId}:${promptHash(promptText)}`;
}

export function isValidScopeId(value: unknown): value is string {
  return typeof value === 'string' && value.length <= SCOPE_ID_MAX_LENGTH && SCOPE_ID_PATTERN.test(value);
}

/** Returns the id unchanged, or throws InvalidScopeIdError (mapped to HTTP 400 at the edge). */
export function parseScopeId(value: unknown): string {
  if (isValidScopeId(value)) return value;
  throw new InvalidScopeIdError(typeof value === 'string' ? value : String(value));
}
