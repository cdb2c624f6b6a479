/** The metrics history contract against PostgreSQL (a throwaway database; every store is another instance). */
import { afterAll, beforeAll } from 'vitest';
import { PostgresMemoryStore } from '../../service/data-access/postgres-store';
import { describeMetricsHistoryContract } from '../service/metrics-history-contract';
import { createTestDatabase, type TestDatabase } from './support/postgres';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase('pgmetrics');
});
afterAll(async () => {
  await db?.drop();
});

describeMetricsHistoryContract('postgres', {
  async open() {
    const store = new PostgresMemoryStore({ connectionString: db.url, maxConnections: 4 });
    await store.migrate();
    return store;
  },
});
