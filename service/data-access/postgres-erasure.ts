/**
 * Erasure on PostgreSQL (MemoryStore.erase and the erasure outbox), kept beside postgres-store.ts so the store's
 * own statements stay untouched. Same rules as SQLite: one transaction per erasure, a tombstone per pattern, the
 * history trigger (migration 3) lets an erased pattern's other events go, and the Context7 deletion is leased like
 * the pattern outbox (FOR UPDATE SKIP LOCKED plus a lease). Every statement goes through the store's own query path
 * or transaction (pg-query.ts), so a hung database ends in the store's deadlines and a classified StoreUnavailableError,
 * never a bare pg error (which the read path took for a bug: a 500).
 */
import type { ErasureEntry, ErasureReceipt, PendingErasures, SaveOptions, ScopeKey } from './memory-store';
import { newErasureId } from './erasure-id';
import type { PgQuery, PgTransaction } from './pg-query';

interface ErasureRow {
  id: string;
  scope_id: string;
  pattern_id: string | null;
  requested_by: string;
  requested_at: Date;
  attempts: number;
  last_error: string | null;
}

const ERASURE_COLUMNS = 'id, scope_id, pattern_id, requested_by, requested_at, attempts, last_error';

function toErasure(row: ErasureRow): ErasureEntry {
  return {
    id: row.id,
    scopeId: row.scope_id,
    patternId: row.pattern_id,
    requestedBy: row.requested_by,
    requestedAt: row.requested_at.toISOString(),
    attempts: row.attempts,
    lastError: row.last_error,
  };
}

export function pgErase(
  transaction: PgTransaction,
  scope: ScopeKey,
  patternId: string | null,
  requestedBy: string,
  now: Date,
  options: SaveOptions = {},
): Promise<ErasureReceipt> {
  return transaction(async (client) => {
    // Row locks: a concurrent outbox completion or failure of these patterns waits for the erasure, then finds nothing.
    const erasable = await client.query<{ id: string }>(
      `SELECT id FROM patterns WHERE scope_id = $1 AND ($2::text IS NULL OR id = $2::text) ORDER BY id FOR UPDATE`,
      [scope.scopeId, patternId],
    );
    const ids = erasable.rows.map((row) => row.id);
    let inFlightUntil: Date | null = null;
    if (ids.length > 0) {
      const inFlight = await client.query<{ until: Date | null }>(
        `SELECT max(lease_until) AS until FROM outbox WHERE pattern_id = ANY($1::text[]) AND lease_until > $2`,
        [ids, now],
      );
      inFlightUntil = inFlight.rows[0]?.until ?? null;
      // The tombstones first: the history trigger lets an erased pattern's other events go only once one exists.
      await client.query(
        `INSERT INTO pattern_history (pattern_id, scope_id, event, at, detail)
         SELECT id, $2, 'erased', $3, $4 FROM unnest($1::text[]) AS id ORDER BY id`,
        [ids, scope.scopeId, now, requestedBy],
      );
      await client.query(`DELETE FROM pattern_history WHERE pattern_id = ANY($1::text[]) AND event <> 'erased'`, [ids]);
      await client.query(`DELETE FROM outbox WHERE pattern_id = ANY($1::text[])`, [ids]);
      await client.query(`DELETE FROM patterns WHERE id = ANY($1::text[])`, [ids]);
    }
    const leaseTo = options.leaseTo;
    const leased = leaseTo !== undefined && inFlightUntil === null;
    const inserted = await client.query<ErasureRow>(
      `INSERT INTO erasure_outbox (id, scope_id, pattern_id, requested_by, requested_at, available_at, lease_owner, lease_until)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${ERASURE_COLUMNS}`,
      [
        newErasureId(),
        scope.scopeId,
        patternId,
        requestedBy,
        now,
        inFlightUntil ?? now,
        leased ? leaseTo.workerId : null,
        leased ? new Date(now.getTime() + leaseTo.leaseMs) : null,
      ],
    );
    return { erasure: toErasure(inserted.rows[0]!), erasedPatternIds: ids, leased };
  });
}

export async function pgClaimErasures(query: PgQuery, workerId: string, limit: number, leaseMs: number, now: Date): Promise<ErasureEntry[]> {
  const result = await query<ErasureRow>(
    `WITH due AS (
       SELECT id FROM erasure_outbox
       WHERE available_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
       ORDER BY available_at, requested_at
       LIMIT $2
       FOR UPDATE SKIP LOCKED
     )
     UPDATE erasure_outbox e SET lease_owner = $3, lease_until = $4
     FROM due WHERE e.id = due.id
     RETURNING e.${ERASURE_COLUMNS.split(', ').join(', e.')}`,
    [now, Math.max(0, Math.floor(limit)), workerId, new Date(now.getTime() + leaseMs)],
  );
  return result.rows.map(toErasure).sort((a, b) => a.requestedAt.localeCompare(b.requestedAt));
}

export async function pgCompleteErasures(query: PgQuery, ids: string[]): Promise<void> {
  if (ids.length > 0) await query(`DELETE FROM erasure_outbox WHERE id = ANY($1::text[])`, [ids]);
}

export async function pgFailErasures(query: PgQuery, ids: string[], error: string, retryAt: Date): Promise<void> {
  if (ids.length === 0) return;
  await query(
    `UPDATE erasure_outbox SET attempts = attempts + 1, last_error = $2, available_at = $3, lease_owner = NULL, lease_until = NULL
     WHERE id = ANY($1::text[])`,
    [ids, error.slice(0, 500), retryAt],
  );
}

export async function pgPendingErasures(query: PgQuery, scopeId: string): Promise<PendingErasures> {
  const result = await query<{ pattern_id: string | null }>('SELECT pattern_id FROM erasure_outbox WHERE scope_id = $1', [scopeId]);
  return {
    wholeScope: result.rows.some((row) => row.pattern_id === null),
    patternIds: result.rows.flatMap((row) => (row.pattern_id === null ? [] : [row.pattern_id])),
  };
}

export async function pgErasureOutboxDepth(query: PgQuery): Promise<number> {
  const result = await query<{ n: number }>('SELECT count(*)::int AS n FROM erasure_outbox', []);
  return result.rows[0]?.n ?? 0;
}
