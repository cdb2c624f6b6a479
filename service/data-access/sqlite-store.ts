/**
 * The embedded default store: SQLite (better-sqlite3) in WAL mode at DATA_DIR/memory.db.
 * better-sqlite3 is synchronous; every write transaction is IMMEDIATE so two processes sharing the
 * file serialize on SQLite's write lock (outbox leases stay exclusive across processes too).
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type {
  JobState,
  MemoryStore,
  NewPattern,
  OutboxEntry,
  PatternHistoryEvent,
  ScopeExport,
  ScopeKey,
  StoredPattern,
} from './memory-store';
import { fts5Document, fts5MatchExpression, parseSearchQuery } from './search-text';

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

export interface SqliteStoreOptions {
  /** Directory of memory.db; created if missing. Use ':memory:' for a private in-memory database. */
  dataDir: string;
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
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  // Builds FTS5 documents for existing rows in migration 2; the write path calls fts5Document() directly.
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
      // BM25 (FTS5's rank, lower is better), recency breaking ties. The match only reaches this scope's tagged
      // tokens; the join re-checks scope_id, so even a tag collision could never return another scope's row.
      // CROSS JOIN fixes the loop order (SQLite never reorders it): the top matches first, then their rows.
      // Otherwise the planner may walk the whole scope through patterns_scope_created and probe the matches.
      ranked: db.prepare(
        `SELECT ${PATTERN_COLUMNS.split(', ').map((column) => `p.${column}`).join(', ')}
         FROM (SELECT pattern_id, rank, created_at FROM patterns_search
               WHERE patterns_search MATCH @match AND (expires_at IS NULL OR expires_at > @now)
               ORDER BY rank, created_at DESC, pattern_id LIMIT @limit) f
         CROSS JOIN patterns p ON p.id = f.pattern_id
         WHERE p.scope_id = @scopeId
         ORDER BY f.rank, f.created_at DESC, f.pattern_id`,
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

  const startJobTx = db.transaction((initial: JobState, staleAfterMs: number, now: Date) => {
    const current = loadJob(initial.name);
    if (current && current.status === 'running') {
      const heartbeatAge = now.getTime() - new Date(current.heartbeatAt).getTime();
      if (heartbeatAge < staleAfterMs) return { started: false, state: current };
    }
    s().saveJob.run({ name: initial.name, state: JSON.stringify(initial) });
    return { started: true, state: initial };
  });

  return {
    kind: 'sqlite',

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

    async close() {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
}
