/**
 * The one client for Context7, following openapi.yaml, over undici or axios (`Transport`, below). Every logical call
 * runs under:
 *   timeout (whole call, retries and waits included)  >  retries (idempotent calls only)  >  circuit breaker  >  HTTP
 * and ends as a value or a Context7Error; the library's raw errors never escape (axios's carry the Authorization
 * header in their config).
 */
import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleepTimer } from 'node:timers/promises';
// axios (or undici) and cockatiel are required when a client is created (below): the canary imports this module for
// its constants and should not pay ~0.35 s CPU per start loading them.
import type { AxiosRequestHeaders } from 'axios';
import type { IBackoff } from 'cockatiel';
import type { ValidateFunction } from 'ajv';
import type { Context7ErrorType } from '../contracts/http';
import { CONTEXT7_ROUTES, loadContract } from './contract';
import {
  Context7Error,
  type Context7CallObserver,
  type Context7Operation,
  type Context7PatternUpsert,
  type Context7Port,
  type Context7Snippet,
} from './port';

export const DEFAULT_CONTEXT7_BASE_URL = 'https://context7.com/api';

/** Waits `ms`, or rejects early when `signal` aborts. Injected by tests to record waits instead of sleeping. */
export type Sleeper = (ms: number, signal: AbortSignal) => Promise<void>;

export interface Context7ClientOptions {
  /** CONTEXT7_BASE_URL; operation paths are appended to it. */
  baseUrl?: string;
  /** CONTEXT7_API_KEY, sent as a bearer token and never written anywhere else. */
  apiKey?: string;
  /** Budget of one logical call, retries and Retry-After waits included. */
  timeoutMs?: number;
  /** Extra attempts after the first, for retryable failures of idempotent operations. */
  maxRetries?: number;
  retryInitialDelayMs?: number;
  retryMaxDelayMs?: number;
  /** Consecutive failed attempts (network, timeout, 5xx, malformed 2xx) that open the breaker. */
  breakerThreshold?: number;
  /** How long the breaker stays open before one probe call may test Context7 again. */
  breakerHalfOpenAfterMs?: number;
  /** Patterns per upsert request; capped at the contract's maximum. */
  batchSize?: number;
  sleep?: Sleeper;
  /** Monotonic clock in ms, for latency and the retry budget. */
  now?: () => number;
  /**
   * The HTTP library under the client (CONTEXT7_HTTP_CLIENT): undici (the default) or axios. Same guards either way
   * (below, `Transport`); `npm run bench:service` times a miss through each in the same run.
   */
  httpClient?: Context7HttpClient;
}

export const CONTEXT7_HTTP_CLIENTS = ['axios', 'undici'] as const;
export type Context7HttpClient = (typeof CONTEXT7_HTTP_CLIENTS)[number];
/**
 * undici since issue 29's seventh round: a miss through it took 0.84-0.93 ms less main-thread CPU than through axios
 * (same runs, alternated, load 7-17), close to a bare node:http proxy's. axios stays one variable away.
 */
export const DEFAULT_CONTEXT7_HTTP_CLIENT: Context7HttpClient = 'undici';

export interface Context7Client extends Context7Port {
  /** Frees keep-alive sockets. */
  close(): void;
}

export const CONTEXT7_CLIENT_DEFAULTS = {
  timeoutMs: 2_000,
  maxRetries: 2,
  retryInitialDelayMs: 50,
  retryMaxDelayMs: 1_000,
  breakerThreshold: 5,
  breakerHalfOpenAfterMs: 10_000,
} as const;

/**
 * Which operations may be retried. All three are idempotent: health and search only read, and upsert
 * writes by each pattern's stable id, so a re-sent batch overwrites the same records instead of adding.
 */
const IDEMPOTENT: Record<Context7Operation, boolean> = {
  health: true,
  searchSnippets: true,
  upsertPatterns: true,
  deletePatterns: true,
};

const MAX_RESPONSE_BYTES = 5 * 1024 * 1024;

const defaultSleep: Sleeper = async (ms, signal) => {
  await sleepTimer(ms, undefined, { signal });
};

