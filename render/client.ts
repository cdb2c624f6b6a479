// Typed client for Render's public REST API (https://api.render.com/v1), shared by infra/ and canary/.
// Construction is cheap and all state lives on the instance, so Pulumi dynamic providers can build one
// per method call (their closures are serialized; module-level mutable state would not survive that).
import type { AxiosInstance, AxiosResponse } from 'axios';
import { DeployFailedError, RenderApiError, RenderWaitTimeoutError } from './errors';
import {
  backoffMs,
  type Clock,
  jitterUp,
  parseRateLimit,
  parseRetryAfterMs,
  realSleep,
  type Sleep,
  systemClock,
  TokenBucket,
} from './pacing';
import {
  type CustomDomain,
  type DatabaseStatus,
  type Deploy,
  type DeployStatus,
  type EnvVar,
  type EnvVarInput,
  FAILED_DEPLOY_STATUSES,
  IN_FLIGHT_DEPLOY_STATUSES,
  type KeyValueConnectionInfo,
  type KeyValueCreateBody,
  type KeyValueDetail,
  type Owner,
  type LogsPage,
  type MetricSeries,
  type PostgresConnectionInfo,
  type PostgresCreateBody,
  type PostgresDetail,
  type Service,
  type ServiceAndDeploy,
  type ServiceCreateBody,
  type ServiceInstance,
  type ServicePatch,
  type TriggerDeployBody,
} from './types';

export const DEFAULT_RENDER_BASE_URL = 'https://api.render.com/v1';

/** pino-compatible subset. Only operation names, ids, statuses and waits are logged: never keys or bodies. */
export interface RenderLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

const silentLogger: RenderLogger = { debug() {}, info() {}, warn() {} };

export interface RenderClientOptions {
  apiKey: string;
  baseUrl?: string;
  logger?: RenderLogger;
  clock?: Clock;
  sleep?: Sleep;
  /** Source of jitter in [0,1); injectable for deterministic tests. */
  random?: () => number;
  /** Retries after the first attempt, for 429 (always) and 5xx/network errors (idempotent calls only). */
  maxRetries?: number;
  /**
   * Total deadline of one attempt, from the request to the last byte of the body (an AbortSignal.timeout, so a
   * server that drips its answer or goes silent after the headers is cut off). Default RENDER_ATTEMPT_DEADLINE_MS.
   */
  requestTimeoutMs?: number;
  /**
   * Total budget of one operation: every attempt, backoff and rate-limit pause together. A retry that would not
   * fit is not made. Default RENDER_OPERATION_BUDGET_MS.
   */
  operationBudgetMs?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Render publishes 10 deploys per minute per service; the client stays under it on its own. */
  deploysPerMinute?: number;
}

export interface WaitOptions<T> {
  timeoutMs?: number;
  pollIntervalMs?: number;
  /** Called on the first poll and whenever the status changes. */
  onProgress?: (current: T) => void;
}

export interface TriggerDeployOptions {
  clearCache?: boolean;
  commitId?: string;
}

type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
type QueryValue = string | number | boolean | readonly string[] | undefined;

interface CallSpec {
  operation: string;
  method: HttpMethod;
  path: string;
  query?: Record<string, QueryValue>;
  body?: unknown;
  /** Safe to repeat after a 5xx or a lost response. */
  idempotent: boolean;
}

interface CallResult<T> {
  status: number;
  data: T;
}

/** One attempt of a Render API call, body included. */
export const RENDER_ATTEMPT_DEADLINE_MS = 20_000;
/** One operation (a call with all its retries, backoffs and rate-limit pauses). */
export const RENDER_OPERATION_BUDGET_MS = 60_000;

const DEFAULT_WAIT_TIMEOUT_MS = 20 * 60_000;
const DEFAULT_POLL_INTERVAL_MS = 5_000;
const PAGE_SIZE = 100;

function seg(value: string): string {
  if (value.length === 0) throw new TypeError('Render resource id must not be empty');
  return encodeURIComponent(value);
}

