/**
 * `npm run migrate -- --create-database`: creates the database DATABASE_URL names when it does not exist yet,
 * through the server's `postgres` maintenance database with the same credentials. Only when asked: on Render
 * the database exists, and a typo in the URL must fail the pre-deploy rather than create a stray database.
 */
import { Client, escapeIdentifier } from 'pg';
import type { PostgresDeadlines } from '../data-access/postgres-store';

export type CreateDatabaseOutcome = { database: string; created: boolean };

/** The same server and credentials, connected to the `postgres` maintenance database instead. */
export function maintenanceUrlOf(databaseUrl: string): { maintenanceUrl: string; database: string } {
  const url = new URL(databaseUrl);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!database) throw new Error('DATABASE_URL names no database (expected postgres://user@host:port/<database>)');
  url.pathname = '/postgres';
  return { maintenanceUrl: url.toString(), database };
}

/** Deadlines on the connection and on each statement, so a hung server fails the command instead of hanging it. */
export async function createDatabaseIfMissing(
  databaseUrl: string,
  deadlines: Pick<PostgresDeadlines, 'connectTimeoutMs' | 'queryTimeoutMs' | 'statementTimeoutMs' | 'closeTimeoutMs'>,
): Promise<CreateDatabaseOutcome> {
  const { maintenanceUrl, database } = maintenanceUrlOf(databaseUrl);
  const client = new Client({
    connectionString: maintenanceUrl,
    connectionTimeoutMillis: deadlines.connectTimeoutMs,
    query_timeout: deadlines.queryTimeoutMs,
    statement_timeout: deadlines.statementTimeoutMs,
  });
  client.on('error', () => undefined); // a dropped connection surfaces as the pending query's error
  await client.connect();
  try {
    const existing = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (existing.rowCount) return { database, created: false };
    try {
      await client.query(`CREATE DATABASE ${escapeIdentifier(database)}`);
    } catch (error) {
      // Another migrator created it between the check and the CREATE: that is the outcome wanted.
      if ((error as { code?: string }).code === '42P04') return { database, created: false };
      throw error;
    }
    return { database, created: true };
  } finally {
    await Promise.race([
      client.end().catch(() => undefined),
      new Promise((resolve) => setTimeout(resolve, deadlines.closeTimeoutMs).unref()),
    ]);
  }
}