export function createContext7Client(options: Context7ClientOptions = {}, observer?: Context7CallObserver): Context7Client {
  const {
    CircuitState,
    ConsecutiveBreaker,
    ExponentialBackoff,
    TaskCancelledError,
    TimeoutStrategy,
    circuitBreaker,
    handleWhen,
    isBrokenCircuitError,
    timeout,
  } = require('cockatiel') as typeof import('cockatiel');
  const contract = loadContract();
  const settings = resolveSettings(options, contract.maxBatchSize);
  const apiKey = options.apiKey;
  const sleep = options.sleep ?? defaultSleep;
  const now = options.now ?? (() => performance.now());

  const transport =
    (options.httpClient ?? DEFAULT_CONTEXT7_HTTP_CLIENT) === 'undici' ? undiciTransport(settings.baseUrl, apiKey) : axiosTransport(settings.baseUrl, apiKey);

  const breaker = circuitBreaker(handleWhen(countsAgainstBreaker), {
    halfOpenAfter: settings.breakerHalfOpenAfterMs,
    breaker: new ConsecutiveBreaker(settings.breakerThreshold),
  });
  let openedBy: Context7ErrorType = 'network';
  let openedAtWallMs = 0;
  breaker.onBreak((reason) => {
    openedAtWallMs = Date.now(); // cockatiel times the open state with Date.now()
    if ('error' in reason && reason.error instanceof Context7Error) openedBy = reason.error.type;
  });

  // abortOnReturn false: a call that already settled has nothing left to abort (its attempt and any retry wait
  // settled first), and cockatiel's abort on return built a DOMException, with its stack, on every call (issue 29's
  // miss profile). The deadline itself is unchanged: the timer still aborts the signal when it expires.
  const deadline = timeout(settings.timeoutMs, { strategy: TimeoutStrategy.Aggressive, abortOnReturn: false });
  const backoff = new ExponentialBackoff({
    initialDelay: settings.retryInitialDelayMs,
    maxDelay: settings.retryMaxDelayMs,
  });

  const redact = (text: string): string => (apiKey ? text.split(apiKey).join('[REDACTED]') : text);
  const fail = (type: Context7ErrorType, message: string, details: Context7Error['details']): Context7Error =>
    new Context7Error(type, redact(message), details);

  function circuitOpenError(operation: Context7Operation): Context7Error {
    return fail(openedBy, `Context7 ${operation} refused: circuit open after repeated ${openedBy} failures`, {
      operation,
      circuitOpen: true,
    });
  }

  /** One logical call: reported to the observer exactly once, however many attempts it took. */
  async function call<T>(operation: Context7Operation, send: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const started = now();
    const attempts = { count: 0 };
    let failure: Context7Error | undefined;
    try {
      return await deadline.execute(({ signal }) => runAttempts(operation, send, signal, started, attempts));
    } catch (raw) {
      failure = classifyThrown(raw, operation, false);
      throw failure;
    } finally {
      report({
        operation,
        ok: failure === undefined,
        latencyMs: Math.max(0, now() - started),
        attempts: attempts.count,
        ...(failure ? { errorType: failure.type } : {}),
        ...(failure?.details.circuitOpen ? { circuitOpen: true } : {}),
      });
    }
  }

  function report(outcome: Parameters<Context7CallObserver>[0]): void {
    try {
      observer?.(outcome);
    } catch {
      // A broken metrics hook must not turn a Context7 success into a failure.
    }
  }

  async function runAttempts<T>(
    operation: Context7Operation,
    send: (signal: AbortSignal) => Promise<T>,
    signal: AbortSignal,
    started: number,
    attempts: { count: number },
  ): Promise<T> {
    let delays: IBackoff<unknown> | undefined;
    let previous: Context7Error | undefined;
    for (;;) {
      if (signal.aborted) throw timeoutError(operation);
      // cockatiel queues callers behind a half-open probe; we refuse them instead, so a hung Context7
      // costs milliseconds while its probe waits out the timeout.
      if (breaker.state === CircuitState.HalfOpen) throw previous ?? circuitOpenError(operation);
      let error: Context7Error;
      try {
        return await breaker.execute(async () => {
          attempts.count += 1;
          try {
            return await send(signal);
          } catch (raw) {
            // Classified here so the breaker's filter sees the failure type.
            throw classifyThrown(raw, operation, signal.aborted);
          }
        }, signal);
      } catch (raw) {
        if (isBrokenCircuitError(raw)) {
          // If our own retries opened the breaker, the call reached Context7: report what it answered.
          throw previous ?? circuitOpenError(operation);
        }
        error = classifyThrown(raw, operation, signal.aborted);
      }
      previous = error;
      if (signal.aborted) throw error.type === 'timeout' ? error : timeoutError(operation);
      if (!IDEMPOTENT[operation] || !isRetryable(error) || attempts.count > settings.maxRetries) throw error;
      let waitMs: number;
      if (error.type === 'rate_limited' && error.details.retryAfterMs !== undefined) {
        waitMs = error.details.retryAfterMs;
      } else {
        delays = delays ? delays.next(undefined) : backoff.next();
        waitMs = delays.duration;
      }
      // Waiting past the budget would only turn the real cause into a timeout; rate_limited keeps
      // retryAfterMs so a backfill can wait and resume.
      if (started + settings.timeoutMs - now() <= waitMs) throw error;
      try {
        await sleep(waitMs, signal);
      } catch {
        throw timeoutError(operation);
      }
    }
  }

  function timeoutError(operation: Context7Operation): Context7Error {
    return fail('timeout', `Context7 ${operation} timed out after ${settings.timeoutMs}ms`, { operation });
  }

  /** Maps anything thrown below us (the HTTP library, cockatiel, our own validation) to a Context7Error. */
  function classifyThrown(raw: unknown, operation: Context7Operation, aborted: boolean): Context7Error {
    if (raw instanceof Context7Error) return raw;
    if (raw instanceof TaskCancelledError || aborted || transport.isCancel(raw)) return timeoutError(operation);
    const code = transportCode(raw);
    if (code === 'ERR_BAD_RESPONSE') {
      // The library refused the body itself (over the cap, or undecodable): Context7 answered, badly.
      return fail('api_error', `Context7 ${operation} failed: unreadable response (${code})`, { operation });
    }
    return fail('network', `Context7 ${operation} failed: network error (${code})`, { operation });
  }

  function interpret<T>(operation: Context7Operation, response: TransportResponse, validate: ValidateFunction): T {
    const { status } = response;
    if (status >= 200 && status < 300) {
      if (validate(response.data)) return response.data as T;
      return throwError(fail('api_error', `Context7 ${operation} failed: malformed ${status} response body`, { operation, status }));
    }
    const code = contract.errorBody(response.data) ? safeToken((response.data as { error: string }).error) : undefined;
    const suffix = code ? ` (${code})` : '';
    if (status === 429) {
      const retryAfterMs = parseRetryAfter(response.header('retry-after'));
      return throwError(
        fail('rate_limited', `Context7 ${operation} rate limited: HTTP 429${suffix}`, {
          operation,
          status,
          ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
        }),
      );
    }
    const unauthorized = status === 401 || status === 403;
    return throwError(
      fail('api_error', `Context7 ${operation} failed: HTTP ${status}${suffix}`, {
        operation,
        status,
        ...(unauthorized ? { unauthorized: true } : {}),
      }),
    );
  }

  async function request<T>(
    operation: Context7Operation,
    signal: AbortSignal,
    validate: ValidateFunction,
    body?: unknown,
  ): Promise<T> {
    const route = CONTEXT7_ROUTES[operation];
    const response = await transport.send(route.method, route.path, body, signal);
    return interpret<T>(operation, response, validate);
  }

  async function upsertBatch(scopeId: string, patterns: Context7PatternUpsert[]): Promise<number> {
    const body = { scopeId, patterns: patterns.map(toWirePattern) };
    const result = await call('upsertPatterns', (signal) =>
      request<{ upserted: number }>('upsertPatterns', signal, contract.upsertResponse, body),
    );
    return result.upserted;
  }

  return {
    async health() {
      await call('health', (signal) => request('health', signal, contract.healthResponse));
    },

    async searchSnippets({ scopeId, query, limit }) {
      const body = {
        scopeId,
        limit: Number.isFinite(limit) ? Math.min(Math.max(1, Math.floor(limit)), contract.maxSearchLimit) : contract.maxSearchLimit,
        ...(query ? { query } : {}),
      };
      const result = await call('searchSnippets', (signal) =>
        request<{ snippets: Context7Snippet[] }>('searchSnippets', signal, contract.searchResponse, body),
      );
      return result.snippets;
    },

    /** Each batch is one logical call (own budget, retries and observer outcome); a failed batch throws,
     * and since upserts are idempotent the caller simply re-sends the whole list. */
    async upsertPatterns({ scopeId, patterns }) {
      let upserted = 0;
      for (let start = 0; start < patterns.length; start += settings.batchSize) {
        upserted += await upsertBatch(scopeId, patterns.slice(start, start + settings.batchSize));
      }
      return { upserted };
    },

    /** One call per scope (or per 100 ids): erasures are rare and small. */
    async deletePatterns({ scopeId, patternIds }) {
      const batches = patternIds === undefined ? [undefined] : chunk(patternIds, contract.maxBatchSize);
      let deleted = 0;
      for (const ids of batches) {
        const body = { scopeId, ...(ids ? { ids } : {}) };
        const result = await call('deletePatterns', (signal) =>
          request<{ deleted: number }>('deletePatterns', signal, contract.deleteResponse, body),
        );
        deleted += result.deleted;
      }
      return { deleted };
    },

    circuitState() {
      switch (breaker.state) {
        case CircuitState.Closed:
          return 'closed';
        case CircuitState.HalfOpen:
          return 'half-open';
        default:
          // cockatiel moves to half-open lazily on the next call; report when that call would probe.
          return Date.now() - openedAtWallMs >= settings.breakerHalfOpenAfterMs ? 'half-open' : 'open';
      }
    },

    close() {
      transport.close();
    },
  };
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size));
  return chunks;
}