/**
 * Query strings as the spec describes them: OpenAPI's default for array parameters is form style with
 * explode (`status=a&status=b`); parameters the spec marks `explode: false` (e.g. GET /services `name`,
 * `ownerId`) are passed by callers as an already comma-joined string.
 */
function queryString(query: Record<string, QueryValue> | undefined): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) {
      for (const item of value as readonly string[]) params.append(key, item);
    } else {
      params.set(key, String(value));
    }
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

export function isRenderNotFound(err: unknown): boolean {
  return err instanceof RenderApiError && err.status === 404;
}

export interface ListLogsQuery {
  ownerId: string;
  resource: readonly string[];
  instance?: readonly string[];
  level?: readonly string[];
  text?: readonly string[];
  type?: readonly string[];
  startTime?: string;
  endTime?: string;
  direction?: 'forward' | 'backward';
  limit?: number;
}

export type PlatformMetricPath = 'http-requests' | 'http-latency' | 'memory';

export interface MetricsQuery {
  resource: string;
  startTime?: string;
  endTime?: string;
  resolutionSeconds?: number;
  /** http-requests only */
  aggregateBy?: 'statusCode' | 'host';
  /** http-latency only, e.g. 0.95 */
  quantile?: number;
  /** http-requests and http-latency */
  path?: string;
  /** memory only */
  instance?: string;
}

export class RenderClient {
  /** Made on the first call: a canary command that never calls Render does not load axios (~0.3 s CPU a start). */
  private httpClient?: AxiosInstance;
  private readonly createHttp: () => AxiosInstance;
  private readonly logger: RenderLogger;
  private readonly clock: Clock;
  private readonly sleep: Sleep;
  private readonly random: () => number;
  private readonly maxRetries: number;
  private readonly attemptDeadlineMs: number;
  private readonly operationBudgetMs: number;
  private readonly backoffBaseMs: number;
  private readonly backoffCapMs: number;
  private readonly deploysPerMinute: number;
  private readonly deployBuckets = new Map<string, TokenBucket>();
  /** Set when a response said the rate-limit window is used up; requests wait until then. */
  private pausedUntil = 0;

  constructor(options: RenderClientOptions) {
    if (!options.apiKey) throw new TypeError('RenderClient needs an apiKey (RENDER_API_KEY)');
    this.logger = options.logger ?? silentLogger;
    this.clock = options.clock ?? systemClock;
    this.sleep = options.sleep ?? realSleep;
    this.random = options.random ?? Math.random;
    this.maxRetries = options.maxRetries ?? 5;
    this.attemptDeadlineMs = options.requestTimeoutMs ?? RENDER_ATTEMPT_DEADLINE_MS;
    this.operationBudgetMs = options.operationBudgetMs ?? RENDER_OPERATION_BUDGET_MS;
    if (!(this.attemptDeadlineMs > 0) || !(this.operationBudgetMs > 0)) throw new TypeError('requestTimeoutMs and operationBudgetMs must be positive');
    this.backoffBaseMs = options.backoffBaseMs ?? 500;
    this.backoffCapMs = options.backoffCapMs ?? 30_000;
    this.deploysPerMinute = options.deploysPerMinute ?? 10;
    const apiKey = options.apiKey;
    const baseURL = (options.baseUrl ?? DEFAULT_RENDER_BASE_URL).replace(/\/+$/, '');
    this.createHttp = () => {
      const http = loadAxios().create({
        baseURL,
        // No axios `timeout`: it bounds socket silence, not the call. Each attempt carries an AbortSignal instead.
        headers: { Accept: 'application/json' },
        validateStatus: () => true,
        // Keep the body as text: an empty 202 must stay distinguishable from JSON.
        transformResponse: [(data: unknown) => data],
        responseType: 'text',
      });
      // The key is attached per request from a closure rather than stored as a readable field.
      http.interceptors.request.use((config) => {
        config.headers.set('Authorization', `Bearer ${apiKey}`);
        return config;
      });
      return http;
    };
  }

  private get http(): AxiosInstance {
    return (this.httpClient ??= this.createHttp());
  }

  // ---------------------------------------------------------------- core

