/**
 * The domain's rules for a store outage, with Context7 on (the emulator), on any store: a store failure is a
 * store error, never a fallback or a Context7 error; a read with no source left is a 503; a write whose patterns
 * are already committed is acknowledged even if the outbox bookkeeping after it fails.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { MemoryStore } from '../../service/data-access/memory-store';
import { createSqliteStore } from '../../service/data-access/sqlite-store';
import { StoreUnavailableError } from '../../service/data-access/store-errors';
import { scope, startHarness, tempDataDir, type Harness } from './support/harness';

const harnesses: Harness[] = [];
afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((harness) => harness.close()));
});

const outage = () => new StoreUnavailableError('sqlite', 'unavailable', 'test', undefined, new Error('disk I/O error'));

/** A real SQLite store whose named methods fail as an outage while `failing` holds. */
function flakyStore(dataDir: string, methods: (keyof MemoryStore)[]): { store: MemoryStore; failing: { on: boolean } } {
  const inner = createSqliteStore({ dataDir });
  const failing = { on: false };
  const store = { ...inner } as MemoryStore;
  for (const method of methods) {
    const original = inner[method] as (...args: unknown[]) => Promise<unknown>;
    (store as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => (failing.on ? Promise.reject(outage()) : original(...args));
  }
  return { store, failing };
}

describe('a store outage with Context7 on', () => {
  it('a read whose Context7 call fails and whose store fails too is a 503 and a store error, not a fallback', async () => {
    const dataDir = tempDataDir('store-outage-read');
    const { store, failing } = flakyStore(dataDir, ['searchPatterns']);
    const harness = await startHarness({ emulator: {}, dataDir, overrides: { store } });
    harnesses.push(harness);
    harness.emulator!.setFaults({ outage: true });
    failing.on = true;
    const read = await harness.request('POST', '/api/memory/snippets', { scopeId: scope('outage', 'r', 'p') });
    expect(read.status).toBe(503);
    expect(read.headers.get('retry-after')).toBe('5');
    const metrics = await harness.request('GET', '/api/metrics/memory');
    expect(metrics.body.totals).toMatchObject({ storeRequests: 1, storeErrors: 1, fallbacks: 0 });
    // The Context7 failure is counted as what it is, apart from the store's.
    expect(metrics.body.totals.context7Errors).toBe(1);
  });

  it('a read whose store fails while Context7 answers is answered from Context7 alone', async () => {
    const dataDir = tempDataDir('store-outage-c7');
    const { store, failing } = flakyStore(dataDir, ['searchPatterns']);
    const harness = await startHarness({ emulator: {}, dataDir, overrides: { store } });
    harnesses.push(harness);
    const scopeId = scope('outage', 'c7', 'p');
    expect((await harness.request('POST', '/api/memory/patterns', { scopeId, patterns: ['known to Context7'] })).status).toBe(200);
    failing.on = true;
    const read = await harness.request('POST', '/api/memory/snippets', { scopeId });
    expect(read.status).toBe(200);
    expect(read.body.source).toBe('context7');
    expect(read.body.snippets.map((snippet: { content: string }) => snippet.content)).toEqual(['known to Context7']);
    const metrics = await harness.request('GET', '/api/metrics/memory');
    expect(metrics.body.totals).toMatchObject({ storeRequests: 2, storeErrors: 1, fallbacks: 0, context7Errors: 0 });
  });

  it('a write committed before the store failed is acknowledged; the drainer sends it after the lease', async () => {
    const dataDir = tempDataDir('store-outage-write');
    const { store, failing } = flakyStore(dataDir, ['completeOutbox', 'failOutbox']);
    const harness = await startHarness({ emulator: {}, dataDir, overrides: { store } });
    harnesses.push(harness);
    failing.on = true;
    const scopeId = scope('outage', 'w', 'p');
    const write = await harness.request('POST', '/api/memory/patterns', { scopeId, patterns: ['committed first'] });
    expect(write.status).toBe(200);
    expect(write.body).toMatchObject({ saved: 1, inserted: 1 });
    expect(harness.logs.messages().some((msg) => /Patterns are saved but their outbox entries could not be updated/.test(msg))).toBe(true);
    // Durable in the store, sent to Context7, and still in the outbox (not marked sent): a drainer re-sends it
    // after the lease, which is idempotent.
    failing.on = false;
    expect(harness.emulator!.patterns(scopeId).map((pattern) => pattern.content)).toEqual(['committed first']);
    expect(await store.outboxDepth()).toBe(1);
    expect((await store.searchPatterns(scopeId, undefined, 10, new Date())).map((pattern) => [pattern.content, pattern.syncedAt])).toEqual([
      ['committed first', null],
    ]);
  });
});
