/**
 * The embedded default store: SQLite (better-sqlite3) in WAL mode at DATA_DIR/memory.db.
 * better-sqlite3 is synchronous; every write transaction is IMMEDIATE so two processes sharing the
 * file serialize on SQLite's write lock (outbox leases stay exclusive across processes too).
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { newErasureId } from './erasure-id';
import type {
  ErasureEntry,
  ErasureReceipt,
  JobState,
  MemoryStore,
  NewPattern,
  OutboxEntry,
  PatternHistoryEvent,
  ScopeExport,
  ScopeKey,
  StoredPattern,
} from './memory-store';
import { classifySqliteError } from './store-errors';
import { SQLITE_METRICS_CLUSTERS_MIGRATION, SQLITE_METRICS_HISTORY_MIGRATION, sqliteMetricsHistory } from './metrics-history-sql';
import { SQLITE_EXPOSURE_MIGRATION, sqliteExposure } from './exposure-sql';
import { fts5Document, fts5MatchExpression, parseSearchQuery, RANK_WINDOW } from './search-text';

interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Append-only: never edit a shipped migration, add a new one. */
const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'patterns, history, outbox, jobs',
    sql: `
      CREATE TABLE patterns (
        id           TEXT PRIMARY KEY,
        scope_id     TEXT NOT NULL,
        location_id  TEXT NOT NULL,
        agent_id     TEXT NOT NULL,
        prompt_hash  TEXT NOT NULL,
        content      TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        metadata     TEXT,
        expires_at   TEXT,
        created_at   TEXT NOT NULL,
        synced_at    TEXT,
        UNIQUE (scope_id, content_hash)
      );
      CREATE INDEX patterns_scope_created ON patterns (scope_id, created_at DESC, id);
      CREATE INDEX patterns_location_agent ON patterns (location_id, agent_id);

      CREATE TABLE pattern_history (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        pattern_id TEXT NOT NULL,
        scope_id   TEXT NOT NULL,
        event      TEXT NOT NULL CHECK (event IN ('created', 'synced', 'sync_failed')),
        at         TEXT NOT NULL,
        detail     TEXT
      );
      CREATE INDEX pattern_history_scope ON pattern_history (scope_id, seq);
      CREATE TRIGGER pattern_history_no_update BEFORE UPDATE ON pattern_history
        BEGIN SELECT RAISE(ABORT, 'pattern_history is append-only'); END;
      CREATE TRIGGER pattern_history_no_delete BEFORE DELETE ON pattern_history
        BEGIN SELECT RAISE(ABORT, 'pattern_history is append-only'); END;

      CREATE TABLE outbox (
        pattern_id      TEXT PRIMARY KEY REFERENCES patterns (id),
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        next_attempt_at TEXT NOT NULL,
        lease_owner     TEXT,
        lease_until     TEXT,
        enqueued_at     TEXT NOT NULL
      );
      CREATE INDEX outbox_due ON outbox (next_attempt_at, enqueued_at);

      CREATE TABLE jobs (
        name  TEXT PRIMARY KEY,
        state TEXT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'erasure: tombstones in the history, erasure outbox',
    // SQLite cannot alter a CHECK constraint: the history is copied into a table that also allows 'erased'.
    // It stays append-only, except that an erased pattern's events (never its tombstone) may be deleted.
    sql: `
      DROP TRIGGER pattern_history_no_update;
      DROP TRIGGER pattern_history_no_delete;
      CREATE TABLE pattern_history_v2 (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        pattern_id TEXT NOT NULL,
        scope_id   TEXT NOT NULL,
        event      TEXT NOT NULL CHECK (event IN ('created', 'synced', 'sync_failed', 'erased')),
        at         TEXT NOT NULL,
        detail     TEXT
      );
      INSERT INTO pattern_history_v2 (seq, pattern_id, scope_id, event, at, detail)
        SELECT seq, pattern_id, scope_id, event, at, detail FROM pattern_history ORDER BY seq;
      DROP TABLE pattern_history;
      ALTER TABLE pattern_history_v2 RENAME TO pattern_history;
      CREATE INDEX pattern_history_scope ON pattern_history (scope_id, seq);
      CREATE INDEX pattern_history_pattern ON pattern_history (pattern_id, event);
      CREATE TRIGGER pattern_history_no_update BEFORE UPDATE ON pattern_history
        BEGIN SELECT RAISE(ABORT, 'pattern_history is append-only'); END;
      CREATE TRIGGER pattern_history_no_delete BEFORE DELETE ON pattern_history
        WHEN OLD.event = 'erased'
          OR NOT EXISTS (SELECT 1 FROM pattern_history t WHERE t.pattern_id = OLD.pattern_id AND t.event = 'erased')
        BEGIN SELECT RAISE(ABORT, 'pattern_history is append-only (only an erased pattern''s events may be removed)'); END;

      CREATE TABLE erasure_outbox (
        id              TEXT PRIMARY KEY,
        scope_id        TEXT NOT NULL,
        pattern_id      TEXT,
        requested_by    TEXT NOT NULL,
        requested_at    TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        next_attempt_at TEXT NOT NULL,
        lease_owner     TEXT,
        lease_until     TEXT
      );
      CREATE INDEX erasure_outbox_due ON erasure_outbox (next_attempt_at, requested_at);
    `,
  },
  { version: 3, name: 'metrics history (time series)', sql: SQLITE_METRICS_HISTORY_MIGRATION },
  {
    version: 4,
    name: 'ranked full-text search (FTS5, BM25) over pattern content, built for existing patterns',
    // Contentless: the index keeps tokens, not a second copy of the text. The UNINDEXED columns are stored
    // (contentless_unindexed) so ranking, expiry and the tie-break never leave the index. The document is made
    // by memory_fts5_document(), the same TypeScript tokenizer the write path uses (see search-text.ts);
    // `ascii` then only splits it on spaces.
    sql: `
      CREATE VIRTUAL TABLE patterns_search USING fts5(
        document, pattern_id UNINDEXED, expires_at UNINDEXED, created_at UNINDEXED,
        content = '', contentless_unindexed = 1, contentless_delete = 1, tokenize = 'ascii'
      );
      INSERT INTO patterns_search (document, pattern_id, expires_at, created_at)
        SELECT memory_fts5_document(scope_id, content), id, expires_at, created_at FROM patterns ORDER BY created_at, id;
    `,
  },
  { version: 5, name: 'progressive exposure: runtime percentage and its audit', sql: SQLITE_EXPOSURE_MIGRATION },
  {
    version: 6,
    name: 'search index: merge segments 16 at a time (FTS5 automerge), not 4',
    // Each write transaction adds a segment to the index, and FTS5 merges them as it goes. At 4 a level (the
    // default) the merges made a learning write 2x slower than before the index existed, over a million patterns;
    // at 16 (FTS5's maximum) writes got 3-4x faster and searches stayed the same (bench:store). Persistent setting.
    sql: `INSERT INTO patterns_search (patterns_search, rank) VALUES ('automerge', 16);`,
  },
  { version: 7, name: 'metrics history: per-cluster tables per day', sql: SQLITE_METRICS_CLUSTERS_MIGRATION },
];

interface PatternRow {
  id: string;
  scope_id: string;
  content: string;
  content_hash: string;
  metadata: string | null;
  expires_at: string | null;
  created_at: string;
  synced_at: string | null;
}

interface ErasureRow {
  id: string;
  scope_id: string;
  pattern_id: string | null;
  requested_by: string;
  requested_at: string;
  attempts: number;
  last_error: string | null;
}

function toErasure(row: ErasureRow): ErasureEntry {
  return {
    id: row.id,
    scopeId: row.scope_id,
    patternId: row.pattern_id,
    requestedBy: row.requested_by,
    requestedAt: row.requested_at,
    attempts: row.attempts,
    lastError: row.last_error,
  };
}

function toPattern(row: PatternRow): StoredPattern {
  return {
    id: row.id,
    scopeId: row.scope_id,
    content: row.content,
    contentHash: row.content_hash,
    metadata: row.metadata === null ? null : (JSON.parse(row.metadata) as Record<string, unknown>),
    expiresAt: row.expires_at,
    createdAt: row.created_at,
    syncedAt: row.synced_at,
  };
}

/** ISO strings compare correctly as text only in one canonical form. */
function canonicalTime(value: string | null): string | null {
  if (value === null) return null;
  const parsed = new Date(value);
  if (Number.isNaN(parsed.getTime())) throw new Error(`invalid timestamp ${JSON.stringify(value)}`);
  return parsed.toISOString();
}

const PATTERN_COLUMNS = 'id, scope_id, content, content_hash, metadata, expires_at, created_at, synced_at';
const LIVE = '(expires_at IS NULL OR expires_at > @now)';

/** How long a write waits for another process's write lock before SQLITE_BUSY (a store timeout, answered 503). */
export const SQLITE_BUSY_TIMEOUT_MS = 5_000;

/**
 * Every method, with SQLite's "cannot serve now" errors (busy, full, disk, unreadable file) mapped to
 * StoreUnavailableError, like PostgreSQL's: callers see one kind of store outage whatever the store.
 */
function withStoreErrors(store: MemoryStore, busyTimeoutMs: number): MemoryStore {
  const wrapped: Record<string, unknown> = { kind: store.kind };
  for (const [key, value] of Object.entries(store)) {
    if (typeof value !== 'function') continue;
    wrapped[key] = async (...args: unknown[]) => {
      try {
        return await (value as (...a: unknown[]) => Promise<unknown>).apply(store, args);
      } catch (error) {
        throw classifySqliteError(error, key, busyTimeoutMs);
      }
    };
  }
  return wrapped as unknown as MemoryStore;
}

export interface SqliteStoreOptions {
  /** Directory of memory.db; created if missing. Use ':memory:' for a private in-memory database. */
  dataDir: string;
  /** Default SQLITE_BUSY_TIMEOUT_MS; tests shorten it. */
  busyTimeoutMs?: number;
  /** Tests and the bench only: apply migrations up to this version, to hold data the way an older release wrote it. */
  migrateUpTo?: number;
}

export function sqliteDatabasePath(dataDir: string): string {
  return dataDir === ':memory:' ? ':memory:' : path.join(dataDir, 'memory.db');
}

export function createSqliteStore(options: SqliteStoreOptions): MemoryStore {
  if (options.dataDir !== ':memory:') fs.mkdirSync(options.dataDir, { recursive: true });
  const db = new Database(sqliteDatabasePath(options.dataDir));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  const busyTimeoutMs = options.busyTimeoutMs ?? SQLITE_BUSY_TIMEOUT_MS;
  db.pragma(`busy_timeout = ${Math.floor(busyTimeoutMs)}`);
  db.pragma('foreign_keys = ON');
  // Erasure: deleted content is overwritten with zeros in the file, not left in free pages.
  db.pragma('secure_delete = ON');
  // Builds FTS5 documents for existing rows in migration 4; the write path calls fts5Document() directly.
  db.function('memory_fts5_document', { deterministic: true }, (scopeId: unknown, content: unknown) =>
    fts5Document(String(scopeId), String(content)),
  );

  let closed = false;
  let statements: ReturnType<typeof prepare> | undefined;

  function prepare() {
    return {
      insertPattern: db.prepare(
        `INSERT INTO patterns (id, scope_id, location_id, agent_id, prompt_hash, content, content_hash, metadata, expires_at, created_at)
         VALUES (@id, @scopeId, @locationId, @agentId, @promptHash, @content, @contentHash, @metadata, @expiresAt, @now)
         ON CONFLICT DO NOTHING`,
      ),
      selectByScopeHash: db.prepare(`SELECT ${PATTERN_COLUMNS} FROM patterns WHERE scope_id = ? AND content_hash = ?`),
      insertOutbox: db.prepare(
        `INSERT INTO outbox (pattern_id, next_attempt_at, enqueued_at, lease_owner, lease_until)
         VALUES (@id, @now, @now, @leaseOwner, @leaseUntil)`,
      ),
      insertHistory: db.prepare(
        `INSERT INTO pattern_history (pattern_id, scope_id, event, at, detail) VALUES (@patternId, @scopeId, @event, @at, @detail)`,
      ),
      insertSearchDocument: db.prepare(
        `INSERT INTO patterns_search (document, pattern_id, expires_at, created_at) VALUES (@document, @id, @expiresAt, @now)`,
      ),
      newest: db.prepare(
        `SELECT ${PATTERN_COLUMNS} FROM patterns WHERE scope_id = @scopeId AND ${LIVE} ORDER BY created_at DESC, id LIMIT @limit`,
      ),
      // BM25 (lower is better) over the scope's newest RANK_WINDOW live matches, recency breaking ties. FTS5 walks
      // a doclist newest rowid first for free and computes bm25() only for the rows the window yields, so a term in
      // half the scope costs a window, not the scope. The match only reaches this scope's tagged tokens; the join
      // re-checks scope_id, so even a tag collision could never return another scope's row. CROSS JOIN fixes the
      // loop order (SQLite never reorders it): the top matches first, then their rows.
      ranked: db.prepare(
        `SELECT ${PATTERN_COLUMNS.split(', ').map((column) => `p.${column}`).join(', ')}
         FROM (SELECT pattern_id, score, created_at
               FROM (SELECT pattern_id, bm25(patterns_search) AS score, created_at FROM patterns_search
                     WHERE patterns_search MATCH @match AND (expires_at IS NULL OR expires_at > @now)
                     ORDER BY rowid DESC LIMIT ${RANK_WINDOW})
               ORDER BY score, created_at DESC, pattern_id LIMIT @limit) f
         CROSS JOIN patterns p ON p.id = f.pattern_id
         WHERE p.scope_id = @scopeId
         ORDER BY f.score, f.created_at DESC, f.pattern_id`,
      ),
      dueOutbox: db.prepare(
        `SELECT o.pattern_id, o.attempts, o.last_error FROM outbox o
         WHERE o.next_attempt_at <= @now AND (o.lease_until IS NULL OR o.lease_until <= @now)
         ORDER BY o.next_attempt_at, o.enqueued_at LIMIT @limit`,
      ),
      leaseOutbox: db.prepare(`UPDATE outbox SET lease_owner = @owner, lease_until = @until WHERE pattern_id = @id`),
      selectPattern: db.prepare(`SELECT ${PATTERN_COLUMNS} FROM patterns WHERE id = ?`),
      deleteOutbox: db.prepare(`DELETE FROM outbox WHERE pattern_id = ?`),
      markSynced: db.prepare(`UPDATE patterns SET synced_at = @now WHERE id = @id AND synced_at IS NULL`),
      failOutbox: db.prepare(
        `UPDATE outbox SET attempts = attempts + 1, last_error = @error, next_attempt_at = @retryAt,
           lease_owner = NULL, lease_until = NULL WHERE pattern_id = @id`,
      ),
      outboxDepth: db.prepare(`SELECT count(*) AS n FROM outbox`),
      page: db.prepare(
        `SELECT ${PATTERN_COLUMNS} FROM patterns WHERE (@after IS NULL OR id > @after) AND ${LIVE} ORDER BY id LIMIT @limit`,
      ),
      count: db.prepare(`SELECT count(*) AS n FROM patterns WHERE ${LIVE}`),
      loadJob: db.prepare(`SELECT state FROM jobs WHERE name = ?`),
      saveJob: db.prepare(
        `INSERT INTO jobs (name, state) VALUES (@name, @state) ON CONFLICT (name) DO UPDATE SET state = excluded.state`,
      ),
      exportPatterns: db.prepare(`SELECT ${PATTERN_COLUMNS} FROM patterns WHERE scope_id = @scopeId AND ${LIVE} ORDER BY created_at, id`),
      exportHistory: db.prepare(
        `SELECT pattern_id, scope_id, event, at, detail FROM pattern_history WHERE scope_id = ? ORDER BY seq`,
      ),
      erasableIds: db.prepare(`SELECT id FROM patterns WHERE scope_id = @scopeId AND (@patternId IS NULL OR id = @patternId) ORDER BY id`),
      inFlightLease: db.prepare(`SELECT max(lease_until) AS until FROM outbox WHERE pattern_id = ? AND lease_until > ?`),
      deletePattern: db.prepare(`DELETE FROM patterns WHERE id = ?`),
      // Erasure reaches the search index too: its tokens are the content's words. A scan of the index by pattern
      // id: erasure is rare, and correctness beats speed here.
      deleteSearchEntry: db.prepare(`DELETE FROM patterns_search WHERE pattern_id = ?`),
      deleteEventsOf: db.prepare(`DELETE FROM pattern_history WHERE pattern_id = ? AND event <> 'erased'`),
      insertErasure: db.prepare(
        `INSERT INTO erasure_outbox (id, scope_id, pattern_id, requested_by, requested_at, next_attempt_at, lease_owner, lease_until)
         VALUES (@id, @scopeId, @patternId, @requestedBy, @now, @nextAttemptAt, @leaseOwner, @leaseUntil)`,
      ),
      dueErasures: db.prepare(
        `SELECT id FROM erasure_outbox WHERE next_attempt_at <= @now AND (lease_until IS NULL OR lease_until <= @now)
         ORDER BY next_attempt_at, requested_at LIMIT @limit`,
      ),
      leaseErasure: db.prepare(`UPDATE erasure_outbox SET lease_owner = @owner, lease_until = @until WHERE id = @id`),
      selectErasure: db.prepare(
        `SELECT id, scope_id, pattern_id, requested_by, requested_at, attempts, last_error FROM erasure_outbox WHERE id = ?`,
      ),
      deleteErasure: db.prepare(`DELETE FROM erasure_outbox WHERE id = ?`),
      failErasure: db.prepare(
        `UPDATE erasure_outbox SET attempts = attempts + 1, last_error = @error, next_attempt_at = @retryAt,
           lease_owner = NULL, lease_until = NULL WHERE id = @id`,
      ),
      erasureDepth: db.prepare(`SELECT count(*) AS n FROM erasure_outbox`),
      pendingErasures: db.prepare(`SELECT pattern_id FROM erasure_outbox WHERE scope_id = ?`),
    };
  }

  function s() {
    if (closed) throw new Error('SQLite store is closed');
    if (!statements) throw new Error('SQLite store used before migrate()');
    return statements;
  }

  function loadJob(name: string): JobState | null {
    const row = s().loadJob.get(name) as { state: string } | undefined;
    return row ? (JSON.parse(row.state) as JobState) : null;
  }

  const saveTx = db.transaction((scope: ScopeKey, patterns: NewPattern[], now: string, lease: { leaseOwner: string | null; leaseUntil: string | null }) => {
    const st = s();
    const saved: StoredPattern[] = [];
    const insertedIds: string[] = [];
    for (const pattern of patterns) {
      const result = st.insertPattern.run({
        id: pattern.id,
        scopeId: scope.scopeId,
        locationId: scope.locationId,
        agentId: scope.agentId,
        promptHash: scope.promptHash,
        content: pattern.content,
        contentHash: pattern.contentHash,
        metadata: pattern.metadata === null ? null : JSON.stringify(pattern.metadata),
        expiresAt: canonicalTime(pattern.expiresAt),
        now,
      });
      if (result.changes === 1) {
        insertedIds.push(pattern.id);
        st.insertSearchDocument.run({
          document: fts5Document(scope.scopeId, pattern.content),
          id: pattern.id,
          expiresAt: canonicalTime(pattern.expiresAt),
          now,
        });
        st.insertOutbox.run({ id: pattern.id, now, ...lease });
        st.insertHistory.run({ patternId: pattern.id, scopeId: scope.scopeId, event: 'created', at: now, detail: null });
      }
      const row = st.selectByScopeHash.get(scope.scopeId, pattern.contentHash) as PatternRow | undefined;
      if (!row) throw new Error(`pattern ${pattern.id} conflicts with a different pattern id`);
      saved.push(toPattern(row));
    }
    return { saved, insertedIds };
  });

  const claimTx = db.transaction((workerId: string, limit: number, leaseMs: number, now: Date) => {
    const st = s();
    const nowIso = now.toISOString();
    const until = new Date(now.getTime() + leaseMs).toISOString();
    const due = st.dueOutbox.all({ now: nowIso, limit }) as { pattern_id: string; attempts: number; last_error: string | null }[];
    const entries: OutboxEntry[] = [];
    for (const row of due) {
      st.leaseOutbox.run({ owner: workerId, until, id: row.pattern_id });
      const pattern = st.selectPattern.get(row.pattern_id) as PatternRow;
      entries.push({ pattern: toPattern(pattern), attempts: row.attempts, lastError: row.last_error });
    }
    return entries;
  });

  const completeTx = db.transaction((ids: string[], now: string) => {
    const st = s();
    for (const id of ids) {
      st.deleteOutbox.run(id);
      if (st.markSynced.run({ id, now }).changes === 1) {
        const row = st.selectPattern.get(id) as PatternRow;
        st.insertHistory.run({ patternId: id, scopeId: row.scope_id, event: 'synced', at: now, detail: null });
      }
    }
  });

  const failTx = db.transaction((ids: string[], error: string, retryAt: string, now: string) => {
    const st = s();
    for (const id of ids) {
      if (st.failOutbox.run({ id, error, retryAt }).changes === 1) {
        const row = st.selectPattern.get(id) as PatternRow;
        st.insertHistory.run({ patternId: id, scopeId: row.scope_id, event: 'sync_failed', at: now, detail: error });
      }
    }
  });

  const eraseTx = db.transaction(
    (scope: ScopeKey, patternId: string | null, requestedBy: string, now: string, leaseTo: { workerId: string; leaseMs: number } | undefined): ErasureReceipt => {
      const st = s();
      const ids = (st.erasableIds.all({ scopeId: scope.scopeId, patternId }) as { id: string }[]).map((row) => row.id);
      let inFlightUntil: string | null = null;
      for (const id of ids) {
        const lease = (st.inFlightLease.get(id, now) as { until: string | null }).until;
        if (lease !== null && (inFlightUntil === null || lease > inFlightUntil)) inFlightUntil = lease;
        // The tombstone first: the history trigger lets an erased pattern's other events go only once it exists.
        st.insertHistory.run({ patternId: id, scopeId: scope.scopeId, event: 'erased', at: now, detail: requestedBy });
        st.deleteEventsOf.run(id);
        st.deleteOutbox.run(id);
        st.deletePattern.run(id);
        st.deleteSearchEntry.run(id);
      }
      const leased = leaseTo !== undefined && inFlightUntil === null;
      const erasure = { id: newErasureId(), scopeId: scope.scopeId, patternId, requestedBy };
      st.insertErasure.run({
        ...erasure,
        now,
        nextAttemptAt: inFlightUntil ?? now,
        leaseOwner: leased ? leaseTo.workerId : null,
        leaseUntil: leased ? new Date(Date.parse(now) + leaseTo.leaseMs).toISOString() : null,
      });
      return { erasure: { ...erasure, requestedAt: now, attempts: 0, lastError: null }, erasedPatternIds: ids, leased };
    },
  );

  const claimErasuresTx = db.transaction((workerId: string, limit: number, leaseMs: number, now: Date) => {
    const st = s();
    const nowIso = now.toISOString();
    const until = new Date(now.getTime() + leaseMs).toISOString();
    const due = st.dueErasures.all({ now: nowIso, limit }) as { id: string }[];
    return due.map(({ id }) => {
      st.leaseErasure.run({ owner: workerId, until, id });
      return toErasure(st.selectErasure.get(id) as ErasureRow);
    });
  });

  const startJobTx = db.transaction((initial: JobState, staleAfterMs: number, now: Date) => {
    const current = loadJob(initial.name);
    if (current && current.status === 'running') {
      const heartbeatAge = now.getTime() - new Date(current.heartbeatAt).getTime();
      if (heartbeatAge < staleAfterMs) return { started: false, state: current };
    }
    s().saveJob.run({ name: initial.name, state: JSON.stringify(initial) });
    return { started: true, state: initial };
  });

  const metricsHistory = sqliteMetricsHistory(() => {
    s(); // refuses use before migrate() and after close()
    return db;
  });

  const exposure = sqliteExposure(() => {
    s(); // refuses use before migrate() and after close()
    return db;
  });

  return withStoreErrors({
    kind: 'sqlite',
    ...metricsHistory,
    ...exposure,

    async migrate() {
      db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
      const apply = db.transaction(() => {
        const applied = new Set(
          (db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((row) => row.version),
        );
        for (const migration of MIGRATIONS) {
          if (applied.has(migration.version) || migration.version > (options.migrateUpTo ?? Infinity)) continue;
          db.exec(migration.sql);
          db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
            migration.version,
            migration.name,
            new Date().toISOString(),
          );
        }
      });
      apply.immediate();
      // A store held at an older schema only migrates: today's statements need today's schema.
      if (options.migrateUpTo === undefined) statements = prepare();
    },

    async savePatterns(scope, patterns, now, options) {
      const lease = options?.leaseTo
        ? { leaseOwner: options.leaseTo.workerId, leaseUntil: new Date(now.getTime() + options.leaseTo.leaseMs).toISOString() }
        : { leaseOwner: null, leaseUntil: null };
      return saveTx.immediate(scope, patterns, now.toISOString(), lease);
    },

    async searchPatterns(scopeId, query, limit, now) {
      const bounded = Math.max(0, Math.floor(limit));
      if (query === undefined || query === '') {
        return (s().newest.all({ scopeId, limit: bounded, now: now.toISOString() }) as PatternRow[]).map(toPattern);
      }
      const parsed = parseSearchQuery(query);
      if (parsed === null || bounded === 0) return [];
      const match = fts5MatchExpression(scopeId, parsed);
      return (s().ranked.all({ scopeId, match, limit: bounded, now: now.toISOString() }) as PatternRow[]).map(toPattern);
    },

    async claimOutbox(workerId, limit, leaseMs, now) {
      return claimTx.immediate(workerId, limit, leaseMs, now);
    },

    async completeOutbox(patternIds, now) {
      if (patternIds.length > 0) completeTx.immediate(patternIds, now.toISOString());
    },

    async failOutbox(patternIds, error, retryAt) {
      if (patternIds.length > 0) failTx.immediate(patternIds, error.slice(0, 500), retryAt.toISOString(), new Date().toISOString());
    },

    async outboxDepth() {
      return (s().outboxDepth.get() as { n: number }).n;
    },

    async listPatternsPage(afterId, limit, now) {
      return (s().page.all({ after: afterId, limit, now: now.toISOString() }) as PatternRow[]).map(toPattern);
    },

    async countPatterns(now) {
      return (s().count.get({ now: now.toISOString() }) as { n: number }).n;
    },

    async tryStartJob(initial, staleAfterMs, now) {
      return startJobTx.immediate(initial, staleAfterMs, now);
    },

    async saveJobState(state) {
      s().saveJob.run({ name: state.name, state: JSON.stringify(state) });
    },

    async loadJobState(name) {
      return loadJob(name);
    },

    async exportScope(scopeId, now): Promise<ScopeExport> {
      const st = s();
      const patterns = (st.exportPatterns.all({ scopeId, now: now.toISOString() }) as PatternRow[]).map(toPattern);
      const history = (
        st.exportHistory.all(scopeId) as { pattern_id: string; scope_id: string; event: PatternHistoryEvent['event']; at: string; detail: string | null }[]
      ).map((row) => ({ patternId: row.pattern_id, scopeId: row.scope_id, event: row.event, at: row.at, detail: row.detail }));
      return { scopeId, patterns, history };
    },

    async erase(scope, patternId, requestedBy, now, options) {
      const receipt = eraseTx.immediate(scope, patternId, requestedBy, now.toISOString(), options?.leaseTo);
      // The WAL still holds the old pages: copy them back (secure_delete zeroes the freed ones) and truncate it.
      db.pragma('wal_checkpoint(TRUNCATE)');
      return receipt;
    },

    async claimErasures(workerId, limit, leaseMs, now) {
      return claimErasuresTx.immediate(workerId, limit, leaseMs, now);
    },

    async completeErasures(ids) {
      if (ids.length === 0) return;
      db.transaction(() => {
        for (const id of ids) s().deleteErasure.run(id);
      }).immediate();
    },

    async failErasures(ids, error, retryAt) {
      if (ids.length === 0) return;
      db.transaction(() => {
        for (const id of ids) s().failErasure.run({ id, error: error.slice(0, 500), retryAt: retryAt.toISOString() });
      }).immediate();
    },

    async erasureOutboxDepth() {
      return (s().erasureDepth.get() as { n: number }).n;
    },

    async pendingErasures(scopeId) {
      const rows = s().pendingErasures.all(scopeId) as { pattern_id: string | null }[];
      return {
        wholeScope: rows.some((row) => row.pattern_id === null),
        patternIds: rows.flatMap((row) => (row.pattern_id === null ? [] : [row.pattern_id])),
      };
    },

    async close() {
      if (closed) return;
      closed = true;
      db.close();
    },
  }, busyTimeoutMs);
}