  private async call<T>(spec: CallSpec): Promise<CallResult<T>> {
    const url = `${spec.path}${queryString(spec.query)}`;
    const startedAt = this.clock.now();
    const remaining = () => this.operationBudgetMs - (this.clock.now() - startedAt);
    const outOfBudget = (attempts: number, last: string) =>
      new RenderApiError(spec.operation, 0, undefined, `operation budget of ${this.operationBudgetMs} ms used up after ${attempts} attempt(s); last: ${last}`, attempts);
    /** Waits before a retry, or says no when the wait and a useful attempt would not fit in the budget. */
    const fitsAnotherAttempt = (waitMs: number) => remaining() - waitMs > Math.min(1_000, this.attemptDeadlineMs);
    for (let attempt = 0; ; attempt++) {
      const pauseMs = this.pausedUntil - this.clock.now();
      if (pauseMs > 0 && !fitsAnotherAttempt(pauseMs)) throw outOfBudget(attempt, `rate-limit window closed for ${pauseMs} ms`);
      await this.waitForRateLimitWindow(spec.operation);
      const attemptMs = Math.max(1, Math.min(this.attemptDeadlineMs, remaining()));
      let response: AxiosResponse<string>;
      try {
        response = await this.http.request<string>({
          method: spec.method,
          url,
          // The whole attempt, body included: a dripping or silent server is cut off at the deadline.
          signal: AbortSignal.timeout(attemptMs),
          ...(spec.body === undefined ? {} : { data: spec.body, headers: { 'Content-Type': 'application/json' } }),
        });
      } catch (err) {
        const reason = loadAxios().isCancel(err) || isTimeoutAbort(err) ? `no complete answer within ${attemptMs} ms (attempt deadline)` : describeTransportError(err);
        if (spec.idempotent && attempt < this.maxRetries) {
          const waitMs = backoffMs(attempt, this.backoffBaseMs, this.backoffCapMs, this.random);
          if (!fitsAnotherAttempt(waitMs)) throw outOfBudget(attempt + 1, reason);
          this.logger.warn({ operation: spec.operation, attempt: attempt + 1, waitMs, reason }, 'Render API unreachable, retrying');
          await this.sleep(waitMs);
          continue;
        }
        throw new RenderApiError(spec.operation, 0, undefined, reason, attempt + 1);
      }

      const status = response.status;
      const now = this.clock.now();
      const rate = parseRateLimit(response.headers as Record<string, unknown>, now);
      if (rate.remaining === 0 && rate.resetMs !== undefined) this.pausedUntil = Math.max(this.pausedUntil, now + rate.resetMs);

      if (status >= 200 && status < 300) {
        this.logger.debug({ operation: spec.operation, status, attempt: attempt + 1 }, 'Render API call done');
        try {
          return { status, data: parseJson<T>(response.data) };
        } catch {
          throw new RenderApiError(spec.operation, status, undefined, 'response body is not JSON', attempt + 1);
        }
      }

      const retriable = status === 429 || (status >= 500 && spec.idempotent);
      if (retriable && attempt < this.maxRetries) {
        let waitMs: number;
        if (status === 429) {
          const serverWait = parseRetryAfterMs(response.headers as Record<string, unknown>, now) ??
            (rate.remaining === 0 ? rate.resetMs : undefined);
          waitMs = serverWait !== undefined
            ? jitterUp(serverWait, this.random)
            : backoffMs(attempt, this.backoffBaseMs, this.backoffCapMs, this.random);
        } else {
          waitMs = backoffMs(attempt, this.backoffBaseMs, this.backoffCapMs, this.random);
        }
        if (!fitsAnotherAttempt(waitMs)) throw outOfBudget(attempt + 1, `HTTP ${status}, next attempt in ${waitMs} ms`);
        this.logger.warn(
          { operation: spec.operation, status, attempt: attempt + 1, waitMs, rateLimit: rate },
          status === 429 ? 'Render API rate limited, backing off' : 'Render API server error, retrying',
        );
        await this.sleep(waitMs);
        continue;
      }

      const body = parseErrorBody(response.data);
      throw new RenderApiError(
        spec.operation,
        status,
        body.id,
        body.message ?? (response.statusText || `HTTP ${status}`),
        attempt + 1,
      );
    }
  }

