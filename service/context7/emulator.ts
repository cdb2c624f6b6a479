/**
 * A stand-in for Context7: a real HTTP server on loopback serving openapi.yaml at its root, in memory,
 * with faults switchable at run time (in process via the handle, or from other processes via /__emulator/*).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ValidateFunction } from 'ajv';
import { z } from 'zod';
import { bm25Scores, parseSearchQuery, searchTokens } from '../data-access/search-text';
import { CONTEXT7_ROUTES, describeValidationErrors, loadContract } from './contract';
import type { Context7Operation } from './port';

export const faultsSchema = z.strictObject({
  /** share of contract calls answered 500/503, drawn from a seeded PRNG */
  errorRate: z.number().min(0).max(1),
  /** added before every contract call is answered */
  latencyMs: z.number().int().min(0).max(600_000),
  /** accept the request and never answer */
  hang: z.boolean(),
  /** answer 429 with this Retry-After; null = off */
  rateLimit: z.strictObject({ retryAfterSeconds: z.number().int().min(0).max(86_400) }).nullable(),
  /** destroy the socket without answering: a network error at the client */
  outage: z.boolean(),
  /** answer 401 to every call, as if the key were revoked */
  wrongKey: z.boolean(),
});
export type Context7Faults = z.infer<typeof faultsSchema>;
export const faultsPatchSchema = faultsSchema.partial();
export type Context7FaultsPatch = z.infer<typeof faultsPatchSchema>;

export const NO_FAULTS: Readonly<Context7Faults> = Object.freeze({
  errorRate: 0,
  latencyMs: 0,
  hang: false,
  rateLimit: null,
  outage: false,
  wrongKey: false,
});

export interface StoredPattern {
  id: string;
  content: string;
  metadata?: Record<string, unknown>;
  createdAt?: string;
  /** server-side write order, newest highest */
  revision: number;
}

type CountedRoute = Context7Operation | 'other';

export interface EmulatorStats {
  /** contract requests that reached the server, faulted or not (control routes excluded) */
  requests: Record<CountedRoute, number>;
  totalRequests: number;
  patternCounts: Record<string, number>;
}

export interface EmulatorOptions {
  port?: number;
  host?: string;
  /** when set, every contract call needs `Authorization: Bearer <apiKey>` */
  apiKey?: string;
  faults?: Context7FaultsPatch;
  /** seeds the PRNG behind errorRate, so a run's failures are reproducible */
  seed?: number;
  /** largest request body accepted, bytes */
  maxBodyBytes?: number;
}

export interface Context7Emulator {
  url: string;
  port: number;
  setFaults(patch: Context7FaultsPatch): Context7Faults;
  resetFaults(): Context7Faults;
  faults(): Context7Faults;
  patterns(scopeId: string): StoredPattern[];
  stats(): EmulatorStats;
  close(): Promise<void>;
}

const CONTROL_PREFIX = '/__emulator/';

