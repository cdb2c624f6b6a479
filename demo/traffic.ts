/**
 * Realistic traffic for the rehearsal: the load helper's mix (load/lib) over a small scope pool, from a
 * few paced workers, with every response checked the load runs' way and every acknowledged learning
 * write entered in a PatternLedger.
 */
import { createHash } from 'node:crypto';
import { requestHeaders } from '../load/lib/credentials';
import { evaluateResponse, savedEveryPattern } from '../load/lib/response-checks';
import { buildScopePool, type ScopePoolShape } from '../load/lib/scope';
import { createRng, createTrafficGenerator, newRunNonce, type RequestPlan } from '../load/lib/traffic-mix';
import type { PatternLedger } from './ledger';

/**
 * 40 locations x 4 agents: 160 scopes, so that the stepped rollout's first step has real treatment traffic (at 5 %,
 * 8 of these scopes hash into the treatment: service/domain/exposure.ts), while Zipf-popular scopes still give the
 * snippet cache something to hit.
 */
export const DEMO_SCOPE_POOL: ScopePoolShape = { locations: 40, agentsPerLocation: 4, promptVariants: 1 };
const sha256Hex = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
export const DEMO_SCOPE_IDS = buildScopePool(DEMO_SCOPE_POOL, sha256Hex).map((s) => s.scopeId);
/**
 * Scope popularity (Zipf exponent) of the demo's traffic: milder than the load runs' 1.1, under which the 8 scopes
 * exposed at 5 % would see under 3 % of the reads; at this value they see about 5 % (test/demo/parts.test.ts).
 */
export const DEMO_ZIPF_EXPONENT = 0.6;


export interface TrafficStats {
  sent: number;
  /** no HTTP answer at all (e.g. while an instance restarts) */
  transportErrors: number;
  byStatus: Record<string, number>;
  /** snippet answers by source: context7, cache, database (fallback), hybrid, disabled */
  snippetSources: Record<string, number>;
  failedChecks: number;
  patternsAcknowledged: number;
  /** scope id -> snippet reads and learning writes sent for it (answered or not) */
  requestsByScope: Record<string, number>;
}

export interface TrafficOptions {
  baseUrl: string;
  ledger?: PatternLedger;
  workers?: number;
  /** pause between one worker's requests */
  pauseMs?: number;
  seed: number;
  /** tells this run's learning writes apart from other runs' */
  label: string;
  requestTimeoutMs?: number;
  /** The service's caller key, sent on snippets and patterns (load/lib/credentials.ts). */
  memoryApiKey?: string;
}

export interface TrafficRun {
  stats(): TrafficStats;
  stop(): Promise<TrafficStats>;
}

export function startTraffic(options: TrafficOptions): TrafficRun {
  const stats: TrafficStats = { sent: 0, transportErrors: 0, byStatus: {}, snippetSources: {}, failedChecks: 0, patternsAcknowledged: 0, requestsByScope: {} };
  const stop = new AbortController();
  const pauseMs = options.pauseMs ?? 20;
  const base = options.baseUrl.replace(/\/+$/, '');
  const runNonce = newRunNonce();

  const worker = async (index: number) => {
    const traffic = createTrafficGenerator({
      scopeIds: DEMO_SCOPE_IDS,
      zipfExponent: DEMO_ZIPF_EXPONENT,
      random: createRng(options.seed * 1000 + index),
      writerId: `${options.label}-w${index}`,
      runNonce,
    });
    while (!stop.signal.aborted) {
      const plan = traffic.next();
      await send(plan);
      if (!stop.signal.aborted) await pause(pauseMs, stop.signal);
    }
  };

  const send = async (plan: RequestPlan) => {
    const sent = () => {
      stats.sent++;
      if (plan.scopeId) stats.requestsByScope[plan.scopeId] = (stats.requestsByScope[plan.scopeId] ?? 0) + 1;
    };
    let status: number;
    let text: string;
    try {
      const res = await fetch(`${base}${plan.path}`, {
        method: plan.method,
        ...(plan.body ? { body: plan.body } : {}),
        headers: requestHeaders(plan, { memoryApiKey: options.memoryApiKey }),
        signal: AbortSignal.any([stop.signal, AbortSignal.timeout(options.requestTimeoutMs ?? 8_000)]),
      });
      status = res.status;
      text = await res.text();
    } catch {
      if (stop.signal.aborted) return; // cut off by stop(): neither sent nor failed
      sent();
      stats.transportErrors++;
      return;
    }
    sent();
    stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
    if (evaluateResponse(plan, status, text).some((c) => !c.ok)) stats.failedChecks++;
    const body = parse(text);
    if (plan.endpoint === 'snippets' && typeof body?.source === 'string') {
      stats.snippetSources[body.source] = (stats.snippetSources[body.source] ?? 0) + 1;
    }
    if (plan.endpoint === 'patterns' && status >= 200 && status < 300 && plan.scopeId && savedEveryPattern(body, plan.patternCount ?? 1)) {
      const ack = body as { patternIds: string[]; destinations: string[] };
      options.ledger?.record({ scopeId: plan.scopeId, patternIds: ack.patternIds, destinations: ack.destinations });
      stats.patternsAcknowledged += ack.patternIds.length;
    }
  };

  const workers = Array.from({ length: options.workers ?? 4 }, (_, i) => worker(i + 1));
  return {
    stats: () => structuredClone(stats),
    async stop() {
      stop.abort();
      await Promise.all(workers);
      return structuredClone(stats);
    },
  };
}

function parse(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
