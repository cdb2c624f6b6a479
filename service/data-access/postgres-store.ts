/**
 * MemoryStore on PostgreSQL (Render Postgres), selected when DATABASE_URL is set. Several instances share it, so
 * every multi-step change is one transaction and every "only one may" rule is enforced by the database:
 * unique keys for patterns and run slots, FOR UPDATE SKIP LOCKED plus leases for the outbox, and a conditional
 * upsert for job starts.
 */
// pg is required when a store is made, not on import: a service on SQLite never loads it.
import type { Pool, PoolClient, PoolConfig, QueryResult, QueryResultRow } from 'pg';
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
import { DEFAULT_MIGRATION_BUILD_TIMEOUT_MS, fillMissingSearchDocuments, runPgMigrations } from './postgres-migrations';
import { parseSearchQuery, RANK_WINDOW, tsqueryText, tsvectorText } from './search-text';
import type { PgQuery, PgTransaction } from './pg-query';
import { pgClaimErasures, pgCompleteErasures, pgErase, pgErasureOutboxDepth, pgFailErasures, pgPendingErasures } from './postgres-erasure';
import { pgMetricsHistory, type MetricsHistoryMethods } from './metrics-history-sql';
import { pgExposure, type ExposureMethods } from './exposure-sql';
import { classifyPostgresError, StoreUnavailableError, withDeadline } from './store-errors';

/**
 * Every wait on PostgreSQL has a deadline, so a database that stops answering (a hang, not a refusal) costs a
 * request a bounded time instead of forever. The service's values come from DATABASE_*_MS (data-plane-config.ts).
 */
export interface PostgresDeadlines {
  /** Opening a connection, and waiting for a pooled one when all are busy (pg `connectionTimeoutMillis`). */
  connectTimeoutMs: number;
  /**
   * Client side, per query (pg `query_timeout`) and per transaction: holds even when the network path is dead.
   * A client that missed it is discarded.
   */
  queryTimeoutMs: number;
  /** Server side, per statement (`statement_timeout`): the server cancels, the connection stays usable. */
  statementTimeoutMs: number;
  /** Server side: a session idle inside a transaction is closed (`idle_in_transaction_session_timeout`). */
  idleInTransactionTimeoutMs: number;
  /** Waiting for the migration advisory lock, and each migration statement (`lock_timeout`/`statement_timeout`). */
  migrationTimeoutMs: number;
  /** Each statement of a non-transactional migration step: an index built concurrently, a backfill batch. */
  migrationBuildTimeoutMs: number;
  /** close(): how long pool.end() may wait for checked-out clients before their sockets are destroyed. */
  closeTimeoutMs: number;
  /** Readiness: all clients checked out with none returned for this long means this instance's pool is wedged. */
  poolWedgedAfterMs: number;
}

/**
 * Defaults sized for a request budget: a store call waits at most connect + query = 7 s (a checkout or connect,
 * then one query), under the canary's 10 s measurement timeout and the server's 30 s request timeout. The server's
 * statement timeout is shorter than the client's, so a slow but live server cancels first and keeps the connection.
 */
export const POSTGRES_DEADLINE_DEFAULTS: PostgresDeadlines = {
  connectTimeoutMs: 2_000,
  queryTimeoutMs: 5_000,
  statementTimeoutMs: 4_000,
  idleInTransactionTimeoutMs: 10_000,
  migrationTimeoutMs: 30_000,
  migrationBuildTimeoutMs: DEFAULT_MIGRATION_BUILD_TIMEOUT_MS,
  closeTimeoutMs: 5_000,
  poolWedgedAfterMs: 30_000,
};

