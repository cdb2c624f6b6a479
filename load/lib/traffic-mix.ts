/**
 * The traffic mix every load run sends, k6 and Node alike: mostly snippet reads over many scopes
 * with a skewed (Zipf) popularity so a cache has something to hit, some post-call learning writes,
 * and a few health/config/metrics polls. Pure and deterministic for a given random source.
 */

export const ENDPOINTS = ['snippets', 'patterns', 'health', 'config', 'metrics'] as const;
export type Endpoint = (typeof ENDPOINTS)[number];

/** Relative weights; they need not sum to 100. */
export type TrafficMix = Record<Endpoint, number>;

export const DEFAULT_MIX: TrafficMix = { snippets: 85, patterns: 8, health: 3, config: 3, metrics: 1 };

/** Zipf exponent for scope popularity: a few busy agents, a long tail of quiet ones. */
export const DEFAULT_ZIPF_EXPONENT = 1.1;

export interface RequestPlan {
  endpoint: Endpoint;
  method: 'GET' | 'POST';
  path: string;
  /** JSON text, for POSTs */
  body?: string;
  /** the scope a snippets/patterns request targets (its response must echo it) */
  scopeId?: string;
  /** patterns a learning write sends (its response must account for each) */
  patternCount?: number;
}

/**
 * The header the service reads its LOAD_TEST_TOKEN from (service/fleet/rate-limit.ts; test/load/load-test-token.test.ts
 * keeps the two equal). Not Authorization, which carries the caller's own credential.
 */
export const LOAD_TEST_TOKEN_HEADER = 'X-Load-Test-Token';

/** Small, fast, seedable PRNG (mulberry32): the same seed gives the same run in k6 and Node. */
export function createRng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Cumulative distribution over `weights`, for inverse-transform sampling. */
function cumulative(weights: number[]): number[] {
  let total = 0;
  const cdf = weights.map((w) => {
    if (!(w >= 0) || !Number.isFinite(w)) throw new Error(`weights must be finite and >= 0, got ${w}`);
    total += w;
    return total;
  });
  if (total <= 0) throw new Error('at least one weight must be positive');
  return cdf.map((c) => c / total);
}

/** First index whose cumulative probability exceeds u (binary search). */
function pickIndex(cdf: number[], u: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (u < cdf[mid]) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export function endpointPicker(mix: TrafficMix): (u: number) => Endpoint {
  for (const key of Object.keys(mix)) {
    if ((ENDPOINTS as readonly string[]).indexOf(key) < 0) throw new Error(`unknown endpoint in traffic mix: ${key}`);
  }
  const cdf = cumulative(ENDPOINTS.map((e) => mix[e] ?? 0));
  return (u) => ENDPOINTS[pickIndex(cdf, u)];
}

/** Index sampler over n items where item k has weight 1/(k+1)^s. */
export function zipfPicker(n: number, exponent: number): (u: number) => number {
  if (!Number.isInteger(n) || n < 1) throw new Error(`zipf population must be a positive integer, got ${n}`);
  const weights: number[] = [];
  for (let k = 0; k < n; k++) weights.push(1 / Math.pow(k + 1, exponent));
  const cdf = cumulative(weights);
  return (u) => pickIndex(cdf, u);
}

/** What callers of a voice agent ask memory about: a small set, so identical reads recur. */
export const SNIPPET_QUERIES = [
  'opening hours',
  'booking an appointment',
  'cancellation policy',
  'parking and directions',
  'prices and insurance',
  'caller prefers a short greeting',
] as const;

const LEARNED_PATTERNS = [
  'Callers asking about parking should hear about the side entrance first.',
  'Offer the earliest free slot before asking for a preferred day.',
  'Repeat the booking time back to the caller before hanging up.',
  'Mention the cancellation fee only when the caller asks to cancel.',
] as const;

export interface TrafficGenerator {
  next(): RequestPlan;
}

export interface TrafficOptions {
  scopeIds: readonly string[];
  mix?: TrafficMix;
  zipfExponent?: number;
  random: () => number;
  /** tells learning writes apart across generators (e.g. k6 VU id) */
  writerId?: string;
  /**
   * New in every run (see newRunNonce): learning writes carry it, so a repeat run against a store that persists
   * writes new patterns instead of re-posting stored ones (which the service answers without calling Context7).
   * It consumes no random numbers: the read mix stays reproducible from the seed alone.
   */
  runNonce: string;
  /** How long a load-test pattern lives (its expiresAt), so load-test writes age out on their own. */
  patternTtlMs?: number;
  now?: () => number;
}

/** Load-test patterns expire after a day by default. */
export const DEFAULT_PATTERN_TTL_MS = 24 * 3_600_000;

/** A short random token naming one run (base 36); `random` must not be the traffic stream's generator. */
export function newRunNonce(random: () => number = Math.random): string {
  let nonce = '';
  while (nonce.length < 10) nonce += Math.floor(random() * 36).toString(36);
  return nonce;
}

export function createTrafficGenerator(options: TrafficOptions): TrafficGenerator {
  const { scopeIds, random } = options;
  if (scopeIds.length === 0) throw new Error('traffic needs at least one scope id');
  const pickEndpoint = endpointPicker(options.mix ?? DEFAULT_MIX);
  const pickScope = zipfPicker(scopeIds.length, options.zipfExponent ?? DEFAULT_ZIPF_EXPONENT);
  const writerId = options.writerId ?? 'load';
  const ttlMs = options.patternTtlMs ?? DEFAULT_PATTERN_TTL_MS;
  const now = options.now ?? Date.now;
  let writes = 0;

  return {
    next(): RequestPlan {
      const endpoint = pickEndpoint(random());
      switch (endpoint) {
        case 'snippets': {
          const scopeId = scopeIds[pickScope(random())];
          const query = SNIPPET_QUERIES[Math.floor(random() * SNIPPET_QUERIES.length)];
          return { endpoint, method: 'POST', path: '/api/memory/snippets', scopeId, body: JSON.stringify({ scopeId, query, limit: 5 }) };
        }
        case 'patterns': {
          const scopeId = scopeIds[pickScope(random())];
          const pattern = LEARNED_PATTERNS[Math.floor(random() * LEARNED_PATTERNS.length)];
          writes += 1;
          const content = `${pattern} (load run ${options.runNonce}, ${writerId}, call ${writes})`;
          const expiresAt = new Date(now() + ttlMs).toISOString();
          return {
            endpoint,
            method: 'POST',
            path: '/api/memory/patterns',
            scopeId,
            patternCount: 1,
            body: JSON.stringify({ scopeId, patterns: [{ content, metadata: { source: 'load-test', run: options.runNonce }, expiresAt }] }),
          };
        }
        case 'health':
          return { endpoint, method: 'GET', path: '/api/memory/health' };
        case 'config':
          return { endpoint, method: 'GET', path: '/api/config' };
        case 'metrics':
          return { endpoint, method: 'GET', path: '/api/metrics/memory' };
      }
    },
  };
}