export async function startContext7Emulator(options: EmulatorOptions = {}): Promise<Context7Emulator> {
  const contract = loadContract();
  const host = options.host ?? '127.0.0.1';
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  const expectedKeyDigest = options.apiKey ? digest(options.apiKey) : undefined;
  const random = mulberry32(options.seed ?? 7);

  let faults: Context7Faults = faultsSchema.parse({ ...NO_FAULTS, ...(options.faults ?? {}) });
  const store = new Map<string, Map<string, StoredPattern>>();
  let revision = 0;
  const requests: Record<CountedRoute, number> = { health: 0, searchSnippets: 0, upsertPatterns: 0, deletePatterns: 0, other: 0 };
  const pendingTimers = new Set<NodeJS.Timeout>();
  let closing = false;

  const routeByKey = new Map<string, Context7Operation>(
    (Object.entries(CONTEXT7_ROUTES) as Array<[Context7Operation, { method: string; path: string }]>).map(
      ([operation, route]) => [`${route.method} ${route.path}`, operation],
    ),
  );

  function stats(): EmulatorStats {
    const patternCounts: Record<string, number> = {};
    for (const [scopeId, patterns] of store) patternCounts[scopeId] = patterns.size;
    const totalRequests = Object.values(requests).reduce((sum, n) => sum + n, 0);
    return { requests: { ...requests }, totalRequests, patternCounts };
  }

  function patternsOf(scopeId: string): StoredPattern[] {
    return [...(store.get(scopeId)?.values() ?? [])].map((p) => ({ ...p }));
  }

  function setFaults(patch: Context7FaultsPatch): Context7Faults {
    faults = faultsSchema.parse({ ...faults, ...faultsPatchSchema.parse(patch) });
    return { ...faults };
  }

  function wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        pendingTimers.delete(timer);
        resolve();
      }, ms);
      pendingTimers.add(timer);
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://emulator.invalid');
    if (url.pathname.startsWith(CONTROL_PREFIX)) return handleControl(req, res, url);

    const operation = routeByKey.get(`${req.method} ${url.pathname}`);
    requests[operation ?? 'other'] += 1;
    const body = await readBody(req, maxBodyBytes);
    const active = faults;

    if (active.outage) {
      req.socket.destroy();
      return;
    }
    if (active.hang) return; // never answered; close() destroys the socket
    if (active.latencyMs > 0) await wait(active.latencyMs);
    if (closing) return;
    if (active.wrongKey || !authorized(req.headers.authorization, expectedKeyDigest)) {
      return sendError(res, 401, 'unauthorized', 'missing or invalid bearer token');
    }
    if (active.rateLimit) {
      res.setHeader('Retry-After', String(active.rateLimit.retryAfterSeconds));
      return sendError(res, 429, 'rate_limited', 'too many requests');
    }
    if (active.errorRate > 0 && random() < active.errorRate) {
      const status = random() < 0.5 ? 500 : 503;
      return sendError(res, status, 'internal_error', 'injected failure');
    }
    if (!operation) return sendError(res, 404, 'not_found', `no route ${req.method} ${url.pathname}`);
    if (body.tooLarge) return sendError(res, 413, 'payload_too_large', `body over ${maxBodyBytes} bytes`);

    switch (operation) {
      case 'health':
        return sendJson(res, 200, { status: 'ok' });
      case 'searchSnippets': {
        const parsed = parseAndValidate(res, body.text, contract.searchRequest);
        if (!parsed.ok) return;
        return sendJson(res, 200, { snippets: search(parsed.value as SearchRequest) });
      }
      case 'upsertPatterns': {
        const parsed = parseAndValidate(res, body.text, contract.upsertRequest);
        if (!parsed.ok) return;
        return sendJson(res, 200, { upserted: upsert(parsed.value as UpsertRequest) });
      }
      case 'deletePatterns': {
        const parsed = parseAndValidate(res, body.text, contract.deleteRequest);
        if (!parsed.ok) return;
        return sendJson(res, 200, { deleted: remove(parsed.value as DeleteRequest) });
      }
    }
  }

  function search({ scopeId, query, limit }: SearchRequest) {
    // Exact scope key: a prefix, wildcard or look-alike scope id simply finds nothing.
    return rankPatterns([...(store.get(scopeId)?.values() ?? [])], query)
      .slice(0, limit)
      .map(({ pattern, score }) => ({
        id: pattern.id,
        content: pattern.content,
        score,
        ...(pattern.metadata ? { metadata: pattern.metadata } : {}),
      }));
  }

  function upsert({ scopeId, patterns }: UpsertRequest): number {
    let scope = store.get(scopeId);
    if (!scope) {
      scope = new Map();
      store.set(scopeId, scope);
    }
    for (const pattern of patterns) {
      revision += 1;
      scope.set(pattern.id, { ...pattern, revision });
    }
    return patterns.length;
  }

  /** Erasure: the listed ids of the scope, or the whole scope; what is already gone counts as nothing deleted. */
  function remove({ scopeId, ids }: DeleteRequest): number {
    const scope = store.get(scopeId);
    if (!scope) return 0;
    if (ids === undefined) {
      store.delete(scopeId);
      return scope.size;
    }
    let deleted = 0;
    for (const id of ids) if (scope.delete(id)) deleted += 1;
    if (scope.size === 0) store.delete(scopeId);
    return deleted;
  }

  async function handleControl(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const body = await readBody(req, maxBodyBytes);
    const route = `${req.method} ${url.pathname.slice(CONTROL_PREFIX.length)}`;
    switch (route) {
      case 'GET state':
        return sendJson(res, 200, { faults, ...stats() });
      case 'POST faults': {
        let patch: unknown;
        try {
          patch = body.text ? JSON.parse(body.text) : {};
        } catch {
          return sendError(res, 400, 'invalid_json', 'body is not valid JSON');
        }
        const parsed = faultsPatchSchema.safeParse(patch);
        if (!parsed.success) {
          return sendError(res, 400, 'invalid_request', parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
        }
        return sendJson(res, 200, { faults: setFaults(parsed.data) });
      }
      case 'DELETE faults':
        faults = { ...NO_FAULTS };
        return sendJson(res, 200, { faults });
      case 'GET patterns': {
        const scopeId = url.searchParams.get('scopeId');
        if (!scopeId) return sendError(res, 400, 'invalid_request', 'scopeId query parameter is required');
        return sendJson(res, 200, { scopeId, patterns: patternsOf(scopeId) });
      }
      default:
        return sendError(res, 404, 'not_found', `no control route ${route}`);
    }
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent && !res.destroyed) sendError(res, 500, 'internal_error', 'emulator failure');
    });
  });
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  return {
    url: `http://${urlHost}:${port}`,
    port,
    setFaults,
    resetFaults: () => {
      faults = { ...NO_FAULTS };
      return { ...faults };
    },
    faults: () => ({ ...faults }),
    patterns: patternsOf,
    stats,
    close: async () => {
      if (closing) return;
      closing = true;
      for (const timer of pendingTimers) clearTimeout(timer);
      pendingTimers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Hung and delayed requests would otherwise hold close() open forever.
      server.closeAllConnections();
      await closed;
    },
  };
}