  private async waitForRateLimitWindow(operation: string): Promise<void> {
    const waitMs = this.pausedUntil - this.clock.now();
    if (waitMs <= 0) return;
    this.logger.info({ operation, waitMs }, 'Render rate-limit window used up, pausing');
    await this.sleep(waitMs);
  }

  /** Walks Render's cursor pagination: each item carries a cursor; the next page starts after the last. */
  async *paginate<W extends { cursor?: string }>(
    operation: string,
    path: string,
    query: Record<string, QueryValue> = {},
    pageSize = PAGE_SIZE,
  ): AsyncGenerator<W> {
    let cursor: string | undefined;
    for (;;) {
      const { data } = await this.call<W[]>({
        operation,
        method: 'GET',
        path,
        query: { ...query, limit: pageSize, cursor },
        idempotent: true,
      });
      const page = Array.isArray(data) ? data : [];
      for (const item of page) yield item;
      const next = page.at(-1)?.cursor;
      if (page.length < pageSize || !next || next === cursor) return;
      cursor = next;
    }
  }

  private async collect<W extends { cursor?: string }, T>(
    operation: string,
    path: string,
    query: Record<string, QueryValue>,
    unwrap: (wrapped: W) => T | undefined,
    max = Number.POSITIVE_INFINITY,
  ): Promise<T[]> {
    const out: T[] = [];
    if (max <= 0) return out;
    for await (const wrapped of this.paginate<W>(operation, path, query, Math.min(PAGE_SIZE, max))) {
      const item = unwrap(wrapped);
      if (item !== undefined) out.push(item);
      if (out.length >= max) break;
    }
    return out;
  }

  // ---------------------------------------------------------------- owners

  listOwners(): Promise<Owner[]> {
    return this.collect<{ owner?: Owner; cursor?: string }, Owner>('listOwners', '/owners', {}, (w) => w.owner);
  }

  // ---------------------------------------------------------------- services

  async createService(body: ServiceCreateBody): Promise<ServiceAndDeploy> {
    const { data } = await this.call<ServiceAndDeploy>({
      operation: 'createService', method: 'POST', path: '/services', body, idempotent: false,
    });
    return data;
  }

  async getService(serviceId: string): Promise<Service> {
    const { data } = await this.call<Service>({
      operation: 'getService', method: 'GET', path: `/services/${seg(serviceId)}`, idempotent: true,
    });
    return data;
  }

  async updateService(serviceId: string, patch: ServicePatch): Promise<Service> {
    // A PATCH here sets absolute values, so repeating it is safe.
    const { data } = await this.call<Service>({
      operation: 'updateService', method: 'PATCH', path: `/services/${seg(serviceId)}`, body: patch, idempotent: true,
    });
    return data;
  }

  /** POST /services/{id}/scale: sets the instance count (absolute, so repeating it is safe); Render answers 202. */
  async scaleService(serviceId: string, numInstances: number): Promise<void> {
    if (!Number.isInteger(numInstances) || numInstances < 1) throw new TypeError('numInstances must be a whole number of at least 1');
    await this.call({
      operation: 'scaleService', method: 'POST', path: `/services/${seg(serviceId)}/scale`, body: { numInstances }, idempotent: true,
    });
  }

  /** GET /services/{id}/instances: the service's running instances (id, createdAt); not paginated. */
  async listInstances(serviceId: string): Promise<ServiceInstance[]> {
    const { data } = await this.call<ServiceInstance[]>({
      operation: 'listInstances', method: 'GET', path: `/services/${seg(serviceId)}/instances`, idempotent: true,
    });
    return data;
  }

