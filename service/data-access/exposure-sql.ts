/**
 * The runtime exposure percentage (progressive exposure, domain/exposure.ts) and its audit, for both stores:
 * - exposure_runtime: one row (id 1), created by the migration with no percentage (null: the stack's ceiling
 *   applies) and version 0. Every change bumps the version by one under the row's lock, so two instances setting
 *   at once get two versions, never one lost update.
 * - exposure_audit: append-only (a trigger refuses UPDATE and DELETE), one row per change, keyed by the version
 *   it produced.
 * Kept apart from the stores' pattern code, like metrics-history-sql.ts.
 */
import type Database from 'better-sqlite3';
import type { PgQuery, PgTransaction } from './pg-query';
import type { ExposureAuditRecord, ExposureChange, ExposureRecord, ExposureSetResult } from './memory-store';

export const SQLITE_EXPOSURE_MIGRATION = `
  CREATE TABLE exposure_runtime (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    percent    REAL CHECK (percent IS NULL OR (percent >= 0 AND percent <= 100)),
    version    INTEGER NOT NULL,
    updated_at TEXT,
    updated_by TEXT
  );
  INSERT INTO exposure_runtime (id, percent, version) VALUES (1, NULL, 0);
  CREATE TABLE exposure_audit (
    version      INTEGER PRIMARY KEY,
    at           TEXT NOT NULL,
    actor        TEXT NOT NULL,
    reason       TEXT,
    from_percent REAL,
    to_percent   REAL NOT NULL,
    ceiling      REAL NOT NULL,
    instance_id  TEXT NOT NULL
  );
  CREATE TRIGGER exposure_audit_no_update BEFORE UPDATE ON exposure_audit
    BEGIN SELECT RAISE(ABORT, 'exposure_audit is append-only'); END;
  CREATE TRIGGER exposure_audit_no_delete BEFORE DELETE ON exposure_audit
    BEGIN SELECT RAISE(ABORT, 'exposure_audit is append-only'); END;
`;

export const PG_EXPOSURE_MIGRATION = `
  CREATE TABLE exposure_runtime (
    id         integer PRIMARY KEY CHECK (id = 1),
    percent    double precision CHECK (percent IS NULL OR (percent >= 0 AND percent <= 100)),
    version    bigint NOT NULL,
    updated_at timestamptz,
    updated_by text
  );
  INSERT INTO exposure_runtime (id, percent, version) VALUES (1, NULL, 0);
  CREATE TABLE exposure_audit (
    version      bigint PRIMARY KEY,
    at           timestamptz NOT NULL,
    actor        text NOT NULL,
    reason       text,
    from_percent double precision,
    to_percent   double precision NOT NULL,
    ceiling      double precision NOT NULL,
    instance_id  text NOT NULL
  );
  CREATE FUNCTION exposure_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    RAISE EXCEPTION 'exposure_audit is append-only';
  END $$;
  CREATE TRIGGER exposure_audit_no_rewrite BEFORE UPDATE OR DELETE ON exposure_audit
    FOR EACH ROW EXECUTE FUNCTION exposure_audit_append_only();
`;

/** Audit pages are short: the admin endpoint caps `limit` at this. */
export const EXPOSURE_AUDIT_MAX_LIMIT = 500;

export interface ExposureMethods {
  readExposure(): Promise<ExposureRecord | null>;
  setExposure(change: ExposureChange, now: Date): Promise<ExposureSetResult>;
  listExposureAudit(limit: number): Promise<ExposureAuditRecord[]>;
}

interface RuntimeRow {
  percent: number | null;
  version: number | string;
  updated_at: string | Date | null;
  updated_by: string | null;
}

interface AuditRow {
  version: number | string;
  at: string | Date;
  actor: string;
  reason: string | null;
  from_percent: number | null;
  to_percent: number;
  ceiling: number;
  instance_id: string;
}

const AUDIT_COLUMNS = 'version, at, actor, reason, from_percent, to_percent, ceiling, instance_id';

function toRecord(row: RuntimeRow | undefined): ExposureRecord | null {
  if (!row || row.percent === null) return null;
  return {
    percent: Number(row.percent),
    version: Number(row.version),
    updatedAt: new Date(row.updated_at ?? 0).toISOString(),
    updatedBy: row.updated_by ?? '',
  };
}

