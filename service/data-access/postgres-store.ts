/**
 * MemoryStore on PostgreSQL (Render Postgres), selected when DATABASE_URL is set. Several instances share it, so
 * every multi-step change is one transaction and every "only one may" rule is enforced by the database:
 * unique keys for patterns and run slots, FOR UPDATE SKIP LOCKED plus leases for the outbox, and a conditional
 * upsert for job starts.
 */
import { Pool, type PoolClient, type PoolConfig } from 'pg';
import type {
  JobState,
  MemoryStore,
  NewPattern,
  OutboxEntry,
  PatternHistoryEvent,
  SaveOptions,
  ScopeExport,
  ScopeKey,
  StoredPattern,
} from './memory-store';
import { fillMissingSearchDocuments, runPgMigrations } from './postgres-migrations';
import { parseSearchQuery, tsqueryText, tsvectorText } from './search-text';

export interface PostgresStoreOptions {
  connectionString: string;
  /** Pool size per instance; Render Postgres plans cap total connections, so keep it small. */
  maxConnections?: number;
  /** Passed to pg as-is; e.g. `{ rejectUnauthorized: false }` for Render's external URLs. */
  ssl?: PoolConfig['ssl'];
  statementTimeoutMs?: number;
  /** Receives pool errors (a dropped idle connection) that would otherwise crash the process. */
  onPoolError?: (error: Error) => void;
}

interface PatternRow {
  id: string;
  scope_id: string;
  content: string;
  content_hash: string;
  metadata: Record<string, unknown> | null;
  expires_at: Date | null;
  created_at: Date;
  synced_at: Date | null;
}

const PATTERN_COLUMNS = 'p.id, p.scope_id, p.content, p.content_hash, p.metadata, p.expires_at, p.created_at, p.synced_at';
const LIVE = '(p.expires_at IS NULL OR p.expires_at > $NOW)';

function live(nowParam: string): string {
  return LIVE.replace('$NOW', nowParam);
}

function iso(value: Date | null): string | null {
  return value === null ? null : value.toISOString();
}

function toPattern(row: PatternRow): StoredPattern {
  return {
    id: row.id,
    scopeId: row.scope_id,
    content: row.content,
    contentHash: row.content_hash,
    metadata: row.metadata,
    expiresAt: iso(row.expires_at),
    createdAt: row.created_at.toISOString(),
    syncedAt: iso(row.synced_at),
  };
}

interface JobRow {
  name: string;
  status: JobState['status'];
  started_at: Date;
  finished_at: Date | null;
  cursor: string | null;
  total: number;
  synced: number;
  errors: number;
  owner: string;
  heartbeat_at: Date;
}

function toJob(row: JobRow): JobState {
  return {
    name: row.name,
    status: row.status,
    startedAt: row.started_at.toISOString(),
    finishedAt: iso(row.finished_at),
    cursor: row.cursor,
    total: row.total,
    synced: row.synced,
    errors: row.errors,
    owner: row.owner,
    heartbeatAt: row.heartbeat_at.toISOString(),
  };
}

function jobParams(state: JobState): unknown[] {
  return [
    state.name,
    state.status,
    state.startedAt,
    state.finishedAt,
    state.cursor,
    state.total,
    state.synced,
    state.errors,
    state.owner,
    state.heartbeatAt,
  ];
}

const JOB_COLUMNS = 'name, status, started_at, finished_at, cursor, total, synced, errors, owner, heartbeat_at';

/** Fleet coordination the scheduler and drainer need beyond MemoryStore (see service/fleet/). */
export interface FleetCoordination {
  /** True for exactly one caller per (jobName, slot), for ever: the instance that runs that scheduled slot. */
  claimRunSlot(jobName: string, slot: string, owner: string, now: Date): Promise<boolean>;
  /** Takes or renews a named lease; true while `owner` holds it. An expired lease can be taken by anyone. */
  tryAcquireLease(name: string, owner: string, ttlMs: number, now: Date): Promise<boolean>;
  releaseLease(name: string, owner: string): Promise<void>;
}

export class PostgresMemoryStore implements MemoryStore, FleetCoordination {
  readonly kind = 'postgres' as const;
  readonly pool: Pool;

  constructor(options: PostgresStoreOptions) {
    this.pool = new Pool({
      connectionString: options.connectionString,
      max: options.maxConnections ?? 10,
      ssl: options.ssl,
      statement_timeout: options.statementTimeoutMs ?? 15_000,
      application_name: 'context7-memory-service',
    });
    // An idle client losing its connection emits here; without a listener Node would crash the process.
    this.pool.on('error', (error) => options.onPoolError?.(error));
  }

