import { configDefaults, defineConfig } from 'vitest/config';
// .js: this file is ESM under node16 resolution; vite finds test/sequencer.ts.
import { LongestFirstSequencer } from './test/sequencer.js';
import { SHARED_SERVER_FILES, SHARED_WORKER_FILES } from './test/shared-worker.js';

export default defineConfig({
  test: {
    // ABI check of node_modules, then dist/ compiled from this source (scripts/build.mjs).
    globalSetup: ['test/global-setup.ts'],
    environment: 'node',
    // Suites start real servers on ephemeral loopback ports; forks keep native modules (better-sqlite3) isolated.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // 3 on a 2-core machine: the suite waits more than it computes (the rehearsals run on a policy clock), so a
    // third file runs in what the other two leave idle. Fresh-clone vitest wall, quiet: 352 s with 2 workers, 260 s
    // with 3, 236 s with 4, where the rehearsals' clocks began to slow (README, "How long the tests take").
    maxWorkers: 3,
    // The longest files start first (test/sequencer.ts), so both workers end together.
    sequence: { sequencer: LongestFirstSequencer },
    projects: [
      // Every file in a fresh process of its own, as before.
      { extends: true, test: { name: 'isolated', include: ['test/**/*.test.ts'], exclude: [...configDefaults.exclude, ...SHARED_WORKER_FILES, ...SHARED_SERVER_FILES] } },
      // Pure unit tests share their worker: no fork and no fresh import per file (test/shared-worker.ts says which, and why).
      { extends: true, test: { name: 'shared', include: SHARED_WORKER_FILES, isolate: false } },
      // Files with in-process servers they close in their hooks share another (test/shared-worker.ts SHARED_SERVER_FILES).
      { extends: true, test: { name: 'shared-servers', include: SHARED_SERVER_FILES, isolate: false, setupFiles: ['test/support/shared-servers-setup.ts'] } },
    ],
  },
});
