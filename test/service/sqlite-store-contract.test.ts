/** The shared MemoryStore contract against the embedded SQLite store, in a fresh data directory per test. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { createSqliteStore } from '../../service/data-access/sqlite-store';
import { describeStoreContract } from './store-contract';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite-contract-'));
let current = '';
let count = 0;

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describeStoreContract('sqlite', {
  async open() {
    count += 1;
    current = path.join(root, `store-${count}`);
    const store = createSqliteStore({ dataDir: current });
    await store.migrate();
    return store;
  },
  // Two processes on one disk: a second connection to the same database file.
  async openPeer() {
    const store = createSqliteStore({ dataDir: current });
    await store.migrate();
    return store;
  },
});