  async migrate(): Promise<void> {
    await runPgMigrations(this.pool);
    // Rows written without a search document by a previous version during a rolling deploy: a few at most,
    // found through the partial index patterns_search_pending.
    await fillMissingSearchDocuments(this.pool);
  }

  private async transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  async savePatterns(
    scope: ScopeKey,
    patterns: NewPattern[],
    now: Date,
    options: SaveOptions = {},
  ): Promise<{ saved: StoredPattern[]; insertedIds: string[] }> {
    if (patterns.length === 0) return { saved: [], insertedIds: [] };
    const leaseOwner = options.leaseTo?.workerId ?? null;
    const leaseUntil = options.leaseTo ? new Date(now.getTime() + options.leaseTo.leaseMs) : null;
    // Insert in content-hash order: two transactions saving overlapping batches then take row locks in the same
    // order and wait for each other instead of deadlocking. Duplicates within the batch are written once.
    const unique = new Map<string, NewPattern>();
    for (const pattern of patterns) if (!unique.has(pattern.contentHash)) unique.set(pattern.contentHash, pattern);
    const ordered = [...unique.values()].sort((a, b) => (a.contentHash < b.contentHash ? -1 : a.contentHash > b.contentHash ? 1 : 0));
    return this.transaction(async (client) => {
      const byHash = new Map<string, StoredPattern>();
      const insertedIds: string[] = [];
      for (const pattern of ordered) {
        const insert = await client.query<PatternRow & { seq: string }>(
          `INSERT INTO patterns AS p (id, scope_id, location_id, agent_id, prompt_hash, content, content_hash,
             metadata, expires_at, created_at, search_document)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::tsvector)
           ON CONFLICT DO NOTHING
           RETURNING ${PATTERN_COLUMNS}, p.seq`,
          [
            pattern.id,
            scope.scopeId,
            scope.locationId,
            scope.agentId,
            scope.promptHash,
            pattern.content,
            pattern.contentHash,
            pattern.metadata === null ? null : JSON.stringify(pattern.metadata),
            pattern.expiresAt,
            now,
            tsvectorText(scope.scopeId, pattern.content),
          ],
        );
        const row = insert.rows[0];
        if (row) {
          insertedIds.push(row.id);
          await client.query(
            `INSERT INTO outbox (pattern_id, enqueued_seq, available_at, lease_owner, lease_until) VALUES ($1, $2, $3, $4, $5)`,
            [row.id, row.seq, now, leaseOwner, leaseUntil],
          );
          await client.query(
            `INSERT INTO pattern_history (pattern_id, scope_id, event, at) VALUES ($1, $2, 'created', $3)`,
            [row.id, scope.scopeId, now],
          );
          byHash.set(pattern.contentHash, toPattern(row));
          continue;
        }
        // Already present (this scope and content, possibly from a concurrent request that just committed).
        const existing = await client.query<PatternRow>(
          `SELECT ${PATTERN_COLUMNS} FROM patterns p WHERE p.scope_id = $1 AND p.content_hash = $2`,
          [scope.scopeId, pattern.contentHash],
        );
        const found = existing.rows[0];
        if (!found) {
          // The id exists under another (scope, content): ids are derived from both, so this is a caller bug.
          throw new Error(`pattern id ${pattern.id} already belongs to a different scope or content`);
        }
        byHash.set(pattern.contentHash, toPattern(found));
      }
      return { saved: patterns.map((pattern) => byHash.get(pattern.contentHash)!), insertedIds };
    });
  }

  async searchPatterns(scopeId: string, query: string | undefined, limit: number, now: Date): Promise<StoredPattern[]> {
    const bounded = Math.max(0, Math.floor(limit));
    if (query === undefined || query === '') {
      const result = await this.pool.query<PatternRow>(
        `SELECT ${PATTERN_COLUMNS} FROM patterns p
         WHERE p.scope_id = $1 AND ${live('$2')}
         ORDER BY p.created_at DESC, p.seq DESC
         LIMIT $3`,
        [scopeId, now, bounded],
      );
      return result.rows.map(toPattern);
    }
    const parsed = parseSearchQuery(query);
    if (parsed === null || bounded === 0) return [];
    // The tsquery is built from tokens (letters and digits only) and read by ::tsquery, never by a text parser:
    // user text cannot become tsquery syntax. Tagged lexemes keep the GIN lookup inside this scope; scope_id is
    // still checked. The planner picks between the GIN lookup and the scope index (both measured in bench:store:
    // forcing GIN made a common term slower). ts_rank_cd with normalization 1 (divided by 1 + log length);
    // recency breaks ties.
    const result = await this.pool.query<PatternRow>(
      `SELECT ${PATTERN_COLUMNS} FROM patterns p
       WHERE p.search_document @@ $4::tsquery AND p.scope_id = $1 AND ${live('$2')}
       ORDER BY ts_rank_cd(p.search_document, $4::tsquery, 1) DESC, p.created_at DESC, p.id
       LIMIT $3`,
      [scopeId, now, bounded, tsqueryText(scopeId, parsed)],
    );
    return result.rows.map(toPattern);
  }

