/**
 * Scope ids keep one agent's learned memory away from every other's: training leakage is the
 * runbook's critical risk. Format: scope:<locationId>:<agentId>:<16 hex chars of sha256(prompt)>.
 */
import { createHash } from 'node:crypto';
import { echoValue } from './error-echo';

/** Ids are plain identifiers: no separators, wildcards, whitespace or look-alike unicode. */
const SEGMENT = '[A-Za-z0-9_-]{1,64}';
export const SCOPE_ID_PATTERN = new RegExp(`^scope:(${SEGMENT}):(${SEGMENT}):([0-9a-f]{16})$`);
export const SCOPE_ID_MAX_LENGTH = 6 + 64 + 1 + 64 + 1 + 16;

export interface ScopeParts {
  locationId: string;
  agentId: string;
  promptText: string;
}

/**
 * The message keeps the runbook's `Invalid scopeId format: ...` prefix; what follows is the received value as
 * error-echo shows it (truncated, never coerced), so the error can neither throw nor confirm a guessed secret.
 */
export class InvalidScopeIdError extends Error {
  constructor(received: unknown) {
    super(`Invalid scopeId format: ${echoValue(received)}`);
    this.name = 'InvalidScopeIdError';
  }
}

export function promptHash(promptText: string): string {
  return createHash('sha256').update(promptText, 'utf8').digest('hex').slice(0, 16);
}

function assertSegment(name: string, value: string): void {
  if (typeof value !== 'string' || !new RegExp(`^${SEGMENT}$`).test(value)) {
    throw new Error(`${name} must match ${SEGMENT}, got ${echoValue(value)}`);
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

/**
 * The last id found valid. A memory request checks its scope id several times on its way (the route, the cohort
 * edge's probe check, the caller's scope check, the domain), each time with the same string: validity depends on the
 * id's characters alone, so an equal string is valid without running the pattern again (issue 29's eighth round).
 */
let lastValidScopeId: string | undefined;

export function isValidScopeId(value: unknown): value is string {
  if (value === lastValidScopeId && value !== undefined) return true;
  if (typeof value === 'string' && value.length <= SCOPE_ID_MAX_LENGTH && SCOPE_ID_PATTERN.test(value)) {
    lastValidScopeId = value;
    return true;
  }
  return false;
}

/** Returns the id unchanged, or throws InvalidScopeIdError (mapped to HTTP 400 at the edge). */
export function parseScopeId(value: unknown): string {
  if (isValidScopeId(value)) return value;
  throw new InvalidScopeIdError(value);
}

/**
 * Load tests read and write only scopes whose location id starts with this prefix (load/lib/scope.ts keeps the
 * same constant for k6, which cannot import this module; test/load/load-test-token.test.ts keeps the two equal).
 */
export const LOAD_TEST_LOCATION_PREFIX = 'loadtest-';

/** A valid scope id reserved for load tests (the only scopes the load-test token exempts from rate limiting). */
export function isLoadTestScopeId(value: unknown): value is string {
  return isValidScopeId(value) && value.startsWith(`scope:${LOAD_TEST_LOCATION_PREFIX}`);
}

/**
 * The canary's synthetic learning probe reads and writes only scopes whose location id starts with this prefix
 * (canary/probe/learning-probe.ts imports it). No customer location may use it. The service counts
 * their requests apart (totals.probeRequests), so the probe never moves the figures the canary judges. Probe scopes
 * are always exposed to Context7: the probe exists to check that learning reaches it, so any later exposure rule
 * that limits which scopes go to Context7 must leave these out of its limits.
 */
export const PROBE_LOCATION_PREFIX = 'canaryprobe-';

/** A valid scope id reserved for the canary's learning probe. */
export function isProbeScopeId(value: unknown): value is string {
  return isValidScopeId(value) && value.startsWith(`scope:${PROBE_LOCATION_PREFIX}`);
}

/**
 * Location prefixes reserved for the project's own traffic: the canary's probe and the load tests. One rule for
 * each (service/domain/caller-keys.ts keyMayAccessScope): a location with a reserved prefix is reachable only by a
 * key that names it, or names its prefix with a star (`loadtest-*`). A key without locations reaches every
 * customer location, never a reserved one, so a customer's traffic cannot hide among the probe's (left out of the
 * canary's counters, always exposed to Context7) or the load tests' (exempt from the rate limit with its token).
 */
export const RESERVED_LOCATION_PREFIXES = [PROBE_LOCATION_PREFIX, LOAD_TEST_LOCATION_PREFIX] as const;

/** The reserved prefix a location id starts with, or null for a customer location. */
export function reservedPrefixOf(location: string): (typeof RESERVED_LOCATION_PREFIXES)[number] | null {
  return RESERVED_LOCATION_PREFIXES.find((prefix) => location.startsWith(prefix)) ?? null;
}
