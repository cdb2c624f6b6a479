/**
 * Erasure on PostgreSQL (MemoryStore.erase and the erasure outbox), kept beside postgres-store.ts so the store's
 * own statements stay untouched. Same rules as SQLite: one transaction per erasure, a tombstone per pattern, the
 * history trigger (migration 3) lets an erased pattern's other events go, and the Context7 deletion is leased like
 * the pattern outbox (FOR UPDATE SKIP LOCKED plus a lease).
 */
import type { Pool, PoolClient } from 'pg';
import type { ErasureEntry, ErasureReceipt, PendingErasures, SaveOptions, ScopeKey } from './memory-store';
import { newErasureId } from './erasure-id';

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

async function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
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

export function pgErase(
  pool: Pool,
  scope: ScopeKey,
  patternId: string | null,
  requestedBy: string,
  now: Date,
  options: SaveOptions = {},
): Promise<ErasureReceipt> {
  return inTransaction(pool, async (client) => {
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

export async function pgClaimErasures(pool: Pool, workerId: string, limit: number, leaseMs: number, now: Date): Promise<ErasureEntry[]> {
  const result = await pool.query<ErasureRow>(
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

export async function pgCompleteErasures(pool: Pool, ids: string[]): Promise<void> {
  if (ids.length > 0) await pool.query(`DELETE FROM erasure_outbox WHERE id = ANY($1::text[])`, [ids]);
}

export async function pgFailErasures(pool: Pool, ids: string[], error: string, retryAt: Date): Promise<void> {
  if (ids.length === 0) return;
  await pool.query(
    `UPDATE erasure_outbox SET attempts = attempts + 1, last_error = $2, available_at = $3, lease_owner = NULL, lease_until = NULL
     WHERE id = ANY($1::text[])`,
    [ids, error.slice(0, 500), retryAt],
  );
}

export async function pgPendingErasures(pool: Pool, scopeId: string): Promise<PendingErasures> {
  const result = await pool.query<{ pattern_id: string | null }>('SELECT pattern_id FROM erasure_outbox WHERE scope_id = $1', [scopeId]);
  return {
    wholeScope: result.rows.some((row) => row.pattern_id === null),
    patternIds: result.rows.flatMap((row) => (row.pattern_id === null ? [] : [row.pattern_id])),
  };
}

export async function pgErasureOutboxDepth(pool: Pool): Promise<number> {
  const result = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM erasure_outbox');
  return result.rows[0]?.n ?? 0;
}
