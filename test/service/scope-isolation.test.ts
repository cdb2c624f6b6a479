/**
 * Scope isolation, property-based: no request reads or writes another scope's data, whatever scope id
 * or query it sends (prefixes, wildcards, LIKE/SQL metacharacters, quotes, unicode look-alikes, huge strings).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isValidScopeId } from '../../service/domain/scope-id';
import { scope, startHarness, type Harness } from './support/harness';

const VICTIM = scope('loc1', 'agent-1', 'You are the victim agent');
const SECRET = 'VICTIM-SECRET-do-not-leak';

/** Mutations of the victim id an attacker might try. */
function attackerIds(): fc.Arbitrary<string> {
  const lookalikes: Record<string, string> = { a: 'а', e: 'е', o: 'о', c: 'с', '1': 'l', '-': '‐', ':': '：' };
  return fc.oneof(
    fc.integer({ min: 0, max: VICTIM.length - 1 }).map((n) => VICTIM.slice(0, n)),
    fc.constantFrom('%', '_', '*', '.*', "'", '"', '\\', ' ', '\u0000', "' OR '1'='1", '%25').map((s) => VICTIM.slice(0, -1) + s),
    fc.constantFrom('%', '_', '*', "'", ' ', '\n').map((s) => VICTIM + s),
    fc.constantFrom('scope:%:%:%', 'scope:*:*:*', 'scope:loc1:%:%', 'scope:loc1:agent-1:%', "scope:loc1:agent-1:' OR 1=1 --", 'scope:loc1:agent_1:' + VICTIM.slice(-16)),
    fc.integer({ min: 0, max: VICTIM.length - 1 }).filter((i) => VICTIM[i] in lookalikes).map((i) => VICTIM.slice(0, i) + lookalikes[VICTIM[i]] + VICTIM.slice(i + 1)),
    fc.constant(VICTIM.toUpperCase()),
    fc.constant(VICTIM.replace('scope:', 'SCOPE:')),
    fc.integer({ min: 300, max: 200_000 }).map((n) => VICTIM + 'a'.repeat(n)),
    fc.string({ maxLength: 200 }),
    fc.string({ unit: 'grapheme', maxLength: 100 }),
    // Valid ids of neighbouring scopes: loc10 vs loc1, agent-10 vs agent-1, another prompt.
    fc.tuple(fc.constantFrom('loc1', 'loc10', 'loc', 'LOC1'), fc.constantFrom('agent-1', 'agent-10', 'agent', 'agent_1'), fc.string({ minLength: 1, maxLength: 30 }))
      .map(([l, a, p]) => scope(l, a, p)),
  );
}

const queries = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom('%', '_', '*', '%VICTIM%', 'VICTIM', SECRET, "' OR '1'='1", '" OR ""="', '\\', '.*', 'secret'),
  fc.string({ maxLength: 50 }),
);

describe.each([
  ['database mode (flag on, no key)', false],
  ['Context7 mode (emulator, cache)', true],
] as const)('scope isolation: %s', (_label, withEmulator) => {
  let h: Harness;
  beforeAll(async () => {
    h = withEmulator
      ? await startHarness({ emulator: {} })
      : await startHarness({ env: { ENABLE_CONTEXT7_MEMORY: 'true' } });
    const saved = await h.request('POST', '/api/memory/patterns', { scopeId: VICTIM, patterns: [SECRET, `${SECRET} second`] });
    expect(saved.status).toBe(200);
  });
  afterAll(async () => {
    await h?.close();
  });

  it('reads by any other scope id or query never return the victim\'s patterns', async () => {
    await fc.assert(
      fc.asyncProperty(attackerIds(), queries, async (scopeId, query) => {
        fc.pre(scopeId !== VICTIM);
        const body: Record<string, unknown> = { scopeId };
        if (query !== undefined) body.query = query;
        const res = await h.request('POST', '/api/memory/snippets', body);
        expect(res.status).toBeLessThan(500);
        if (isValidScopeId(scopeId)) {
          expect(res.status).toBe(200);
          expect(res.text).not.toContain(SECRET);
        } else {
          expect([400, 413]).toContain(res.status);
          expect(res.text).not.toContain(SECRET);
        }
      }),
      { numRuns: 150, seed: 42 },
    );
  });

  it('writes by any other scope id never land in the victim\'s scope', async () => {
    await fc.assert(
      fc.asyncProperty(attackerIds(), fc.string({ minLength: 1, maxLength: 40 }), async (scopeId, content) => {
        fc.pre(scopeId !== VICTIM);
        const res = await h.request('POST', '/api/memory/patterns', { scopeId, patterns: [`intruder ${content}`] });
        expect(res.status).toBeLessThan(500);
        if (!isValidScopeId(scopeId)) expect([400, 413]).toContain(res.status);
      }),
      { numRuns: 100, seed: 7 },
    );
    const victim = await h.service.store.exportScope(VICTIM, new Date());
    expect(victim.patterns.map((p) => p.content).sort()).toEqual([SECRET, `${SECRET} second`]);
    if (h.emulator) expect(h.emulator.patterns(VICTIM).map((p) => p.content).sort()).toEqual([SECRET, `${SECRET} second`]);
  });

  it('the victim itself still reads its own patterns (the test can fail)', async () => {
    const res = await h.request('POST', '/api/memory/snippets', { scopeId: VICTIM });
    expect(res.text).toContain(SECRET);
  });
});
