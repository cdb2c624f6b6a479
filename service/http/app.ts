/**
 * The Express app: routes, validation and error mapping. The only module that knows about Express.
 * Bad input always gets a 4xx JSON body; only a genuine server fault gets a 5xx.
 */
import type { IncomingMessage } from 'node:http';
import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import { z } from 'zod';
import {
  SYNC_STARTED_MESSAGE,
  patternsRequestSchema,
  snippetsRequestSchema,
  type MemoryMetrics,
} from '../contracts/http';
import type { MemoryStore } from '../data-access/memory-store';
import { BACKFILL_JOB_NAME, type BackfillJob } from '../domain/backfill';
import type { HealthReporter } from '../domain/health';
import type { MemoryDomain } from '../domain/memory';
import { scopeKeyOf } from '../domain/patterns';
import { InvalidScopeIdError, parseScopeId } from '../domain/scope-id';
import { patternsRequestProblems, textProblem } from '../domain/storable-input';
import { createSecretScrubber, describeError, type ServiceLogger } from '../logging';
import { requireAdminToken } from './admin-auth';
import { metricsHistoryHandler } from './metrics-history-route';
import type { MetricsHistoryQuery, MetricsHistoryResponse } from '../contracts/metrics-history';

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
  /** Values scrubbed from every JSON response (API key, admin token), whatever echoed them. */
  secrets: readonly string[];
  /** Proxy hops whose X-Forwarded-For is trusted for req.ip (Render: 1); unset trusts none. */
  trustProxyHops?: number;
  /** Rate limiting of /api/memory/* (shared across instances with Redis). */
  publicRateLimiter?: RequestHandler | null;
}

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

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body ?? {});
  if (!parsed.success) {
    throw new HttpError(
      400,
      'Invalid request body',
      parsed.error.issues.slice(0, 10).map((issue) => ({
        path: issue.path.join('.'),
        message: issue.message.slice(0, 200),
      })),
    );
  }
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

// The contract's shapes, narrowed to what both stores can keep (no NUL, lone surrogates, deep metadata, year 0).
const storableSnippetsRequestSchema = snippetsRequestSchema.superRefine((request, ctx) => {
  const problem = request.query === undefined ? null : textProblem(request.query);
  if (problem) ctx.addIssue({ code: 'custom', path: ['query'], message: problem });
});
const storablePatternsRequestSchema = patternsRequestSchema.superRefine((request, ctx) => {
  for (const { path, message } of patternsRequestProblems(request.patterns)) ctx.addIssue({ code: 'custom', path, message });
});

export function createHttpApp(deps: HttpAppDeps): express.Express {
  const { log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  if (deps.trustProxyHops) app.set('trust proxy', deps.trustProxyHops);
  if (deps.secrets.length > 0) {
    // Scrub the serialized body (a plain substring check per secret): cheaper than a JSON replacer.
    const scrub = createSecretScrubber(deps.secrets);
    app.response.json = function json(this: express.Response, body: unknown) {
      if (!this.get('Content-Type')) this.set('Content-Type', 'application/json; charset=utf-8');
      const text = JSON.stringify(body);
      return this.send(text === undefined ? '' : scrub(text));
    };
  }

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

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  // Render's health check path: never depends on Context7.
  app.get('/readyz', (_req, res) => {
    const state = deps.lifecycle();
    res.status(state === 'ready' ? 200 : 503).json({ status: state });
  });

  app.use('/api', whenReady);
  app.use('/metrics', whenReady);
  if (deps.publicRateLimiter) app.use('/api/memory', deps.publicRateLimiter);

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

  app.post('/api/memory/snippets', jsonBody, async (req, res) => {
    const request = parseScopedBody(storableSnippetsRequestSchema, req.body);
    res.json(await deps.memory.readSnippets(request));
  });

  app.post('/api/memory/patterns', jsonBody, async (req, res) => {
    const request = parseScopedBody(storablePatternsRequestSchema, req.body);
    res.json(await deps.memory.learnPatterns(request));
  });

  const admin = requireAdminToken(deps.adminToken);

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
    const scopeId = typeof req.query.scopeId === 'string' ? req.query.scopeId : String(req.query.scopeId ?? '');
    const scope = scopeKeyOf(scopeId);
    res.json(await deps.store.exportScope(scope.scopeId, deps.clock()));
  });

  app.use((req, res) => {
    res.status(404).json({ error: `Not found: ${req.method} ${req.path.slice(0, 200)}` });
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