function resolveSettings(options: Context7ClientOptions, maxBatchSize: number) {
  const baseUrl = (options.baseUrl ?? DEFAULT_CONTEXT7_BASE_URL).replace(/\/+$/, '');
  let parsed: URL;
  try {
    parsed = new URL(baseUrl);
  } catch {
    throw new Error('CONTEXT7_BASE_URL must be an absolute http(s) URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new Error('CONTEXT7_BASE_URL must be an absolute http(s) URL');
  }
  if (parsed.username || parsed.password) {
    throw new Error('CONTEXT7_BASE_URL must not carry credentials; use CONTEXT7_API_KEY');
  }
  const positive = (name: string, value: number | undefined, fallback: number, min = 1): number => {
    const chosen = value ?? fallback;
    if (!Number.isFinite(chosen) || chosen < min) throw new Error(`Context7 client option ${name} must be >= ${min}`);
    return chosen;
  };
  const d = CONTEXT7_CLIENT_DEFAULTS;
  return {
    baseUrl,
    timeoutMs: positive('timeoutMs', options.timeoutMs, d.timeoutMs),
    maxRetries: Math.floor(positive('maxRetries', options.maxRetries, d.maxRetries, 0)),
    retryInitialDelayMs: positive('retryInitialDelayMs', options.retryInitialDelayMs, d.retryInitialDelayMs, 0),
    retryMaxDelayMs: positive('retryMaxDelayMs', options.retryMaxDelayMs, d.retryMaxDelayMs, 0),
    breakerThreshold: Math.floor(positive('breakerThreshold', options.breakerThreshold, d.breakerThreshold)),
    breakerHalfOpenAfterMs: positive('breakerHalfOpenAfterMs', options.breakerHalfOpenAfterMs, d.breakerHalfOpenAfterMs),
    batchSize: Math.min(Math.floor(positive('batchSize', options.batchSize, maxBatchSize)), maxBatchSize),
  };
}

/** Failures that say "Context7 is unhealthy", as opposed to "this request was wrong" (4xx) or "slow down" (429). */
function countsAgainstBreaker(error: unknown): boolean {
  if (!(error instanceof Context7Error)) return false;
  if (error.type === 'network' || error.type === 'timeout') return true;
  const status = error.details.status ?? 0;
  return error.type === 'api_error' && (status >= 500 || (status >= 200 && status < 300));
}

function isRetryable(error: Context7Error): boolean {
  if (error.details.circuitOpen) return false;
  switch (error.type) {
    case 'network':
    case 'rate_limited':
      return true;
    case 'api_error':
      return (error.details.status ?? 0) >= 500;
    default:
      return false;
  }
}

/** Retry-After is delay-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(header: unknown, nowMs = Date.now()): number | undefined {
  if (typeof header !== 'string' || header.trim() === '') return undefined;
  const value = header.trim();
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

/** Only short identifiers from the outside world make it into messages. */
function safeToken(value: unknown): string | undefined {
  return typeof value === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(value) ? value : undefined;
}

function transportCode(raw: unknown): string {
  const candidate = raw as { code?: unknown; cause?: { code?: unknown } } | null;
  return safeToken(candidate?.code) ?? safeToken(candidate?.cause?.code) ?? 'unknown';
}

function toWirePattern(pattern: Context7PatternUpsert): Context7PatternUpsert {
  return {
    id: pattern.id,
    content: pattern.content,
    ...(pattern.metadata !== undefined ? { metadata: pattern.metadata } : {}),
    ...(pattern.createdAt !== undefined ? { createdAt: pattern.createdAt } : {}),
  };
}

/** Any variable axios's environment proxy lookup (proxy-from-env) would use, in either case. */
function proxyConfiguredInEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return ['http_proxy', 'https_proxy', 'all_proxy'].some((name) => Boolean(env[name] || env[name.toUpperCase()]));
}

