/**
 * One service's load balancer on loopback, like Render's proxy in front of a service's instances: HTTP-level,
 * per request it picks a routable instance (least in-flight, round robin on ties), forwards over a keep-alive
 * agent of that instance, streams both bodies, and answers 503 itself when no instance is routable. The
 * decisions are pure (lb-routing.ts); this file is the I/O.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RequestRecord } from './platform-metrics';
import { downstreamResponseHeaders, mayRetry, pickUpstream, requestHasBody, upstreamRequestHeaders } from './lb-routing';

export interface Upstream {
  /** The instance id; counters and agents are kept per key. */
  key: string;
  port: number;
}

export interface LoadBalancerOptions {
  /** Deadline of one upstream exchange (until the response has been streamed). Default 60 s. */
  upstreamTimeoutMs?: number;
  /** Attempts per idempotent request when an upstream fails before answering. Default 3 (one per instance at most). */
  maxAttempts?: number;
  /** Platform log line, for upstream failures. */
  log?: (line: string) => void;
}

export interface LoadBalancerCounters {
  /** Requests received from clients. */
  requests: number;
  /** Answers sent to clients, by status class ("2xx", "5xx", ...), including the LB's own. */
  responses: Record<string, number>;
  /** Upstream attempts that failed before or while answering (refused, reset, deadline). */
  upstreamErrors: number;
  /** Attempts sent again to another instance. */
  retries: number;
  /** 503s the LB answered itself because no instance was routable. */
  unavailable: number;
  /** 502s: every allowed attempt failed before the upstream answered. */
  badGateway: number;
  /** 504s: the upstream deadline passed before it answered. */
  timeouts: number;
  /** Answers cut after they had started (upstream died or deadline mid-body). */
  truncated: number;
  /** Clients that went away before their answer was complete. */
  clientAborts: number;
  /** Requests being forwarded now. */
  inFlight: number;
}

const MAX_REQUEST_RECORDS = 100_000;

export class LoadBalancer {
  private server: http.Server | undefined;
  private upstreams: Upstream[] = [];
  private turn = 0;
  private readonly inFlightByKey = new Map<string, number>();
  private readonly sentByKey = new Map<string, number>();
  private readonly agents = new Map<string, http.Agent>();
  private readonly counters: LoadBalancerCounters = {
    requests: 0,
    responses: {},
    upstreamErrors: 0,
    retries: 0,
    unavailable: 0,
    badGateway: 0,
    timeouts: 0,
    truncated: 0,
    clientAborts: 0,
    inFlight: 0,
  };

  /** Every answer's time, status and latency, newest last (bounded): Render's http-requests and http-latency metrics. */
  private readonly answered: RequestRecord[] = [];

  constructor(private readonly options: LoadBalancerOptions = {}) {}

  /** Answers sent since `sinceMs` (epoch ms), oldest first. */
  requestLog(sinceMs = 0): RequestRecord[] {
    return this.answered.filter((r) => r.at >= sinceMs);
  }

