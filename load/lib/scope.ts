/**
 * Scope ids for load traffic, built exactly as service/domain/scope-id.ts builds them:
 * scope:<locationId>:<agentId>:<first 16 hex chars of sha256(promptText)>.
 * Pure and runtime-neutral: k6 passes k6/crypto's sha256, Node passes node:crypto's.
 */

/** Hex sha256 of the UTF-8 bytes of `text`. */
export type Sha256Hex = (text: string) => string;

export interface ScopeParts {
  locationId: string;
  agentId: string;
  promptText: string;
}

/** Same segment rule as the service: a load run must never send ids the service would reject. */
const SEGMENT = /^[A-Za-z0-9_-]{1,64}$/;

export function buildScopeId(parts: ScopeParts, sha256Hex: Sha256Hex): string {
  if (!SEGMENT.test(parts.locationId)) throw new Error(`locationId must match ${SEGMENT.source}, got ${JSON.stringify(parts.locationId)}`);
  if (!SEGMENT.test(parts.agentId)) throw new Error(`agentId must match ${SEGMENT.source}, got ${JSON.stringify(parts.agentId)}`);
  if (parts.promptText.length === 0) throw new Error('promptText must be a non-empty string (the full system prompt)');
  return `scope:${parts.locationId}:${parts.agentId}:${sha256Hex(parts.promptText).slice(0, 16)}`;
}

export interface ScopePoolShape {
  locations: number;
  agentsPerLocation: number;
  /** system prompt versions per agent: a prompt edit makes a new scope */
  promptVariants: number;
}

/**
 * Every scope a load test touches has a location id starting with this prefix: load tests never read or write a
 * customer's scope, and their patterns can be found (and expire) as a group in a store that persists.
 */
export const LOAD_TEST_LOCATION_PREFIX = 'loadtest-';

export function isLoadTestScope(scopeId: string): boolean {
  return scopeId.startsWith(`scope:${LOAD_TEST_LOCATION_PREFIX}`);
}

/** 30 locations x 4 agents x 2 prompt versions: 240 scopes, enough spread that caching is not trivial. */
export const DEFAULT_SCOPE_POOL: ScopePoolShape = { locations: 30, agentsPerLocation: 4, promptVariants: 2 };

export interface PooledScope extends ScopeParts {
  scopeId: string;
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** Realistic-looking tenants: location ids, agent ids and full system prompts, deterministic per shape. */
export function buildScopePool(shape: ScopePoolShape, sha256Hex: Sha256Hex): PooledScope[] {
  for (const [name, value] of Object.entries(shape)) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`scope pool ${name} must be a positive integer, got ${value}`);
  }
  const pool: PooledScope[] = [];
  for (let l = 1; l <= shape.locations; l++) {
    for (let a = 1; a <= shape.agentsPerLocation; a++) {
      for (let v = 1; v <= shape.promptVariants; v++) {
        const parts: ScopeParts = {
          locationId: `${LOAD_TEST_LOCATION_PREFIX}${pad(l)}`,
          agentId: `agent-${a}`,
          promptText:
            `You are agent ${a}, the receptionist for location ${l}. ` +
            `Greet callers warmly, book appointments and answer questions about opening hours. (prompt v${v})`,
        };
        pool.push({ ...parts, scopeId: buildScopeId(parts, sha256Hex) });
      }
    }
  }
  return pool;
}
