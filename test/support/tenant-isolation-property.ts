/**
 * The tenant-isolation property, shared by the SQLite and PostgreSQL runs: for arbitrary keys (any subset of the
 * locations, or all of them), scopes and requests, no key ever reads or writes outside its locations. Every
 * request's content names the key that sent it, so the final exports show who wrote what into which scope.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import { generateScopeIdSync } from '../../service/domain/scope-id';

export const ISOLATION_LOCATIONS = ['loc-a', 'loc-b', 'loc-c', 'loc-d'] as const;
const AGENTS = ['agent-1', 'agent-2'] as const;

export interface IsolationKey {
  name: string;
  secret: string;
  /** null: every location */
  locations: readonly string[] | null;
}

/** One key per subset of the locations (the empty set is not configurable), plus one unrestricted key. */
export function isolationKeys(label: string): IsolationKey[] {
  const keys: IsolationKey[] = [];
  for (let mask = 1; mask < 1 << ISOLATION_LOCATIONS.length; mask += 1) {
    const locations = ISOLATION_LOCATIONS.filter((_location, bit) => mask & (1 << bit));
    keys.push({ name: `k${mask}`, secret: `${label}-isolation-key-${mask.toString().padStart(2, '0')}-0123456789`, locations });
  }
  keys.push({ name: 'kall', secret: `${label}-isolation-key-all-0123456789`, locations: null });
  return keys;
}

/** MEMORY_API_KEYS text for these keys. */
export function isolationKeysEnv(keys: readonly IsolationKey[]): string {
  return keys.map((key) => [key.name, key.secret, ...(key.locations ? [key.locations.join(',')] : [])].join(':')).join(';');
}

function allows(key: IsolationKey, location: string): boolean {
  return key.locations === null || key.locations.includes(location);
}

interface Target {
  url: string;
  adminToken: string;
  keys: readonly IsolationKey[];
}

async function post(target: Target, route: string, secret: string, body: unknown): Promise<{ status: number; text: string; json: any }> {
  const response = await fetch(`${target.url}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, text, json: JSON.parse(text) };
}

export async function checkTenantIsolation(target: Target, options: { numRuns: number; seed: number; prompt: string }): Promise<{ allowed: number; refused: number }> {
  const tally = { allowed: 0, refused: 0 };
  const scopeOf = (location: string, agent: string) => generateScopeIdSync({ locationId: location, agentId: agent, promptText: options.prompt });
  let n = 0;
  const request = fc.record({
    key: fc.nat({ max: target.keys.length - 1 }),
    write: fc.boolean(),
    location: fc.constantFrom(...ISOLATION_LOCATIONS),
    agent: fc.constantFrom(...AGENTS),
  });
  await fc.assert(
    fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: 6 }), async (requests) => {
      for (const { key: index, write, location, agent } of requests) {
        const key = target.keys[index]!;
        const scopeId = scopeOf(location, agent);
        n += 1;
        const answer = write
          ? await post(target, '/api/memory/patterns', key.secret, { scopeId, patterns: [`written by ${key.name} #${n}`] })
          : await post(target, '/api/memory/snippets', key.secret, { scopeId });
        if (allows(key, location)) {
          expect(answer.status, answer.text).toBe(200);
          tally.allowed += 1;
          if (!write) for (const snippet of answer.json.snippets) expect(snippet.content).toMatch(/^written by k/);
        } else {
          // The same answer whether the scope holds memory or not.
          expect(answer.status, answer.text).toBe(403);
          expect(answer.json).toEqual({ error: 'Forbidden: this credential may not access this scope' });
          tally.refused += 1;
        }
      }
    }),
    { numRuns: options.numRuns, seed: options.seed },
  );
  // What every scope holds was written by a key allowed there: no refused write landed anywhere.
  const byName = new Map(target.keys.map((key) => [key.name, key]));
  for (const location of ISOLATION_LOCATIONS) {
    for (const agent of AGENTS) {
      const scopeId = scopeOf(location, agent);
      const response = await fetch(`${target.url}/api/admin/export?scopeId=${encodeURIComponent(scopeId)}`, {
        headers: { authorization: `Bearer ${target.adminToken}` },
      });
      const exported = (await response.json()) as { patterns: { content: string }[] };
      for (const pattern of exported.patterns) {
        const writer = byName.get(/^written by (\S+) /.exec(pattern.content)![1]!)!;
        expect(allows(writer, location), `${writer.name} wrote into ${location}`).toBe(true);
      }
    }
  }
  return tally;
}
