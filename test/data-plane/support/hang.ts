/**
 * Short PostgreSQL deadlines for the hang tests: hundreds of ms, so a hung database costs a test about a second
 * per wait at most. Connecting gets 1 s because a loaded CI machine can take a few hundred ms to open a session.
 * The production defaults are seconds: see the README's Configuration table.
 */
export const SHORT_DEADLINES = {
  DATABASE_CONNECT_TIMEOUT_MS: '1000',
  DATABASE_QUERY_TIMEOUT_MS: '400',
  DATABASE_STATEMENT_TIMEOUT_MS: '300',
  DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '1000',
  DATABASE_MIGRATION_TIMEOUT_MS: '300',
  DATABASE_CLOSE_TIMEOUT_MS: '300',
  DATABASE_POOL_WEDGED_AFTER_MS: '300',
  DATABASE_START_TIMEOUT_MS: '1500',
  DATABASE_HYBRID_READ_TIMEOUT_MS: '200',
  DATABASE_POOL_MAX: '2',
} as const;
