/** The metrics history contract against the embedded SQLite store: one database file shared by two connections. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { createSqliteStore } from '../../service/data-access/sqlite-store';
import { describeMetricsHistoryContract } from './metrics-history-contract';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite-metrics-history-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describeMetricsHistoryContract('sqlite', {
  async open() {
    const store = createSqliteStore({ dataDir: root });
    await store.migrate();
    return store;
  },
});
