/**
 * Issue 13, erasure on SQLite with the Context7 emulator: an erasure requested during a Context7 outage, then
 * recovery. Afterwards nothing of the scope remains anywhere (store rows, history content, the database files,
 * the cache, the emulator) and the history shows only the tombstones.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { TEST_ADMIN_TOKEN, scope, startHarness, waitFor, type Harness } from './support/harness';

const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** Every byte of the SQLite files (database and WAL): erased content must not survive in free pages either. */
function databaseBytes(dataDir: string): Buffer {
  return Buffer.concat(
    fs
      .readdirSync(dataDir)
      .filter((name) => name.startsWith('memory.db'))
      .map((name) => fs.readFileSync(path.join(dataDir, name))),
  );
}

describe('erasure (SQLite)', () => {
  it('a whole scope erased during a Context7 outage is gone everywhere once Context7 is back; only tombstones stay', async () => {
    h = await startHarness({ emulator: {}, env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN } });
    const victim = scope('erase', 'victim');
    const bystander = scope('erase', 'bystander');
    const secrets = ['Alice lives at 12 Rose Street', 'Alice is allergic to penicillin', 'Alice prefers Tuesday calls'];
    expect((await h.request('POST', '/api/memory/patterns', { scopeId: victim, patterns: secrets.slice(0, 2) })).body.destinations).toEqual(['database', 'context7']);
    await h.request('POST', '/api/memory/patterns', { scopeId: bystander, patterns: ['Bob likes mornings'] });
    expect(h.emulator!.patterns(victim)).toHaveLength(2);
    // Cached on this instance: the erasure must drop it.
    expect((await h.request('POST', '/api/memory/snippets', { scopeId: victim })).body.source).toBe('context7');
    expect((await h.request('POST', '/api/memory/snippets', { scopeId: victim })).body.source).toBe('cache');

    h.emulator!.setFaults({ outage: true });
    // Learned during the outage: waits in the outbox, and must never reach Context7 after the erasure.
    expect((await h.request('POST', '/api/memory/patterns', { scopeId: victim, patterns: [secrets[2]] })).body.destinations).toEqual(['database']);

    const erased = await h.request('POST', '/api/admin/erase', { scopeId: victim, requestedBy: 'dpr-2026-117' }, admin);
    expect(erased.status).toBe(200);
    expect(erased.body).toMatchObject({ scopeId: victim, patternId: null, erased: 3, context7: 'queued' });
    expect(erased.body.erasureId).toMatch(/^era_[0-9a-f]{24}$/);
    expect(await h.service.store.erasureOutboxDepth()).toBe(1);
    expect(await h.service.store.outboxDepth()).toBe(0);
    // During the outage: reads fall back to the store, which has nothing left.
    const during = await h.request('POST', '/api/memory/snippets', { scopeId: victim });
    expect(during.body).toMatchObject({ snippets: [], source: 'database' });

    h.emulator!.resetFaults();
    expect(h.emulator!.patterns(victim)).toHaveLength(2);
    // The failed deletion backs off (about a second); the drainer sends it once it is due.
    await waitFor('the erasure to reach Context7', async () => (await h!.service.drainer!.drainOnce()).erased);

    expect(h.emulator!.patterns(victim)).toEqual([]);
    expect(h.emulator!.patterns(bystander)).toHaveLength(1);
    expect(await h.service.store.erasureOutboxDepth()).toBe(0);
    const after = await h.request('POST', '/api/memory/snippets', { scopeId: victim });
    expect(after.body).toMatchObject({ snippets: [], source: 'context7' });

    const exported = await h.request('GET', `/api/admin/export?scopeId=${encodeURIComponent(victim)}`, undefined, admin);
    expect(exported.body.patterns).toEqual([]);
    expect(exported.body.history).toHaveLength(3);
    for (const event of exported.body.history) {
      expect(event).toEqual({ patternId: expect.stringMatching(/^pat_/), scopeId: victim, event: 'erased', at: expect.any(String), detail: 'admin:dpr-2026-117' });
    }
    const everything = `${exported.text}${h.logs.text()}`;
    const bytes = databaseBytes(h.dataDir);
    for (const secret of secrets) {
      expect(everything).not.toContain(secret);
      expect(bytes.includes(Buffer.from(secret, 'utf8')), `"${secret}" left in the database files`).toBe(false);
    }
    // The bystander is untouched.
    expect((await h.request('POST', '/api/memory/snippets', { scopeId: bystander })).body.snippets).toHaveLength(1);
  });

  it('erases one pattern and leaves the rest of the scope; the history keeps the others\' events', async () => {
    h = await startHarness({ emulator: {}, env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN } });
    const scopeId = scope('erase', 'one');
    const written = await h.request('POST', '/api/memory/patterns', { scopeId, patterns: ['keep me', 'forget me'] });
    const [kept, forgotten] = written.body.patternIds as string[];
    const erased = await h.request('POST', '/api/admin/erase', { scopeId, patternId: forgotten }, admin);
    expect(erased.body).toMatchObject({ erased: 1, context7: 'deleted', patternId: forgotten });
    expect(h.emulator!.patterns(scopeId).map((p) => p.id)).toEqual([kept]);
    const exported = (await h.request('GET', `/api/admin/export?scopeId=${encodeURIComponent(scopeId)}`, undefined, admin)).body;
    expect(exported.patterns.map((p: { id: string }) => p.id)).toEqual([kept]);
    expect(exported.history.filter((e: { patternId: string }) => e.patternId === forgotten)).toEqual([
      { patternId: forgotten, scopeId, event: 'erased', at: expect.any(String), detail: 'admin' },
    ]);
    expect(exported.history.filter((e: { patternId: string }) => e.patternId === kept).map((e: { event: string }) => e.event)).toEqual(['created', 'synced']);
    // Erasing again is harmless: nothing left locally, Context7 deletes nothing.
    expect((await h.request('POST', '/api/admin/erase', { scopeId, patternId: forgotten }, admin)).body).toMatchObject({ erased: 0, context7: 'deleted' });
  });

  it('while a deletion waits (here: Context7 refuses it), reads never serve or cache what Context7 still holds', async () => {
    h = await startHarness({ emulator: {}, env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN } });
    const scopeId = scope('erase', 'pending');
    await h.request('POST', '/api/memory/patterns', { scopeId, patterns: ['Erin works nights'] });
    // Deletions fail (rate limited) while searches keep working: Context7 still holds the pattern.
    h.emulator!.setFaults({ rateLimit: { retryAfterSeconds: 60 } });
    const erased = await h.request('POST', '/api/admin/erase', { scopeId }, admin);
    expect(erased.body).toMatchObject({ erased: 1, context7: 'queued' });
    h.emulator!.resetFaults();
    expect(h.emulator!.patterns(scopeId)).toHaveLength(1);
    for (let n = 0; n < 2; n += 1) {
      const read = await h.request('POST', '/api/memory/snippets', { scopeId });
      expect(read.body).toMatchObject({ snippets: [], source: 'context7' });
    }
  });

  it('the history stays append-only: tombstones and live patterns\' events cannot be removed or rewritten', async () => {
    h = await startHarness({ env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN } });
    const scopeId = scope('erase', 'append-only');
    await h.request('POST', '/api/memory/patterns', { scopeId, patterns: ['stays', 'goes'] });
    const goes = (await h.request('GET', `/api/admin/export?scopeId=${encodeURIComponent(scopeId)}`, undefined, admin)).body.patterns.find((p: { content: string }) => p.content === 'goes').id;
    await h.request('POST', '/api/admin/erase', { scopeId, patternId: goes }, admin);
    const db = new Database(path.join(h.dataDir, 'memory.db'));
    try {
      expect(() => db.prepare(`DELETE FROM pattern_history WHERE event = 'erased'`).run()).toThrow(/append-only/);
      expect(() => db.prepare(`DELETE FROM pattern_history WHERE pattern_id <> ?`).run(goes)).toThrow(/append-only/);
      expect(() => db.prepare(`UPDATE pattern_history SET detail = 'x'`).run()).toThrow(/append-only/);
    } finally {
      db.close();
    }
  });

  it('needs the admin token and a valid request; a caller key is not enough', async () => {
    h = await startHarness({ env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN } });
    const scopeId = scope('erase', 'auth');
    expect((await h.request('POST', '/api/admin/erase', { scopeId })).status).toBe(401);
    expect((await h.request('POST', '/api/admin/erase', { scopeId, patternId: 'nope' }, admin)).status).toBe(400);
    expect((await h.request('POST', '/api/admin/erase', { scopeId, requestedBy: 'has spaces' }, admin)).status).toBe(400);
    expect((await h.request('POST', '/api/admin/erase', { scopeId: 'scope:*' }, admin)).body.error).toMatch(/^Invalid scopeId format/);
    // Without Context7 the deletion waits in the erasure outbox for when Context7 is on.
    expect((await h.request('POST', '/api/admin/erase', { scopeId }, admin)).body).toMatchObject({ erased: 0, context7: 'queued' });
  });
});