export interface PostgresStoreOptions {
  connectionString: string;
  /** Pool size per instance; Render Postgres plans cap total connections, so keep it small. */
  maxConnections?: number;
  /** Passed to pg as-is; e.g. `{ rejectUnauthorized: false }` for Render's external URLs. */
  ssl?: PoolConfig['ssl'];
  /** Each one defaults to POSTGRES_DEADLINE_DEFAULTS. */
  deadlines?: Partial<PostgresDeadlines>;
  /** @deprecated use deadlines.statementTimeoutMs */
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

/** A match found through the GIN lookup (heap fetch, recheck, rank) costs about this many rows of the walk. */
const GIN_ROW_COST_RATIO = 4;

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
  readonly deadlines: PostgresDeadlines;
  private readonly maxConnections: number;
  private readonly clientConfig: PoolConfig;
  /** Clients the pool holds (idle or checked out), so close() can cut them when pool.end() would wait forever. */
  private readonly clients = new Set<PoolClient>();
  /** Since when every client has been checked out with none returned; null while the pool is making progress. */
  private saturatedSinceMs: number | null = null;

  constructor(options: PostgresStoreOptions) {
    this.deadlines = {
      ...POSTGRES_DEADLINE_DEFAULTS,
      ...(options.statementTimeoutMs === undefined ? {} : { statementTimeoutMs: options.statementTimeoutMs }),
      ...options.deadlines,
    };
    this.maxConnections = options.maxConnections ?? 10;
    this.clientConfig = {
      connectionString: options.connectionString,
      ssl: options.ssl,
      connectionTimeoutMillis: this.deadlines.connectTimeoutMs,
      query_timeout: this.deadlines.queryTimeoutMs,
      statement_timeout: this.deadlines.statementTimeoutMs,
      idle_in_transaction_session_timeout: this.deadlines.idleInTransactionTimeoutMs,
      application_name: 'context7-memory-service',
    };
    const { Pool } = require('pg') as typeof import('pg');
    this.pool = new Pool({ ...this.clientConfig, max: this.maxConnections });
    // An idle client losing its connection emits here; without a listener Node would crash the process.
    this.pool.on('error', (error) => options.onPoolError?.(error));
    this.pool.on('connect', (client) => this.clients.add(client));
    this.pool.on('remove', (client) => this.clients.delete(client));
    this.pool.on('acquire', () => {
      if (this.saturatedSinceMs === null && this.pool.idleCount === 0 && this.pool.totalCount >= this.maxConnections) {
        this.saturatedSinceMs = Date.now();
      }
    });
    this.pool.on('release', () => (this.saturatedSinceMs = null));
  }

  async migrate(): Promise<void> {
    try {
      await runPgMigrations(this.pool, undefined, undefined, {
        timeoutMs: this.deadlines.migrationTimeoutMs,
        buildTimeoutMs: this.deadlines.migrationBuildTimeoutMs,
      });
      // Rows written without a search document by a previous version during a rolling deploy: a few at most,
      // found through the partial index patterns_search_pending.
      await fillMissingSearchDocuments(this.pool);
    } catch (error) {
      throw classifyPostgresError(error, this.deadlines, 'migrate');
    }
  }

  /** pool.query (which discards the client on any error, a client-side timeout included) with errors classified. */
  private async query<R extends QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>> {
    try {
      return await this.pool.query<R>(text, values);
    } catch (error) {
      throw classifyPostgresError(error, this.deadlines);
    }
  }

  /** The query wrapper and transaction as the SQL modules beside this store take them (pg-query.ts): deadlines and error classes kept. */
  private readonly boundQuery: PgQuery = (text, values) => this.query(text, values);
  private readonly boundTransaction: PgTransaction = (work) => this.transaction(work);

  // Through the deadline-bearing query wrapper, like every other call of this store.
  private readonly metricsHistory: MetricsHistoryMethods = pgMetricsHistory(this.boundQuery);
  recordMetricsSample: MetricsHistoryMethods['recordMetricsSample'] = (sample) => this.metricsHistory.recordMetricsSample(sample);
  lastMetricsSamplesPerDay: MetricsHistoryMethods['lastMetricsSamplesPerDay'] = (from, to) => this.metricsHistory.lastMetricsSamplesPerDay(from, to);
  pruneMetricsSamples: MetricsHistoryMethods['pruneMetricsSamples'] = (before) => this.metricsHistory.pruneMetricsSamples(before);
  recordMetricsClusters: MetricsHistoryMethods['recordMetricsClusters'] = (day) => this.metricsHistory.recordMetricsClusters(day);
  metricsClustersPerDay: MetricsHistoryMethods['metricsClustersPerDay'] = (from, to) => this.metricsHistory.metricsClustersPerDay(from, to);

