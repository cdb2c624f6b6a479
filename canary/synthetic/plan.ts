/**
 * The staging canary's own traffic (Flagger's load-test webhook, in-process): what it sends and how fast. Pure: no
 * I/O, no clock. A quiet staging has no organic traffic, so without this the success criteria's minimum samples are
 * never reached and the canary ends held (canary/timelines/healthy-low-traffic.json ends so).
 *
 * - Scopes: location `loadtest-canary` (the reserved `loadtest-` prefix, service/domain/scope-id.ts), a caller key
 *   restricted to it (`canary-loadtest:loadtest-canary` in the stacks' callerKeys).
 * - Reads and writes go to different scopes: a learning write invalidates its scope's cache, so reads of the
 *   scopes written to would miss and the runbook's cache-hit criterion would judge our own invalidations. Reads
 *   recur over few scopes and queries (the cache has something to hit); every write is one Context7 call.
 * - The rate is sized from the policy (syntheticRate): enough reads and Context7 calls, with a margin, to reach
 *   the success criteria's minimum samples, and the sample a Wilson interval needs to clear their bounds with no
 *   failures at all, within the analysis window.
 */
import { wilsonInterval } from '../analysis/stats';
import type { CanaryPolicy } from '../policy';
import { buildScopeId, type Sha256Hex } from '../../load/lib/scope';
import { SNIPPET_QUERIES, type RequestPlan } from '../../load/lib/traffic-mix';

/** The location every synthetic scope lives in; its caller key is restricted to it. */
export const SYNTHETIC_LOCATION = 'loadtest-canary';
/** The caller key's name in the stacks' callerKeys (infra/config.ts). */
export const SYNTHETIC_KEY_NAME = 'canary-loadtest';
/** Shares of the synthetic mix: memory reads and learning writes only (the canary polls health and metrics itself). */
export const SYNTHETIC_MIX = { reads: 0.8, writes: 0.2 } as const;
/** Required counts are multiplied by this: they are reached by about half the analysis window. */
export const SYNTHETIC_MARGIN = 2;
/** Whatever the policy says, never slower than this (a 60-minute run at 0.2 req/s is 720 requests). */
export const MIN_RATE_PER_SECOND = 0.2;
/** Nor faster: past this the canary would be load-testing staging, not giving it a sample. */
export const MAX_RATE_PER_SECOND = 100;

const READ_SCOPES = 4;
const WRITE_SCOPES = 4;
const READ_QUERIES = 3;

export interface SyntheticScopes {
  reads: string[];
  writes: string[];
}

/** The synthetic scopes in `location` (the smoke suite's load uses the same shape in the probe location). */
export function syntheticScopes(sha256Hex: Sha256Hex, location: string = SYNTHETIC_LOCATION): SyntheticScopes {
  const scope = (role: 'read' | 'write', n: number) =>
    buildScopeId(
      {
        locationId: location,
        agentId: `synthetic-${role}-${n}`,
        promptText: `You are the canary's synthetic ${role} agent ${n}. Answer briefly. (staging synthetic traffic)`,
      },
      sha256Hex,
    );
  return {
    reads: Array.from({ length: READ_SCOPES }, (_, i) => scope('read', i + 1)),
    writes: Array.from({ length: WRITE_SCOPES }, (_, i) => scope('write', i + 1)),
  };
}

/** The smallest n for which k = 0 events of n is significantly below `bound` (Wilson upper limit under it). */
export function zeroEventSample(bound: number, confidence: number): number {
  if (!(bound > 0 && bound < 1)) throw new RangeError(`bound must be in (0, 1), got ${bound}`);
  let n = 1;
  while (wilsonInterval(0, n, confidence).upper >= bound) n += 1;
  return n;
}

export interface SyntheticRate {
  ratePerSecond: number;
  /** real seconds the rate was sized for: the success criteria's minute at --time-scale */
  windowSeconds: number;
  /** memory reads and Context7 calls the window must see (before the margin) */
  needs: { reads: number; context7Calls: number };
  /** why this rate, in one line for the log and the report */
  basis: string;
}

