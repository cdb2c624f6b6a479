/**
 * Realistic traffic for the rehearsal: the load helper's mix (load/lib) over a small scope pool, from a
 * few paced workers, with every response checked the load runs' way and every acknowledged learning
 * write entered in a PatternLedger.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
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

/**
 * The rehearsal's traffic, in requests a policy minute (one request of the load mix each), whatever the clock and the
 * machine (issue 23). Sized from the evidence the canaries need, by the cache model in test/demo/traffic-clock.test.ts:
 * - canary (the staging canary, whole flag): about 30 % cache hits over its 10 minutes, out of doubt above the
 *   runbook's 20 % (fewer requests a minute leave more cache entries expired between reads);
 * - stepped (production): at 5 % its eight exposed scopes make the 73 Context7 calls the 5 % step needs (no error
 *   in 73 puts the 95 % Wilson bound under the runbook's 5 %) in about 17 policy minutes, within the policy's looks;
 * - steady (--fleet, per service, from the first deploy to the end): every deploy happens under load.
 * The clock (demo/clock.ts) is chosen so the busiest of these fits the machine.
 */
export const DEMO_TRAFFIC = {
  canary: 120,
  stepped: 120,
  steady: 20,
} as const;

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
  /** the schedule: requests a policy minute, and how well the machine kept it */
  schedule: TrafficSchedule;
}

/** What the traffic's clock asked for and what the machine managed (see startTraffic). */
export interface TrafficSchedule {
  requestsPerPolicyMinute: number;
  /** policy minutes the traffic ran */
  policyMinutes: number;
  /** requests the schedule called for by the last look at it */
  due: number;
  /** requests started by then (sent, or still waiting for their answer) */
  started: number;
  /** the largest backlog seen: requests due but not yet started because maxInFlight were waiting for answers */
  maxBehind: number;
}

export interface TrafficOptions {
  baseUrl: string;
  ledger?: PatternLedger;
  /** A fixed number of requests a policy minute, whatever the machine's speed (see startTraffic). */
  requestsPerPolicyMinute: number;
  /** policy seconds per real second: the canary's --time-scale */
  timeScale: number;
  /** requests waiting for their answer at once, at most; past it the schedule's backlog grows (and is reported) */
  maxInFlight?: number;
  seed: number;
  /** tells this run's learning writes apart from other runs' */
  label: string;
  requestTimeoutMs?: number;
  /** The service's caller key, sent on snippets and patterns (load/lib/credentials.ts). */
  memoryApiKey?: string;
  /** wall clock in ms (tests) */
  now?: () => number;
  /** Scope popularity; DEMO_ZIPF_EXPONENT unless given (0: every scope alike, as the stepped e2e tests use). */
  zipfExponent?: number;
}

export interface TrafficRun {
  stats(): TrafficStats;
  stop(): Promise<TrafficStats>;
}

/** In-flight bound: far above what the schedule needs on a quiet machine, so a slow answer never holds the next request. */
export const DEFAULT_MAX_IN_FLIGHT = 64;

/**
 * Requests due `elapsedMs` wall milliseconds into a run whose clock is `timeScale` times faster than the wall's, at
 * `requestsPerPolicyMinute`. Pure: the whole schedule is this one line, so what the canary sees in a policy minute
 * does not depend on how fast the machine answers.
 */
export function requestsDue(elapsedMs: number, requestsPerPolicyMinute: number, timeScale: number): number {
  if (elapsedMs <= 0) return 0;
  return Math.floor((elapsedMs / 60_000) * timeScale * requestsPerPolicyMinute);
}

/**
 * Open-loop traffic on the policy clock: request k starts when the schedule says it is due (requestsDue), not when
 * the previous answer came back. A closed loop (a few workers, each waiting for its answer and then pausing) sends
 * fewer requests a policy minute the slower the machine answers, and on a compressed clock that starves the
 * canary's windows of samples (issue 23: on a loaded machine the 5 % step never saw enough Context7 calls). Here a
 * slow answer only raises the requests in flight; only when maxInFlight wait at once does the schedule slip, and
 * `schedule.maxBehind` says by how much. One generator, one seed: the sequence of requests is the same every run.
 */