  async claimOutbox(workerId: string, limit: number, leaseMs: number, now: Date): Promise<OutboxEntry[]> {
    const leaseUntil = new Date(now.getTime() + leaseMs);
    // SKIP LOCKED: concurrent claimers each take different rows instead of queueing on the same ones.
    const result = await this.pool.query<PatternRow & { attempts: number; last_error: string | null }>(
      `WITH due AS (
         SELECT o.pattern_id FROM outbox o
         WHERE o.available_at <= $1 AND (o.lease_until IS NULL OR o.lease_until <= $1)
         ORDER BY o.available_at, o.enqueued_seq
         LIMIT $2
         FOR UPDATE SKIP LOCKED
       ), claimed AS (
         UPDATE outbox o SET lease_owner = $3, lease_until = $4
         FROM due WHERE o.pattern_id = due.pattern_id
         RETURNING o.pattern_id, o.attempts, o.last_error, o.available_at, o.enqueued_seq
       )
       SELECT ${PATTERN_COLUMNS}, c.attempts, c.last_error
       FROM claimed c JOIN patterns p ON p.id = c.pattern_id
       ORDER BY c.available_at, c.enqueued_seq`,
      [now, Math.max(0, Math.floor(limit)), workerId, leaseUntil],
    );
    return result.rows.map((row) => ({ pattern: toPattern(row), attempts: row.attempts, lastError: row.last_error }));
  }

  async completeOutbox(patternIds: string[], now: Date): Promise<void> {
    if (patternIds.length === 0) return;
    await this.transaction(async (client) => {
      // Only rows still in the outbox are completed, so a late duplicate completion writes no second event.
      const done = await client.query<{ pattern_id: string }>(
        `DELETE FROM outbox WHERE pattern_id = ANY($1::text[]) RETURNING pattern_id`,
        [patternIds],
      );
      const ids = done.rows.map((row) => row.pattern_id);
      if (ids.length === 0) return;
      await client.query(
        `UPDATE patterns SET synced_at = $2 WHERE id = ANY($1::text[]) AND synced_at IS NULL`,
        [ids, now],
      );
      await client.query(
        `INSERT INTO pattern_history (pattern_id, scope_id, event, at)
         SELECT p.id, p.scope_id, 'synced', $2 FROM patterns p WHERE p.id = ANY($1::text[]) ORDER BY p.seq`,
        [ids, now],
      );
    });
  }

  async failOutbox(patternIds: string[], error: string, retryAt: Date): Promise<void> {
    if (patternIds.length === 0) return;
    await this.transaction(async (client) => {
      const failed = await client.query<{ pattern_id: string }>(
        `UPDATE outbox SET attempts = attempts + 1, last_error = $2, available_at = $3,
           lease_owner = NULL, lease_until = NULL
         WHERE pattern_id = ANY($1::text[]) RETURNING pattern_id`,
        [patternIds, error, retryAt],
      );
      const ids = failed.rows.map((row) => row.pattern_id);
      if (ids.length === 0) return;
      await client.query(
        `INSERT INTO pattern_history (pattern_id, scope_id, event, at, detail)
         SELECT p.id, p.scope_id, 'sync_failed', clock_timestamp(), $2 FROM patterns p
         WHERE p.id = ANY($1::text[]) ORDER BY p.seq`,
        [ids, error],
      );
    });
  }

  async outboxDepth(): Promise<number> {
    const result = await this.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox');
    return result.rows[0]?.n ?? 0;
  }

  async listPatternsPage(afterId: string | null, limit: number, now: Date): Promise<StoredPattern[]> {
    const result = await this.pool.query<PatternRow>(
      `SELECT ${PATTERN_COLUMNS} FROM patterns p
       WHERE ($1::text IS NULL OR p.id > $1::text COLLATE "C") AND ${live('$2')}
       ORDER BY p.id
       LIMIT $3`,
      [afterId, now, Math.max(0, Math.floor(limit))],
    );
    return result.rows.map(toPattern);
  }