/**
 * The rate that reaches, with SYNTHETIC_MARGIN, both: the reads behind fallbackRate and cacheHitRate, and the
 * Context7 calls behind errorRate, each the larger of its minimum sample and the Wilson sample its success bound
 * needs at zero events. Context7 calls are counted from writes only (reads mostly hit the cache, by design).
 */
export function syntheticRate(policy: Pick<CanaryPolicy, 'minimumSample' | 'confidence' | 'successCriteria'>, timeScale: number): SyntheticRate {
  if (!(timeScale > 0)) throw new RangeError(`timeScale must be positive, got ${timeScale}`);
  const require = policy.successCriteria.require;
  const below = (metric: 'errorRate' | 'fallbackRate') => {
    const bound = require[metric];
    return bound && 'below' in bound ? bound.below : undefined;
  };
  const wilsonNeed = (bound: number | undefined) => (bound === undefined ? 0 : zeroEventSample(bound, policy.confidence));
  const reads = Math.max(policy.minimumSample.memoryRequests, policy.minimumSample.cacheLookups, wilsonNeed(below('fallbackRate')));
  const context7Calls = Math.max(policy.minimumSample.context7Requests, wilsonNeed(below('errorRate')));
  const windowSeconds = (policy.successCriteria.atMinute * 60) / timeScale;
  const requests = Math.max(reads / SYNTHETIC_MIX.reads, context7Calls / SYNTHETIC_MIX.writes) * SYNTHETIC_MARGIN;
  const raw = requests / windowSeconds;
  const ratePerSecond = Math.min(MAX_RATE_PER_SECOND, Math.max(MIN_RATE_PER_SECOND, Math.ceil(raw * 10) / 10));
  return {
    ratePerSecond,
    windowSeconds,
    needs: { reads, context7Calls },
    basis:
      `${reads} reads and ${context7Calls} Context7 calls (minimum samples, or the sample a zero-failure Wilson interval needs under the success bounds), ` +
      `x${SYNTHETIC_MARGIN} margin, in ${windowSeconds.toFixed(0)} s: ${ratePerSecond} req/s (${Math.round(SYNTHETIC_MIX.reads * 100)} % reads, ${Math.round(SYNTHETIC_MIX.writes * 100)} % learning writes)` +
      (raw > MAX_RATE_PER_SECOND ? `; capped at ${MAX_RATE_PER_SECOND} req/s, the minimum samples may not be reached` : ''),
  };
}

const LEARNED = [
  'Synthetic caller prefers a short greeting.',
  'Synthetic caller asks for the earliest free slot.',
  'Synthetic caller wants the booking time repeated.',
] as const;

/**
 * The n-th request of a run: deterministic in n, so the mix is exactly SYNTHETIC_MIX (every fifth a write).
 * Every write carries the run nonce (new content each run) and expires at `expiresAt`, the run's planned end.
 */
export function syntheticRequest(n: number, scopes: SyntheticScopes, runNonce: string, expiresAt: string): RequestPlan {
  const writeEvery = Math.round(1 / SYNTHETIC_MIX.writes);
  if (n % writeEvery === writeEvery - 1) {
    const w = Math.floor(n / writeEvery);
    const scopeId = scopes.writes[w % scopes.writes.length]!;
    const content = `${LEARNED[w % LEARNED.length]} (canary synthetic run ${runNonce}, write ${w + 1})`;
    return {
      endpoint: 'patterns',
      method: 'POST',
      path: '/api/memory/patterns',
      scopeId,
      patternCount: 1,
      body: JSON.stringify({ scopeId, patterns: [{ content, metadata: { source: 'canary-synthetic', run: runNonce }, expiresAt }] }),
    };
  }
  const r = n - Math.floor(n / writeEvery);
  const scopeId = scopes.reads[r % scopes.reads.length]!;
  const query = SNIPPET_QUERIES[Math.floor(r / scopes.reads.length) % READ_QUERIES]!;
  return { endpoint: 'snippets', method: 'POST', path: '/api/memory/snippets', scopeId, body: JSON.stringify({ scopeId, query, limit: 5 }) };
}
