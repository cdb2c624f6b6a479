/**
 * One typed error for "the local store could not answer": PostgreSQL that timed out, refused, dropped the
 * connection or ran out of connections, and SQLite that was busy, full or failed on disk. The HTTP layer maps it
 * to 503 + Retry-After and the metrics count it as a store error, never as a Context7 failure or a fallback.
 * Anything else a store throws (a constraint a caller broke, a bug) is left as it is: that is a 500, not an outage.
 */

export type StoreDependency = 'postgres' | 'sqlite';

/** `timeout`: a deadline of ours (or the server's statement/lock timeout) expired; `unavailable`: it failed. */
export type StoreFailure = 'timeout' | 'unavailable';

export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
  constructor(
    readonly dependency: StoreDependency,
    readonly failure: StoreFailure,
    /** What was waited for, e.g. "query", "connect", "migration lock". */
    readonly operation: string,
    /** The deadline that expired, when one did. */
    readonly timeoutMs: number | undefined,
    override readonly cause: unknown,
  ) {
    super(
      failure === 'timeout'
        ? `${dependency} did not answer: ${operation} timed out${timeoutMs === undefined ? '' : ` after ${timeoutMs} ms`}`
        : `${dependency} unavailable during ${operation}: ${causeSummary(cause)}`,
    );
  }

  /** For log lines: the dependency, what failed and the deadline, without the cause's stack. */
  describe(): Record<string, unknown> {
    return {
      dependency: this.dependency,
      failure: this.failure,
      operation: this.operation,
      ...(this.timeoutMs === undefined ? {} : { timeoutMs: this.timeoutMs }),
      cause: causeSummary(this.cause),
    };
  }
}

function causeSummary(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause).slice(0, 200);
  const code = (cause as { code?: unknown }).code;
  return `${typeof code === 'string' ? `${code} ` : ''}${cause.message}`.slice(0, 200);
}

export interface PostgresDeadlines {
  connectTimeoutMs: number;
  queryTimeoutMs: number;
  statementTimeoutMs: number;
}

// SQLSTATE classes and codes that mean "the database cannot serve this now", not "this request is wrong".
const PG_UNAVAILABLE_CLASSES = ['08', '53', '57', '58'];
const PG_UNAVAILABLE_CODES = new Set(['40001', '40P01', '55P03', '25P03']);
const PG_TIMEOUT_CODES: Record<string, string> = {
  '57014': 'statement',
  '55P03': 'lock wait',
  '25P03': 'idle in transaction',
};
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * Classifies what pg threw. pg's own timeouts carry no code, only their message: "Query read timeout"
 * (query_timeout), "timeout exceeded when trying to connect" (pool checkout), "Connection terminated due to
 * connection timeout" / "timeout expired" (connectionTimeoutMillis).
 */
export function classifyPostgresError(error: unknown, deadlines: PostgresDeadlines, operation = 'query'): unknown {
  if (error instanceof StoreUnavailableError || !(error instanceof Error)) return error;
  const code = (error as { code?: unknown }).code;
  const message = error.message;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
    if (code in PG_TIMEOUT_CODES) {
      const timeoutMs = code === '57014' ? deadlines.statementTimeoutMs : undefined;
      return new StoreUnavailableError('postgres', 'timeout', PG_TIMEOUT_CODES[code], timeoutMs, error);
    }
    if (PG_UNAVAILABLE_CODES.has(code) || PG_UNAVAILABLE_CLASSES.includes(code.slice(0, 2))) {
      return new StoreUnavailableError('postgres', 'unavailable', operation, undefined, error);
    }
    return error;
  }
  if (message === 'Query read timeout') {
    return new StoreUnavailableError('postgres', 'timeout', operation, deadlines.queryTimeoutMs, error);
  }
  if (/timeout exceeded when trying to connect|connection timeout|^timeout expired$/i.test(message)) {
    return new StoreUnavailableError('postgres', 'timeout', 'connect', deadlines.connectTimeoutMs, error);
  }
  if (
    (typeof code === 'string' && NETWORK_CODES.has(code)) ||
    /Connection terminated|not queryable|Cannot use a pool after calling end|Client was closed|connection error/i.test(message)
  ) {
    return new StoreUnavailableError('postgres', 'unavailable', operation, undefined, error);
  }
  return error;
}

// better-sqlite3 error codes for a database that cannot serve now (locked, full, disk or file trouble).
const SQLITE_UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|READONLY|CORRUPT|NOTADB|PROTOCOL|NOMEM)/;

export function classifySqliteError(error: unknown, operation: string, busyTimeoutMs: number): unknown {
  if (error instanceof StoreUnavailableError || !(error instanceof Error)) return error;
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string' || !SQLITE_UNAVAILABLE.test(code)) return error;
  const busy = code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED');
  return new StoreUnavailableError('sqlite', busy ? 'timeout' : 'unavailable', busy ? `${operation} (lock wait)` : operation, busy ? busyTimeoutMs : undefined, error);
}

/**
 * Runs `work` with a deadline of our own, for the few waits the driver cannot bound itself (a pool.end() that
 * waits on checked-out clients, a read we choose to give up on). The work is not cancelled, only no longer awaited.
 */
export function withDeadline<T>(work: Promise<T>, timeoutMs: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(onTimeout()), timeoutMs);
    timer.unref();
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}