/** One answer, as the client reads it: status, a header by its lower-case name, the body parsed as JSON. */
interface TransportResponse {
  status: number;
  header(name: string): string | undefined;
  /** The body parsed as JSON; the text itself when it is not JSON ('' when empty), so the schema check fails it. */
  data: unknown;
}

/**
 * The HTTP library under the client, with the guards both must keep: a fixed base URL and relative paths (a path can
 * never become another host), no redirects (the bearer token never follows one), every status given back (the
 * client classifies them), a 5 MB cap on the answer and an undecodable one as `ERR_BAD_RESPONSE`, the call's signal
 * aborting the request, idle keep-alive sockets dropped after 4 s, and an HTTP(S)_PROXY set at start used.
 */
interface Transport {
  send(method: 'GET' | 'POST', path: string, body: unknown, signal: AbortSignal): Promise<TransportResponse>;
  /** An abort of the request by its signal, however the library reports it. */
  isCancel(raw: unknown): boolean;
  /** Frees keep-alive sockets. */
  close(): void;
}

// Idle keep-alive sockets are dropped after 4 s, before a typical 5 s server keep-alive timeout, so a request never
// goes out on a socket the server is closing (a spurious ECONNRESET). Active requests are unaffected: the whole-call
// timeout governs them.
const KEEP_ALIVE_IDLE_MS = 4_000;