  /**
   * GET /logs: one page of a resource's log lines in [startTime, endTime). `ownerId` and `resource` are required
   * by the spec; arrays are sent exploded (`level=error&level=fatal`). Page on with the answer's nextStartTime and
   * nextEndTime while hasMore.
   */
  async listLogs(query: ListLogsQuery): Promise<LogsPage> {
    if (query.limit !== undefined && (!Number.isInteger(query.limit) || query.limit < 1 || query.limit > 100)) {
      throw new TypeError('limit must be a whole number from 1 to 100');
    }
    const { data } = await this.call<LogsPage>({
      operation: 'listLogs', method: 'GET', path: '/logs', idempotent: true,
      query: {
        ownerId: query.ownerId,
        resource: query.resource,
        instance: query.instance,
        level: query.level,
        text: query.text,
        type: query.type,
        startTime: query.startTime,
        endTime: query.endTime,
        direction: query.direction,
        limit: query.limit,
      },
    });
    return data;
  }

  /**
   * GET /metrics/http-requests, /metrics/http-latency or /metrics/memory for one resource: time series whose
   * points are `resolutionSeconds` apart (at least 30, Render's minimum).
   */
  async getMetrics(metric: PlatformMetricPath, query: MetricsQuery): Promise<MetricSeries> {
    if (query.resolutionSeconds !== undefined && !(query.resolutionSeconds >= 30)) throw new TypeError('resolutionSeconds must be at least 30');
    const { data } = await this.call<MetricSeries>({
      operation: `getMetrics(${metric})`, method: 'GET', path: `/metrics/${metric}`, idempotent: true,
      query: { ...query },
    });
    return data;
  }

  async deleteService(serviceId: string): Promise<void> {
    await this.call({ operation: 'deleteService', method: 'DELETE', path: `/services/${seg(serviceId)}`, idempotent: true });
  }

  /** GET /services/{id}/custom-domains: every custom domain of the service (all pages). */
  listCustomDomains(serviceId: string): Promise<CustomDomain[]> {
    return this.collect<{ customDomain?: CustomDomain; cursor?: string }, CustomDomain>(
      'listCustomDomains',
      `/services/${seg(serviceId)}/custom-domains`,
      {},
      (w) => w.customDomain,
    );
  }

  /** POST /services/{id}/custom-domains: Render answers with the domains it created (an apex also gets www). */
  async addCustomDomain(serviceId: string, name: string): Promise<CustomDomain[]> {
    const { data } = await this.call<CustomDomain[]>({
      operation: 'addCustomDomain', method: 'POST', path: `/services/${seg(serviceId)}/custom-domains`, body: { name }, idempotent: false,
    });
    return data;
  }

  /** Services whose name is exactly `name` (Render's filter is applied server-side; exactness client-side). */
  async findServicesByName(name: string, options: { ownerId?: string } = {}): Promise<Service[]> {
    const services = await this.collect<{ service?: Service; cursor?: string }, Service>(
      'findServicesByName',
      '/services',
      // Both are `explode: false` arrays in the spec: one value each, sent as-is.
      { name, ownerId: options.ownerId },
      (w) => w.service,
    );
    return services.filter((s) => s.name === name);
  }

  /** Postgres instances whose name is exactly `name` (filtered server-side by name and owner). */
  async findPostgresByName(name: string, options: { ownerId?: string } = {}): Promise<PostgresDetail[]> {
    const found = await this.collect<{ postgres?: PostgresDetail; cursor?: string }, PostgresDetail>(
      'findPostgresByName', '/postgres', { name, ownerId: options.ownerId }, (w) => w.postgres,
    );
    return found.filter((d) => d.name === name);
  }

  /** Key Value instances whose name is exactly `name` (filtered server-side by name and owner). */
  async findKeyValueByName(name: string, options: { ownerId?: string } = {}): Promise<KeyValueDetail[]> {
    const found = await this.collect<{ keyValue?: KeyValueDetail; cursor?: string }, KeyValueDetail>(
      'findKeyValueByName', '/key-value', { name, ownerId: options.ownerId }, (w) => w.keyValue,
    );
    return found.filter((d) => d.name === name);
  }

  // ---------------------------------------------------------------- env vars

  listEnvVars(serviceId: string): Promise<EnvVar[]> {
    return this.collect<{ envVar?: EnvVar; cursor?: string }, EnvVar>(
      'listEnvVars', `/services/${seg(serviceId)}/env-vars`, {}, (w) => w.envVar,
    );
  }

