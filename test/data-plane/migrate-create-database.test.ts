/**
 * The README's PostgreSQL snippet on a fresh server: `npm run migrate` refuses a database that does not exist,
 * and `npm run migrate -- --create-database` creates it (through the `postgres` maintenance database, same
 * credentials), migrates it, and never prints the URL's password. Runs the command verbatim, through npm.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { testDatabaseName } from './support/postgres';

const REPO = path.resolve(__dirname, '..', '..');
const SERVER = 'postgres://postgres@127.0.0.1:5432';
const database = testDatabaseName('migrate_create');
// The machine's server trusts local connections, so the password is ignored there; it must still never be printed.
const PASSWORD = 'pw-never-printed-7f3a';
const DATABASE_URL = `postgres://postgres:${PASSWORD}@127.0.0.1:5432/${database}`;
const dataDir = mkdtempSync(path.join(tmpdir(), 'migrate-create-'));

async function withMaintenance<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: `${SERVER}/postgres`, connectionTimeoutMillis: 10_000, query_timeout: 30_000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

const databaseExists = () =>
  withMaintenance(async (c) => ((await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])).rowCount ?? 0) > 0);

function npmRunMigrate(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      'npm',
      ['run', 'migrate', ...(args.length > 0 ? ['--', ...args] : [])],
      { cwd: REPO, env: { ...process.env, DATABASE_URL, DATA_DIR: dataDir }, timeout: 180_000 },
      // Its lines are JSON: unescape the quotes so messages read as printed text.
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? -1) : 0, output: `${stdout}${stderr}`.replaceAll('\\"', '"') }),
    );
  });
}

afterAll(async () => {
  await withMaintenance((c) => c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`));
  rmSync(dataDir, { recursive: true, force: true });
}, 60_000);

describe('npm run migrate on a server without the database', () => {
  it('fails without --create-database, creates and migrates with it, and is a no-op the second time', async () => {
    const refused = await npmRunMigrate([]);
    expect(refused.code).toBe(1);
    expect(refused.output).toContain(`database "${database}" does not exist`);
    expect(await databaseExists()).toBe(false);

    const created = await npmRunMigrate(['--create-database']);
    expect(created.code, created.output).toBe(0);
    expect(created.output).toContain(`Created PostgreSQL database "${database}"`);
    expect(created.output).toContain('PostgreSQL schema up to date');
    expect(await databaseExists()).toBe(true);

    const again = await npmRunMigrate(['--create-database']);
    expect(again.code, again.output).toBe(0);
    expect(again.output).toContain(`PostgreSQL database "${database}" already exists`);
    expect(again.output).toContain('0 applied');

    for (const run of [refused, created, again]) expect(run.output).not.toContain(PASSWORD);
  }, 300_000);

  it('refuses an unknown argument, or the flag given to npm instead (no `--`), as a usage error (64)', async () => {
    const result = await npmRunMigrate(['--create-databse']);
    expect(result.code).toBe(64);
    expect(result.output).toContain('usage: npm run migrate [-- --create-database]');

    const swallowed = await new Promise<{ code: number; output: string }>((resolve) => {
      execFile('npm', ['run', 'migrate', '--create-database'], { cwd: REPO, env: { ...process.env, DATABASE_URL, DATA_DIR: dataDir }, timeout: 180_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? -1) : 0, output: `${stdout}${stderr}` }),
      );
    });
    expect(swallowed.code).toBe(64);
    expect(swallowed.output).toContain('did you mean `npm run migrate -- --create-database`?');
  }, 360_000);
});
