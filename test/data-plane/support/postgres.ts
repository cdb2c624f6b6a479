/**
 * A throwaway PostgreSQL database per test file, so parallel runs never share tables.
 * The server is the machine's (127.0.0.1:5432, user postgres) unless TEST_PG_ADMIN_URL says otherwise.
 */
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { testRunId } from '../../support/run-id';

const ADMIN_URL = process.env.TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

async function withAdmin<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** `t_<run id>_<label>_<random>`: the run id lets the suite's end check find leftovers of its own run only. */
export function testDatabaseName(label: string, runId = testRunId()): string {
  return `t_${runId}_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(6).toString('hex')}`;
}

export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const name = testDatabaseName(label);
  // The name is generated here from [a-z0-9_] only, so interpolating it is safe.
  await withAdmin((client) => client.query(`CREATE DATABASE ${name}`));
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: () => withAdmin((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}
