import type { DeployStatus } from './types';

/**
 * A failed Render API call. Carries Render's `{id, message}` error body when there was one;
 * never the request headers (the API key) or the request body.
 */
export class RenderApiError extends Error {
  override readonly name = 'RenderApiError';
  constructor(
    readonly operation: string,
    /** HTTP status, or 0 when no response arrived (network error, timeout). */
    readonly status: number,
    readonly renderErrorId: string | undefined,
    readonly renderMessage: string,
    readonly attempts = 1,
  ) {
    super(`Render API ${operation} failed (${status === 0 ? 'no response' : `HTTP ${status}`}): ${renderMessage}`);
  }
}

export class DeployFailedError extends Error {
  override readonly name = 'DeployFailedError';
  constructor(
    readonly serviceId: string,
    readonly deployId: string,
    readonly status: DeployStatus,
  ) {
    super(`deploy ${deployId} of service ${serviceId} ended as ${status}`);
  }
}

export class RenderWaitTimeoutError extends Error {
  override readonly name = 'RenderWaitTimeoutError';
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    readonly lastStatus: string | undefined,
  ) {
    super(`timed out after ${timeoutMs} ms waiting for ${what} (last status: ${lastStatus ?? 'unknown'})`);
  }
}