interface SearchRequest {
  scopeId: string;
  query?: string;
  limit: number;
}
interface DeleteRequest {
  scopeId: string;
  ids?: string[];
}
interface UpsertRequest {
  scopeId: string;
  patterns: Array<{ id: string; content: string; metadata?: Record<string, unknown>; createdAt?: string }>;
}

function parseAndValidate(
  res: ServerResponse,
  text: string,
  validate: ValidateFunction,
): { ok: true; value: unknown } | { ok: false } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    sendError(res, 400, 'invalid_json', 'body is not valid JSON');
    return { ok: false };
  }
  if (!validate(value)) {
    sendError(res, 400, 'invalid_request', describeValidationErrors(validate));
    return { ok: false };
  }
  return { ok: true, value };
}

function readBody(req: IncomingMessage, limit: number): Promise<{ text: string; tooLarge: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => resolve({ text: tooLarge ? '' : Buffer.concat(chunks).toString('utf8'), tooLarge }));
    req.on('error', () => resolve({ text: '', tooLarge }));
    req.on('close', () => resolve({ text: Buffer.concat(chunks).toString('utf8'), tooLarge }));
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.destroyed || res.headersSent) return;
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) });
  res.end(payload);
}

function sendError(res: ServerResponse, status: number, error: string, message: string): void {
  sendJson(res, status, { error, message });
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** Constant-time check of `Bearer <key>`; with no key configured every caller is accepted. */
function authorized(header: string | undefined, expected: Buffer | undefined): boolean {
  if (!expected) return true;
  const match = /^Bearer (.+)$/.exec(header ?? '');
  return match ? timingSafeEqual(digest(match[1]!), expected) : false;
}

/**
 * Ranks a scope's patterns the way the local stores do (search-text.ts): the same tokens, every query token
 * required and the last one as a prefix, BM25 over the scope, newest first on ties; no query = newest first.
 */
export function rankPatterns(patterns: readonly StoredPattern[], query: string | undefined): { pattern: StoredPattern; score: number }[] {
  const newestFirst = (a: { pattern: StoredPattern }, b: { pattern: StoredPattern }) => b.pattern.revision - a.pattern.revision;
  if (query === undefined || query === '') return patterns.map((pattern) => ({ pattern, score: 1 })).sort(newestFirst);
  const parsed = parseSearchQuery(query);
  if (parsed === null) return [];
  const scores = bm25Scores(parsed, patterns.map((pattern) => ({ tokens: searchTokens(pattern.content) })));
  return patterns
    .flatMap((pattern, i) => (scores[i] === null ? [] : [{ pattern, score: scores[i]! }]))
    .sort((a, b) => b.score - a.score || newestFirst(a, b));
}

/** Small seeded PRNG (mulberry32): the same seed gives the same fault sequence. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