  /** Replaces ALL env vars of the service with `vars` (keys not given are removed). */
  async replaceEnvVars(serviceId: string, vars: Record<string, string> | readonly EnvVarInput[]): Promise<EnvVar[]> {
    const body: EnvVarInput[] = Array.isArray(vars)
      ? [...(vars as readonly EnvVarInput[])]
      : Object.entries(vars as Record<string, string>).map(([key, value]) => ({ key, value }));
    const { data } = await this.call<Array<{ envVar?: EnvVar }>>({
      operation: 'replaceEnvVars', method: 'PUT', path: `/services/${seg(serviceId)}/env-vars`, body, idempotent: true,
    });
    return (Array.isArray(data) ? data : []).flatMap((w) => (w.envVar ? [w.envVar] : []));
  }

  async setEnvVar(serviceId: string, key: string, value: string): Promise<EnvVar> {
    const { data } = await this.call<EnvVar>({
      operation: 'setEnvVar',
      method: 'PUT',
      path: `/services/${seg(serviceId)}/env-vars/${seg(key)}`,
      body: { value },
      idempotent: true,
    });
    return data;
  }

  async deleteEnvVar(serviceId: string, key: string): Promise<void> {
    await this.call({
      operation: 'deleteEnvVar', method: 'DELETE', path: `/services/${seg(serviceId)}/env-vars/${seg(key)}`, idempotent: true,
    });
  }

  // ---------------------------------------------------------------- deploys

  private deployBucket(serviceId: string): TokenBucket {
    let bucket = this.deployBuckets.get(serviceId);
    if (!bucket) {
      bucket = new TokenBucket(this.deploysPerMinute, 60_000, this.clock);
      this.deployBuckets.set(serviceId, bucket);
    }
    return bucket;
  }

  /**
   * Triggers a deploy. Render may answer 202 with no body (the deploy was queued behind another);
   * the deploy is then found among the service's queued/created deploys.
   */
  async triggerDeploy(serviceId: string, options: TriggerDeployOptions = {}): Promise<Deploy> {
    const paced = await this.deployBucket(serviceId).take(this.sleep);
    if (paced > 0) this.logger.info({ operation: 'triggerDeploy', serviceId, waitMs: paced }, 'pacing deploys under Render limit');
    const triggeredAt = this.clock.now();
    const body: TriggerDeployBody = { clearCache: options.clearCache ? 'clear' : 'do_not_clear' };
    if (options.commitId) body.commitId = options.commitId;
    const { status, data } = await this.call<Deploy | undefined>({
      operation: 'triggerDeploy', method: 'POST', path: `/services/${seg(serviceId)}/deploys`, body, idempotent: false,
    });
    if (data && typeof data === 'object' && data.id) return data;
    this.logger.info({ operation: 'triggerDeploy', serviceId, status }, 'deploy accepted without a body, looking it up');
    return this.findQueuedDeploy(serviceId, options.commitId, triggeredAt);
  }

  private async findQueuedDeploy(serviceId: string, commitId: string | undefined, triggeredAt: number): Promise<Deploy> {
    const matches = (d: Deploy) => !commitId || d.commit?.id === commitId;
    const attempts = 5;
    for (let attempt = 0; attempt < attempts; attempt++) {
      // Newest first: a deploy that was just queued is at the front of the in-flight list.
      const inFlight = await this.listDeploys(serviceId, { status: IN_FLIGHT_DEPLOY_STATUSES, limit: 20 });
      const match = inFlight.find(matches);
      if (match) return match;
      // A fast deploy may already have finished: accept the newest deploy if it was created around the trigger
      // (a minute of tolerance for clock skew between us and Render).
      const [newest] = await this.listDeploys(serviceId, { limit: 1 });
      const createdAt = newest?.createdAt ? Date.parse(newest.createdAt) : Number.NaN;
      if (newest && matches(newest) && createdAt >= triggeredAt - 60_000) return newest;
      await this.sleep(backoffMs(attempt, this.backoffBaseMs, this.backoffCapMs, this.random));
    }
    throw new RenderApiError('triggerDeploy', 202, undefined, 'deploy was accepted but not found among queued deploys');
  }