  // The one-row read and the audit list through the query wrapper; a set through transaction(): both keep the deadlines.
  private readonly exposure: ExposureMethods = pgExposure(this.boundQuery, this.boundTransaction);
  readExposure: ExposureMethods['readExposure'] = () => this.exposure.readExposure();
  setExposure: ExposureMethods['setExposure'] = (change, now) => this.exposure.setExposure(change, now);
  listExposureAudit: ExposureMethods['listExposureAudit'] = (limit) => this.exposure.listExposureAudit(limit);

  private async transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw classifyPostgresError(error, this.deadlines, 'connect');
    }
    // A client whose query timed out on our side may still have that query running or its socket stalled:
    // it goes back to the pool only if it is known good, otherwise release(error) discards it.
    let broken: Error | undefined;
    // The whole transaction shares the query deadline, so a slow-but-answering database cannot stretch a request
    // over many in-time statements. On expiry the session is cut: the server rolls back, and every write here is
    // idempotent (ids derive from scope and content), so the caller's retry is safe even if COMMIT was in flight.
    let expired: StoreUnavailableError | undefined;
    const deadline = setTimeout(() => {
      expired = new StoreUnavailableError('postgres', 'timeout', 'transaction', this.deadlines.queryTimeoutMs, undefined);
      socketOf(client)?.destroy();
    }, this.deadlines.queryTimeoutMs);
    deadline.unref();
    // Between statements no query is active, so a cut socket is reported as a client 'error' event: handled here.
    const onClientError = () => undefined;
    client.on('error', onClientError);
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      const classified = expired ?? classifyPostgresError(error, this.deadlines);
      if (classified instanceof StoreUnavailableError) {
        broken = classified;
      } else {
        await client.query('ROLLBACK').catch((rollbackError: Error) => (broken = rollbackError));
      }
      throw classified;
    } finally {
      clearTimeout(deadline);
      client.removeListener('error', onClientError);
      client.release(broken);
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
      const result = await this.query<PatternRow>(
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
    // still checked. ts_rank_cd with normalization 1 (divided by 1 + log length), over the scope's newest
    // RANK_WINDOW matches; recency breaks ties.
    const tsquery = tsqueryText(scopeId, parsed);
    const common = await this.walkIsCheaper(scopeId, tsquery);
    // Two ways to the same window. A rare query: the GIN lookup, then its few rows. A common one: the scope's
    // newest rows through patterns_scope_newest, matched one by one until the window is full (ts_match_vq is @@
    // without the index), which visits about RANK_WINDOW / (share of rows matching) rows instead of every match.
    // The planner cannot choose this itself: it multiplies the lexeme's share by the scope's, unaware that a
    // tagged lexeme only ever occurs in its own scope, and so underestimates a common word's matches tenfold.
    const matches = common ? 'ts_match_vq(p.search_document, $4::tsquery)' : 'p.search_document @@ $4::tsquery';
    const result = await this.query<PatternRow>(
      `SELECT ${PATTERN_COLUMNS}
       FROM (SELECT ${PATTERN_COLUMNS}, p.search_document FROM patterns p
             WHERE ${matches} AND p.scope_id = $1 AND ${live('$2')}
             ORDER BY p.created_at DESC, p.seq DESC
             LIMIT ${RANK_WINDOW}) p
       ORDER BY ts_rank_cd(p.search_document, $4::tsquery, 1) DESC, p.created_at DESC, p.id
       LIMIT $3`,
      [scopeId, now, bounded, tsquery],
    );
    return result.rows.map(toPattern);
  }

  /**
   * Whether walking the scope's newest rows fills the window cheaper than the GIN lookup, from the planner's
   * estimates (column statistics, ANALYZE; planning only, nothing read): the walk visits about
   * RANK_WINDOW × scope rows / matches rows, the lookup fetches and ranks every match, each about
   * GIN_ROW_COST_RATIO times dearer (bench:store). A tagged lexeme belongs to one scope, so the whole table's
   * estimate for the query is the scope's. Without statistics both estimates are small: the GIN lookup.
   */
  private async walkIsCheaper(scopeId: string, tsquery: string): Promise<boolean> {
    const result = await this.query<{ 'QUERY PLAN': { Plan: { Plans?: { 'Plan Rows': number }[] } }[] }>(
      `EXPLAIN (FORMAT JSON) SELECT 1 FROM patterns WHERE search_document @@ $1::tsquery
       UNION ALL SELECT 1 FROM patterns WHERE scope_id = $2`,
      [tsquery, scopeId],
    );
    const [matches, scopeRows] = (result.rows[0]?.['QUERY PLAN'][0]?.Plan.Plans ?? []).map((plan) => plan['Plan Rows']);
    if (matches === undefined || scopeRows === undefined || matches < RANK_WINDOW) return false;
    return (RANK_WINDOW * scopeRows) / matches < GIN_ROW_COST_RATIO * matches;
  }

  async claimOutbox(workerId: string, limit: number, leaseMs: number, now: Date): Promise<OutboxEntry[]> {
    const leaseUntil = new Date(now.getTime() + leaseMs);
    // SKIP LOCKED: concurrent claimers each take different rows instead of queueing on the same ones.
    const result = await this.query<PatternRow & { attempts: number; last_error: string | null }>(
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
    const result = await this.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox');
    return result.rows[0]?.n ?? 0;
  }

  async listPatternsPage(afterId: string | null, limit: number, now: Date): Promise<StoredPattern[]> {
    const result = await this.query<PatternRow>(
      `SELECT ${PATTERN_COLUMNS} FROM patterns p
       WHERE ($1::text IS NULL OR p.id > $1::text COLLATE "C") AND ${live('$2')}
       ORDER BY p.id
       LIMIT $3`,
      [afterId, now, Math.max(0, Math.floor(limit))],
    );
    return result.rows.map(toPattern);
  }

  async countPatterns(now: Date): Promise<number> {
    const result = await this.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM patterns p WHERE ${live('$1')}`,
      [now],
    );
    return result.rows[0]?.n ?? 0;
  }

  async tryStartJob(initial: JobState, staleAfterMs: number, now: Date): Promise<{ started: boolean; state: JobState }> {
    const staleBefore = new Date(now.getTime() - staleAfterMs);
    // One statement: concurrent starts serialise on the row, and the loser re-checks the WHERE against the
    // winner's fresh heartbeat, so it updates nothing.
    const started = await this.query<JobRow>(
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
    await this.query(
      `INSERT INTO jobs (${JOB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
       ON CONFLICT (name) DO UPDATE SET
         status = EXCLUDED.status, started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
         cursor = EXCLUDED.cursor, total = EXCLUDED.total, synced = EXCLUDED.synced, errors = EXCLUDED.errors,
         owner = EXCLUDED.owner, heartbeat_at = EXCLUDED.heartbeat_at`,
      jobParams(state),
    );
  }

  async loadJobState(name: string): Promise<JobState | null> {
    const result = await this.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE name = $1`, [name]);
    const row = result.rows[0];
    return row ? toJob(row) : null;
  }

  async exportScope(scopeId: string, now: Date): Promise<ScopeExport> {
    const patterns = await this.query<PatternRow>(
      `SELECT ${PATTERN_COLUMNS} FROM patterns p WHERE p.scope_id = $1 AND ${live('$2')}
       ORDER BY p.created_at, p.seq`,
      [scopeId, now],
    );
    const history = await this.query<{
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
    const result = await this.query(
      `INSERT INTO job_run_slots (job_name, slot, owner, claimed_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT DO NOTHING`,
      [jobName, slot, owner, now],
    );
    return result.rowCount === 1;
  }

  async tryAcquireLease(name: string, owner: string, ttlMs: number, now: Date): Promise<boolean> {
    const result = await this.query(
      `INSERT INTO fleet_leases AS l (name, owner, lease_until) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until
       WHERE l.owner = EXCLUDED.owner OR l.lease_until <= $4`,
      [name, owner, new Date(now.getTime() + ttlMs), now],
    );
    return result.rowCount === 1;
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    await this.query(`DELETE FROM fleet_leases WHERE name = $1 AND owner = $2`, [name, owner]);
  }

  /**
   * Readiness reflects faults of this instance only, never a shared PostgreSQL outage (every instance shares
   * the database: failing readiness on its outage would take the whole fleet out of routing and into a restart
   * loop, so requests fail fast with 503 instead). The one fault reported: this instance's pool is wedged, i.e.
   * every client has been checked out for `poolWedgedAfterMs` with none returned, while a fresh connection to
   * the same database answers. If the fresh connection fails too, the database is the problem: not reported.
   * Resolves to a reason, or null when ready.
   */
  async readinessFault(): Promise<string | null> {
    if (this.saturatedSinceMs === null) return null;
    const stuckMs = Date.now() - this.saturatedSinceMs;
    if (stuckMs < this.deadlines.poolWedgedAfterMs) return null;
    if (!(await this.freshConnectionAnswers())) return null;
    return `PostgreSQL pool wedged: all ${this.maxConnections} connections checked out for ${Math.round(stuckMs / 1000)} s while a fresh connection answers`;
  }

  private async freshConnectionAnswers(): Promise<boolean> {
    const { Client } = require('pg') as typeof import('pg');
    const client = new Client(this.clientConfig);
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
      return true;
    } catch {
      return false;
    } finally {
      // end() can wait on a stalled socket: it is not awaited.
      void client.end().catch(() => undefined);
    }
  }

  // Erasure (issue 13): implemented in postgres-erasure.ts.
  erase(scope: ScopeKey, patternId: string | null, requestedBy: string, now: Date, options?: SaveOptions) {
    return pgErase(this.boundTransaction, scope, patternId, requestedBy, now, options);
  }
  claimErasures(workerId: string, limit: number, leaseMs: number, now: Date) {
    return pgClaimErasures(this.boundQuery, workerId, limit, leaseMs, now);
  }
  completeErasures(ids: string[]) {
    return pgCompleteErasures(this.boundQuery, ids);
  }
  failErasures(ids: string[], error: string, retryAt: Date) {
    return pgFailErasures(this.boundQuery, ids, error, retryAt);
  }
  erasureOutboxDepth() {
    return pgErasureOutboxDepth(this.boundQuery);
  }
  pendingErasures(scopeId: string) {
    return pgPendingErasures(this.boundQuery, scopeId);
  }

  private closing: Promise<void> | null = null;

  /**
   * Idempotent: shutdown paths may call it more than once. pool.end() waits for every checked-out client, which
   * a hung database never returns: after `closeTimeoutMs` the remaining sockets are destroyed.
   */
  close(): Promise<void> {
    this.closing ??= withDeadline(
      this.pool.end(),
      this.deadlines.closeTimeoutMs,
      () => new StoreUnavailableError('postgres', 'timeout', 'close', this.deadlines.closeTimeoutMs, undefined),
    ).catch((error: unknown) => {
      for (const client of this.clients) {
        // A checked-out client between queries reports the cut as an 'error' event: it must not crash the process.
        client.on('error', () => undefined);
        socketOf(client)?.destroy();
      }
      this.clients.clear();
      throw error;
    });
    return this.closing;
  }
}

/** pg keeps the socket on the client's connection; destroying it is the only way to drop a stalled session. */
function socketOf(client: PoolClient): { destroy(): void } | undefined {
  return (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
}

export function createPostgresStore(options: PostgresStoreOptions): PostgresMemoryStore {
  return new PostgresMemoryStore(options);
}
