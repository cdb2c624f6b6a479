/**
 * The Express app: routes, validation and error mapping. The only module that knows about Express.
 * Bad input always gets a 4xx JSON body; only a genuine server fault gets a 5xx.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import { z } from 'zod';
import {
  SYNC_STARTED_MESSAGE,
  exposureChangeRequestSchema,
  patternsRequestSchema,
  snippetsRequestSchema,
  type SnippetsRequest,
  type MemoryMetrics,
} from '../contracts/http';
import type { MemoryStore } from '../data-access/memory-store';
import { StoreUnavailableError } from '../data-access/store-errors';
import { BACKFILL_JOB_NAME, type BackfillJob } from '../domain/backfill';
import type { ErasureResult } from '../domain/erasure';
import { isValidExposurePercent } from '../domain/exposure';
import type { HealthReporter } from '../domain/health';
import type { ExposureController } from '../fleet/exposure-control';
import type { MemoryDomain } from '../domain/memory';
import { scopeKeyOf } from '../domain/patterns';
import { ECHO_WHOLE_MAX_CHARS, echoText } from '../domain/error-echo';
import { credentialsInPatternsRequest, credentialsInSnippetsRequest, type CredentialFinding } from '../domain/own-credentials';
import { InvalidScopeIdError, parseScopeId } from '../domain/scope-id';
import { patternsRequestProblems, textProblem } from '../domain/storable-input';
import { describeError, type ServiceLogger } from '../logging';
import { createAdminAuthLimiter, requireAdminToken, type AdminAuthLimit } from './admin-auth';
import { exemptingLoadTests } from '../fleet/rate-limit';
import { OBSERVABILITY_PATH, observabilityPage } from './observability/route';
import { metricsHistoryHandler } from './metrics-history-route';
import type { MetricsHistoryQuery, MetricsHistoryResponse } from '../contracts/metrics-history';
import { createCohortEdge, type CohortEdge } from './cohort-edge';
import { serializedJsonOf } from '../domain/serialized-json';
import { createAuthFailureLimiter, type AuthFailureLimit } from './auth-failure-limiter';
import {
  CALLER_AUTH_LIMITED_MESSAGE,
  CALLER_AUTH_MAX_FAILURES,
  CALLER_AUTH_WINDOW_MS,
  ScopeForbiddenError,
  assertCallerMayAccess,
  callerOf,
  requireCaller,
  type CallerAuthPolicy,
} from './caller-auth';

export const BODY_LIMIT_BYTES = 256 * 1024;

export type LifecycleState = 'starting' | 'ready' | 'shutting_down';

export interface HttpAppDeps {
  enableContext7Memory: boolean;
  adminToken: string | undefined;
  memory: MemoryDomain;
  health: HealthReporter;
  metrics: () => Promise<MemoryMetrics>;
  prometheus: () => Promise<{ contentType: string; body: string }>;
  /** The fleet's daily counters from the store's time series; unset: the route answers 404. */
  metricsHistory?: (query: MetricsHistoryQuery) => Promise<MetricsHistoryResponse>;
  /** null when Context7 is off or has no key: there is nothing to sync to. */
  backfill: BackfillJob | null;
  store: MemoryStore;
  lifecycle: () => LifecycleState;
  log: ServiceLogger;
  clock: () => Date;
  /**
   * This service's own credentials (config.learningForbiddenSecrets): a request that would store one or send it to
   * Context7 is refused. Responses are never rewritten: stored content reads back byte for byte, and error
   * messages only ever echo truncated input (domain/error-echo.ts), so there is nothing to scrub.
   */
  ownCredentials: readonly string[];
  /** Proxy hops whose X-Forwarded-For is trusted for req.ip (Render: 1); unset trusts none. */
  trustProxyHops?: number;
  /** Rate limiting of /api/memory/* (shared across instances with Redis). */
  publicRateLimiter?: RequestHandler | null;
  /** Secret (LOAD_TEST_TOKEN): exempts load-test scopes from publicRateLimiter (fleet/rate-limit.ts); unset: nothing is. */
  loadTestToken?: string;
  /** Failed admin authentications allowed per client per window (admin-auth.ts defaults: 10 per 15 minutes). */
  adminAuthLimit?: AdminAuthLimit;
  /** Failed caller-key authentications per client and window (default CALLER_AUTH_MAX_FAILURES per CALLER_AUTH_WINDOW_MS). */
  callerAuthLimit?: AuthFailureLimit;
  /**
   * A fault of this instance that readiness must reflect (see PostgresMemoryStore.readinessFault), or null.
   * Never a shared dependency's outage: those fail requests fast with 503 instead.
   */
  readinessFault?: () => Promise<string | null>;
  /** Erasure of a pattern or a scope (domain/erasure.ts); absent: the erase route answers 501. */
  erase?: (request: { scopeId: string; patternId: string | null; requestedBy: string }) => Promise<ErasureResult>;
  /** Caller keys of /api/memory/snippets and /patterns; absent means no keys, so those routes refuse everyone. */
  callerAuth?: CallerAuthPolicy;
  /** Per-cohort measurement of the memory routes (progressive exposure); absent: nothing is measured. */
  cohorts?: CohortEdge;
  /** Progressive exposure's runtime control (fleet/exposure-control.ts); absent: /api/admin/exposure answers 404. */
  exposure?: Pick<ExposureController, 'state' | 'change' | 'audit'>;
}

