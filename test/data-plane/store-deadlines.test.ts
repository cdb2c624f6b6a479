/**
 * Store deadlines as configuration (defaults, errors that name the variable, values that reach PostgreSQL), the
 * classification of driver errors into StoreUnavailableError, and SQLite's own outage (SQLITE_BUSY) answered 503.
 */
import Database from 'better-sqlite3';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../service/config';
import { POSTGRES_DEADLINE_DEFAULTS, PostgresMemoryStore } from '../../service/data-access/postgres-store';
import { createSqliteStore } from '../../service/data-access/sqlite-store';
import { classifyPostgresError, classifySqliteError, StoreUnavailableError } from '../../service/data-access/store-errors';
import { loadDataPlaneConfig } from '../../service/fleet/data-plane-config';
import { scope, startHarness, tempDataDir } from '../service/support/harness';
import { createTestDatabase, type TestDatabase } from './support/postgres';

describe('store deadline configuration', () => {
  it('has a default for every deadline', () => {
    const config = loadDataPlaneConfig({});
    expect(config.databaseDeadlines).toEqual(POSTGRES_DEADLINE_DEFAULTS);
    expect(POSTGRES_DEADLINE_DEFAULTS).toEqual({
      connectTimeoutMs: 2_000,
      queryTimeoutMs: 5_000,
      statementTimeoutMs: 4_000,
      idleInTransactionTimeoutMs: 10_000,
      migrationTimeoutMs: 30_000,
      migrationBuildTimeoutMs: 3_600_000,
      closeTimeoutMs: 5_000,
      poolWedgedAfterMs: 30_000,
    });
    expect(config.databaseStartTimeoutMs).toBe(60_000);
    expect(config.databaseHybridReadTimeoutMs).toBe(1_500);
  });

  it('parses each variable and names it in errors', () => {
    const config = loadDataPlaneConfig({ DATABASE_CONNECT_TIMEOUT_MS: '250', DATABASE_QUERY_TIMEOUT_MS: '900', DATABASE_STATEMENT_TIMEOUT_MS: '800' });
    expect(config.databaseDeadlines).toMatchObject({ connectTimeoutMs: 250, queryTimeoutMs: 900, statementTimeoutMs: 800 });
    for (const name of [
      'DATABASE_CONNECT_TIMEOUT_MS',
      'DATABASE_QUERY_TIMEOUT_MS',
      'DATABASE_STATEMENT_TIMEOUT_MS',
      'DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS',
      'DATABASE_MIGRATION_TIMEOUT_MS',
      'DATABASE_MIGRATION_BUILD_TIMEOUT_MS',
      'DATABASE_CLOSE_TIMEOUT_MS',
      'DATABASE_POOL_WEDGED_AFTER_MS',
      'DATABASE_START_TIMEOUT_MS',
      'DATABASE_HYBRID_READ_TIMEOUT_MS',
    ]) {
      expect(() => loadDataPlaneConfig({ [name]: '5s' })).toThrow(new RegExp(name));
      expect(() => loadDataPlaneConfig({ [name]: '0' })).toThrow(ConfigError);
    }
    expect(() => loadDataPlaneConfig({ DATABASE_STATEMENT_TIMEOUT_MS: '6000' })).toThrow(/DATABASE_STATEMENT_TIMEOUT_MS: must not exceed DATABASE_QUERY_TIMEOUT_MS/);
  });
});

describe('PostgreSQL sessions carry the server-side deadlines', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('pgdeadlines');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('statement_timeout and idle_in_transaction_session_timeout are set on every pooled connection', async () => {
    const store = new PostgresMemoryStore({ connectionString: db.url, maxConnections: 1, deadlines: { statementTimeoutMs: 1_234, idleInTransactionTimeoutMs: 4_321 } });
    try {
      const { rows } = await store.pool.query(
        `SELECT current_setting('statement_timeout') AS statement, current_setting('idle_in_transaction_session_timeout') AS idle`,
      );
      expect(rows[0]).toEqual({ statement: '1234ms', idle: '4321ms' });
    } finally {
      await store.close();
    }
  });

  it('a transaction left idle longer than the deadline is ended by the server, and reported as a store outage', async () => {
    // Migrated first with the default deadlines: on a loaded machine the migration's own transaction can sit idle
    // for more than 100 ms between its statements (it did at load 15), and this test is about the idle one below.
    const migrator = new PostgresMemoryStore({ connectionString: db.url, maxConnections: 1 });
    try {
      await migrator.migrate();
    } finally {
      await migrator.close();
    }
    const store = new PostgresMemoryStore({
      connectionString: db.url,
      maxConnections: 1,
      deadlines: { idleInTransactionTimeoutMs: 100 },
      onPoolError: () => undefined,
    });
    try {
      const client = await store.pool.connect();
      client.on('error', () => undefined);
      await client.query('BEGIN');
      await new Promise((resolve) => setTimeout(resolve, 400));
      const error = await client.query('SELECT 1').catch((caught: unknown) => caught);
      client.release(error as Error);
      expect(classifyPostgresError(error, POSTGRES_DEADLINE_DEFAULTS)).toBeInstanceOf(StoreUnavailableError);
      // The pool carries on with a fresh connection.
      expect(await store.outboxDepth()).toBe(0);
    } finally {
      await store.close();
    }
  });
});

