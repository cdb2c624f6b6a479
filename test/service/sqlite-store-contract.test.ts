/** The shared MemoryStore contract against the embedded SQLite store, in a fresh data directory per test. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { createSqliteStore, sqliteDatabasePath } from '../../service/data-access/sqlite-store';
import { describeStoreContract, newPattern, scopeKey } from './store-contract';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite-contract-'));
let current = '';
let count = 0;

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describeStoreContract('sqlite', {
  async open() {
    count += 1;
    current = path.join(root, `store-${count}`);
    const store = createSqliteStore({ dataDir: current });
    await store.migrate();
    return store;
  },
  // Two processes on one disk: a second connection to the same database file.
  async openPeer() {
    const store = createSqliteStore({ dataDir: current });
    await store.migrate();
    return store;
  },
});

describe('sqlite search index migration', () => {
  it('indexes patterns written before the search index existed, ranked like new ones', async () => {
    const dataDir = path.join(root, 'before-search');
    const old = createSqliteStore({ dataDir, migrateUpTo: 1 });
    await old.migrate();
    await old.close();
    // Rows as the previous release wrote them: no search document anywhere.
    const scope = scopeKey('loc-old', 'agent-old', 'prompt');
    const raw = new Database(sqliteDatabasePath(dataDir));
    const insert = raw.prepare(
      `INSERT INTO patterns (id, scope_id, location_id, agent_id, prompt_hash, content, content_hash, created_at)
       VALUES (@id, @scopeId, @locationId, @agentId, @promptHash, @content, @contentHash, @createdAt)`,
    );
    const contents = ['École: refund refund policy', 'refund later', 'greet by name'];
    contents.forEach((content, i) =>
      insert.run({ ...scope, ...newPattern(scope, content), createdAt: new Date(Date.UTC(2026, 0, 1 + i)).toISOString() }),
    );
    raw.close();

    const store = createSqliteStore({ dataDir });
    try {
      await store.migrate();
      const found = await store.searchPatterns(scope.scopeId, 'ecole', 10, new Date('2026-02-01T00:00:00Z'));
      expect(found.map((p) => p.content)).toEqual(['École: refund refund policy']);
      const refunds = await store.searchPatterns(scope.scopeId, 'refu', 10, new Date('2026-02-01T00:00:00Z'));
      expect(refunds.map((p) => p.content)).toEqual(['École: refund refund policy', 'refund later']);
      // New writes land in the same index.
      await store.savePatterns(scope, [newPattern(scope, 'refund desk')], new Date('2026-01-10T00:00:00Z'));
      expect((await store.searchPatterns(scope.scopeId, 'desk', 10, new Date('2026-02-01T00:00:00Z'))).length).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('merges index segments 16 at a time (automerge), so a write transaction is not slowed by merging at 4', async () => {
    const dataDir = path.join(root, 'automerge');
    const store = createSqliteStore({ dataDir });
    await store.migrate();
    await store.close();
    const raw = new Database(sqliteDatabasePath(dataDir), { readonly: true });
    try {
      expect(raw.prepare(`SELECT v FROM patterns_search_config WHERE k = 'automerge'`).get()).toEqual({ v: 16 });
    } finally {
      raw.close();
    }
  });
});