/** Seconds a client should wait before retrying a request the store could not answer. */
export const STORE_RETRY_AFTER_SECONDS = 5;

/** JSON bodies, plus curl's default form type: the runbook's own `curl -d '{...}'` sends that header. */
const JSON_LIKE = /^application\/(json|[\w.+-]+\+json|x-www-form-urlencoded)\s*(;|$)/i;

function acceptsAsJson(req: IncomingMessage): boolean {
  const type = req.headers['content-type'];
  return type === undefined || JSON_LIKE.test(type);
}

function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly details?: unknown) {
    super(message);
  }
}

/**
 * A schema problem as the client sees it. Paths can hold the client's own keys (metadata) and zod quotes unknown
 * keys in its message, so both are echoed truncated: an error body never carries a value long enough to confirm
 * a secret. Our own field names are all short enough to show whole.
 */
function describeIssue(issue: z.core.$ZodIssue): { path: string; message: string } {
  const path = issue.path
    .map((segment) => (typeof segment === 'string' && segment.length > ECHO_WHOLE_MAX_CHARS ? echoText(segment) : String(segment)))
    .join('.');
  const message = issue.code === 'unrecognized_keys' ? `Unrecognized key(s): ${issue.keys.slice(0, 5).map(echoText).join(', ')}` : issue.message.slice(0, 200);
  return { path, message };
}

/**
 * Middlewares run one after another as one handler, as the router would run them as separate layers: an error (or a
 * throw, or a rejected promise) goes to `next` and skips the rest.
 */
function inSequence(handlers: readonly RequestHandler[]): RequestHandler {
  return (req, res, next) => {
    let index = 0;
    const step = (error?: unknown): void => {
      // Truthy only, as the router has it: next(null) or next(undefined) goes on.
      if (error) {
        next(error);
        return;
      }
      const handler = handlers[index++];
      if (!handler) {
        next();
        return;
      }
      try {
        const returned: unknown = handler(req, res, step);
        if (returned instanceof Promise) returned.then(undefined, (rejection: unknown) => next(rejection ?? new Error('Rejected promise')));
      } catch (thrown) {
        next(thrown);
      }
    };
    step();
  };
}

/**
 * `res.json` for a POST answered 200 with an object, with the bytes and headers Express sends (etag is off, no json
 * settings are set, a POST is never fresh), without `res.send`'s general path: re-parsing the content type to add
 * the charset, the freshness and HEAD checks (issue 29: ~8 µs a response, on every snippet read, hit or miss).
 */
function sendJson(res: ServerResponse, body: object): void {
  // A cache hit's answer carries its JSON, made once per cache entry (domain/serialized-json.ts).
  const kept = serializedJsonOf(body);
  const text = kept ? kept.text : JSON.stringify(body);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', kept ? kept.bytes : Buffer.byteLength(text));
  res.end(text);
}

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body ?? {});
  if (!parsed.success) throw new HttpError(400, 'Invalid request body', parsed.error.issues.slice(0, 10).map(describeIssue));
  return parsed.data;
}

