/**
 * Drives the shared traffic mix through autocannon: every request comes from the same generator
 * the k6 script uses, and every response gets the same checks.
 */
import { createHash } from 'node:crypto';
import autocannon from 'autocannon';
import { requestHeaders } from '../lib/credentials';
import { evaluateResponse } from '../lib/response-checks';
import { buildScopePool, DEFAULT_SCOPE_POOL } from '../lib/scope';
import { createRng, createTrafficGenerator, type RequestPlan } from '../lib/traffic-mix';
import type { RawRun, ResponseRecord } from './records';

const nodeSha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
export const BENCH_SCOPE_IDS = buildScopePool(DEFAULT_SCOPE_POOL, nodeSha256).map((s) => s.scopeId);

export interface DriveOptions {
  baseUrl: string;
  /** requests per second across all connections (autocannon spends each connection's budget at the
   * start of every second: bursty, unlike k6's evenly spaced arrivals); undefined: closed loop */
  rate?: number;
  connections: number;
  durationSeconds: number;
  seed: number;
  /** tells learning writes of different steps apart */
  writerId: string;
  /** this run's nonce (newRunNonce): learning writes are new content in every run */
  runNonce: string;
  /** The service's caller key, sent on snippets and patterns (load/lib/credentials.ts). */
  memoryApiKey?: string;
  /** sent as X-Load-Test-Token on every request, as k6 sends LOAD_TEST_TOKEN */
  loadTestToken?: string;
}

interface ClientContext {
  plan?: RequestPlan;
}

export async function driveMix(options: DriveOptions): Promise<RawRun> {
  const traffic = createTrafficGenerator({
    scopeIds: BENCH_SCOPE_IDS,
    random: createRng(options.seed),
    writerId: options.writerId,
    runNonce: options.runNonce,
  });
  const records: ResponseRecord[] = [];
  let transportErrors = 0;
  // onResponse and the 'response' event fire back to back, synchronously, for the same response:
  // onResponse sees the plan and body, the event brings the latency.
  let pending: Omit<ResponseRecord, 'latencyMs'> | null = null;

  const started = process.hrtime.bigint();
  let finish: (err: Error | null) => void = () => undefined;
  const finished = new Promise<void>((resolveDone, reject) => {
    finish = (err) => (err ? reject(err) : resolveDone());
  });
  const instance = autocannon({
    url: options.baseUrl,
    connections: options.connections,
    ...(options.rate ? { overallRate: options.rate } : {}),
    duration: options.durationSeconds,
    timeout: 10,
    requests: [
      {
        setupRequest: (req: autocannon.Request, context: ClientContext) => {
          const plan = traffic.next();
          context.plan = plan;
          return {
            ...req,
            method: plan.method,
            path: plan.path,
            body: plan.body,
            headers: requestHeaders(plan, { memoryApiKey: options.memoryApiKey, loadTestToken: options.loadTestToken }),
          };
        },
        onResponse: (status: number, body: string, context: ClientContext) => {
          const plan = context.plan;
          if (!plan) return;
          const results = evaluateResponse(plan, status, body);
          const statusOk = plan.endpoint === 'patterns' ? status >= 200 && status < 300 : status === 200;
          pending = { endpoint: plan.endpoint, status, statusOk, checksPassed: results.filter((r) => r.ok).length, checksTotal: results.length };
        },
      },
    ] as autocannon.Request[],
  }, (err) => finish(err ?? null));
  instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTime: number) => {
    if (pending) records.push({ ...pending, latencyMs: responseTime });
    pending = null;
  });
  instance.on('reqError', () => {
    transportErrors += 1;
  });
  await finished;
  const durationSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { records, transportErrors, durationSeconds };
}