function toAudit(row: AuditRow): ExposureAuditRecord {
  return {
    version: Number(row.version),
    at: new Date(row.at).toISOString(),
    actor: row.actor,
    reason: row.reason,
    fromPercent: row.from_percent === null ? null : Number(row.from_percent),
    toPercent: Number(row.to_percent),
    ceiling: Number(row.ceiling),
    instanceId: row.instance_id,
  };
}

function boundedLimit(limit: number): number {
  return Math.max(0, Math.min(EXPOSURE_AUDIT_MAX_LIMIT, Math.floor(limit)));
}

/** `db()` is called per use: the store prepares nothing before migrate() and refuses use after close(). */
export function sqliteExposure(db: () => Database.Database): ExposureMethods {
  return {
    async readExposure() {
      return toRecord(db().prepare('SELECT percent, version, updated_at, updated_by FROM exposure_runtime WHERE id = 1').get() as RuntimeRow);
    },
    async setExposure(change, now) {
      const d = db();
      // IMMEDIATE: the write lock is taken before the read, so two processes serialize on the version.
      return d
        .transaction((): ExposureSetResult => {
          const current = d.prepare('SELECT percent, version, updated_at, updated_by FROM exposure_runtime WHERE id = 1').get() as RuntimeRow;
          const version = Number(current.version);
          if (change.ifVersion !== undefined && change.ifVersion !== version) return { applied: false, current: toRecord(current), currentVersion: version };
          const at = now.toISOString();
          d.prepare('UPDATE exposure_runtime SET percent = ?, version = ?, updated_at = ?, updated_by = ? WHERE id = 1').run(
            change.percent,
            version + 1,
            at,
            change.actor,
          );
          const audit: ExposureAuditRecord = {
            version: version + 1,
            at,
            actor: change.actor,
            reason: change.reason,
            fromPercent: current.percent === null ? null : Number(current.percent),
            toPercent: change.percent,
            ceiling: change.ceiling,
            instanceId: change.instanceId,
          };
          d.prepare(`INSERT INTO exposure_audit (${AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(
            audit.version,
            audit.at,
            audit.actor,
            audit.reason,
            audit.fromPercent,
            audit.toPercent,
            audit.ceiling,
            audit.instanceId,
          );
          return { applied: true, record: { percent: change.percent, version: version + 1, updatedAt: at, updatedBy: change.actor }, audit };
        })
        .immediate();
    },
    async listExposureAudit(limit) {
      const rows = db().prepare(`SELECT ${AUDIT_COLUMNS} FROM exposure_audit ORDER BY version DESC LIMIT ?`).all(boundedLimit(limit)) as AuditRow[];
      return rows.map(toAudit);
    },
  };
}

/** Every call goes through the store's own query path or transaction, so it keeps the store's deadlines. */
export function pgExposure(query: PgQuery, transaction: PgTransaction): ExposureMethods {
  return {
    async readExposure() {
      const result = await query<RuntimeRow>('SELECT percent, version, updated_at, updated_by FROM exposure_runtime WHERE id = 1', []);
      return toRecord(result.rows[0]);
    },
    async setExposure(change, now) {
      return transaction(async (client): Promise<ExposureSetResult> => {
        // The row lock serializes concurrent sets across instances: each one reads the version the last committed.
        const locked = await client.query<RuntimeRow>('SELECT percent, version, updated_at, updated_by FROM exposure_runtime WHERE id = 1 FOR UPDATE');
        const current = locked.rows[0]!;
        const version = Number(current.version);
        if (change.ifVersion !== undefined && change.ifVersion !== version) return { applied: false, current: toRecord(current), currentVersion: version };
        await client.query('UPDATE exposure_runtime SET percent = $1, version = $2, updated_at = $3, updated_by = $4 WHERE id = 1', [
          change.percent,
          version + 1,
          now,
          change.actor,
        ]);
        const inserted = await client.query<AuditRow>(
          `INSERT INTO exposure_audit (${AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${AUDIT_COLUMNS}`,
          [version + 1, now, change.actor, change.reason, current.percent, change.percent, change.ceiling, change.instanceId],
        );
        return {
          applied: true,
          record: { percent: change.percent, version: version + 1, updatedAt: now.toISOString(), updatedBy: change.actor },
          audit: toAudit(inserted.rows[0]!),
        };
      });
    },
    async listExposureAudit(limit) {
      const result = await query<AuditRow>(`SELECT ${AUDIT_COLUMNS} FROM exposure_audit ORDER BY version DESC LIMIT $1`, [boundedLimit(limit)]);
      return result.rows.map(toAudit);
    },
  };
}