/**
 * A scoped body whose scopeId is missing or not a string (an un-awaited generateScopeId sends `{}`) is a scope id
 * error, not generic bad input: it gets the runbook's "Invalid scopeId format" and the [MEMORY_ERROR] line that
 * operators search for when training is not applied.
 */
function parseScopedBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) parseScopeId((body as { scopeId?: unknown }).scopeId);
  return parseBody(schema, body);
}

const emptyObjectSchema = z.strictObject({});

/** GET /api/admin/exposure/audit?limit= : newest first, 50 unless asked, at most 500 (EXPOSURE_AUDIT_MAX_LIMIT). */
export const EXPOSURE_AUDIT_DEFAULT_LIMIT = 50;
function auditLimitOf(raw: unknown): number {
  if (raw === undefined) return EXPOSURE_AUDIT_DEFAULT_LIMIT;
  if (typeof raw !== 'string' || !/^\d{1,3}$/.test(raw) || Number(raw) < 1 || Number(raw) > 500) {
    throw new HttpError(400, 'limit must be a whole number from 1 to 500');
  }
  return Number(raw);
}

/**
 * POST /api/admin/erase: one pattern (patternId) or the whole scope. `requestedBy` names who asked (a ticket or an
 * operator, not a person's data) and is kept in the tombstone; the admin token itself has no name.
 */
