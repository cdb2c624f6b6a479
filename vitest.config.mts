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
    // 4 on a 2-core machine: the suite waits more than it computes (the four rehearsals run on a policy clock and
    // use about half a core each), so more files run in what the others leave idle. `npx vitest run --maxWorkers=N`,
    // quiet, 2026-12-07, Node 24.21.0, emulators: 352 s wall with 2 (at 5aec601), 262 s with 3, 228 s with 4, and
    // 261 s with 6, where the rehearsals measured slower clocks (15x) and a test failed (README, "How long the tests take").
    maxWorkers: 4,
    // The longest files start first (test/sequencer.ts), so the workers end together.
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
