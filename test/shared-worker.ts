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
 * run-id joined the same day (20:30 UTC), once its run id was passed to the helpers instead of written to process.env;
 * the 48 passed in one worker forward and reversed by path, shuffled (seed 11), and on two workers.
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
  'test/canary/json-indented.test.ts',
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
  'test/support/run-id.test.ts',
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

/**
 * Test files that start servers in their own process (the memory service through test/service/support/harness.ts,
 * the Context7 emulator, a plain http server) and stop them in their hooks, sharing one worker (`isolate: false`, the
 * "shared-servers" project). Each server listens on port 0 and each service has its own prom-client Registry
 * (service/domain/prometheus.ts), so two in one process neither collide nor see each other's metrics. A file belongs
 * here only if it and the test modules it imports match none of NOT_SHARED_SERVERS_IF, and it closes what it starts
 * (test/shared-worker.test.ts checks both); the harness's temporary data directories are removed per file by
 * test/support/shared-servers-setup.ts. The 27 in one worker (`npx vitest run --project shared-servers --maxWorkers=1`)
 * took 26.5 and 24.0 s wall (14.0 and 14.9 s CPU) against 61.2 and 74.8 s (50.7 and 62.0 s CPU) with a fresh process per
 * file, alternated, load 8-12 (Node 24.21.0, 2026-12-07, emulators on loopback); they passed in one worker in vitest's
 * order and shuffled (`--sequence.shuffle --sequence.seed=7`), twice each (with hostile-input-fuzz, then the 27 once more
 * each), and under scripts/under-load at load 16.
 * hostile-input-fuzz stays out: under that load it runs past its 30 s timeout in its own process too.
 *
 * 16 more joined later that day (the Render emulator without its local platform, the load balancer, pacing and
 * deadlines against loopback servers, the canary's sources and harness tests, the SQLite contracts, traffic-clock).
 * The 16 alone (`npx vitest run --maxWorkers=1 <files>`, a fresh process per file, against `--project shared-servers`),
 * alternated, Node 24.21.0, 2026-12-07, in-process servers and emulators on loopback: isolated 107.4, 106.5 and 139.6 s
 * wall (30.8, 31.0 and 36.3 s CPU) against 90.3, 43.2 and 58.5 s (18.0, 13.4 and 16.2 s CPU) shared, load 8-16
 * (20:13-20:41 UTC); about 1 s of CPU a file. A handle count after each file (process.getActiveResourcesInfo, a
 * temporary setup file) found only traffic-clock leaving anything (88 answer timers of 60 s, now cleared when the
 * client goes away); the 43 then passed in one worker forward and reversed by path, shuffled (seeds 7 and 23) and on
 * two workers. The local platform's files (local-platform-*, emulator-logs-metrics) stay out: it starts the services
 * as child processes (the last rule of NOT_SHARED_SERVERS_IF).
 */
export const SHARED_SERVER_FILES = [
  'test/canary/backfill-after-signoff.test.ts',
  'test/canary/exposure-admin.test.ts',
  'test/canary/learning-probe.test.ts',
  'test/canary/pre-exposure.test.ts',
  'test/canary/probe-deadline.test.ts',
  'test/canary/render-sources.test.ts',
  'test/canary/smoke-suite.test.ts',
  'test/canary/stepped-prepare.test.ts',
  'test/demo/traffic-clock.test.ts',
  'test/render/deadlines.test.ts',
  'test/render/emulator-instances.test.ts',
  'test/render/emulator.test.ts',
  'test/render/load-balancer.test.ts',
  'test/render/pacing.test.ts',
  'test/service/admin-auth.test.ts',
  'test/service/admin-records.test.ts',
  'test/service/auth-limiter.test.ts',
  'test/service/bad-input.test.ts',
  'test/service/caller-auth.test.ts',
  'test/service/cohort-metrics-http.test.ts',
  'test/service/cohort-metrics.test.ts',
  'test/service/domain.test.ts',
  'test/service/drain.test.ts',
  'test/service/erasure.test.ts',
  'test/service/exposure-clusters.test.ts',
  'test/service/exposure-runtime.test.ts',
  'test/service/fallback.test.ts',
  'test/service/hostile-input.test.ts',
  'test/service/load-test-token.test.ts',
  'test/service/metrics-history.test.ts',
  'test/service/metrics.test.ts',
  'test/service/observability-http.test.ts',
  'test/service/outbox.test.ts',
  'test/service/probe-traffic.test.ts',
  'test/service/redaction.test.ts',
  'test/service/repost-metadata.test.ts',
  'test/service/reserved-scopes.test.ts',
  'test/service/scope-isolation.test.ts',
  'test/service/secrets-in-content.test.ts',
  'test/service/snippets-response.test.ts',
  'test/service/sqlite-metrics-history.test.ts',
  'test/service/sqlite-store-contract.test.ts',
  'test/service/store-outage.test.ts',
];

/** What keeps a file (or a test module it imports) out of the shared-servers worker: servers in process are fine. */
export const NOT_SHARED_SERVERS_IF: RegExp[] = [
  NOT_SHARED_IF[0]!, // child processes
  NOT_SHARED_IF[4]!, // process state: environment, cwd, listeners, exit code
  NOT_SHARED_IF[5]!, // mocks, fake timers, spies and globals
  /createPostgres|createTestDatabase|from 'pg'|ioredis|connectRedis|chromium/, // outside services and browsers
  /\blocalPlatform\b/, // the Render emulator's local platform: it starts the services as child processes
];