  async countPatterns(now: Date): Promise<number> {
    const result = await this.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM patterns p WHERE ${live('$1')}`,
      [now],
    );
    return result.rows[0]?.n ?? 0;
  }

  async tryStartJob(initial: JobState, staleAfterMs: number, now: Date): Promise<{ started: boolean; state: JobState }> {
    const staleBefore = new Date(now.getTime() - staleAfterMs);
    // One statement: concurrent starts serialise on the row, and the loser re-checks the WHERE against the
    // winner's fresh heartbeat, so it updates nothing.
    const started = await this.pool.query<JobRow>(
      `INSERT INTO jobs AS j (${JOB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
       ON CONFLICT (name) DO UPDATE SET
         status = EXCLUDED.status, started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
         cursor = EXCLUDED.cursor, total = EXCLUDED.total, synced = EXCLUDED.synced, errors = EXCLUDED.errors,
         owner = EXCLUDED.owner, heartbeat_at = EXCLUDED.heartbeat_at
       WHERE j.status <> 'running' OR j.heartbeat_at < $11
       RETURNING ${JOB_COLUMNS}`,
      [...jobParams(initial), staleBefore],
    );
    const row = started.rows[0];
    if (row) return { started: true, state: toJob(row) };
    const running = await this.loadJobState(initial.name);
    if (!running) throw new Error(`job ${initial.name} neither started nor found`);
    return { started: false, state: running };
  }

  async saveJobState(state: JobState): Promise<void> {
    await this.pool.query(
      `INSERT INTO jobs (${JOB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
       ON CONFLICT (name) DO UPDATE SET
         status = EXCLUDED.status, started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
         cursor = EXCLUDED.cursor, total = EXCLUDED.total, synced = EXCLUDED.synced, errors = EXCLUDED.errors,
         owner = EXCLUDED.owner, heartbeat_at = EXCLUDED.heartbeat_at`,
      jobParams(state),
    );
  }

  async loadJobState(name: string): Promise<JobState | null> {
    const result = await this.pool.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE name = $1`, [name]);
    const row = result.rows[0];
    return row ? toJob(row) : null;
  }

  async exportScope(scopeId: string, now: Date): Promise<ScopeExport> {
    const patterns = await this.pool.query<PatternRow>(
      `SELECT ${PATTERN_COLUMNS} FROM patterns p WHERE p.scope_id = $1 AND ${live('$2')}
       ORDER BY p.created_at, p.seq`,
      [scopeId, now],
    );
    const history = await this.pool.query<{
      pattern_id: string;
      scope_id: string;
      event: PatternHistoryEvent['event'];
      at: Date;
      detail: string | null;
    }>(`SELECT pattern_id, scope_id, event, at, detail FROM pattern_history WHERE scope_id = $1 ORDER BY seq`, [scopeId]);
    return {
      scopeId,
      patterns: patterns.rows.map(toPattern),
      history: history.rows.map((row) => ({
        patternId: row.pattern_id,
        scopeId: row.scope_id,
        event: row.event,
        at: row.at.toISOString(),
        detail: row.detail,
      })),
    };
  }

  async claimRunSlot(jobName: string, slot: string, owner: string, now: Date): Promise<boolean> {
    const result = await this.pool.query(
      `INSERT INTO job_run_slots (job_name, slot, owner, claimed_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT DO NOTHING`,
      [jobName, slot, owner, now],
    );
    return result.rowCount === 1;
  }

  async tryAcquireLease(name: string, owner: string, ttlMs: number, now: Date): Promise<boolean> {
    const result = await this.pool.query(
      `INSERT INTO fleet_leases AS l (name, owner, lease_until) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until
       WHERE l.owner = EXCLUDED.owner OR l.lease_until <= $4`,
      [name, owner, new Date(now.getTime() + ttlMs), now],
    );
    return result.rowCount === 1;
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    await this.pool.query(`DELETE FROM fleet_leases WHERE name = $1 AND owner = $2`, [name, owner]);
  }

  private closing: Promise<void> | null = null;

  /** Idempotent: shutdown paths may call it more than once. */
  close(): Promise<void> {
    this.closing ??= this.pool.end();
    return this.closing;
  }
}

export function createPostgresStore(options: PostgresStoreOptions): PostgresMemoryStore {
  return new PostgresMemoryStore(options);
}
