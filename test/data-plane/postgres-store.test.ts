/** The shared MemoryStore contract against the real PostgreSQL, in a database created for this file. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pool, type PoolClient } from 'pg';
import { PostgresMemoryStore } from '../../service/data-access/postgres-store';
import { MIGRATION_LOCK_KEY, PG_MIGRATIONS, runPgMigrations, type PgMigration } from '../../service/data-access/postgres-migrations';
import { describeStoreContract, newPattern, scopeKey } from '../service/store-contract';
import { createTestDatabase, type TestDatabase } from './support/postgres';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('pgstore');
});

afterAll(async () => {
  await db?.drop();
});

async function emptyStore(): Promise<PostgresMemoryStore> {
  const store = new PostgresMemoryStore({ connectionString: db.url, maxConnections: 4 });
  await store.migrate();
  // TRUNCATE fires no row triggers, so the append-only history can still be reset between tests.
  await store.pool.query('TRUNCATE pattern_history, outbox, patterns, jobs, job_run_slots, fleet_leases, erasure_outbox, exposure_audit');
  // The one runtime row is part of the schema (migration 8): reset, not removed.
  await store.pool.query('UPDATE exposure_runtime SET percent = NULL, version = 0, updated_at = NULL, updated_by = NULL');
  return store;
}

describeStoreContract('postgres', {
  open: emptyStore,
  openPeer: async () => new PostgresMemoryStore({ connectionString: db.url, maxConnections: 4 }),
});

describe('postgres specifics', () => {
  it('records every migration once, even when many instances migrate at once', async () => {
    const stores = Array.from({ length: 4 }, () => new PostgresMemoryStore({ connectionString: db.url, maxConnections: 2 }));
    try {
      await Promise.all(stores.map((s) => s.migrate()));
      const rows = await stores[0]!.pool.query<{ id: number }>('SELECT id FROM schema_migrations ORDER BY id');
      expect(rows.rows.map((r) => r.id)).toEqual(PG_MIGRATIONS.map((m) => m.id));
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('applies migrations on a fresh database serially when two runners race', async () => {
    const fresh = await createTestDatabase('pgrace');
    const pools = [new Pool({ connectionString: fresh.url }), new Pool({ connectionString: fresh.url })];
    // DROP DATABASE ... WITH (FORCE) below may still find a closing connection and terminate it.
    for (const pool of pools) pool.on('error', () => undefined);
    try {
      const results = await Promise.all(pools.map((pool) => runPgMigrations(pool)));
      const appliedCounts = results.map((r) => r.applied.length).sort();
      expect(appliedCounts).toEqual([0, PG_MIGRATIONS.length]);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
      await fresh.drop();
    }
  });

  it('a migrator waits for the lock longer than the statement timeout instead of failing', async () => {
    const holder = new Pool({ connectionString: db.url, max: 1 });
    holder.on('error', () => undefined);
    const store = new PostgresMemoryStore({ connectionString: db.url, maxConnections: 2, statementTimeoutMs: 100 });
    const client = await holder.connect();
    try {
      // Another instance is migrating: it holds the migration lock longer than the 100 ms statement timeout.
      await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
      let finished = false;
      const migrating = store.migrate().then(() => (finished = true));
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(finished).toBe(false);
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]);
      await migrating;
      expect(finished).toBe(true);
      // The pool's own statement timeout still applies to everything else.
      await expect(store.pool.query('SELECT pg_sleep(1)')).rejects.toThrow(/statement timeout/);
    } finally {
      client.release();
      await holder.end();
      await store.close();
    }
  });

  it('keeps location, agent and prompt hash beside the scope id', async () => {
    const store = await emptyStore();
    try {
      const scope = scopeKey('loc-7', 'agent_9', 'Be brief');
      await store.savePatterns(scope, [newPattern(scope, 'x')], new Date());
      const row = await store.pool.query('SELECT scope_id, location_id, agent_id, prompt_hash FROM patterns');
      expect(row.rows[0]).toEqual({
        scope_id: scope.scopeId,
        location_id: 'loc-7',
        agent_id: 'agent_9',
        prompt_hash: scope.promptHash,
      });
    } finally {
      await store.close();
    }
  });

  it('refuses to rewrite or delete history', async () => {
    const store = await emptyStore();
    try {
      const scope = scopeKey('l', 'a', 'p');
      await store.savePatterns(scope, [newPattern(scope, 'audited')], new Date());
      await expect(store.pool.query(`UPDATE pattern_history SET detail = 'x'`)).rejects.toThrow(/append-only/);
      await expect(store.pool.query('DELETE FROM pattern_history')).rejects.toThrow(/append-only/);
    } finally {
      await store.close();
    }
  });

  it('after an erasure only the erased pattern\'s events were removed; tombstones and other events stay undeletable', async () => {
    const store = await emptyStore();
    try {
      const scope = scopeKey('l', 'a', 'p');
      const [stays, goes] = [newPattern(scope, 'stays'), newPattern(scope, 'goes')];
      await store.savePatterns(scope, [stays, goes], new Date());
      await store.erase(scope, goes.id, 'admin', new Date());
      await expect(store.pool.query(`DELETE FROM pattern_history WHERE event = 'erased'`)).rejects.toThrow(/append-only/);
      await expect(store.pool.query(`DELETE FROM pattern_history WHERE pattern_id = $1`, [stays.id])).rejects.toThrow(/append-only/);
      await expect(store.pool.query(`UPDATE pattern_history SET detail = 'x' WHERE event = 'erased'`)).rejects.toThrow(/append-only/);
      const rows = await store.pool.query<{ pattern_id: string; event: string }>('SELECT pattern_id, event FROM pattern_history ORDER BY seq');
      expect(rows.rows).toEqual([
        { pattern_id: expect.any(String), event: 'created' },
        { pattern_id: goes.id, event: 'erased' },
      ]);
      expect(rows.rows[0]!.pattern_id).toBe(stays.id);
    } finally {
      await store.close();
    }
  });

  it('hands each scheduled slot to exactly one instance, and a lease to one holder at a time', async () => {
    const store = await emptyStore();
    const peer = new PostgresMemoryStore({ connectionString: db.url, maxConnections: 2 });
    try {
      const now = new Date('2026-01-05T02:05:00.000Z');
      const claims = await Promise.all(
        Array.from({ length: 6 }, (_, i) => (i % 2 ? peer : store).claimRunSlot('weekly-sync', now.toISOString(), `i${i}`, now)),
      );
      expect(claims.filter(Boolean).length).toBe(1);
      expect(await store.claimRunSlot('weekly-sync', '2026-01-12T02:05:00.000Z', 'i0', now)).toBe(true);

      expect(await store.tryAcquireLease('outbox-drainer', 'a', 10_000, now)).toBe(true);
      expect(await peer.tryAcquireLease('outbox-drainer', 'b', 10_000, new Date(now.getTime() + 5_000))).toBe(false);
      expect(await store.tryAcquireLease('outbox-drainer', 'a', 10_000, new Date(now.getTime() + 5_000))).toBe(true);
      expect(await peer.tryAcquireLease('outbox-drainer', 'b', 10_000, new Date(now.getTime() + 16_000))).toBe(true);
      await store.releaseLease('outbox-drainer', 'a'); // not the holder any more: no effect
      expect(await store.tryAcquireLease('outbox-drainer', 'a', 10_000, new Date(now.getTime() + 17_000))).toBe(false);
      await peer.releaseLease('outbox-drainer', 'b');
      expect(await store.tryAcquireLease('outbox-drainer', 'a', 10_000, new Date(now.getTime() + 17_000))).toBe(true);
    } finally {
      await Promise.all([store.close(), peer.close()]);
    }
  });
});

describe('postgres ranked search: two ways to the same window', () => {
  it('walks the scope for a word in most of it once statistics say so, with the same results as the GIN lookup', async () => {
    const store = await emptyStore();
    const hot = scopeKey('loc', 'hot', 'many patterns');
    const other = scopeKey('loc', 'other', 'a few');
    const at = (i: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, i));
    // 4 000 patterns in transactions of 100: one of 500 overran the store's 5 s transaction deadline at load 15.
    for (let i = 0; i < 4_000; i += 100) {
      await store.savePatterns(
        hot,
        Array.from({ length: 100 }, (_, j) => newPattern(hot, `customer ${'note '.repeat((i + j) % 7)}${i + j}${(i + j) % 400 === 0 ? ' zanzibar' : ''}`)),
        at(i),
      );
    }
    await store.savePatterns(other, [newPattern(other, 'customer elsewhere')], at(9_000));
    const searches: string[] = [];
    const query = store.pool.query.bind(store.pool);
    store.pool.query = ((text: unknown, ...rest: unknown[]) => {
      if (typeof text === 'string' && text.includes('ts_rank_cd')) searches.push(text);
      return (query as (...args: unknown[]) => unknown)(text, ...rest);
    }) as typeof store.pool.query;
    const now = new Date('2027-01-01T00:00:00Z');
    const run = async () => ({
      common: (await store.searchPatterns(hot.scopeId, 'customer', 10, now)).map((p) => p.id),
      rare: (await store.searchPatterns(hot.scopeId, 'zanzibar', 10, now)).map((p) => p.id),
    });
    // Before ANALYZE the planner knows nothing: both go through the GIN lookup.
    const lookup = await run();
    expect(searches.map((text) => text.includes('ts_match_vq'))).toEqual([false, false]);
    await store.pool.query('ANALYZE patterns');
    searches.length = 0;
    const walked = await run();
    // A word in every pattern of the scope walks its newest rows; a rare one still uses the index.
    expect(searches.map((text) => text.includes('ts_match_vq'))).toEqual([true, false]);
    expect(walked).toEqual(lookup);
    expect(walked.common).toHaveLength(10);
    expect(walked.rare).toHaveLength(10);
    await store.close();
    // 40 transactions of 100 patterns, then ANALYZE: 74 s at load 11-14 with three workers (fresh clone, 20:14 UTC).
  }, 120_000);
});

describe('postgres search index migrations', () => {
  const olderSchema = PG_MIGRATIONS.filter((migration) => migration.id <= 2);

  async function insertAsOlderRelease(pool: Pool, scope: ReturnType<typeof scopeKey>, contents: string[]): Promise<void> {
    for (const [i, content] of contents.entries()) {
      const pattern = newPattern(scope, content);
      await pool.query(
        `INSERT INTO patterns (id, scope_id, location_id, agent_id, prompt_hash, content, content_hash, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [pattern.id, scope.scopeId, scope.locationId, scope.agentId, scope.promptHash, content, pattern.contentHash, new Date(Date.UTC(2026, 0, 1 + i))],
      );
    }
  }

  it('backfills and indexes patterns written before the search index existed, outside a transaction', async () => {
    const fresh = await createTestDatabase('pgsearchmig');
    const pool = new Pool({ connectionString: fresh.url });
    pool.on('error', () => undefined);
    const store = new PostgresMemoryStore({ connectionString: fresh.url, maxConnections: 2, onPoolError: () => undefined });
    try {
      await runPgMigrations(pool, olderSchema);
      const scope = scopeKey('loc-old', 'agent-old', 'prompt');
      await insertAsOlderRelease(pool, scope, ['École: refund refund policy', 'refund later', 'greet by name']);
      await store.migrate();
      const now = new Date('2026-02-01T00:00:00Z');
      expect((await store.searchPatterns(scope.scopeId, 'ecole', 10, now)).map((p) => p.content)).toEqual(['École: refund refund policy']);
      expect((await store.searchPatterns(scope.scopeId, 'refu', 10, now)).map((p) => p.content)).toEqual(['École: refund refund policy', 'refund later']);
      const index = await pool.query<{ valid: boolean; method: string }>(
        `SELECT i.indisvalid AS valid, am.amname AS method FROM pg_index i
         JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam WHERE c.relname = 'patterns_search'`,
      );
      expect(index.rows).toEqual([{ valid: true, method: 'gin' }]);
      // Three rows favour a sequential scan; with it off, the planner shows the index can answer the search.
      const client = await pool.connect();
      try {
        await client.query('SET enable_seqscan = off');
        const plan = await client.query<{ 'QUERY PLAN': string }>(
          `EXPLAIN SELECT id FROM patterns WHERE search_document @@ $1::tsquery`,
          ["'abc':*"],
        );
        expect(plan.rows.map((r) => r['QUERY PLAN']).join('\n')).toMatch(/patterns_search/);
      } finally {
        client.release();
      }
    } finally {
      await store.close();
      await pool.end();
      await fresh.drop();
    }
  });

  it('fills in rows a previous release wrote during a rolling deploy, when an instance migrates', async () => {
    const store = await emptyStore();
    try {
      const scope = scopeKey('loc-roll', 'agent-roll', 'prompt');
      await insertAsOlderRelease(store.pool, scope, ['written by the old release']);
      expect(await store.searchPatterns(scope.scopeId, 'release', 10, new Date('2026-02-01T00:00:00Z'))).toEqual([]);
      await store.migrate();
      expect((await store.searchPatterns(scope.scopeId, 'release', 10, new Date('2026-02-01T00:00:00Z'))).length).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('a second migrator waits while the first builds the index concurrently, then finds nothing to do', async () => {
    const fresh = await createTestDatabase('pgsearchwait');
    const pools = [new Pool({ connectionString: fresh.url }), new Pool({ connectionString: fresh.url })];
    for (const pool of pools) pool.on('error', () => undefined);
    let building = 0;
    // The real migrations, with the index build made slow enough that the second runner surely waits for it.
    const slowBuild = PG_MIGRATIONS.map((migration) =>
      'nonTransactional' in migration && migration.name.includes('GIN index')
        ? {
            ...migration,
            run: async (client: PoolClient) => {
              building += 1;
              await client.query('SELECT pg_sleep(0.6)');
              await migration.run(client);
            },
          }
        : migration,
    );
    try {
      await runPgMigrations(pools[0]!, olderSchema);
      await insertAsOlderRelease(pools[0]!, scopeKey('l', 'a', 'p'), ['existing row']);
      const results = await Promise.all(pools.map((pool) => runPgMigrations(pool, slowBuild)));
      expect(results.map((r) => r.applied.length).sort()).toEqual([0, PG_MIGRATIONS.length - olderSchema.length]);
      expect(building).toBe(1);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
      await fresh.drop();
    }
  });

  it('a build step runs past the pool\'s per-query deadline, bounded by the build deadline instead', async () => {
    const fresh = await createTestDatabase('pgbuilddeadline');
    // The pool's request deadline (pg query_timeout) is far shorter than the build: as in the service.
    const pool = new Pool({ connectionString: fresh.url, query_timeout: 300 });
    pool.on('error', () => undefined);
    const slowBuild = (id: number): PgMigration => ({
      id,
      name: `slow build ${id}`,
      nonTransactional: true,
      run: async (db) => {
        await db.query('SELECT pg_sleep(0.8)');
      },
    });
    try {
      const done = await runPgMigrations(pool, [...PG_MIGRATIONS, slowBuild(1_001)], undefined, { buildTimeoutMs: 30_000 });
      expect(done.applied.map((m) => m.id)).toContain(1_001);
      // Past its own deadline the server cancels it, and the step is named and left unrecorded.
      await expect(runPgMigrations(pool, [...PG_MIGRATIONS, slowBuild(1_002)], undefined, { buildTimeoutMs: 200 })).rejects.toThrow(
        /migration 1002 \(slow build 1002\) failed: .*statement timeout/,
      );
      const recorded = await pool.query('SELECT id FROM schema_migrations WHERE id >= 1000 ORDER BY id');
      expect(recorded.rows.map((row) => row.id)).toEqual([1_001]);
    } finally {
      await pool.end();
      await fresh.drop();
    }
  });

  it('a failed non-transactional step is not recorded, and runs again next time', async () => {
    const fresh = await createTestDatabase('pgsearchfail');
    const pool = new Pool({ connectionString: fresh.url });
    pool.on('error', () => undefined);
    let attempts = 0;
    const flaky: PgMigration = {
      id: 1_000,
      name: 'flaky step',
      nonTransactional: true,
      run: async () => {
        attempts += 1;
        if (attempts === 1) throw new Error('interrupted');
      },
    };
    try {
      await expect(runPgMigrations(pool, [...PG_MIGRATIONS, flaky])).rejects.toThrow(/migration 1000 \(flaky step\) failed: interrupted/);
      const second = await runPgMigrations(pool, [...PG_MIGRATIONS, flaky]);
      expect(second.applied.map((m) => m.id)).toEqual([1_000]);
      expect(attempts).toBe(2);
    } finally {
      await pool.end();
      await fresh.drop();
    }
  });
});
