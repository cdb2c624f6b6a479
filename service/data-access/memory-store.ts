/**
 * The durable local store: the runbook's fallback and the source of truth for learned patterns.
 * SQLite (embedded default) and PostgreSQL (DATABASE_URL) both implement this interface, and one
 * contract suite runs against both so they cannot drift.
 */
import type { CohortTotalsPair, MetricTotals } from '../contracts/http';
import type { ClusterTables } from '../domain/exposure-clusters';

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
  /** 'erased' is a tombstone: the pattern's other events and its content are gone; detail says who erased it. */
  event: 'created' | 'synced' | 'sync_failed' | 'erased';
  at: string;
  detail: string | null;
}

export interface ScopeExport {
  scopeId: string;
  patterns: StoredPattern[];
  history: PatternHistoryEvent[];
}

/**
 * One point of the metrics time series: an instance incarnation's absolute counters, taken during one interval.
 * An incarnation is (instanceId, startedAt): counters start from zero with each process, so absolute values per
 * incarnation make a write idempotent (an upsert) and a lost write cost nothing (the next one carries the total).
 */
export interface MetricsSample {
  instanceId: string;
  deployId: string;
  /** when the process started (ISO): with instanceId, one incarnation */
  startedAt: string;
  /** start of the interval the sample belongs to, aligned to the interval length (ISO) */
  intervalStart: string;
  recordedAt: string;
  totals: MetricTotals;
  /** the same counters per cohort (progressive exposure), when the instance measured them */
  cohorts?: CohortTotalsPair;
}

/**
 * One day of an instance incarnation's per-cluster tables (absolute counts since the process started, as of the
 * day's last flush; without latency sketches). The history reader diffs consecutive days of one incarnation.
 */
export interface MetricsClusterDay {
  instanceId: string;
  startedAt: string;
  /** UTC day, YYYY-MM-DD */
  day: string;
  recordedAt: string;
  clusters: ClusterTables;
}

/**
 * A pending deletion in Context7 (the erasure outbox): the store has already erased the content; Context7 must
 * delete its copy too, and keeps being asked until it acknowledges, across outages and restarts.
 */
export interface ErasureEntry {
  id: string;
  scopeId: string;
  /** null: the whole scope */
  patternId: string | null;
  requestedBy: string;
  requestedAt: string;
  attempts: number;
  lastError: string | null;
}

export interface PendingErasures {
  wholeScope: boolean;
  patternIds: string[];
}

export interface ErasureReceipt {
  erasure: ErasureEntry;
  /** Patterns removed from the store (each left a tombstone in the history). */
  erasedPatternIds: string[];
  /** True when the Context7 deletion is leased to the caller, to send right away (see `erase`). */
  leased: boolean;
}

/** The runtime exposure percentage as stored (progressive exposure; see exposure-sql.ts). */
export interface ExposureRecord {
  percent: number;
  /** 1 for the first change, +1 for each one after: an instance applies a value only if its version is newer. */
  version: number;
  updatedAt: string;
  updatedBy: string;
}

export interface ExposureChange {
  percent: number;
  /** who asked (a person, `canary`, or `deploy` for a clamp at start): never a credential */
  actor: string;
  reason: string | null;
  /** the ceiling of the instance that took the change, recorded in the audit */
  ceiling: number;
  instanceId: string;
  /** Compare-and-set: applied only if the stored version is still this one. Unset: always applied. */
  ifVersion?: number;
}

/** One audited change (the contract's exposureAuditEntrySchema). */
export interface ExposureAuditRecord {
  version: number;
  at: string;
  actor: string;
  reason: string | null;
  /** null: nothing was stored before (the deploy ran at its ceiling) */
  fromPercent: number | null;
  toPercent: number;
  ceiling: number;
  instanceId: string;
}

export type ExposureSetResult =
  | { applied: true; record: ExposureRecord; audit: ExposureAuditRecord }
  /** `ifVersion` no longer matched: nothing changed; what is stored now. */
  | { applied: false; current: ExposureRecord | null; currentVersion: number };

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
   * - Ranking considers the scope's newest RANK_WINDOW (500) live matches: all of them when fewer match. A word
   *   in more of a scope's patterns than that is ranked among its newest matches, so its cost is bounded.
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

  /**
   * A fault of this instance's own store connection that readiness must reflect, or null. Never a shared
   * database's outage (see PostgresMemoryStore.readinessFault). Stores without such a fault omit it.
   */
  readinessFault?(): Promise<string | null>;
  /** Upserts one time-series point; (instanceId, startedAt, intervalStart) is unique, the later write wins. */
  recordMetricsSample(sample: MetricsSample): Promise<void>;
  /**
   * For each incarnation with samples in [from, to): its last sample of each UTC day in the range, plus its last
   * sample before `from` (the baseline its first day's delta is measured from), ordered by incarnation and time.
   */
  lastMetricsSamplesPerDay(from: Date, to: Date): Promise<MetricsSample[]>;
  /** Retention: deletes samples whose interval started before `before`; returns how many. */
  pruneMetricsSamples(before: Date): Promise<number>;
  /** Upserts an incarnation's per-cluster tables for a UTC day (kept only if at least as recent as the stored row). */
  recordMetricsClusters(day: MetricsClusterDay): Promise<void>;
  /** Cluster rows of the days in [from, to), plus each of those incarnations' last row before `from`. */
  metricsClustersPerDay(from: Date, to: Date): Promise<MetricsClusterDay[]>;
  /**
   * Erasure, in one transaction: removes the pattern (or every pattern of the scope, expired ones included), its
   * pending outbox entries and its history events, leaving one 'erased' tombstone per pattern (id, time, who; no
   * content), and enqueues the Context7 deletion in the erasure outbox. With `leaseTo` that entry starts leased to
   * the caller, unless an upsert of an erased pattern was in flight (leased): then the deletion waits until that
   * lease ends, so it cannot overtake the upsert and leave the content in Context7.
   */
  erase(
    scope: ScopeKey,
    patternId: string | null,
    requestedBy: string,
    now: Date,
    options?: SaveOptions,
  ): Promise<ErasureReceipt>;
  /** Leases up to `limit` due erasure outbox entries, like claimOutbox. */
  claimErasures(workerId: string, limit: number, leaseMs: number, now: Date): Promise<ErasureEntry[]>;
  /** Context7 acknowledged these deletions. */
  completeErasures(ids: string[], now: Date): Promise<void>;
  failErasures(ids: string[], error: string, retryAt: Date): Promise<void>;
  erasureOutboxDepth(): Promise<number>;
  /**
   * Erasures of this scope Context7 has not acknowledged yet: reads filter Context7's answers with it, so erased
   * content is never served (nor cached) while its deletion waits.
   */
  pendingErasures(scopeId: string): Promise<PendingErasures>;

  /** The runtime exposure percentage, or null while none was ever set (the stack's ceiling applies). */
  readExposure(): Promise<ExposureRecord | null>;
  /**
   * Sets the runtime percentage and appends its audit entry, in one transaction: the new version is the stored one
   * plus one, so concurrent sets from several instances each get their own version and none is lost.
   */
  setExposure(change: ExposureChange, now: Date): Promise<ExposureSetResult>;
  /** The newest `limit` audit entries (at most EXPOSURE_AUDIT_MAX_LIMIT), newest first. */
  listExposureAudit(limit: number): Promise<ExposureAuditRecord[]>;

  close(): Promise<void>;
}