function axiosTransport(baseUrl: string, apiKey: string | undefined): Transport {
  const axios = require('axios') as typeof import('axios');
  const agentOptions = { keepAlive: true, timeout: KEEP_ALIVE_IDLE_MS };
  const agents = { http: new http.Agent(agentOptions), https: new https.Agent(agentOptions) };
  const instance = axios.create({
    baseURL: baseUrl,
    // A path can never become another host, and the bearer token never follows a redirect.
    allowAbsoluteUrls: false,
    maxRedirects: 0,
    // Statuses are classified by the client, so axios only throws for transport failures and aborts.
    validateStatus: () => true,
    responseType: 'json',
    maxContentLength: MAX_RESPONSE_BYTES,
    httpAgent: agents.http,
    httpsAgent: agents.https,
    // axios looks for a proxy in the environment on every request (six process.env reads, issue 29's miss profile).
    // With none configured at start the answer is always "none": said once here. With one set, axios still decides.
    ...(proxyConfiguredInEnv() ? {} : { proxy: false as const }),
    // Bodies here are always plain objects: serialised directly, without axios's generic checks for form data,
    // streams, buffers and URL parameters in front of every call. Same JSON and Content-Type as axios's default.
    transformRequest: [jsonRequestBody],
    headers: {
      Accept: 'application/json',
      ...(apiKey ? { Authorization: `Bearer ${apiKey}` } : {}),
    },
  });
  return {
    async send(method, path, body, signal) {
      const response = await instance.request({ method, url: path, data: body, signal });
      return { status: response.status, header: (name) => headerValue(response.headers[name]), data: response.data };
    },
    isCancel: (raw) => axios.isCancel(raw),
    close() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

/**
 * undici's `request` on one keep-alive Agent: no redirects (it follows none unless asked), no environment proxy
 * unless one is set at start (then EnvHttpProxyAgent, as the axios transport decides), the body read here against
 * the cap and parsed as axios's `responseType: 'json'` parses it.
 */
function undiciTransport(baseUrl: string, apiKey: string | undefined): Transport {
  const undici = require('undici') as typeof import('undici');
  const base = new URL(baseUrl);
  const origin = base.origin;
  const prefix = base.pathname.replace(/\/+$/, '');
  const keepAlive = { keepAliveTimeout: KEEP_ALIVE_IDLE_MS, keepAliveMaxTimeout: KEEP_ALIVE_IDLE_MS };
  // proxyTunnel false: an http:// target goes to an http:// proxy as an absolute-form request, as axios sends it (an
  // https:// target is still tunnelled with CONNECT).
  // (undici 6 passes the option on to its ProxyAgent; its EnvHttpProxyAgent type does not list it.)
  const proxyOptions = { ...keepAlive, proxyTunnel: false };
  const dispatcher = proxyConfiguredInEnv() ? new undici.EnvHttpProxyAgent(proxyOptions) : new undici.Agent(keepAlive);
  const headers: Record<string, string> = { accept: 'application/json', ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) };
  const jsonHeaders: Record<string, string> = { ...headers, 'content-type': 'application/json' };
  return {
    async send(method, path, body, signal) {
      const response = await dispatcher.request({
        origin,
        path: prefix + path,
        method,
        headers: body === undefined ? headers : jsonHeaders,
        body: body === undefined ? null : JSON.stringify(body),
        signal,
      });
      const text = await readCapped(response.body);
      return { status: response.statusCode, header: (name) => headerValue(response.headers[name]), data: parsedOrText(text) };
    },
    // An abort is classified by the signal (aborted at the deadline); undici's own code for it, besides.
    isCancel: (raw) => (raw as { code?: unknown } | null)?.code === 'UND_ERR_ABORTED',
    close() {
      void dispatcher.destroy().catch(() => undefined);
    },
  };
}

/** The answer's text, or `ERR_BAD_RESPONSE` once it passes the cap (axios's maxContentLength, the same code). */
function readCapped(body: import('node:stream').Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    body.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_RESPONSE_BYTES) {
        const error = Object.assign(new Error(`response over ${MAX_RESPONSE_BYTES} bytes`), { code: 'ERR_BAD_RESPONSE' });
        body.destroy();
        reject(error);
        return;
      }
      chunks.push(chunk);
    });
    body.on('end', () => resolve(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8')));
    body.on('error', reject);
  });
}

/** As axios's `responseType: 'json'` with its default (silent) parsing: the text itself when it is not JSON. */
function parsedOrText(text: string): unknown {
  if (text === '') return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function headerValue(value: unknown): string | undefined {
  if (Array.isArray(value)) return typeof value[0] === 'string' ? value[0] : undefined;
  return typeof value === 'string' ? value : undefined;
}

function jsonRequestBody(data: unknown, headers: AxiosRequestHeaders): unknown {
  if (data === undefined) return data;
  headers.setContentType('application/json', false);
  return JSON.stringify(data);
}

function throwError(error: Context7Error): never {
  throw error;
}
