import { defineConfig } from 'vitest/config';
// .js: this file is ESM under node16 resolution; vite finds test/sequencer.ts.
import { LongestFirstSequencer } from './test/sequencer.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // ABI check of node_modules, then dist/ compiled from this source (scripts/build.mjs).
    globalSetup: ['test/global-setup.ts'],
    environment: 'node',
    // Suites start real servers on ephemeral loopback ports; forks keep native modules (better-sqlite3) isolated.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // The machines have 2 cores; more parallel files only add contention.
    maxWorkers: 2,
    // The longest files start first (test/sequencer.ts), so both workers end together.
    sequence: { sequencer: LongestFirstSequencer },
  },
});
