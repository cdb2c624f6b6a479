/**
 * One id per `vitest run`, set by test/global-setup.ts before the workers start. Every database and Redis
 * prefix the suite creates carries it, so the end-of-run check counts only this run's leftovers, never
 * those of another run going on at the same time on the same PostgreSQL and Redis.
 */
export const TEST_RUN_ID_ENV = 'TEST_RUN_ID';

/** Lowercase [a-z0-9] (valid in a database name unquoted); 'adhoc' outside a vitest run. */
export function testRunId(env: NodeJS.ProcessEnv = process.env): string {
  const id = env[TEST_RUN_ID_ENV];
  return id && /^[a-z0-9]{1,16}$/.test(id) ? id : 'adhoc';
}

/** What the suite's names look like for one run: Redis key prefixes and PostgreSQL databases. */
export function runNamePatterns(runId: string): { redisKeyPattern: string; databaseNamePattern: RegExp } {
  return { redisKeyPattern: `t:${runId}:*`, databaseNamePattern: new RegExp(`^t_${runId}_`) };
}