describe('driver errors classified', () => {
  const d = POSTGRES_DEADLINE_DEFAULTS;
  const coded = (message: string, code: string) => Object.assign(new Error(message), { code });

  it('maps PostgreSQL timeouts and outages to StoreUnavailableError, and leaves request errors alone', () => {
    expect(classifyPostgresError(new Error('Query read timeout'), d)).toMatchObject({ failure: 'timeout', operation: 'query', timeoutMs: d.queryTimeoutMs });
    expect(classifyPostgresError(new Error('timeout exceeded when trying to connect'), d)).toMatchObject({ failure: 'timeout', operation: 'connect', timeoutMs: d.connectTimeoutMs });
    expect(classifyPostgresError(new Error('Connection terminated due to connection timeout'), d)).toMatchObject({ failure: 'timeout', operation: 'connect' });
    expect(classifyPostgresError(coded('canceling statement due to statement timeout', '57014'), d)).toMatchObject({ failure: 'timeout', timeoutMs: d.statementTimeoutMs });
    expect(classifyPostgresError(coded('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'), d)).toMatchObject({ failure: 'unavailable' });
    expect(classifyPostgresError(coded('the database system is starting up', '57P03'), d)).toMatchObject({ failure: 'unavailable' });
    expect(classifyPostgresError(coded('sorry, too many clients already', '53300'), d)).toMatchObject({ failure: 'unavailable' });
    expect(classifyPostgresError(new Error('Connection terminated unexpectedly'), d)).toMatchObject({ failure: 'unavailable' });
    const constraint = coded('duplicate key value violates unique constraint', '23505');
    expect(classifyPostgresError(constraint, d)).toBe(constraint);
    const bug = new Error('pattern id x already belongs to a different scope or content');
    expect(classifyPostgresError(bug, d)).toBe(bug);
  });

  it('maps SQLite busy, full and disk errors, and leaves constraint errors alone', () => {
    expect(classifySqliteError(coded('database is locked', 'SQLITE_BUSY'), 'savePatterns', 5_000)).toMatchObject({ dependency: 'sqlite', failure: 'timeout', timeoutMs: 5_000 });
    expect(classifySqliteError(coded('database or disk is full', 'SQLITE_FULL'), 'savePatterns', 5_000)).toMatchObject({ dependency: 'sqlite', failure: 'unavailable' });
    expect(classifySqliteError(coded('disk I/O error', 'SQLITE_IOERR_WRITE'), 'savePatterns', 5_000)).toMatchObject({ failure: 'unavailable' });
    const constraint = coded('UNIQUE constraint failed', 'SQLITE_CONSTRAINT_UNIQUE');
    expect(classifySqliteError(constraint, 'savePatterns', 5_000)).toBe(constraint);
  });
});

describe('SQLite that cannot take the write lock', () => {
  it('answers a learning write 503 with Retry-After after its busy timeout, counted as a store error', async () => {
    const dataDir = tempDataDir('sqlite-busy');
    const store = createSqliteStore({ dataDir, busyTimeoutMs: 100 });
    const harness = await startHarness({ dataDir, env: { ENABLE_CONTEXT7_MEMORY: 'false' }, overrides: { store } });
    // Another process holds SQLite's write lock (e.g. a migration or a long write on a shared disk).
    const other = new Database(path.join(dataDir, 'memory.db'));
    try {
      other.exec('BEGIN IMMEDIATE');
      const started = Date.now();
      const write = await harness.request('POST', '/api/memory/patterns', { scopeId: scope('sqlite-busy', 'w', 'p'), patterns: ['blocked'] });
      expect(write.status).toBe(503);
      expect(write.headers.get('retry-after')).toBe('5');
      expect(Date.now() - started).toBeLessThan(5_000);
      const line = harness.logs.lines().find((entry) => /Store unavailable/.test(String(entry.msg)));
      expect(line).toMatchObject({ tag: '[MEMORY_ERROR]', dependency: 'sqlite', failure: 'timeout', timeoutMs: 100 });
      other.exec('ROLLBACK');
      expect((await harness.request('POST', '/api/memory/patterns', { scopeId: scope('sqlite-busy', 'w', 'p'), patterns: ['now'] })).status).toBe(200);
      const metrics = await harness.request('GET', '/api/metrics/memory');
      expect(metrics.body.totals).toMatchObject({ storeRequests: 2, storeErrors: 1 });
    } finally {
      other.close();
      await harness.close();
    }
  });
});