export function startTraffic(options: TrafficOptions): TrafficRun {
  const rate = options.requestsPerPolicyMinute;
  if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError(`requestsPerPolicyMinute must be a positive number, got ${rate}`);
  if (!(options.timeScale > 0) || !Number.isFinite(options.timeScale)) throw new RangeError(`timeScale must be a positive number, got ${options.timeScale}`);
  const now = options.now ?? Date.now;
  const maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  const schedule: TrafficSchedule = { requestsPerPolicyMinute: rate, policyMinutes: 0, due: 0, started: 0, maxBehind: 0 };
  const stats: TrafficStats = { sent: 0, transportErrors: 0, byStatus: {}, snippetSources: {}, failedChecks: 0, patternsAcknowledged: 0, requestsByScope: {}, schedule };
  const stop = new AbortController();
  const stopped = aborted(stop.signal);
  const base = options.baseUrl.replace(/\/+$/, '');
  const requestTimeoutMs = options.requestTimeoutMs ?? 8_000;
  // node:http on one keep-alive agent, not fetch: the same requests for about half the client CPU (undici's fetch
  // builds web streams, an AbortSignal pair and a DOMException per request; issue 23's profile of the demo).
  const agent = new http.Agent({ keepAlive: true, maxSockets: maxInFlight });
  const traffic = createTrafficGenerator({
    scopeIds: DEMO_SCOPE_IDS,
    zipfExponent: options.zipfExponent ?? DEMO_ZIPF_EXPONENT,
    random: createRng(options.seed * 1000 + 1),
    writerId: `${options.label}-w1`,
    runNonce: newRunNonce(),
  });
  const startedAt = now();
  const inFlight = new Set<Promise<void>>();
  /** wall ms per request */
  const intervalMs = 60_000 / (options.timeScale * rate);

  const send = async (plan: RequestPlan) => {
    const sent = () => {
      stats.sent++;
      if (plan.scopeId) stats.requestsByScope[plan.scopeId] = (stats.requestsByScope[plan.scopeId] ?? 0) + 1;
    };
    let status: number;
    let text: string;
    try {
      ({ status, text } = await sendText(agent, new URL(`${base}${plan.path}`), plan, requestHeaders(plan, { memoryApiKey: options.memoryApiKey }), requestTimeoutMs, stop.signal));
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

  const dispatcher = (async () => {
    while (!stop.signal.aborted) {
      const elapsed = now() - startedAt;
      const due = requestsDue(elapsed, rate, options.timeScale);
      schedule.due = due;
      schedule.policyMinutes = (elapsed / 60_000) * options.timeScale;
      while (schedule.started < due && inFlight.size < maxInFlight && !stop.signal.aborted) {
        schedule.started++;
        const request = send(traffic.next()).finally(() => inFlight.delete(request));
        inFlight.add(request);
      }
      schedule.maxBehind = Math.max(schedule.maxBehind, due - schedule.started);
      if (schedule.started < due) {
        // Behind, and maxInFlight are waiting: go on as soon as one answers.
        await Promise.race([...inFlight, stopped]);
      } else {
        await pause(Math.max(1, startedAt + (schedule.started + 1) * intervalMs - now()), stop.signal);
      }
    }
  })();

  return {
    stats: () => structuredClone(stats),
    async stop() {
      stop.abort();
      await dispatcher;
      await Promise.all(inFlight);
      agent.destroy();
      return structuredClone(stats);
    },
  };
}

/**
 * One request, its answer as text. Rejects on a transport error, when `timeoutMs` passes before the whole answer
 * came back (the deadline fetch had through AbortSignal.timeout), or when `stop` aborts.
 */
function sendText(
  agent: http.Agent,
  url: URL,
  plan: Pick<RequestPlan, 'method' | 'body'>,
  headers: Record<string, string>,
  timeoutMs: number,
  stop: AbortSignal,
  deadlineAt = Date.now() + timeoutMs,
  staleRetries = 2,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    if (stop.aborted) return reject(new Error('stopped'));
    const req = http.request({ host: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, method: plan.method, headers, agent });
    let settled = false;
    let answered = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      finish();
      req.destroy(error);
      // A kept-alive socket the server had just closed: the request never reached it (Node's documented case for a
      // retry, as fetch does). Again on another socket, within the same deadline.
      const code = (error as NodeJS.ErrnoException).code;
      if (!answered && req.reusedSocket && (code === 'ECONNRESET' || code === 'EPIPE') && staleRetries > 0 && !stop.aborted && Date.now() < deadlineAt) {
        resolve(sendText(agent, url, plan, headers, timeoutMs, stop, deadlineAt, staleRetries - 1));
        return;
      }
      reject(error);
    };
    const onStop = () => fail(new Error('stopped'));
    const timer = setTimeout(() => fail(new Error(`no whole answer within ${timeoutMs} ms`)), Math.max(0, deadlineAt - Date.now()));
    function finish() {
      clearTimeout(timer);
      stop.removeEventListener('abort', onStop);
    }
    stop.addEventListener('abort', onStop, { once: true });
    // `on`, not `once`: a request can emit 'error' more than once (its own destroy, then its socket's end), and an
    // 'error' without a listener would end the process.
    req.on('error', fail);
    req.once('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', fail);
      res.once('aborted', () => fail(new Error('answer cut off')));
      res.once('end', () => {
        if (settled) return;
        if (!res.complete) return fail(new Error('answer cut off'));
        settled = true;
        finish();
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    req.end(plan.body);
  });
}

function parse(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
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
