/**
 * `npm run migrate`: applies the schema migrations of whichever store the environment selects, then exits.
 * Render runs it as the pre-deploy command, so a deploy whose migration fails never receives traffic.
 * PostgreSQL (DATABASE_URL) migrations hold an advisory lock, so a starting instance migrating at the same
 * moment waits instead of racing. Without DATABASE_URL it migrates the embedded SQLite store in DATA_DIR.
 * Prints one JSON line per step; never prints the connection URL.
 *
 * `npm run migrate -- --create-database` first creates the PostgreSQL database DATABASE_URL names if it is
 * missing (a fresh local server); without the flag a missing database fails, as it should on Render.
 * Exit 0 = up to date, 1 = failed, 64 = usage error.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, secretsOfUrl } from '../config';
import { createDatabaseIfMissing } from './create-database';
import { createSqliteStore, sqliteDatabasePath } from '../data-access/sqlite-store';
import { PostgresMemoryStore } from '../data-access/postgres-store';
import { runPgMigrations } from '../data-access/postgres-migrations';
import { loadDataPlaneConfig } from '../fleet/data-plane-config';

function say(fields: Record<string, unknown>, secrets: string[] = []): void {
  let line = JSON.stringify({ tag: fields.level === 'fatal' ? '[MEMORY_ERROR]' : '[MEMORY]', ...fields });
  for (const secret of secrets) line = line.split(secret).join('[REDACTED]');
  process.stdout.write(`${line}\n`);
}

const USAGE = 'usage: npm run migrate [-- --create-database]';

async function main(): Promise<number> {
  let createDatabase: boolean;
  try {
    const { values } = parseArgs({ args: process.argv.slice(2), options: { 'create-database': { type: 'boolean' }, help: { type: 'boolean' } }, strict: true });
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    createDatabase = values['create-database'] === true;
    // `npm run migrate --create-database` (no `--`) hands the flag to npm, which passes it on only as this.
    if (!createDatabase && process.env.npm_config_create_database !== undefined) {
      throw new Error('npm took --create-database as its own option: did you mean `npm run migrate -- --create-database`?');
    }
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    return 64;
  }
  let config;
  let deadlines;
  try {
    config = loadConfig();
    // The same deadlines as the service (DATABASE_*_MS): a hung database fails the pre-deploy instead of hanging it.
    deadlines = loadDataPlaneConfig(process.env).databaseDeadlines;
  } catch (error) {
    if (error instanceof ConfigError) {
      say({ level: 'fatal', msg: `[MEMORY_ERROR] ${error.message}` });
      return 1;
    }
    throw error;
  }
  const started = Date.now();
  if (createDatabase && !config.databaseUrl) {
    say({ msg: '[MEMORY] --create-database: no DATABASE_URL, so nothing to create (the SQLite store creates its file)' });
  }
  if (config.databaseUrl) {
    const secrets = secretsOfUrl(config.databaseUrl);
    if (createDatabase) {
      try {
        const { database, created } = await createDatabaseIfMissing(config.databaseUrl, deadlines);
        say({ msg: created ? `[MEMORY] Created PostgreSQL database "${database}"` : `[MEMORY] PostgreSQL database "${database}" already exists`, created }, secrets);
      } catch (error) {
        say({ level: 'fatal', msg: `[MEMORY_ERROR] Could not create the PostgreSQL database: ${(error as Error).message}` }, secrets);
        return 1;
      }
    }
    const store = new PostgresMemoryStore({ connectionString: config.databaseUrl, maxConnections: 1, deadlines });
    try {
      say({ msg: '[MEMORY] Migrating PostgreSQL (waits for any other migrator holding the lock)', store: 'postgres' });
      const result = await runPgMigrations(
        store.pool,
        undefined,
        (migration) => say({ msg: `[MEMORY] Applied migration ${migration.id}: ${migration.name}`, migration: migration.id }),
        { timeoutMs: deadlines.migrationTimeoutMs },
      );
      say({
        msg: `[MEMORY] PostgreSQL schema up to date: ${result.applied.length} applied, ${result.alreadyApplied} already present in ${Date.now() - started}ms`,
        applied: result.applied.length,
      });
      return 0;
    } catch (error) {
      say({ level: 'fatal', msg: `[MEMORY_ERROR] PostgreSQL migration failed: ${(error as Error).message}` }, secrets);
      return 1;
    } finally {
      await store.close().catch(() => undefined);
    }
  }
  const store = createSqliteStore({ dataDir: config.dataDir });
  try {
    await store.migrate();
    say({ msg: `[MEMORY] SQLite schema up to date at ${sqliteDatabasePath(config.dataDir)} in ${Date.now() - started}ms`, store: 'sqlite' });
    return 0;
  } catch (error) {
    say({ level: 'fatal', msg: `[MEMORY_ERROR] SQLite migration failed: ${(error as Error).message}` });
    return 1;
  } finally {
    await store.close().catch(() => undefined);
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    say({ level: 'fatal', msg: `[MEMORY_ERROR] Migration crashed: ${error instanceof Error ? error.message : String(error)}` });
    process.exit(1);
  },
);
