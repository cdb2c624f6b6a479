/**
 * Issue 13: the rollback verification's snippets read carries the caller key (CANARY_MEMORY_API_KEY) as a header,
 * and the key never reaches the verification's result (which goes into report.json and signoff.md).
 */
import { describe, expect, it } from 'vitest';
import { verifyRollback } from '../../canary/actions/verify';
import type { HttpProbe } from '../../canary/sources/http';
import { DISABLED_REASON } from '../../service/contracts/http';

const KEY = 'canary-memory-key-0123456789abcdef';

function fakeService(requireKey: string | null): { probe: HttpProbe; seen: Record<string, string | undefined>[] } {
  const seen: Record<string, string | undefined>[] = [];
  const probe: HttpProbe = async (url, options) => {
    seen.push({ url, authorization: options.headers?.authorization });
    if (url.endsWith('/api/config')) return { status: 200, body: { enableContext7Memory: false, context7Available: false } };
    if (url.endsWith('/api/memory/health')) return { status: 200, body: { available: false, reason: DISABLED_REASON } };
    if (url.endsWith('/api/memory/snippets')) {
      return requireKey === null || options.headers?.authorization === `Bearer ${requireKey}`
        ? { status: 200, body: { snippets: [], source: 'disabled' } }
        : { status: 401, body: { error: 'Missing caller credential (Authorization: Bearer <memory API key>)' } };
    }
    return { status: 200, body: { totals: {}, instances: [] } };
  };
  return { probe, seen };
}

const run = (probe: HttpProbe, memoryApiKey?: string) =>
  verifyRollback({
    baseUrl: 'http://service.invalid',
    probe,
    timeoutMs: 1_000,
    watchMs: 0,
    watchPollMs: 1,
    attempts: 1,
    sleep: async () => undefined,
    ...(memoryApiKey ? { memoryApiKey } : {}),
  });

describe('rollback verification with a caller key', () => {
  it('sends the key on the snippets read only, and the result never contains it', async () => {
    const service = fakeService(KEY);
    const result = await run(service.probe, KEY);
    const snippets = result.checks.find((check) => check.name.startsWith('snippets'))!;
    expect(snippets.ok).toBe(true);
    expect(service.seen.filter((call) => call.authorization !== undefined).map((call) => call.url)).toEqual(['http://service.invalid/api/memory/snippets']);
    expect(JSON.stringify(result)).not.toContain(KEY);
  });

  it('without the key the snippets check fails with a hint naming the variable, not a value', async () => {
    const result = await run(fakeService(KEY).probe);
    const snippets = result.checks.find((check) => check.name.startsWith('snippets'))!;
    expect(snippets.ok).toBe(false);
    expect(snippets.detail).toMatch(/401.*CANARY_MEMORY_API_KEY/);
  });
});