  /** Listens on 127.0.0.1 (0: any free port) and returns the port. */
  async listen(port = 0): Promise<number> {
    const server = http.createServer((req, res) => this.forward(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    return (server.address() as AddressInfo).port;
  }

  /** Replaces the routable set at once: every request that starts after this call goes to these upstreams only. */
  route(upstreams: readonly Upstream[]): void {
    this.upstreams = [...upstreams];
  }

  routed(): Upstream[] {
    return [...this.upstreams];
  }

  inFlightTo(key: string): number {
    return this.inFlightByKey.get(key) ?? 0;
  }

  /** Attempts sent to `key` so far (retries included). */
  sentTo(key: string): number {
    return this.sentByKey.get(key) ?? 0;
  }

  /** Resolves true once `key` has no request in flight, false if `timeoutMs` passed first. */
  async idle(key: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.inFlightTo(key) > 0) {
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  }

  /** Closes the keep-alive connections to an instance that is going away. */
  forget(key: string): void {
    this.agents.get(key)?.destroy();
    this.agents.delete(key);
    this.sentByKey.delete(key);
    if (this.inFlightTo(key) === 0) this.inFlightByKey.delete(key);
  }

  snapshot(): LoadBalancerCounters {
    return structuredClone(this.counters);
  }

  async close(): Promise<void> {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private agentFor(key: string): http.Agent {
    let agent = this.agents.get(key);
    if (!agent) {
      // Idle sockets are dropped before the upstream's own keep-alive timeout (Node honours its Keep-Alive hint).
      agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
      this.agents.set(key, agent);
    }
    return agent;
  }

  private answer(res: ServerResponse, status: number, body: Record<string, string>): void {
    if (res.headersSent || res.destroyed) return;
    const json = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json), 'cache-control': 'no-store' });
    res.end(json);
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    const counters = this.counters;
    const receivedAt = Date.now();
    counters.requests += 1;
    counters.inFlight += 1;
    res.once('close', () => {
      counters.inFlight -= 1;
      if (!res.writableFinished) counters.clientAborts += 1;
    });
    res.once('finish', () => {
      const klass = `${Math.floor(res.statusCode / 100)}xx`;
      counters.responses[klass] = (counters.responses[klass] ?? 0) + 1;
      const now = Date.now();
      this.answered.push({ at: now, status: res.statusCode, durationMs: now - receivedAt });
      if (this.answered.length > MAX_REQUEST_RECORDS) this.answered.splice(0, this.answered.length - MAX_REQUEST_RECORDS);
    });

    const method = req.method ?? 'GET';
    const hasBody = requestHasBody(req.headers);
    const headers = upstreamRequestHeaders(req.headers, req.socket.remoteAddress ?? '127.0.0.1');
    const deadlineAt = Date.now() + (this.options.upstreamTimeoutMs ?? 60_000);
    const maxAttempts = this.options.maxAttempts ?? 3;
    const tried = new Set<string>();
    let current: http.ClientRequest | undefined;
    res.once('close', () => {
      if (!res.writableFinished) current?.destroy();
    });
    if (!hasBody) req.resume();

    const attempt = (): void => {
      const candidates = this.upstreams.map((u) => ({ key: u.key, inFlight: this.inFlightTo(u.key) }));
      const pick = pickUpstream(candidates, this.turn, tried);
      if (!pick) {
        if (tried.size === 0) {
          counters.unavailable += 1;
          this.answer(res, 503, { error: 'no_healthy_instance', message: 'no instance of this service is ready to take requests' });
        } else {
          counters.badGateway += 1;
          this.answer(res, 502, { error: 'upstream_unreachable', message: 'no instance answered this request' });
        }
        return;
      }
      this.turn = pick.nextTurn;
      tried.add(pick.key);
      const upstream = this.upstreams.find((u) => u.key === pick.key)!;
      this.inFlightByKey.set(pick.key, this.inFlightTo(pick.key) + 1);
      this.sentByKey.set(pick.key, this.sentTo(pick.key) + 1);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        clearTimeout(timer);
        this.inFlightByKey.set(pick.key, this.inFlightTo(pick.key) - 1);
      };
      let responseStarted = false;
      let timedOut = false;
      const upstreamReq = http.request({
        host: '127.0.0.1',
        port: upstream.port,
        method,
        path: req.url,
        headers,
        agent: this.agentFor(pick.key),
      });
      current = upstreamReq;
      const timer = setTimeout(() => {
        timedOut = true;
        upstreamReq.destroy(new Error(`upstream deadline of ${this.options.upstreamTimeoutMs ?? 60_000} ms passed`));
      }, Math.max(0, deadlineAt - Date.now()));

      upstreamReq.once('response', (upstreamRes) => {
        responseStarted = true;
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.statusMessage, downstreamResponseHeaders(upstreamRes.rawHeaders));
        upstreamRes.pipe(res);
        upstreamRes.once('close', () => {
          release();
          // The upstream went away mid-body: the client must not take a cut answer for a whole one.
          // (A client that left first is counted as an abort, not here.)
          if (!upstreamRes.complete && !res.destroyed) {
            counters.truncated += 1;
            res.destroy();
          }
        });
      });
      upstreamReq.once('error', (error) => {
        release();
        if (res.destroyed && !res.writableFinished) return; // the client left: nothing to answer
        counters.upstreamErrors += 1;
        if (responseStarted) {
          res.destroy(); // counted as truncated when the upstream response closes
          return;
        }
        this.options.log?.(`load balancer: ${method} ${req.url} to ${pick.key} failed: ${error.message}`);
        if (timedOut) {
          counters.timeouts += 1;
          this.answer(res, 504, { error: 'upstream_timeout', message: 'the instance did not answer in time' });
          return;
        }
        if (mayRetry({ method, hasBody, responseStarted, timedOut, attemptsMade: tried.size, maxAttempts })) {
          counters.retries += 1;
          attempt();
          return;
        }
        counters.badGateway += 1;
        this.answer(res, 502, { error: 'upstream_error', message: 'the instance failed before answering' });
      });
      if (hasBody) req.pipe(upstreamReq);
      else upstreamReq.end();
    };
    attempt();
  }
}
