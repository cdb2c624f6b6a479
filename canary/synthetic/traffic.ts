/**
 * The staging canary's synthetic traffic, driven in-process while the analysis runs (canary/synthetic/plan.ts says
 * what and how fast). Evenly spaced arrivals (an open model, like k6's constant-arrival-rate), every request with
 * a deadline, every answer checked like a load run's (load/lib/response-checks.ts). Its cumulative counts are
 * recorded with each measurement (`measurement.synthetic`), so the report can say how much of the judged traffic it
 * was, and a resumed run keeps what the crashed one recorded.
 */
import { createHash } from 'node:crypto';
import { requestHeaders } from '../../load/lib/credentials';
import { evaluateResponse } from '../../load/lib/response-checks';
import { newRunNonce } from '../../load/lib/traffic-mix';
import type { MetricSource } from '../sources/metrics-poller';
import { syntheticRequest, syntheticScopes, type SyntheticScopes } from './plan';
import type { SyntheticSnapshot } from './snapshot';

export type { SyntheticSnapshot } from './snapshot';



export interface SyntheticTraffic {
  readonly ratePerSecond: number;
  /** the scopes it reads and writes (location loadtest-canary) */
  readonly scopes: SyntheticScopes;
  start(): void;
  snapshot(): SyntheticSnapshot;
  /** Stops sending and waits for the requests in flight (each bounded by its deadline). */
  stop(): Promise<SyntheticSnapshot>;
}

export interface SyntheticTrafficOptions {
  baseUrl: string;
  /** the caller key restricted to loadtest-canary (CANARY_LOADTEST_KEY); only ever an Authorization header */
  apiKey: string;
  ratePerSecond: number;
  /** every learning write's expiresAt: the run's planned end, so its patterns expire with it */
  expiresAt: string;
  timeoutMs: number;
  /** requests in flight at most: a slow service gets fewer requests, never a pile-up */
  maxInFlight?: number;
  /** default: syntheticScopes in loadtest-canary */
  scopes?: SyntheticScopes;
  fetch?: typeof fetch;
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

export function createSyntheticTraffic(o: SyntheticTrafficOptions): SyntheticTraffic {
  if (!(o.ratePerSecond > 0)) throw new RangeError(`ratePerSecond must be positive, got ${o.ratePerSecond}`);
  const doFetch = o.fetch ?? fetch;
  const scopes = o.scopes ?? syntheticScopes(sha256);
  const runNonce = newRunNonce();
  const maxInFlight = o.maxInFlight ?? 32;
  const base = o.baseUrl.replace(/\/+$/, '');
  const counts: SyntheticSnapshot = { ratePerSecond: o.ratePerSecond, sent: 0, skipped: 0, readsAnswered: 0, writesAnswered: 0, failedChecks: 0, transportErrors: 0, unauthorized: 0 };
  const inFlight = new Set<Promise<void>>();
  let timer: NodeJS.Timeout | undefined;
  let n = 0;
  let startedAt = 0;

  async function send(index: number): Promise<void> {
    const plan = syntheticRequest(index, scopes, runNonce, o.expiresAt);
    counts.sent += 1;
    try {
      const res = await doFetch(`${base}${plan.path}`, {
        method: plan.method,
        headers: requestHeaders(plan, { memoryApiKey: o.apiKey }),
        body: plan.body,
        signal: AbortSignal.timeout(o.timeoutMs),
      });
      const text = await res.text();
      if (res.status === 401 || res.status === 403) counts.unauthorized += 1;
      if (plan.endpoint === 'snippets' && res.status === 200) counts.readsAnswered += 1;
      if (plan.endpoint === 'patterns' && res.status >= 200 && res.status < 300) counts.writesAnswered += 1;
      if (!evaluateResponse(plan, res.status, text).every((check) => check.ok)) counts.failedChecks += 1;
    } catch {
      counts.transportErrors += 1;
    }
  }

  function tick(): void {
    // Evenly spaced arrivals against the wall clock: a late timer catches up, a busy service is not piled on.
    const due = Math.floor(((Date.now() - startedAt) / 1000) * o.ratePerSecond) + 1;
    while (n < due && inFlight.size < maxInFlight) {
      const request = send(n).finally(() => inFlight.delete(request));
      inFlight.add(request);
      n += 1;
    }
    if (n < due) {
      // The service could not keep up: the open model does not queue them, it counts them.
      counts.skipped += due - n;
      n = due;
    }
  }

  return {
    ratePerSecond: o.ratePerSecond,
    scopes,
    start() {
      if (timer) return;
      startedAt = Date.now();
      tick();
      timer = setInterval(tick, Math.max(5, Math.min(250, Math.floor(1000 / o.ratePerSecond))));
    },
    snapshot: () => ({ ...counts }),
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await Promise.all([...inFlight]);
      return { ...counts };
    },
  };
}

/** Records the synthetic traffic's cumulative counts with every measurement. */
export function withSyntheticTraffic(base: MetricSource, traffic: SyntheticTraffic): MetricSource {
  return {
    async measure(atSeconds) {
      // Before the measurement: every read counted here was answered, so counted by the service, by the time the
      // metrics are read (a lower bound of the share); and just after it (the estimate, at most 100 %).
      const synthetic = traffic.snapshot();
      const measurement = await base.measure(atSeconds);
      return { ...measurement, synthetic: { ...synthetic, readsAnsweredAfter: traffic.snapshot().readsAnswered } };
    },
  };
}
