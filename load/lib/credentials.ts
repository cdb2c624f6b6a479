/**
 * Caller credentials for load traffic (issue 13): snippet reads and learning writes carry the service's caller key,
 * the public polls (health, config, metrics) carry none, as real callers do. Shared by the k6 script and the Node
 * runner. The key comes from the environment (MEMORY_API_KEY), never an argument, and no report names it.
 */
import { LOAD_TEST_TOKEN_HEADER, type RequestPlan } from './traffic-mix.ts';

export const MEMORY_API_KEY_ENV = 'MEMORY_API_KEY';

export interface LoadCredentials {
  /** the service's caller key (MEMORY_API_KEY), sent on the memory routes only */
  memoryApiKey?: string;
  /** the rate limiter's load-test token (LOAD_TEST_TOKEN), sent on every request */
  loadTestToken?: string;
}

/** The headers of one planned request: JSON for a body, and each credential where it belongs. */
export function requestHeaders(plan: Pick<RequestPlan, 'endpoint' | 'body'>, credentials: LoadCredentials = {}): Record<string, string> {
  const headers: Record<string, string> = {};
  if (plan.body) headers['Content-Type'] = 'application/json';
  if (credentials.memoryApiKey && (plan.endpoint === 'snippets' || plan.endpoint === 'patterns')) headers.Authorization = `Bearer ${credentials.memoryApiKey}`;
  if (credentials.loadTestToken) headers[LOAD_TEST_TOKEN_HEADER] = credentials.loadTestToken;
  return headers;
}