  /**
   * POST /services/{id}/rollback: a new deploy (trigger `rollback`) of an earlier deploy's build, with that
   * deploy's env vars (Render's docs: env vars match the target deploy; the service's current settings stay
   * as they are for later deploys). Not idempotent (each call creates a deploy), so only a 429 is retried;
   * paced like triggerDeploy, since it is a deploy too.
   */
  async rollbackDeploy(serviceId: string, deployId: string): Promise<Deploy> {
    if (!deployId) throw new TypeError('rollbackDeploy needs the id of the deploy to roll back to');
    const paced = await this.deployBucket(serviceId).take(this.sleep);
    if (paced > 0) this.logger.info({ operation: 'rollbackDeploy', serviceId, waitMs: paced }, 'pacing deploys under Render limit');
    const { status, data } = await this.call<Deploy | undefined>({
      operation: 'rollbackDeploy', method: 'POST', path: `/services/${seg(serviceId)}/rollback`, body: { deployId }, idempotent: false,
    });
    if (!data || typeof data !== 'object' || !data.id) {
      throw new RenderApiError('rollbackDeploy', status, undefined, 'rollback accepted without a deploy in the answer');
    }
    return data;
  }

  async getDeploy(serviceId: string, deployId: string): Promise<Deploy> {
    const { data } = await this.call<Deploy>({
      operation: 'getDeploy', method: 'GET', path: `/services/${seg(serviceId)}/deploys/${seg(deployId)}`, idempotent: true,
    });
    return data;
  }

  /** Newest first, as Render returns them; at most `limit` (default 20). */
  listDeploys(
    serviceId: string,
    options: { status?: DeployStatus | readonly DeployStatus[]; limit?: number } = {},
  ): Promise<Deploy[]> {
    const status = options.status === undefined ? undefined : ([] as DeployStatus[]).concat(options.status);
    return this.collect<{ deploy?: Deploy; cursor?: string }, Deploy>(
      'listDeploys',
      `/services/${seg(serviceId)}/deploys`,
      { status },
      (w) => w.deploy,
      options.limit ?? 20,
    );
  }

  /**
   * Polls until the deploy is `live` (or `deactivated`: it went live and was then replaced by a newer deploy).
   * build_failed, update_failed, canceled and pre_deploy_failed throw DeployFailedError; the timeout throws
   * RenderWaitTimeoutError.
   */
  async waitForDeploy(serviceId: string, deployId: string, options: WaitOptions<Deploy> = {}): Promise<Deploy> {
    return this.poll(
      `deploy ${deployId} of ${serviceId} to be live`,
      () => this.getDeploy(serviceId, deployId),
      (d) => d.status,
      (d) => {
        if (d.status === 'live' || d.status === 'deactivated') return true;
        if (d.status && FAILED_DEPLOY_STATUSES.includes(d.status)) throw new DeployFailedError(serviceId, deployId, d.status);
        return false;
      },
      options,
    );
  }

