/**
 * Outbox recovery: patterns accepted during a Context7 outage wait durably and reach Context7 after it
 * recovers (also across a restart), with every pattern present in both stores and none duplicated.
 */
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { startContext7Emulator } from '../../service/context7/emulator';
import { TEST_API_KEY, scope, startHarness, tempDataDir, waitFor, type Harness } from './support/harness';

const harnesses: Harness[] = [];
afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
});

async function learnDuringOutage(h: Harness, scopes: string[], perScope: number): Promise<Map<string, string[]>> {
  const written = new Map<string, string[]>();
  for (const scopeId of scopes) {
    const patterns = Array.from({ length: perScope }, (_, i) => `${scopeId.slice(-6)} pattern ${i}`);
    const res = await h.request('POST', '/api/memory/patterns', { scopeId, patterns });
    expect(res.status).toBe(200);
    expect(res.body.destinations).toEqual(['database']);
    written.set(scopeId, patterns);
  }
  return written;
}

describe('outbox recovery', () => {
  it('drains everything after an outage, with backoff while Context7 is still down', async () => {
    let offsetMs = 0;
    const h = await startHarness({ emulator: {}, overrides: { clock: () => new Date(Date.now() + offsetMs) } });
    harnesses.push(h);
    h.emulator!.setFaults({ outage: true });
    const scopes = [scope('ob', 'a', '1'), scope('ob', 'b', '2'), scope('ob', 'c', '3')];
    const written = await learnDuringOutage(h, scopes, 4);
    expect(await h.service.store.outboxDepth()).toBe(12);

    // Still down: entries are backing off, so an immediate pass sends nothing and hammers nothing.
    const before = h.emulator!.stats().requests.upsertPatterns;
    expect(await h.service.drainer!.drainOnce()).toEqual({ sent: 0, failed: 0 });
    expect(h.emulator!.stats().requests.upsertPatterns).toBe(before);

    h.emulator!.resetFaults();
    offsetMs = 10 * 60_000; // past any backoff
    const result = await h.service.drainer!.drainOnce();
    expect(result).toEqual({ sent: 12, failed: 0 });
    expect(await h.service.store.outboxDepth()).toBe(0);
    for (const [scopeId, patterns] of written) {
      expect(h.emulator!.patterns(scopeId).map((p) => p.content).sort()).toEqual([...patterns].sort());
      const local = await h.service.store.exportScope(scopeId, new Date());
      expect(local.patterns.map((p) => p.content).sort()).toEqual([...patterns].sort());
      expect(local.patterns.every((p) => p.syncedAt !== null)).toBe(true);
      expect(local.history.filter((e) => e.event === 'sync_failed')).toHaveLength(patterns.length);
      expect(local.history.filter((e) => e.event === 'synced')).toHaveLength(patterns.length);
    }
    // A second pass has nothing left to send.
    expect(await h.service.drainer!.drainOnce()).toEqual({ sent: 0, failed: 0 });
  });

  it('a failed pass during a partial outage records the failure and retries later', async () => {
    let offsetMs = 0;
    const h = await startHarness({ emulator: {}, overrides: { clock: () => new Date(Date.now() + offsetMs) } });
    harnesses.push(h);
    h.emulator!.setFaults({ errorRate: 1 });
    await learnDuringOutage(h, [scope('ob2', 'a', '1')], 2);
    offsetMs = 10 * 60_000;
    expect(await h.service.drainer!.drainOnce()).toEqual({ sent: 0, failed: 2 });
    expect(await h.service.store.outboxDepth()).toBe(2);
    h.emulator!.resetFaults();
    offsetMs = 60 * 60_000;
    expect(await h.service.drainer!.drainOnce()).toEqual({ sent: 2, failed: 0 });
  });

  it('a pattern re-posted while it waits in the outbox is left to the drainer: it is never sent twice', async () => {
    let offsetMs = 0;
    const h = await startHarness({ emulator: {}, overrides: { clock: () => new Date(Date.now() + offsetMs) } });
    harnesses.push(h);
    const scopeId = scope('repost', 'a', '1');
    h.emulator!.setFaults({ outage: true });
    const first = await h.request('POST', '/api/memory/patterns', { scopeId, patterns: ['Call back before noon'] });
    expect(first.body).toMatchObject({ saved: 1, inserted: 1, destinations: ['database'] });

    // Context7 is back, but the pattern belongs to the outbox now: the re-post must not send it itself.
    h.emulator!.resetFaults();
    const upsertsBefore = h.emulator!.stats().requests.upsertPatterns;
    const again = await h.request('POST', '/api/memory/patterns', { scopeId, patterns: ['Call back before noon'] });
    expect(again.body).toMatchObject({ saved: 1, inserted: 0, destinations: ['database'] });
    expect(h.emulator!.stats().requests.upsertPatterns).toBe(upsertsBefore);

    offsetMs = 10 * 60_000; // past the backoff
    expect(await h.service.drainer!.drainOnce()).toEqual({ sent: 1, failed: 0 });
    expect(h.emulator!.stats().requests.upsertPatterns).toBe(upsertsBefore + 1);
    expect(h.emulator!.patterns(scopeId).map((p) => p.content)).toEqual(['Call back before noon']);
  });

  it('patterns accepted before a restart are sent by the background drainer of the next process', async () => {
    const dataDir = tempDataDir('outbox-restart');
    const emulator = await startContext7Emulator({ apiKey: TEST_API_KEY });
    try {
      const env = { ENABLE_CONTEXT7_MEMORY: 'true', CONTEXT7_API_KEY: TEST_API_KEY, CONTEXT7_BASE_URL: emulator.url };
      const first = await startHarness({ dataDir, env });
      emulator.setFaults({ outage: true });
      const scopeId = scope('restart', 'a', 'p');
      const written = await learnDuringOutage(first, [scopeId], 5);
      await first.close();
      emulator.resetFaults();

      const second = await startHarness({ dataDir, env: { ...env, OUTBOX_DRAIN_INTERVAL_MS: '50' } });
      harnesses.push(second);
      // Backoff after the failed inline send is ~0.5-1 s; the drainer picks them up once due.
      await waitFor('outbox drained after restart', async () => (await second.service.store.outboxDepth()) === 0, 20_000);
      expect(emulator.patterns(scopeId).map((p) => p.content).sort()).toEqual([...written.get(scopeId)!].sort());
      expect(second.logs.messages().some((m) => /^\[SYNC\] Outbox: sent \d+ patterns to Context7$/.test(m))).toBe(true);
    } finally {
      await emulator.close();
      await Promise.all(harnesses.splice(0).map((h) => h.close()));
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
