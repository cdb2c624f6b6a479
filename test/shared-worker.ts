/**
 * Test files that share their worker process (vitest `isolate: false`, the "shared" project in vitest.config.mts):
 * pure unit tests that start no server or child process, open no database, Redis or native module, and change no
 * process-wide state (environment, globals, mocks, fake timers, listeners). A fresh process per file costs a fork and
 * a fresh import of vitest and of what the file tests: these 43 files in one worker took 62 and 68 s isolated against
 * 44 and 42 s shared, alternated (`npx vitest run --maxWorkers=1 <files>`, isolated as before and `--project shared`;
 * Node 24.21.0, 2026-12-07, load average 14-16 on the shared 2-core machine). Every other file keeps its own process.
 *
 * A file belongs here only if it matches none of NOT_SHARED_IF (test/shared-worker.test.ts checks it), passes alone,
 * and the list passes in one worker in either order (checked forward and reversed by path, 2026-12-07). Four more
 * (backfill, probe-judge, report-measured-on, stepped-controller: fake clocks and services, temp folders only) joined
 * later that day: alone, isolated 23.9 and 22.9 s wall (8.3 and 9.0 s CPU) against 18.2 and 10.0 s (7.0 and 5.2 s)
 * shared, load 10-11; the 47 passed in one worker in path order and shuffled (`--sequence.shuffle --sequence.seed=7`).
 */
export const SHARED_WORKER_FILES = [
  'test/canary/analysis-properties.test.ts',
  'test/canary/analysis.test.ts',
  'test/canary/backfill.test.ts',
  'test/canary/code-rollback.test.ts',
  'test/canary/controller.test.ts',
  'test/canary/deploy-generation.test.ts',
  'test/canary/exposure-clustered.test.ts',
  'test/canary/exposure-compare.test.ts',
  'test/canary/exposure-step.test.ts',
  'test/canary/logs-and-platform.test.ts',
  'test/canary/operator-rules.test.ts',
  'test/canary/policy.test.ts',
  'test/canary/probe-judge.test.ts',
  'test/canary/progress.test.ts',
  'test/canary/report-markdown.test.ts',
  'test/canary/report-measured-on.test.ts',
  'test/canary/report-wording.test.ts',
  'test/canary/rollback-timing.test.ts',
  'test/canary/rollback.test.ts',
  'test/canary/stepped-controller.test.ts',
  'test/canary/stepped-rules.test.ts',
  'test/canary/timelines.test.ts',
  'test/canary/verify-credential.test.ts',
  'test/demo/fleet-parts.test.ts',
  'test/infra/caller-keys.test.ts',
  'test/infra/config-guards.test.ts',
  'test/infra/exposure-promotion.test.ts',
  'test/infra/service-create-body.test.ts',
  'test/load/bench-records.test.ts',
  'test/load/k6-import-graph.test.ts',
  'test/load/load-test-token.test.ts',
  'test/load/readme-figures.test.ts',
  'test/load/response-checks.test.ts',
  'test/load/scenarios.test.ts',
  'test/load/scope.test.ts',
  'test/load/summary.test.ts',
  'test/load/thresholds.test.ts',
  'test/load/traffic-mix.test.ts',
  'test/render/fleet-model.test.ts',
  'test/sequencer.test.ts',
  'test/service/cache-snippet-cache.test.ts',
  'test/service/config.test.ts',
  'test/service/emulator-docs.test.ts',
  'test/service/exposure.test.ts',
  'test/service/input-guards.test.ts',
  'test/service/scope-id.test.ts',
  'test/service/search-text.test.ts',
];

/** What keeps a file out of the shared worker: it starts or touches something beyond its own module state. */
export const NOT_SHARED_IF: RegExp[] = [
  /child_process|\bspawn|execFile|\bfork\(|\brunTsx\b|compiledArgs/, // child processes (test/support/tsx-cli.ts starts them too)
  /\blisten\(|createServer|\bstart[A-Z]\w*\(|harness/, // servers (the service harness, emulators, local platform)
  /\bfetch\(|node:(http|https|net)\b|from 'axios'/, // network
  /better-sqlite3|createSqliteStore|createPostgres|createTestDatabase|from 'pg'|ioredis|connectRedis|chromium/, // databases, native modules, browsers
  /process\.env(\.\w+|\[[^\]]*\])\s*=[^=]|delete process\.env|process\.(on|once|chdir|exitCode)\b/, // process state
  /vi\.(mock|doMock|stubEnv|stubGlobal|useFakeTimers|spyOn)|globalThis\./, // mocks and globals
];
