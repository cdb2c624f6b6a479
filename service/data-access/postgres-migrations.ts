/**
 * PostgreSQL schema migrations, applied in order by `npm run migrate` (Render's pre-deploy command) and by
 * PostgresMemoryStore.migrate(). Each runs once, in its own transaction, under a session advisory lock so two
 * instances starting at once apply them one after the other instead of racing.
 * Never edit a migration that has shipped: add a new one.
 */
import type { Pool, QueryConfig, QueryResult } from 'pg';
import { PG_METRICS_HISTORY_MIGRATION } from './metrics-history-sql';
import { StoreUnavailableError } from './store-errors';

export interface PgMigration {
  id: number;
  name: string;
  sql: string;
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
];

/** Any fixed 64-bit key unique to this schema: every instance must use the same one. */
export const MIGRATION_LOCK_KEY = 7_214_530_918_112_001n;

export interface MigrationResult {
  applied: PgMigration[];
  alreadyApplied: number;
}

export interface MigrationOptions {
  /**
   * Bounds the wait for the advisory lock (`lock_timeout`) and each migration statement (`statement_timeout`,
   * plus the same client-side deadline, which also holds when the network path is dead). Default 30 s.
   */
  timeoutMs?: number;
}

/** The client-side deadline is a little longer, so a live server reports its own (clean) timeout first. */
const CLIENT_DEADLINE_MARGIN_MS = 1_000;

/**
 * Applies pending migrations. Holds a session-level advisory lock on one dedicated connection for the whole run,
 * so concurrent callers (two instances, or the pre-deploy command and a starting instance) serialise; the one
 * that waits then finds nothing left to do. A wait longer than `timeoutMs` fails with the lock_timeout error
 * (SQLSTATE 55P03); the caller decides whether to retry.
 */
export async function runPgMigrations(
  pool: Pool,
  migrations: readonly PgMigration[] = PG_MIGRATIONS,
  onApplied?: (migration: PgMigration) => void,
  options: MigrationOptions = {},
): Promise<MigrationResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const client = await pool.connect();
  const run = (text: string, values?: unknown[]) =>
    client.query({ text, values, query_timeout: timeoutMs + CLIENT_DEADLINE_MARGIN_MS } as QueryConfig);
  // Set when the session can no longer be trusted (a client-side timeout): it is then discarded, not reused.
  let broken: Error | undefined;
  try {
    // Waiting for another migrator and running a migration may take longer than the pool's per-statement cap.
    await run(`SET statement_timeout = ${Math.floor(timeoutMs)}`);
    await run(`SET lock_timeout = ${Math.floor(timeoutMs)}`);
    await run('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]).catch((error: unknown) => {
      // Either server-side deadline may fire first (lock_timeout 55P03, statement_timeout 57014): both mean the lock wait.
      const code = (error as { code?: unknown } | null)?.code;
      if (code === '55P03' || code === '57014') throw new StoreUnavailableError('postgres', 'timeout', 'migration lock wait', timeoutMs, error);
      throw error;
    });
    try {
      await run(`CREATE TABLE IF NOT EXISTS schema_migrations (
        id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
      const done = new Set(
        (await run('SELECT id FROM schema_migrations')).rows.map((row: { id: number }) => row.id),
      );
      const applied: PgMigration[] = [];
      for (const migration of [...migrations].sort((a, b) => a.id - b.id)) {
        if (done.has(migration.id)) continue;
        await applyOne(run, migration);
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

/** An error without a SQLSTATE (a client-side timeout, a dropped connection) leaves the session unusable. */
function sessionLost(error: unknown): boolean {
  if (error instanceof StoreUnavailableError) return false;
  const code = (error as { code?: unknown } | null)?.code;
  return !(typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code));
}

type Run = (text: string, values?: unknown[]) => Promise<QueryResult>;

async function applyOne(run: Run, migration: PgMigration): Promise<void> {
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
