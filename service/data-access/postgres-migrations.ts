/**
 * PostgreSQL schema migrations, applied in order by `npm run migrate` (Render's pre-deploy command) and by
 * PostgresMemoryStore.migrate(). Each runs once, in its own transaction (or, for a PgStepMigration, outside one),
 * under a session advisory lock so two instances starting at once apply them one after the other instead of
 * racing: the second waits for the lock while the first builds, then finds nothing left to do.
 * Never edit a migration that has shipped: add a new one.
 */
import type { Pool, PoolClient, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import { PG_EXPOSURE_MIGRATION } from './exposure-sql';
import { PG_METRICS_CLUSTERS_MIGRATION, PG_METRICS_HISTORY_MIGRATION } from './metrics-history-sql';
import { tsvectorText } from './search-text';
import { StoreUnavailableError } from './store-errors';

/** Runs in one transaction with its schema_migrations row: all or nothing. */
export interface PgSqlMigration {
  id: number;
  name: string;
  sql: string;
}

/**
 * Runs outside any transaction, for work that cannot or should not be one: CREATE INDEX CONCURRENTLY, or a
 * backfill in batches that commit as they go (short row locks instead of one table-long transaction).
 * Must be idempotent: if the process dies half way, the next migrator runs it again from the start.
 * It is recorded in schema_migrations only after it finished.
 */
export interface PgStepMigration {
  id: number;
  name: string;
  nonTransactional: true;
  /** Each query it makes through `db` is bounded by the build deadline (MigrationOptions.buildTimeoutMs). */
  run(db: Queryable): Promise<void>;
}

/** What a step and the search backfill query through: a pool, a client, or a client with a step's deadline. */
export interface Queryable {
  query<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>>;
}

export type PgMigration = PgSqlMigration | PgStepMigration;

/** Rows per backfill batch: each batch is its own short transaction. */
export const SEARCH_BACKFILL_BATCH = 2_000;

/**
 * Fills search_document for every pattern that lacks one, walking the whole table in id order (keyset on the
 * primary key, so each batch is an index range scan whatever the planner thinks of the new column), one batch per
 * statement. The tokens come from the same TypeScript tokenizer as the write path (search-text.ts), so old and
 * new rows are indexed alike. Returns how many rows it filled.
 */
export async function backfillSearchDocuments(client: Queryable, batchSize = SEARCH_BACKFILL_BATCH): Promise<number> {
  let filled = 0;
  let after = '';
  for (;;) {
    const batch = await client.query<{ id: string; scope_id: string; content: string; missing: boolean }>(
      `SELECT id, scope_id, content, search_document IS NULL AS missing FROM patterns WHERE id > $1 ORDER BY id LIMIT $2`,
      [after, batchSize],
    );
    if (batch.rows.length === 0) return filled;
    filled += await fillSearchDocuments(client, batch.rows.filter((row) => row.missing));
    after = batch.rows[batch.rows.length - 1]!.id;
  }
}

/**
 * Fills search_document for the few rows a previous release wrote without one (rolling deploy), found through the
 * partial index patterns_search_pending; cheap when there are none. Returns how many rows it filled.
 */
export async function fillMissingSearchDocuments(client: Queryable, batchSize = SEARCH_BACKFILL_BATCH): Promise<number> {
  let filled = 0;
  for (;;) {
    const batch = await client.query<{ id: string; scope_id: string; content: string }>(
      `SELECT id, scope_id, content FROM patterns WHERE search_document IS NULL ORDER BY id LIMIT $1`,
      [batchSize],
    );
    if (batch.rows.length === 0) return filled;
    filled += await fillSearchDocuments(client, batch.rows);
  }
}

async function fillSearchDocuments(client: Queryable, rows: { id: string; scope_id: string; content: string }[]): Promise<number> {
  if (rows.length === 0) return 0;
  await client.query(
    `UPDATE patterns p SET search_document = d.document::tsvector
     FROM unnest($1::text[], $2::text[]) AS d(id, document)
     WHERE p.id = d.id AND p.search_document IS NULL`,
    [rows.map((row) => row.id), rows.map((row) => tsvectorText(row.scope_id, row.content))],
  );
  return rows.length;
}

/** CREATE INDEX CONCURRENTLY, after dropping an invalid leftover of an interrupted build (IF NOT EXISTS would keep it). */
async function createIndexConcurrently(client: Queryable, name: string, definition: string): Promise<void> {
  const existing = await client.query<{ valid: boolean }>(
    `SELECT i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
     WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace`,
    [name],
  );
  if (existing.rows[0]?.valid) return;
  if (existing.rows[0]) await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${name}`);
  await client.query(`CREATE INDEX CONCURRENTLY ${name} ON ${definition}`);
}

export const PG_MIGRATIONS: readonly PgMigration[] = [
  {
    id: 1,
    name: 'patterns, history, outbox, jobs',
    sql: `
      CREATE TABLE patterns (
        -- COLLATE "C": byte order, so keyset pagination orders ids exactly as SQLite does.
        id           text COLLATE "C" PRIMARY KEY,
        seq          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        scope_id     text NOT NULL,
        location_id  text NOT NULL,
        agent_id     text NOT NULL,
        prompt_hash  text NOT NULL,
        content      text NOT NULL,
        content_hash text NOT NULL,
        metadata     jsonb,
        expires_at   timestamptz,
        created_at   timestamptz NOT NULL,
        synced_at    timestamptz,
        CONSTRAINT patterns_scope_content_unique UNIQUE (scope_id, content_hash)
      );
      CREATE INDEX patterns_scope_newest ON patterns (scope_id, created_at DESC, seq DESC);
      CREATE INDEX patterns_location_agent ON patterns (location_id, agent_id);

      -- Append-only: a trigger refuses UPDATE and DELETE, so the audit trail cannot be rewritten.
      CREATE TABLE pattern_history (
        seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        pattern_id text COLLATE "C" NOT NULL REFERENCES patterns (id),
        scope_id   text NOT NULL,
        event      text NOT NULL CHECK (event IN ('created', 'synced', 'sync_failed')),
        at         timestamptz NOT NULL,
        detail     text
      );
      CREATE INDEX pattern_history_scope ON pattern_history (scope_id, seq);
      CREATE FUNCTION pattern_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'pattern_history is append-only';
      END $$;
      CREATE TRIGGER pattern_history_no_rewrite BEFORE UPDATE OR DELETE ON pattern_history
        FOR EACH ROW EXECUTE FUNCTION pattern_history_append_only();

      CREATE TABLE outbox (
        pattern_id   text COLLATE "C" PRIMARY KEY REFERENCES patterns (id),
        enqueued_seq bigint NOT NULL,
        attempts     integer NOT NULL DEFAULT 0,
        last_error   text,
        available_at timestamptz NOT NULL,
        lease_owner  text,
        lease_until  timestamptz
      );
      CREATE INDEX outbox_due ON outbox (available_at, enqueued_seq);

      CREATE TABLE jobs (
        name         text PRIMARY KEY,
        status       text NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
        started_at   timestamptz NOT NULL,
        finished_at  timestamptz,
        cursor       text COLLATE "C",
        total        integer NOT NULL,
        synced       integer NOT NULL,
        errors       integer NOT NULL,
        owner        text NOT NULL,
        heartbeat_at timestamptz NOT NULL
      );
    `,
  },
  {
    id: 2,
    name: 'fleet coordination: run slots and leases',
    sql: `
      -- One row per (job, scheduled slot): the instance whose INSERT wins runs that slot; the others skip it.
      CREATE TABLE job_run_slots (
        job_name   text NOT NULL,
        slot       text NOT NULL,
        owner      text NOT NULL,
        claimed_at timestamptz NOT NULL,
        PRIMARY KEY (job_name, slot)
      );
      -- Named, expiring leadership (e.g. the outbox drainer): one holder at a time across the fleet.
      CREATE TABLE fleet_leases (
        name        text PRIMARY KEY,
        owner       text NOT NULL,
        lease_until timestamptz NOT NULL
      );
    `,
  },
  {
    id: 3,
    name: 'erasure: tombstones in the history, erasure outbox',
    sql: `
      -- A tombstone outlives its pattern, so the history no longer references patterns.
      ALTER TABLE pattern_history DROP CONSTRAINT pattern_history_pattern_id_fkey;
      ALTER TABLE pattern_history DROP CONSTRAINT pattern_history_event_check;
      ALTER TABLE pattern_history ADD CONSTRAINT pattern_history_event_check
        CHECK (event IN ('created', 'synced', 'sync_failed', 'erased'));
      CREATE INDEX pattern_history_pattern ON pattern_history (pattern_id, event);
      -- Still append-only, except that an erased pattern's events (never its tombstone) may be deleted.
      CREATE OR REPLACE FUNCTION pattern_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'DELETE' AND OLD.event <> 'erased' AND EXISTS (
          SELECT 1 FROM pattern_history t WHERE t.pattern_id = OLD.pattern_id AND t.event = 'erased'
        ) THEN
          RETURN OLD;
        END IF;
        RAISE EXCEPTION 'pattern_history is append-only';
      END $$;

      -- Deletions Context7 has not acknowledged yet: re-sent until it does, across outages and restarts.
      CREATE TABLE erasure_outbox (
        id           text PRIMARY KEY,
        scope_id     text NOT NULL,
        pattern_id   text COLLATE "C",
        requested_by text NOT NULL,
        requested_at timestamptz NOT NULL,
        attempts     integer NOT NULL DEFAULT 0,
        last_error   text,
        available_at timestamptz NOT NULL,
        lease_owner  text,
        lease_until  timestamptz
      );
      CREATE INDEX erasure_outbox_due ON erasure_outbox (available_at, requested_at);
    `,
  },
  { id: 4, name: 'metrics history (time series)', sql: PG_METRICS_HISTORY_MIGRATION },
  {
    id: 5,
    name: 'ranked full-text search: search_document column',
    // Nullable, no default: instant on a table of any size. The write path fills it from now on.
    sql: `ALTER TABLE patterns ADD COLUMN search_document tsvector;`,
  },
  {
    id: 6,
    name: 'ranked full-text search: backfill search_document for existing patterns',
    nonTransactional: true,
    run: async (client) => {
      await backfillSearchDocuments(client);
    },
  },
  {
    id: 7,
    name: 'ranked full-text search: GIN index, built without blocking writes',
    nonTransactional: true,
    run: async (client) => {
      await createIndexConcurrently(client, 'patterns_search', 'patterns USING gin (search_document)');
      // Finds rows a previous version wrote without a document during a rolling deploy (see migrate()).
      await createIndexConcurrently(client, 'patterns_search_pending', 'patterns (id) WHERE search_document IS NULL');
    },
  },
  { id: 8, name: 'progressive exposure: runtime percentage and its audit', sql: PG_EXPOSURE_MIGRATION },
  { id: 9, name: 'metrics history: per-cluster tables per day', sql: PG_METRICS_CLUSTERS_MIGRATION },
];

/** Any fixed 64-bit key unique to this schema: every instance must use the same one. */
export const MIGRATION_LOCK_KEY = 7_214_530_918_112_001n;

export interface MigrationResult {
  applied: PgMigration[];
  alreadyApplied: number;
}

export interface MigrationOptions {
  /**
   * Bounds the wait for the advisory lock and each SQL migration statement (`statement_timeout`, plus the same
   * client-side deadline, which also holds when the network path is dead). Default 30 s. A non-transactional step
   * (an index built concurrently, a batched backfill) is bounded by its own statements only: it holds the lock
   * while it builds, and a second migrator waits at most this long for it, then fails with a clear error.
   */
  timeoutMs?: number;
  /**
   * Bounds each statement of a non-transactional step (an index built concurrently over a large table, a backfill
   * batch), server side and client side. Default 1 hour: a GIN build over a million rows took minutes here.
   */
  buildTimeoutMs?: number;
}

export const DEFAULT_MIGRATION_BUILD_TIMEOUT_MS = 3_600_000;

/** The client-side deadline is a little longer, so a live server reports its own (clean) timeout first. */
const CLIENT_DEADLINE_MARGIN_MS = 1_000;

/** How often a migrator waiting for another one retries the lock. */
export const MIGRATION_LOCK_POLL_MS = 200;

type Run = (text: string, values?: unknown[]) => Promise<QueryResult>;

/**
 * Applies pending migrations. Holds a session-level advisory lock on one dedicated connection for the whole run,
 * so concurrent callers (two instances, or the pre-deploy command and a starting instance) serialise; the one
 * that waits then finds nothing left to do. A wait longer than `timeoutMs` fails as a store timeout naming the
 * migration lock wait.
 */
export async function runPgMigrations(
  pool: Pool,
  migrations: readonly PgMigration[] = PG_MIGRATIONS,
  onApplied?: (migration: PgMigration) => void,
  options: MigrationOptions = {},
): Promise<MigrationResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const buildTimeoutMs = options.buildTimeoutMs ?? DEFAULT_MIGRATION_BUILD_TIMEOUT_MS;
  const client = await pool.connect();
  const run: Run = (text, values) => client.query({ text, values, query_timeout: timeoutMs + CLIENT_DEADLINE_MARGIN_MS } as QueryConfig);
  // Set when the session can no longer be trusted (a client-side timeout): it is then discarded, not reused.
  let broken: Error | undefined;
  try {
    // Running a migration may take longer than the pool's per-statement cap.
    await run(`SET statement_timeout = ${Math.floor(timeoutMs)}`);
    await run(`SET lock_timeout = ${Math.floor(timeoutMs)}`);
    await acquireMigrationLock(run, timeoutMs);
    try {
      await run(`CREATE TABLE IF NOT EXISTS schema_migrations (
        id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
      const done = new Set((await run('SELECT id FROM schema_migrations')).rows.map((row: { id: number }) => row.id));
      const applied: PgMigration[] = [];
      for (const migration of [...migrations].sort((a, b) => a.id - b.id)) {
        if (done.has(migration.id)) continue;
        await applyOne(client, run, migration, timeoutMs, buildTimeoutMs);
        applied.push(migration);
        onApplied?.(migration);
      }
      return { applied, alreadyApplied: done.size };
    } catch (error) {
      broken = sessionLost(error) ? (error as Error) : undefined;
      throw error;
    } finally {
      // A lost session's lock is released by the server when the connection closes.
      if (!broken) await run('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]).catch((error: Error) => (broken = error));
    }
  } catch (error) {
    broken ??= sessionLost(error) ? (error as Error) : undefined;
    throw error;
  } finally {
    if (!broken) await run('RESET statement_timeout; RESET lock_timeout').catch((error: Error) => (broken = error));
    client.release(broken);
  }
}

/**
 * Polls pg_try_advisory_lock instead of blocking in pg_advisory_lock: a waiter blocked inside a statement keeps a
 * transaction open, and CREATE INDEX CONCURRENTLY in the holder's migration waits for every open transaction, so
 * holder and waiter would deadlock. Between polls the waiter holds no transaction. The wait is bounded by
 * `timeoutMs`; holding the lock (the other migrator's build) is not.
 */
async function acquireMigrationLock(run: Run, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await run('SELECT pg_try_advisory_lock($1) AS locked', [MIGRATION_LOCK_KEY.toString()]);
    if ((result.rows[0] as { locked?: boolean } | undefined)?.locked) return;
    if (Date.now() >= deadline) {
      throw new StoreUnavailableError('postgres', 'timeout', 'migration lock wait', timeoutMs, new Error('another migrator still holds the lock'));
    }
    await new Promise((resolve) => setTimeout(resolve, MIGRATION_LOCK_POLL_MS));
  }
}

