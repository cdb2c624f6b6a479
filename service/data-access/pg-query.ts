/**
 * The PostgreSQL store's own query path and transaction, as the SQL modules beside it take them (exposure, metrics
 * history, erasure): every statement they run keeps the store's deadlines and has its errors classified.
 */
import type { PoolClient, QueryResult, QueryResultRow } from 'pg';

export type PgQuery = <R extends QueryResultRow>(text: string, values: unknown[]) => Promise<QueryResult<R>>;
export type PgTransaction = <T>(work: (client: PoolClient) => Promise<T>) => Promise<T>;
