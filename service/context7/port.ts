/**
 * What the memory domain needs from Context7. The axios client implements it; tests may pass fakes.
 * The wire contract behind it is service/context7/openapi.yaml.
 */
import type { Context7ErrorType } from '../contracts/http';

export interface Context7Snippet {
  id: string;
  content: string;
  score?: number;
  metadata?: Record<string, unknown>;
}

export interface Context7PatternUpsert {
  /** Stable id: Context7 upserts by it, so a re-send never duplicates. */
  id: string;
  content: string;
  metadata?: Record<string, unknown>;
  createdAt?: string;
}

export type Context7Operation = 'health' | 'searchSnippets' | 'upsertPatterns' | 'deletePatterns';

/** Every failure reaching the domain is one of these; its message never contains the API key. */
export class Context7Error extends Error {
  constructor(
    readonly type: Context7ErrorType,
    message: string,
    readonly details: {
      operation: Context7Operation;
      status?: number;
      retryAfterMs?: number;
      /** true when the breaker refused the call without touching the network */
      circuitOpen?: boolean;
      /** true for a 401/403: the key is missing, wrong or revoked */
      unauthorized?: boolean;
    },
  ) {
    super(message);
    this.name = 'Context7Error';
  }
}

/** One logical call (retries included), reported once, for metrics and logs. */
export interface Context7CallOutcome {
  operation: Context7Operation;
  ok: boolean;
  latencyMs: number;
  attempts: number;
  errorType?: Context7ErrorType;
  circuitOpen?: boolean;
}

export type Context7CallObserver = (outcome: Context7CallOutcome) => void;

export interface Context7Port {
  /** GET /v1/health; resolves when Context7 is reachable and accepts the key, else throws Context7Error. */
  health(): Promise<void>;
  searchSnippets(request: { scopeId: string; query?: string; limit: number }): Promise<Context7Snippet[]>;
  /** Idempotent by pattern id; the client splits large lists into batches. */
  upsertPatterns(request: { scopeId: string; patterns: Context7PatternUpsert[] }): Promise<{ upserted: number }>;
  /**
   * Erasure: deletes these patterns of the scope, or the whole scope when `patternIds` is absent. Idempotent:
   * deleting what is already gone succeeds, so the erasure outbox may re-send it.
   */
  deletePatterns(request: { scopeId: string; patternIds?: string[] }): Promise<{ deleted: number }>;
  /** The breaker's view, for health reporting without a network call. */
  circuitState(): 'closed' | 'open' | 'half-open';
}