/** An error without a SQLSTATE (a client-side timeout, a dropped connection) leaves the session unusable. */
function sessionLost(error: unknown): boolean {
  if (error instanceof StoreUnavailableError) return false;
  const code = (error as { code?: unknown } | null)?.code;
  return !(typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code));
}

async function applyOne(client: PoolClient, run: Run, migration: PgMigration, timeoutMs: number, buildTimeoutMs: number): Promise<void> {
  if ('nonTransactional' in migration) {
    // A build over a large table may run long: the build deadline instead of the statement one while it runs
    // (server side, and client side for a dead network path; the pool's per-query cap is for requests).
    await run(`SET statement_timeout = ${Math.floor(buildTimeoutMs)}`);
    const db: Queryable = {
      query: <R extends QueryResultRow>(text: string, values?: unknown[]) =>
        client.query<R>({ text, values, query_timeout: buildTimeoutMs + CLIENT_DEADLINE_MARGIN_MS } as QueryConfig),
    };
    try {
      await migration.run(db);
    } catch (error) {
      // Named for the operator; its session is then discarded (it has no SQLSTATE), which also drops the lock.
      throw new Error(`migration ${migration.id} (${migration.name}) failed: ${(error as Error).message}`, { cause: error });
    } finally {
      await run(`SET statement_timeout = ${Math.floor(timeoutMs)}`).catch(() => undefined);
    }
    await run('INSERT INTO schema_migrations (id, name) VALUES ($1, $2)', [migration.id, migration.name]);
    return;
  }
  await run('BEGIN');
  try {
    await run(migration.sql);
    await run('INSERT INTO schema_migrations (id, name) VALUES ($1, $2)', [migration.id, migration.name]);
    await run('COMMIT');
  } catch (error) {
    // A lost session (no SQLSTATE) is rethrown as it is, so the caller can tell an outage from a bad migration.
    if (sessionLost(error)) throw error;
    await run('ROLLBACK');
    throw new Error(`migration ${migration.id} (${migration.name}) failed: ${(error as Error).message}`);
  }
}
