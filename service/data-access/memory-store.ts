/**
 * The durable local store: the runbook's fallback and the source of truth for learned patterns.
 * SQLite (embedded default) and PostgreSQL (DATABASE_URL) both implement this interface, and one
 * contract suite runs against both so they cannot drift.
 */

/** A scope id's parts, kept beside it so the store can be queried by location or agent. */
export interface ScopeKey {
  scopeId: string;
  locationId: string;
  agentId: string;
  promptHash: string;
}

export interface NewPattern {
  /** Stable id derived from scope and content: every re-send of the same pattern is idempotent. */
  id: string;
  content: string;
  /** sha256 hex of content; (scopeId, contentHash) is unique. */
  contentHash: string;
  metadata: Record<string, unknown> | null;
  expiresAt: string | null;
}

export interface StoredPattern extends NewPattern {
  scopeId: string;
  createdAt: string;
  /** When Context7 acknowledged it; null while it waits in the outbox. */
  syncedAt: string | null;
}

export interface OutboxEntry {
  pattern: StoredPattern;
  attempts: number;
  lastError: string | null;
}

export type JobStatus = 'running' | 'completed' | 'failed' | 'interrupted';

/** Persisted state of a long job (the backfill), so any instance can report it and a restart resumes it. */
export interface JobState {
  name: string;
  status: JobStatus;
  startedAt: string;
  finishedAt: string | null;
  /** Keyset cursor: id of the last pattern handled; the job resumes after it. */
  cursor: string | null;
  total: number;
  synced: number;
  errors: number;
  /** Instance that owns the run; its heartbeat tells a live run from an abandoned one. */
  owner: string;
  heartbeatAt: string;
}

export interface PatternHistoryEvent {
  patternId: string;
  scopeId: string;
  event: 'created' | 'synced' | 'sync_failed';
  at: string;
  detail: string | null;
}

export interface ScopeExport {
  scopeId: string;
  patterns: StoredPattern[];
  history: PatternHistoryEvent[];
}

export interface SaveOptions {
  /**
   * The writer sends the new patterns to Context7 itself, right away: their outbox entries start leased to it,
   * so no drainer sends them at the same time. If the writer dies, the lease expires and a drainer sends them.
   */
  leaseTo?: { workerId: string; leaseMs: number };
}

export interface MemoryStore {
  readonly kind: 'sqlite' | 'postgres';

  /** Applies pending schema migrations; safe to call concurrently from several instances. */
  migrate(): Promise<void>;

  /**
   * Saves patterns and enqueues each newly inserted one in the outbox, in one transaction.
   * A pattern already present (same scope and content) is returned but neither duplicated nor re-enqueued.
   * `insertedIds` are the patterns this call inserted: with `leaseTo`, exactly the outbox entries leased to the caller.
   */
  savePatterns(
    scope: ScopeKey,
    patterns: NewPattern[],
    now: Date,
    options?: SaveOptions,
  ): Promise<{ saved: StoredPattern[]; insertedIds: string[] }>;

  /**
   * Live (unexpired) patterns of exactly this scope, at most `limit`; a search never reads another scope's rows.
   *
   * Without `query` (undefined or ''): newest first.
   * With `query`: ranked full-text search (search-text.ts holds the one tokenizer every backend uses):
   * - Tokens are runs of letters and digits, compared without case and without accents (NFKD, combining marks
   *   dropped, lowercased): `ecole` finds `École`, `σοφια` finds `ΣΟΦΙΑ`. Punctuation, symbols and emoji separate.
   * - Every query token must occur as a whole token, except the last, which matches as a prefix: `refu` finds
   *   `refund`; `fund` does not (it is not a substring search). A query with no letters or digits matches nothing.
   * - User text is never query syntax: quotes, `*`, `:`, `&`, `|`, `!`, parentheses, NEAR/AND/OR/NOT are literal
   *   (they separate tokens, or are words).
   * - Order: relevance first (SQLite: FTS5 BM25; PostgreSQL: ts_rank_cd, normalised by log length), newest first
   *   among equally relevant patterns, then id. The two rankers agree on term frequency and length; they can
   *   differ where BM25's inverse document frequency or ts_rank_cd's term proximity decides (README: Local search).
   */
  searchPatterns(scopeId: string, query: string | undefined, limit: number, now: Date): Promise<StoredPattern[]>;

  /** Leases up to `limit` due outbox entries to `workerId` for `leaseMs`; no two workers hold one entry at once. */
  claimOutbox(workerId: string, limit: number, leaseMs: number, now: Date): Promise<OutboxEntry[]>;
  /** Context7 acknowledged these: drop them from the outbox and mark the patterns synced. */
  completeOutbox(patternIds: string[], now: Date): Promise<void>;
  /** Sending failed: release the lease, count the attempt, retry no earlier than `retryAt`. */
  failOutbox(patternIds: string[], error: string, retryAt: Date): Promise<void>;
  outboxDepth(): Promise<number>;

  /** All live patterns in id order after `afterId` (keyset pagination for the backfill). */
  listPatternsPage(afterId: string | null, limit: number, now: Date): Promise<StoredPattern[]>;
  countPatterns(now: Date): Promise<number>;

  /**
   * Starts a job unless one with this name is running with a heartbeat newer than `staleAfterMs`.
   * Returns the new state, or the running job's state with `started: false`.
   */
  tryStartJob(initial: JobState, staleAfterMs: number, now: Date): Promise<{ started: boolean; state: JobState }>;
  saveJobState(state: JobState): Promise<void>;
  loadJobState(name: string): Promise<JobState | null>;

  exportScope(scopeId: string, now: Date): Promise<ScopeExport>;

  close(): Promise<void>;
}