const eraseRequestSchema = z.strictObject({
  scopeId: z.string(),
  patternId: z.string().regex(/^pat_[0-9a-f]{32}$/, 'expected a pattern id (pat_ and 32 hex characters)').optional(),
  requestedBy: z
    .string()
    .regex(/^[A-Za-z0-9_.@:#-]{1,64}$/, 'expected 1-64 characters of A-Z a-z 0-9 _ . @ : # -')
    .optional(),
});

// The contract's shapes, narrowed to what both stores can keep (no NUL, lone surrogates, deep metadata, year 0).
const storableSnippetsRequestSchema = snippetsRequestSchema.superRefine((request, ctx) => {
  const problem = request.query === undefined ? null : textProblem(request.query);
  if (problem) ctx.addIssue({ code: 'custom', path: ['query'], message: problem });
});
/**
 * A snippet read's body, with the answers storableSnippetsRequestSchema gives, valid or not: a valid body is parsed by
 * the contract's schema and its query checked after, so a read does not build the refinement's closure and issue
 * plumbing (issue 29's eighth round: zod's superRefine allocated per request, and its objects outlived young-space
 * collections). A body the contract refuses is parsed again by the refined schema, which builds the same issues as
 * before (zod also runs the refinement beside some of the other issues).
 */
function parseSnippetsRequest(body: unknown): SnippetsRequest {
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) parseScopeId((body as { scopeId?: unknown }).scopeId);
  const parsed = snippetsRequestSchema.safeParse(body ?? {});
  if (!parsed.success) return parseBody(storableSnippetsRequestSchema, body);
  const problem = parsed.data.query === undefined ? null : textProblem(parsed.data.query);
  if (problem) throw new HttpError(400, 'Invalid request body', [{ path: 'query', message: problem }]);
  return parsed.data;
}
const storablePatternsRequestSchema = patternsRequestSchema.superRefine((request, ctx) => {
  for (const { path, message } of patternsRequestProblems(request.patterns)) ctx.addIssue({ code: 'custom', path, message });
});

export function createHttpApp(deps: HttpAppDeps): express.Express {
  const { log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  if (deps.trustProxyHops) app.set('trust proxy', deps.trustProxyHops);

  /** Refuses the whole request, naming the fields but never the value; logged so operators learn of the leak. */
  const refuseOwnCredentials = (route: string, findings: CredentialFinding[]): void => {
    if (findings.length === 0) return;
    const paths = findings.map((finding) => finding.path.join('.'));
    log.memoryError.warn(`Refused ${route}: it contains a credential of this service`, { fields: paths });
    throw new HttpError(
      400,
      'Refused: the request contains a credential of this service (ADMIN_TOKEN, CONTEXT7_API_KEY or a MEMORY_API_KEYS key); nothing was stored or sent',
      paths.map((path) => ({ path, message: 'contains a credential of this service' })),
    );
  };

  const parseJson = express.json({ limit: BODY_LIMIT_BYTES, strict: true, type: acceptsAsJson });
  const jsonBody: RequestHandler = (req, res, next) => {
    if (hasBody(req) && !acceptsAsJson(req)) {
      next(new HttpError(415, 'Unsupported content type: send application/json'));
      return;
    }
    parseJson(req, res, next);
  };

  const whenReady: RequestHandler = (_req, res, next) => {
    const state = deps.lifecycle();
    if (state === 'starting') {
      res.status(503).setHeader('Retry-After', '1').json({ error: 'Service is starting: the store is not migrated yet' });
      return;
    }
    if (state === 'shutting_down') res.setHeader('Connection', 'close');
    next();
  };

  const publicRateLimiter = deps.publicRateLimiter ? exemptingLoadTests(deps.publicRateLimiter, deps.loadTestToken, jsonBody) : null;

  // Credentials before the body is even parsed; the scope check right after the scope id is known.
  // Failed caller keys are limited per client in every mode, like the admin token; the gate runs before the check.
  const callerLimiter = createAuthFailureLimiter(deps.callerAuthLimit ?? { maxFailures: CALLER_AUTH_MAX_FAILURES, windowMs: CALLER_AUTH_WINDOW_MS }, CALLER_AUTH_LIMITED_MESSAGE, {
    onLimited: (client, until) =>
      log.memoryError.warn('Caller auth: a client used up its failed authentications; its memory requests get 429', { client, until: until?.toISOString() }),
    onProblem: (message, error) => log.memoryError.warn(`Caller auth limiter: ${message}`, describeError(error)),
  });
  const checkCaller = requireCaller(deps.callerAuth ?? { mode: 'keys', keys: [] }, callerLimiter.recordFailure);
  const caller: RequestHandler = (req, res, next) => {
    callerLimiter.gate(req, res, (error?: unknown) => (error ? next(error) : checkCaller(req, res, next)));
  };

  const cohorts = deps.cohorts ?? createCohortEdge({ flagOn: false, exposure: { percent: () => 0 }, record: () => undefined });

  // The memory routes come first, each with the guards that apply to it in one handler, in the order they always
  // ran: readiness, the public rate limiter, the cohort edge's arrival (latency is measured from there), the caller's
  // key, the body. Registered after the other routes and behind app-wide `use` layers, a cache hit walked ten other
  // layers (path matches, a prefix middleware's URL rewriting and restoring) before its own (issue 29's fourth
  // round). The same guards stay app-wide below for every other path, a wrong method on these paths included.
  const memoryGuards = inSequence([
    whenReady,
    ...(publicRateLimiter ? [publicRateLimiter] : []),
    cohorts.arrival,
    caller,
    jsonBody,
  ]);

  // A cache hit answers synchronously (readSnippetsNow): no promise between the lookup and the answer.
  app.post('/api/memory/snippets', memoryGuards, (req, res) => {
    const request = parseSnippetsRequest(req.body);
    assertCallerMayAccess(callerOf(res), request.scopeId);
    refuseOwnCredentials('snippet read', credentialsInSnippetsRequest(request, deps.ownCredentials));
    const { memory } = deps;
    const answered = cohorts.measureRead(
      res,
      request.scopeId,
      () => memory.readSnippetsNow?.(request),
      () => memory.readSnippets(request),
    );
    if (!(answered instanceof Promise)) {
      sendJson(res, answered);
      return undefined;
    }
    // Returned, so Express passes a rejection to the error handler as it did for the async handler.
    return answered.then((body) => {
      sendJson(res, body);
    });
  });

  app.post('/api/memory/patterns', memoryGuards, async (req, res) => {
    const request = parseScopedBody(storablePatternsRequestSchema, req.body);
    assertCallerMayAccess(callerOf(res), request.scopeId);
    refuseOwnCredentials('learning write', credentialsInPatternsRequest(request, deps.ownCredentials));
    res.json(await cohorts.measure(res, request.scopeId, 'write', () => deps.memory.learnPatterns(request)));
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  // Render's health check path: never depends on Context7.
  app.get('/readyz', async (_req, res) => {
    const state = deps.lifecycle();
    const fault = state === 'ready' && deps.readinessFault ? await deps.readinessFault() : null;
    if (fault) {
      res.status(503).json({ status: 'degraded', reason: fault });
      return;
    }
    res.status(state === 'ready' ? 200 : 503).json({ status: state });
  });

  // Public page, outside whenReady: while starting it loads and shows the endpoints' 503.
  app.get(OBSERVABILITY_PATH, observabilityPage);

  app.use('/api', whenReady);
  app.use('/metrics', whenReady);
  if (publicRateLimiter) app.use('/api/memory', publicRateLimiter);

  app.get('/api/config', async (_req, res) => {
    const available = deps.enableContext7Memory ? (await deps.health.check()).available : false;
    res.json({ enableContext7Memory: deps.enableContext7Memory, context7Available: available });
  });

  app.get('/api/memory/health', async (_req, res) => {
    res.json(await deps.health.check());
  });

  app.get('/api/metrics/memory', async (_req, res) => {
    res.json(await deps.metrics());
  });

  if (deps.metricsHistory) app.get('/api/metrics/memory/history', metricsHistoryHandler(deps.metricsHistory, log));

  app.get('/metrics', async (_req, res) => {
    const { contentType, body } = await deps.prometheus();
    res.setHeader('Content-Type', contentType);
    res.send(body);
  });

  // The failure limiter runs first, so a client over its limit learns nothing more, whatever token it sends.
  const adminAuthLimiter = createAdminAuthLimiter(deps.adminAuthLimit, {
    onLimited: (client, until) =>
      log.memoryError.warn('Admin auth: a client used up its failed authentications; its admin requests get 429', {
        client,
        until: until?.toISOString(),
      }),
    onProblem: (message, error) => log.memoryError.warn(`Admin auth limiter: ${message}`, describeError(error)),
  });
  const checkAdminToken = requireAdminToken(deps.adminToken, adminAuthLimiter.recordFailure);
  const admin: RequestHandler = (req, res, next) => {
    adminAuthLimiter.gate(req, res, (error?: unknown) => (error ? next(error) : checkAdminToken(req, res, next)));
  };

  app.post('/api/admin/sync-context7', admin, jsonBody, async (req, res) => {
    parseBody(emptyObjectSchema, req.body);
    if (!deps.backfill) {
      throw new HttpError(
        409,
        deps.enableContext7Memory
          ? 'Full sync unavailable: CONTEXT7_API_KEY is not set'
          : 'Full sync unavailable: Context7 disabled in environment',
      );
    }
    const { started, state } = await deps.backfill.start('manual');
    if (!started) {
      res.status(409).json({ error: 'Full sync already running', job: state });
      return;
    }
    res.status(202).json({ message: SYNC_STARTED_MESSAGE });
  });

  app.get('/api/admin/sync-context7/status', admin, async (_req, res) => {
    const job = await deps.store.loadJobState(BACKFILL_JOB_NAME);
    let progressPercent = 0;
    if (job?.status === 'completed') progressPercent = 100;
    else if (job && job.total > 0) progressPercent = Math.min(100, Math.round(((job.synced + job.errors) / job.total) * 10_000) / 100);
    res.json({ running: job?.status === 'running', progressPercent, job });
  });

  app.get('/api/admin/export', admin, async (req, res) => {
    // A repeated key parses to an array (an extended parser would also give objects): only a single string is an id.
    const scope = scopeKeyOf(parseScopeId(req.query.scopeId));
    res.json(await deps.store.exportScope(scope.scopeId, deps.clock()));
  });

  /**
   * Who asked, as the append-only records keep it (the erasure tombstones, the exposure audit), is readable by every
   * admin and kept for ever: a credential of this service pasted there is refused, nothing changed.
   */
  const refuseCredentialsInRecord = (fields: Record<string, string | undefined>): void => {
    const named = Object.entries(fields).filter(([, value]) => value !== undefined && deps.ownCredentials.some((secret) => value.includes(secret)));
    if (named.length === 0) return;
    const names = named.map(([field]) => field);
    throw new HttpError(
      400,
      `Refused: ${names.join(' or ')} contains a credential of this service; nothing was changed`,
      names.map((path) => ({ path, message: 'contains a credential of this service' })),
    );
  };

  app.post('/api/admin/erase', admin, jsonBody, async (req, res) => {
    const request = parseScopedBody(eraseRequestSchema, req.body);
    refuseCredentialsInRecord({ requestedBy: request.requestedBy });
    const scope = scopeKeyOf(request.scopeId);
    if (!deps.erase) throw new HttpError(501, 'Erasure is not available in this service');
    const result = await deps.erase({
      scopeId: scope.scopeId,
      patternId: request.patternId ?? null,
      requestedBy: request.requestedBy ? `admin:${request.requestedBy}` : 'admin',
    });
    res.json(result);
  });

  const exposure = deps.exposure;
  if (exposure) {
    app.get('/api/admin/exposure', admin, async (_req, res) => {
      res.json(await exposure.state());
    });

    // 400: not a change at all; 409: a valid percentage this stack may not apply (above its ceiling); 503: the store
    // could not record it, so nothing changed anywhere (the error handler adds Retry-After).
    app.put('/api/admin/exposure', admin, jsonBody, async (req, res) => {
      const request = parseBody(exposureChangeRequestSchema, req.body);
      if (!isValidExposurePercent(request.percent)) {
        throw new HttpError(400, 'Invalid request body', [{ path: 'percent', message: 'expected a number from 0 to 100 in steps of 0.01' }]);
      }
      refuseCredentialsInRecord({ actor: request.actor, reason: request.reason });
      const outcome = await exposure.change(request);
      if (!outcome.ok) throw new HttpError(409, outcome.reason);
      res.json(outcome.state);
    });

    app.get('/api/admin/exposure/audit', admin, async (req, res) => {
      res.json({ entries: await exposure.audit(auditLimitOf(req.query.limit)) });
    });
  }

  app.use((req, res) => {
    res.status(404).json({ error: `Not found: ${req.method} ${echoText(req.path)}` });
  });

  const errorHandler: ErrorRequestHandler = (error, req, res, _next) => {
    const respond = (status: number, body: { error: string; details?: unknown }) => {
      if (res.headersSent) {
        res.end();
        return;
      }
      res.status(status).json(body);
    };
    if (error instanceof InvalidScopeIdError) {
      log.memoryError.warn(error.message, { path: req.path });
      respond(400, { error: error.message });
      return;
    }
    if (error instanceof ScopeForbiddenError) {
      // The key's name, never its secret; the scope id is what operators need to see who probes whose memory.
      const who = (res.locals as { caller?: { kind: string; name?: string } }).caller;
      log.memoryError.warn('Refused: a caller key asked for a scope outside its locations', { caller: who?.name ?? who?.kind, path: req.path });
      respond(403, { error: error.message });
      return;
    }
    if (error instanceof StoreUnavailableError) {
      // Names the dependency and the deadline for the operator; the client gets no internals.
      log.memoryError.error(`Store unavailable on ${req.method} ${req.path.slice(0, 200)}: ${error.message}`, error.describe());
      if (!res.headersSent) res.setHeader('Retry-After', String(STORE_RETRY_AFTER_SECONDS));
      respond(503, { error: 'The memory store is unavailable: retry later' });
      return;
    }
    if (error instanceof HttpError) {
      if (error.status >= 500) log.memoryError.error(error.message, { path: req.path });
      respond(error.status, error.details === undefined ? { error: error.message } : { error: error.message, details: error.details });
      return;
    }
    const bodyErrorType = (error as { type?: unknown }).type;
    switch (bodyErrorType) {
      case 'entity.parse.failed':
        respond(400, { error: 'Malformed JSON body' });
        return;
      case 'entity.too.large':
        respond(413, { error: `Request body too large (limit ${BODY_LIMIT_BYTES} bytes)` });
        return;
      case 'encoding.unsupported':
      case 'charset.unsupported':
        respond(415, { error: 'Unsupported body encoding or charset: send UTF-8 JSON' });
        return;
      case 'request.aborted':
      case 'request.size.invalid':
      case 'stream.encoding.set':
        respond(400, { error: 'Request body could not be read' });
        return;
      default:
        break;
    }
    const status = (error as { status?: unknown }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      respond(status, { error: 'Bad request' });
      return;
    }
    log.memoryError.error(`Unhandled error on ${req.method} ${req.path.slice(0, 200)}`, describeError(error));
    respond(500, { error: 'Internal server error' });
  };
  app.use(errorHandler);

  return app;
}
