/**
 * Continuous client traffic against a service URL, for zero-downtime checks: keep-alive workers share one
 * keep-alive agent (their sockets to the LB stay open across deploys), fresh workers open a connection per
 * request. Every request has a deadline; one that errors or times out is "without answer".
 */
import http from 'node:http';

export interface TrafficRequest {
  method: 'GET' | 'POST';
  path: string;
  body?: string;
  headers?: Record<string, string>;
}

export interface TrafficReport {
  sent: number;
  answered: number;
  withoutAnswer: number;
  /** Answers by status code. */
  statuses: Record<string, number>;
  serverErrors: number;
  /** The first few failures, to say what went wrong. */
  failures: string[];
  /** Answers per value of the `tagHeader` response header (e.g. the commit that answered). */
  byTag: Record<string, number>;
}

export interface TrafficOptions {
  requests: readonly TrafficRequest[];
  keepAliveWorkers: number;
  freshWorkers: number;
  timeoutMs?: number;
  /** Pause between two requests of a worker. */
  pauseMs?: number;
  /** Stops by itself after this many requests (a bound, in case stop() is never called). */
  maxRequests?: number;
  tagHeader?: string;
}

export function startTraffic(baseUrl: string, options: TrafficOptions): { stop(): Promise<TrafficReport>; report(): TrafficReport } {
  const report: TrafficReport = { sent: 0, answered: 0, withoutAnswer: 0, statuses: {}, serverErrors: 0, failures: [], byTag: {} };
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: options.keepAliveWorkers });
  const maxRequests = options.maxRequests ?? 100_000;
  let stopping = false;
  let next = 0;

  const once = (request: TrafficRequest, agent: http.Agent | false): Promise<void> =>
    new Promise((resolve) => {
      report.sent += 1;
      const fail = (why: string) => {
        report.withoutAnswer += 1;
        if (report.failures.length < 10) report.failures.push(`${request.method} ${request.path}: ${why}`);
        resolve();
      };
      const req = http.request(
        `${baseUrl}${request.path}`,
        { method: request.method, agent, headers: { 'content-type': 'application/json', ...(request.headers ?? {}) }, timeout: options.timeoutMs ?? 10_000 },
        (res) => {
          res.resume();
          res.once('end', () => {
            report.answered += 1;
            const status = res.statusCode ?? 0;
            report.statuses[status] = (report.statuses[status] ?? 0) + 1;
            if (status >= 500) {
              report.serverErrors += 1;
              if (report.failures.length < 10) report.failures.push(`${request.method} ${request.path}: HTTP ${status}`);
            }
            const tag = options.tagHeader ? res.headers[options.tagHeader] : undefined;
            if (typeof tag === 'string') report.byTag[tag] = (report.byTag[tag] ?? 0) + 1;
            resolve();
          });
          res.once('error', (error) => fail(`response error: ${error.message}`));
        },
      );
      req.once('timeout', () => req.destroy(new Error('no answer before the deadline')));
      req.once('error', (error) => fail(error.message));
      req.end(request.body);
    });

  const worker = async (agent: http.Agent | false) => {
    while (!stopping && report.sent < maxRequests) {
      const request = options.requests[next % options.requests.length]!;
      next += 1;
      await once(request, agent);
      if (options.pauseMs) await new Promise((r) => setTimeout(r, options.pauseMs));
    }
  };
  const workers = [
    ...Array.from({ length: options.keepAliveWorkers }, () => worker(keepAlive)),
    ...Array.from({ length: options.freshWorkers }, () => worker(false)),
  ];
  return {
    report: () => structuredClone(report),
    async stop() {
      stopping = true;
      await Promise.all(workers);
      keepAlive.destroy();
      return structuredClone(report);
    },
  };
}
