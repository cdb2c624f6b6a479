/**
 * Caller credentials for load traffic (issue 13): snippet reads and learning writes carry the service's caller key,
 * the public polls (health, config, metrics) carry none, as real callers do. Shared by the k6 script and the Node
 * runner. The key comes from the environment (MEMORY_API_KEY), never an argument, and no report names it.
 */
import type { RequestPlan } from './traffic-mix';

export const MEMORY_API_KEY_ENV = 'MEMORY_API_KEY';

export function requestHeaders(plan: Pick<RequestPlan, 'endpoint' | 'body'>, memoryApiKey: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  if (plan.body) headers['Content-Type'] = 'application/json';
  if (memoryApiKey && (plan.endpoint === 'snippets' || plan.endpoint === 'patterns')) headers.Authorization = `Bearer ${memoryApiKey}`;
  return headers;
}
