/**
 * Preflight (runbook prerequisite "Context7 API key obtained and validated", and its debug step
 * `curl https://context7.com/api/v1/health -H "Authorization: Bearer $CONTEXT7_API_KEY"`): the stack's key checked
 * through the Context7 client's own health operation, with a deadline, before any flag changes. The health route is
 * part of the memory contract this project assumes (service/context7/openapi.yaml); see service/context7/README.md.
 */
import { createContext7Client } from '../../service/context7/client';
import { Context7Error } from '../../service/context7/port';

export type PreflightVerdict = 'ok' | 'key_refused' | 'contract_mismatch' | 'unreachable' | 'unhealthy';

export interface PreflightResult {
  verdict: PreflightVerdict;
  /** one paragraph for the log: what happened and what to do (never the key) */
  message: string;
  /** HTTP status when Context7 answered */
  status?: number;
}

/** Exit codes of `canary preflight`: each failure its own, so a workflow can tell them apart. */
export const PREFLIGHT_EXIT_CODES: Record<PreflightVerdict, number> = { ok: 0, key_refused: 10, contract_mismatch: 11, unreachable: 12, unhealthy: 13 };

export interface PreflightOptions {
  stack: string;
  baseUrl: string;
  apiKey: string;
  /** the whole check's deadline, body and retries included */
  timeoutMs: number;
}

export async function checkContext7Key(o: PreflightOptions): Promise<PreflightResult> {
  const url = `${o.baseUrl.replace(/\/+$/, '')}/v1/health`;
  const nothingChanged = 'The rollout stops here; no flag was changed.';
  const client = createContext7Client({ baseUrl: o.baseUrl, apiKey: o.apiKey, timeoutMs: o.timeoutMs, maxRetries: 1 });
  try {
    await client.health();
    return { verdict: 'ok', status: 200, message: `Context7 accepted the ${o.stack} stack's API key (GET ${url} answered 200 within ${o.timeoutMs / 1000} s).` };
  } catch (error) {
    if (!(error instanceof Context7Error)) throw error;
    const status = error.details.status;
    if (error.details.unauthorized) {
      return {
        verdict: 'key_refused',
        status,
        message:
          `Context7 refused the API key of the ${o.stack} stack (GET ${url} answered HTTP ${status}). ` +
          `Fix: set the ${o.stack} key with \`pulumi config set --secret memory-rollout:context7ApiKey <key> -s ${o.stack}\` ` +
          `(the key issued for ${o.stack}, not another environment's, and not revoked), then run the workflow again. ${nothingChanged}`,
      };
    }
    if (status === 404) {
      return {
        verdict: 'contract_mismatch',
        status,
        message:
          `GET ${url} answered HTTP 404: the provider at ${o.baseUrl} does not speak the memory contract this project assumes ` +
          `(service/context7/openapi.yaml: /v1/health, /v1/snippets/search, /v1/patterns, taken from the runbook; Context7's public ` +
          `API is documentation retrieval and has no such routes). Point memory-rollout:context7BaseUrl at a provider that speaks it, ` +
          `or adapt service/context7/client.ts, the one place that talks to the provider. ${nothingChanged}`,
      };
    }
    if (error.type === 'network' || error.type === 'timeout') {
      return {
        verdict: 'unreachable',
        message:
          `Context7 at ${o.baseUrl} is unreachable from this runner (${error.type === 'timeout' ? `no answer within ${o.timeoutMs / 1000} s` : 'no connection'}: ${error.message}). ` +
          `Check memory-rollout:context7BaseUrl for the ${o.stack} stack and Context7's status. ${nothingChanged}`,
      };
    }
    return {
      verdict: 'unhealthy',
      ...(status !== undefined ? { status } : {}),
      message: `Context7 at ${o.baseUrl} is not healthy (${error.message}). ${nothingChanged}`,
    };
  } finally {
    client.close();
  }
}