  private async poll<T>(
    what: string,
    fetch: () => Promise<T>,
    statusOf: (value: T) => string | undefined,
    done: (value: T) => boolean,
    options: WaitOptions<T>,
  ): Promise<T> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
    const pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    const startedAt = this.clock.now();
    let lastStatus: string | undefined;
    let first = true;
    for (;;) {
      const value = await fetch();
      const status = statusOf(value);
      if (first || status !== lastStatus) options.onProgress?.(value);
      first = false;
      lastStatus = status;
      if (done(value)) return value;
      if (this.clock.now() - startedAt >= timeoutMs) throw new RenderWaitTimeoutError(what, timeoutMs, lastStatus);
      await this.sleep(pollIntervalMs);
    }
  }

  // ---------------------------------------------------------------- postgres

  async createPostgres(body: PostgresCreateBody): Promise<PostgresDetail> {
    const { data } = await this.call<PostgresDetail>({
      operation: 'createPostgres', method: 'POST', path: '/postgres', body, idempotent: false,
    });
    return data;
  }

  async getPostgres(postgresId: string): Promise<PostgresDetail> {
    const { data } = await this.call<PostgresDetail>({
      operation: 'getPostgres', method: 'GET', path: `/postgres/${seg(postgresId)}`, idempotent: true,
    });
    return data;
  }

  async deletePostgres(postgresId: string): Promise<void> {
    await this.call({ operation: 'deletePostgres', method: 'DELETE', path: `/postgres/${seg(postgresId)}`, idempotent: true });
  }

  /** Contains credentials: callers must treat every field as secret. */
  async getPostgresConnectionInfo(postgresId: string): Promise<PostgresConnectionInfo> {
    const { data } = await this.call<PostgresConnectionInfo>({
      operation: 'getPostgresConnectionInfo', method: 'GET', path: `/postgres/${seg(postgresId)}/connection-info`, idempotent: true,
    });
    return data;
  }

  /** Polls until `available`; `recovery_failed` throws, the timeout throws RenderWaitTimeoutError. */
  waitForPostgresAvailable(postgresId: string, options: WaitOptions<PostgresDetail> = {}): Promise<PostgresDetail> {
    const failed: readonly DatabaseStatus[] = ['recovery_failed'];
    return this.poll(
      `postgres ${postgresId} to be available`,
      () => this.getPostgres(postgresId),
      (p) => p.status,
      (p) => {
        if (p.status === 'available') return true;
        if (failed.includes(p.status)) {
          throw new RenderApiError('waitForPostgresAvailable', 200, undefined, `postgres ${postgresId} is ${p.status}`);
        }
        return false;
      },
      options,
    );
  }

  // ---------------------------------------------------------------- key value

  async createKeyValue(body: KeyValueCreateBody): Promise<KeyValueDetail> {
    const { data } = await this.call<KeyValueDetail>({
      operation: 'createKeyValue', method: 'POST', path: '/key-value', body, idempotent: false,
    });
    return data;
  }

  async getKeyValue(keyValueId: string): Promise<KeyValueDetail> {
    const { data } = await this.call<KeyValueDetail>({
      operation: 'getKeyValue', method: 'GET', path: `/key-value/${seg(keyValueId)}`, idempotent: true,
    });
    return data;
  }

  async deleteKeyValue(keyValueId: string): Promise<void> {
    await this.call({ operation: 'deleteKeyValue', method: 'DELETE', path: `/key-value/${seg(keyValueId)}`, idempotent: true });
  }

  /** Contains credentials: callers must treat every field as secret. */
  async getKeyValueConnectionInfo(keyValueId: string): Promise<KeyValueConnectionInfo> {
    const { data } = await this.call<KeyValueConnectionInfo>({
      operation: 'getKeyValueConnectionInfo', method: 'GET', path: `/key-value/${seg(keyValueId)}/connection-info`, idempotent: true,
    });
    return data;
  }
}

function parseJson<T>(text: unknown): T {
  if (typeof text !== 'string') return text as T;
  if (text.trim() === '') return undefined as T;
  return JSON.parse(text) as T;
}

function parseErrorBody(text: unknown): { id?: string; message?: string } {
  try {
    const body = typeof text === 'string' && text.trim() ? (JSON.parse(text) as unknown) : text;
    if (body && typeof body === 'object') {
      const { id, message } = body as { id?: unknown; message?: unknown };
      return {
        ...(typeof id === 'string' ? { id } : {}),
        ...(typeof message === 'string' ? { message } : {}),
      };
    }
  } catch {
    // Not JSON (e.g. a proxy's HTML page): fall back to the status text.
  }
  return {};
}

/** axios, required on first use (Node caches it). */
function loadAxios(): typeof import('axios') {
  return require('axios') as typeof import('axios');
}

function isTimeoutAbort(err: unknown): boolean {
  const cause = (err as { cause?: unknown })?.cause;
  return (err instanceof Error && err.name === 'TimeoutError') || (cause instanceof Error && cause.name === 'TimeoutError');
}

/** A transport failure described without the request config (which holds the Authorization header). */
function describeTransportError(err: unknown): string {
  if (loadAxios().isAxiosError(err)) return `${err.code ?? 'ERR_NETWORK'}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}
