/**
 * Reserved scopes and their keys (issue 22 §4): a location starting with a reserved prefix (`canaryprobe-`, the
 * canary's probe; `loadtest-`, the load tests) is reachable only by a key that names it or its prefix with a star.
 * A key without locations reaches every customer location and no reserved one: before this rule, such a key could
 * write `canaryprobe-*` scopes, whose traffic is left out of the canary's counters and always exposed to Context7.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyMayAccessScope, parseCallerKeys } from '../../service/domain/caller-keys';
import { RESERVED_LOCATION_PREFIXES, generateScopeIdSync } from '../../service/domain/scope-id';
import { startHarness, type Harness } from './support/harness';

const ALL_KEY = 'unrestricted-key-00112233445566778899';
const PROBE_KEY = 'probe-only-key-00112233445566778899';
const LOAD_KEY = 'load-only-key-001122334455667788990';

const scopeAt = (locationId: string) => generateScopeIdSync({ locationId, agentId: 'agent-1', promptText: 'prompt' });

describe('the reserved-prefix rule (pure)', () => {
  const [all, probe, load] = parseCallerKeys(`all:${ALL_KEY};probe:${PROBE_KEY}:canaryprobe-canary;load:${LOAD_KEY}:loadtest-*,loc-a`);

  it('covers the probe and the load tests', () => {
    expect([...RESERVED_LOCATION_PREFIXES]).toEqual(['canaryprobe-', 'loadtest-']);
  });

  it('a key without locations reaches customer locations, never a reserved one', () => {
    expect(keyMayAccessScope(all!, scopeAt('loc-berlin'))).toBe(true);
    expect(keyMayAccessScope(all!, scopeAt('canaryprobe-canary'))).toBe(false);
    expect(keyMayAccessScope(all!, scopeAt('loadtest-01'))).toBe(false);
  });

  it('a reserved location is reached by a key that names it, or its prefix with a star', () => {
    expect(keyMayAccessScope(probe!, scopeAt('canaryprobe-canary'))).toBe(true);
    expect(keyMayAccessScope(probe!, scopeAt('canaryprobe-other'))).toBe(false);
    expect(keyMayAccessScope(probe!, scopeAt('loc-berlin'))).toBe(false);
    expect(keyMayAccessScope(load!, scopeAt('loadtest-01'))).toBe(true);
    expect(keyMayAccessScope(load!, scopeAt('loadtest-99'))).toBe(true);
    expect(keyMayAccessScope(load!, scopeAt('loc-a'))).toBe(true);
    expect(keyMayAccessScope(load!, scopeAt('canaryprobe-canary'))).toBe(false);
  });

  it('a star is accepted only after a reserved prefix', () => {
    expect(() => parseCallerKeys(`x:${ALL_KEY}:loc-*`)).toThrow(/reserved prefix with a star \(canaryprobe-\*, loadtest-\*\)/);
    expect(() => parseCallerKeys(`x:${ALL_KEY}:loadtest-*`)).not.toThrow();
  });
});

describe('over HTTP', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ callerKey: null, env: { MEMORY_API_KEYS: `all:${ALL_KEY};probe:${PROBE_KEY}:canaryprobe-canary` } });
  });
  afterAll(async () => {
    await h?.close();
  });
  const as = (key: string) => ({ authorization: `Bearer ${key}` });

  it('an unrestricted key cannot write or read a probe scope (403); the probe key can', async () => {
    const probeScope = scopeAt('canaryprobe-canary');
    const refused = await h.request('POST', '/api/memory/patterns', { scopeId: probeScope, patterns: ['hidden from the canary'] }, as(ALL_KEY));
    expect(refused.status).toBe(403);
    expect((await h.request('POST', '/api/memory/snippets', { scopeId: probeScope }, as(ALL_KEY))).status).toBe(403);
    const metrics = await h.request('GET', '/api/metrics/memory');
    expect(metrics.body.totals.probeRequests).toBe(0);
    expect((await h.request('POST', '/api/memory/patterns', { scopeId: probeScope, patterns: ['probe'] }, as(PROBE_KEY))).status).toBe(200);
    expect((await h.request('POST', '/api/memory/snippets', { scopeId: scopeAt('loc-berlin') }, as(PROBE_KEY))).status).toBe(403);
  });
});
