// An in-memory Render API emulator: a real HTTP server on loopback with Render's paths, bodies and errors,
// request validation against the published spec, deploy state machines and run-time faults.
import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import type {
  CustomDomain,
  Deploy,
  DeployStatus,
  KeyValueConnectionInfo,
  KeyValueDetail,
  Owner,
  PostgresConnectionInfo,
  PostgresDetail,
  Service,
} from '../types';
import { type EmulatorFaults, validateFaults } from './faults';
import { LocalPlatform, type LocalPlatformOptions, type ServicePlatformInfo } from './local-platform';
import { createdDetails, type Details, patchedDetails } from './service-details';
import { httpLatencySeries, httpRequestSeries, memorySeries, queryLogs } from './platform-metrics';
import { RenderSpecValidator } from './spec-validator';

export interface RenderEmulatorOptions {
  /** 0 (default) picks a free port. Always bound to 127.0.0.1. */
  port?: number;
  apiKey: string;
  /**
   * Time each deploy spends in each phase (queue, build, pre-deploy, start), when set. Unset, the phases take
   * RENDER_LIKE_DEPLOY_PHASES_MS (minutes per deploy, as on Render); tests and the demo set short ones, and the
   * figures they report are the emulator's.
   */
  deployStepMs?: number;
  /** Time per deploy phase, overriding deployStepMs (or the Render-like default) for that phase. */
  deployPhasesMs?: Partial<Record<DeployPhase, number>>;
  /** Run web services with a startCommand as local child processes. */
  localPlatform?: LocalPlatformOptions;
  /** Connection strings the emulator hands out for Postgres / Key Value (default: Render-like fakes). */
  databases?: { postgresUrl?: string; keyValueUrl?: string };
}

export type DeployPhase = 'queue' | 'build' | 'preDeploy' | 'start';

/**
 * Render-like phase times (the order of magnitude of a small Node service on a starter plan: an image build with a
 * warm cache, a short migration, the start and health check, the traffic swap). Not measured on Render by this project:
 * a realistic setting to rehearse with, not a claim about Render's speed.
 */
export const RENDER_LIKE_DEPLOY_PHASES_MS: Readonly<Record<DeployPhase, number>> = { queue: 5_000, build: 60_000, preDeploy: 10_000, start: 20_000 };

export interface EmulatedService {
  id: string;
  name: string;
  type: string;
  envVars: Record<string, string>;
  deploys: Deploy[];
  /** The env vars each deploy ran with (set when it starts building), by deploy id. */
  deployEnvVars: Record<string, Record<string, string>>;
  url: string | undefined;
  /**
   * Local platform, when the service runs locally: its load balancer (port, url, counters), the live instance's
   * pid (single-instance shape), every instance and recent deploys with their traffic-shift times.
   */
  instance?: ServicePlatformInfo;
}

export interface RenderEmulatorState {
  owner: Owner;
  services: EmulatedService[];
  postgres: PostgresDetail[];
  keyValue: KeyValueDetail[];
  faults: EmulatorFaults;
  /** Responses sent by the /v1 API, counted by status. */
  responses: Record<string, number>;
}

export interface RenderEmulator {
  /** Base URL including /v1, for RenderClient's baseUrl. */
  url: string;
  /** Origin, for the control API (/__emulator/...). */
  origin: string;
  setFaults(faults: EmulatorFaults): void;
  resetFaults(): void;
  state(): RenderEmulatorState;
  /** Local platform only: which code its deploys run (the working tree, or the commits of a git repository). */
  platformSource?: string;
  close(): Promise<void>;
}

interface ServiceRecord {
  service: Service;
  envVars: Map<string, string>;
  deploys: Deploy[]; // newest first
  queue: string[];
  deploying: boolean;
  customDomains: CustomDomain[];
  /** The env vars each deploy ran (or will run) with: a rollback reuses its target's, as on Render. */
  deployEnv: Map<string, Record<string, string>>;
}

interface DatabaseRecord<T> {
  detail: T;
  password: string;
}

class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const RATE_LIMIT_PER_MINUTE = 1_000;
const REDACTED = '<redacted: send the API key to see values>';

function id(prefix: string): string {
  return `${prefix}-${randomBytes(10).toString('hex')}`;
}

function nowIso(): string {
  return new Date().toISOString();
}

function listParam(value: unknown): string[] {
  if (value === undefined) return [];
  const values = Array.isArray(value) ? value : [value];
  return values.flatMap((v) => String(v).split(',')).map((v) => v.trim()).filter(Boolean);
}

/** Render's cursor pagination: items after `cursor` (an item's own cursor), at most `limit` (1-100, default 20). */
function paginate<T>(req: Request, items: T[], cursorOf: (item: T) => string, wrap: (item: T, cursor: string) => unknown): unknown[] {
  const rawLimit = req.query.limit;
  let limit = 20;
  if (rawLimit !== undefined) {
    limit = Number(rawLimit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new ApiError(400, 'limit must be an integer between 1 and 100');
  }
  let start = 0;
  if (typeof req.query.cursor === 'string' && req.query.cursor !== '') {
    const index = items.findIndex((item) => cursorOf(item) === req.query.cursor);
    if (index < 0) throw new ApiError(400, 'invalid cursor');
    start = index + 1;
  }
  return items.slice(start, start + limit).map((item) => wrap(item, cursorOf(item)));
}

function sameKey(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

const DETAILS_SCHEMA: Record<string, { post: string; patch: string }> = {
  static_site: { post: 'staticSiteDetailsPOST', patch: 'staticSiteDetailsPATCH' },
  web_service: { post: 'webServiceDetailsPOST', patch: 'webServiceDetailsPATCH' },
  private_service: { post: 'privateServiceDetailsPOST', patch: 'privateServiceDetailsPATCH' },
  background_worker: { post: 'backgroundWorkerDetailsPOST', patch: 'backgroundWorkerDetailsPATCH' },
  cron_job: { post: 'cronJobDetailsPOST', patch: 'cronJobDetailsPATCH' },
};

/** Own keys only: a client-sent type such as "constructor" must be a 400 from the spec check, not a lookup on Object.prototype. */
function detailsSchemaFor(type: string | undefined): { post: string; patch: string } | undefined {
  return type !== undefined && Object.hasOwn(DETAILS_SCHEMA, type) ? DETAILS_SCHEMA[type] : undefined;
}


export async function startRenderEmulator(options: RenderEmulatorOptions): Promise<RenderEmulator> {
  if (!options.apiKey) throw new TypeError('startRenderEmulator needs an apiKey');
  const apiKey = options.apiKey;
  // Datastores become available after two steps (200 ms each unless deployStepMs says otherwise).
  const stepMs = options.deployStepMs ?? 200;
  const phaseMs = (phase: DeployPhase): number => options.deployPhasesMs?.[phase] ?? options.deployStepMs ?? RENDER_LIKE_DEPLOY_PHASES_MS[phase];
  const validator = new RenderSpecValidator();
  const propertiesOf = (name: string) => validator.schemaProperties(name);
  const platform = options.localPlatform ? new LocalPlatform(options.localPlatform) : undefined;

  const owner: Owner = { id: id('tea'), name: 'Emulated Workspace', email: 'owner@example.com', type: 'team' };
  const services = new Map<string, ServiceRecord>();
  const postgres = new Map<string, DatabaseRecord<PostgresDetail>>();
  const keyValues = new Map<string, DatabaseRecord<KeyValueDetail>>();
  const responses: Record<string, number> = {};
  const timers = new Set<NodeJS.Timeout>();
  let faults: EmulatorFaults = {};
  let closed = false;
  let window = { startedAt: Date.now(), used: 0 };

  const later = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });

  // ------------------------------------------------------------ deploy state machine

  function setStatus(deploy: Deploy, status: DeployStatus): void {
    deploy.status = status;
    deploy.updatedAt = nowIso();
    if (status === 'build_in_progress') deploy.startedAt = deploy.updatedAt;
    if (['live', 'build_failed', 'update_failed', 'canceled', 'pre_deploy_failed'].includes(status)) deploy.finishedAt = deploy.updatedAt;
  }

  function createDeploy(
    record: ServiceRecord,
    commitId: string | undefined,
    trigger: Deploy['trigger'],
    rollbackOf?: Deploy,
  ): Deploy {
    const createdAt = nowIso();
    const deploy: Deploy = {
      id: id('dep'),
      commit: rollbackOf?.commit
        ? { ...rollbackOf.commit }
        : { id: commitId ?? branchHead(record) ?? randomBytes(20).toString('hex'), message: 'emulated commit', createdAt },
      status: record.deploying || record.queue.length > 0 ? 'queued' : 'created',
      trigger,
      createdAt,
      updatedAt: createdAt,
    };
    record.deploys.unshift(deploy);
    const targetEnv = rollbackOf && record.deployEnv.get(rollbackOf.id);
    if (targetEnv) record.deployEnv.set(deploy.id, { ...targetEnv });
    record.queue.push(deploy.id);
    void drainDeploys(record);
    return deploy;
  }

  /** A local platform running git commits: a deploy without a commit runs the head of the service's branch, as on Render. */
  function branchHead(record: ServiceRecord): string | undefined {
    return platform?.resolveCommit(record.service.branch || 'HEAD') ?? platform?.resolveCommit('HEAD');
  }

  async function drainDeploys(record: ServiceRecord): Promise<void> {
    if (record.deploying) return;
    record.deploying = true;
    try {
      while (!closed && record.queue.length > 0) {
        const deployId = record.queue.shift()!;
        const deploy = record.deploys.find((d) => d.id === deployId);
        if (deploy && deploy.status !== 'canceled') await runDeploy(record, deploy);
      }
    } finally {
      record.deploying = false;
    }
  }

  async function runDeploy(record: ServiceRecord, deploy: Deploy): Promise<void> {
    if (deploy.status === 'queued') setStatus(deploy, 'created');
    await later(phaseMs('queue'));
    if (closed || !services.has(record.service.id)) return;
    setStatus(deploy, 'build_in_progress');
    await later(phaseMs('build'));
    if (closed || !services.has(record.service.id)) return;
    if ((faults.failBuilds ?? 0) > 0) {
      faults.failBuilds = (faults.failBuilds ?? 0) - 1;
      setStatus(deploy, 'build_failed');
      return;
    }
    const details = record.service.serviceDetails as Details;
    const buildCommand = typeof details.envSpecificDetails?.buildCommand === 'string' ? details.envSpecificDetails.buildCommand : undefined;
    const preDeployCommand = typeof details.envSpecificDetails?.preDeployCommand === 'string' ? details.envSpecificDetails.preDeployCommand : undefined;
    const startCommand = typeof details.envSpecificDetails?.startCommand === 'string' ? details.envSpecificDetails.startCommand : undefined;
    const runsLocally = platform !== undefined && record.service.type === 'web_service' && !!startCommand;
    // A rollback runs with its target's env vars; any other deploy with the service's current ones.
    const envVars = record.deployEnv.get(deploy.id) ?? Object.fromEntries(record.envVars);
    record.deployEnv.set(deploy.id, envVars);
    const commitId = deploy.commit?.id ?? '';
    // The local platform runs the build command as Render does (what the start command runs comes from it).
    if (runsLocally && buildCommand) {
      const result = await platform.build({ serviceId: record.service.id, command: buildCommand, envVars, commitId });
      if (closed || !services.has(record.service.id)) return;
      if (!result.ok) {
        setStatus(deploy, 'build_failed');
        return;
      }
    }
    if (preDeployCommand) {
      setStatus(deploy, 'pre_deploy_in_progress');
      await later(phaseMs('preDeploy'));
      if (closed) return;
      if (runsLocally) {
        const result = await platform.runOnce({ serviceId: record.service.id, command: preDeployCommand, envVars, commitId });
        if (closed) return;
        if (!result.ok) {
          setStatus(deploy, 'pre_deploy_failed');
          return;
        }
      }
    }
    setStatus(deploy, 'update_in_progress');
    await later(phaseMs('start'));
    if (closed || !services.has(record.service.id)) return;
    if (runsLocally) {
      const result = await platform.deploy({
        serviceId: record.service.id,
        startCommand: startCommand!,
        envVars,
        commitId,
        healthCheckPath: typeof details.healthCheckPath === 'string' ? details.healthCheckPath : '',
        ...(typeof details.maxShutdownDelaySeconds === 'number' ? { maxShutdownDelaySeconds: details.maxShutdownDelaySeconds } : {}),
        deployId: deploy.id,
        numInstances: typeof details.numInstances === 'number' ? details.numInstances : 1,
        hasDisk: !!details.disk,
      });
      if (closed) return;
      if (!result.ok) {
        setStatus(deploy, 'update_failed');
        return;
      }
    }
    for (const other of record.deploys) if (other !== deploy && other.status === 'live') setStatus(other, 'deactivated');
    setStatus(deploy, 'live');
  }

  // ------------------------------------------------------------ resources

  function buildService(body: Record<string, unknown>, url: string | undefined): Service {
    const createdAt = nowIso();
    const serviceId = id('srv');
    const type = body.type as Service['type'];
    const slug = String(body.name).toLowerCase().replace(/[^a-z0-9-]+/g, '-');
    const details = createdDetails(type, (body.serviceDetails ?? {}) as Details, slug, url, propertiesOf, id);
    return {
      id: serviceId,
      name: String(body.name),
      ownerId: String(body.ownerId),
      type,
      ...(typeof body.repo === 'string' ? { repo: body.repo, branch: typeof body.branch === 'string' ? body.branch : 'main' } : {}),
      autoDeploy: (body.autoDeploy as Service['autoDeploy'] | undefined) ?? 'yes',
      createdAt,
      updatedAt: createdAt,
      dashboardUrl: `https://dashboard.render.com/web/${serviceId}`,
      suspended: 'not_suspended',
      suspenders: [],
      notifyOnFail: 'default',
      slug,
      rootDir: (body.rootDir as string | undefined) ?? '',
      ...(body.environmentId ? { environmentId: String(body.environmentId) } : {}),
      serviceDetails: details as Service['serviceDetails'],
    } as Service;
  }

  function envVarsFromInput(input: Array<Record<string, unknown>>): Map<string, string> {
    const vars = new Map<string, string>();
    for (const item of input) {
      const value = item.generateValue === true ? randomBytes(24).toString('base64url') : String(item.value ?? '');
      vars.set(String(item.key), value);
    }
    return vars;
  }

  function getServiceRecord(serviceId: string): ServiceRecord {
    const record = services.get(serviceId);
    if (!record) throw new ApiError(404, 'service not found');
    return record;
  }

  function databaseBase(body: Record<string, unknown>, prefix: string) {
    const createdAt = nowIso();
    return {
      id: id(prefix),
      createdAt,
      updatedAt: createdAt,
      name: String(body.name),
      owner,
      region: (body.region as string | undefined) ?? 'oregon',
      ipAllowList: (body.ipAllowList as unknown[] | undefined) ?? [],
      status: 'creating' as const,
      ...(body.environmentId ? { environmentId: String(body.environmentId) } : {}),
    };
  }

  function becomeAvailable(detail: { status: string; updatedAt: string }): void {
    void later(stepMs * 2).then(() => {
      if (!closed && detail.status === 'creating') {
        detail.status = 'available';
        detail.updatedAt = nowIso();
      }
    });
  }

  function postgresConnection(record: DatabaseRecord<PostgresDetail>): PostgresConnectionInfo {
    const d = record.detail;
    const host = `${d.id}-a`;
    const internal = `postgresql://${d.databaseUser}:${record.password}@${host}/${d.databaseName}`;
    const external = `postgresql://${d.databaseUser}:${record.password}@${host}.${d.region}-postgres.render.com/${d.databaseName}`;
    return {
      password: record.password,
      internalConnectionString: options.databases?.postgresUrl ?? internal,
      externalConnectionString: options.databases?.postgresUrl ?? external,
      psqlCommand: `PGPASSWORD=${record.password} psql -h ${host}.${d.region}-postgres.render.com -U ${d.databaseUser} ${d.databaseName}`,
    };
  }

  function keyValueConnection(record: DatabaseRecord<KeyValueDetail>): KeyValueConnectionInfo {
    const d = record.detail;
    const internal = `redis://${d.id}:6379`;
    const external = `rediss://red-user:${record.password}@${d.region}-keyvalue.render.com:6379`;
    return {
      internalConnectionString: options.databases?.keyValueUrl ?? internal,
      externalConnectionString: options.databases?.keyValueUrl ?? external,
      cliCommand: `redis-cli --user red-user -a ${record.password} -h ${d.region}-keyvalue.render.com -p 6379 --tls`,
    };
  }

  function requireValid(method: string, specPath: string, body: unknown): void {
    const result = validator.validateRequestBody(method, specPath, body);
    if (!result.ok) throw new ApiError(400, result.message);
  }

  // ------------------------------------------------------------ HTTP

  const hasKey = (req: Request): boolean => {
    const match = /^Bearer (.+)$/.exec(req.get('authorization') ?? '');
    return !!match && sameKey(match[1]!, apiKey);
  };

  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  const api = express.Router();

  // Control API for other processes (tests, demo): loopback only; faults need no key, env var values in
  // the state do.
  app.use('/__emulator', express.json());
  app.get('/__emulator/state', (req, res) => {
    // Env var values can be secrets: only callers holding the API key see them.
    const full = state();
    if (hasKey(req)) {
      res.json(full);
      return;
    }
    for (const service of full.services) {
      service.envVars = Object.fromEntries(Object.keys(service.envVars).map((key) => [key, REDACTED]));
    }
    res.json(full);
  });
  app.post('/__emulator/faults', (req, res) => {
    const parsed = validateFaults(req.body);
    if (!parsed.ok) {
      res.status(400).json({ id: 'invalid_faults', message: parsed.message });
      return;
    }
    setFaults(parsed.faults);
    res.json(faults);
  });
  app.delete('/__emulator/faults', (_req, res) => {
    resetFaults();
    res.json(faults);
  });

  api.use((req, res, next) => {
    res.on('finish', () => {
      responses[res.statusCode] = (responses[res.statusCode] ?? 0) + 1;
    });
    if (!hasKey(req)) {
      res.status(401).json({ id: 'unauthorized', message: 'Unauthorized' });
      return;
    }
    const now = Date.now();
    if (now - window.startedAt >= 60_000) window = { startedAt: now, used: 0 };
    window.used += 1;
    const resetSeconds = Math.max(1, Math.ceil((window.startedAt + 60_000 - now) / 1000));
    res.set('Ratelimit-Limit', String(RATE_LIMIT_PER_MINUTE));
    res.set('Ratelimit-Remaining', String(Math.max(0, RATE_LIMIT_PER_MINUTE - window.used)));
    res.set('Ratelimit-Reset', String(resetSeconds));

    const target = `${req.method} ${req.path}`;
    const rl = faults.rateLimit;
    if (rl && rl.count > 0 && (!rl.match || target.includes(rl.match))) {
      rl.count -= 1;
      const reset = rl.resetSeconds ?? 1;
      res.set('Ratelimit-Remaining', '0');
      res.set('Ratelimit-Reset', String(reset));
      if (rl.retryAfterSeconds !== undefined && rl.retryAfterSeconds !== null) res.set('Retry-After', String(rl.retryAfterSeconds));
      res.status(429).json({ id: 'rate_limit_exceeded', message: 'Rate limit has been surpassed.' });
      return;
    }
    const se = faults.serverErrors;
    if (se && se.count > 0 && (!se.match || target.includes(se.match))) {
      se.count -= 1;
      res.status(se.status ?? 500).json({ id: randomUUID(), message: 'An internal server error occurred.' });
      return;
    }
    next();
  });
  api.use(express.json({ limit: '1mb' }));

  api.get('/owners', (req, res) => {
    res.json(paginate(req, [owner], (o) => o.id, (o, cursor) => ({ owner: o, cursor })));
  });

  api.get('/services', (req, res) => {
    const names = listParam(req.query.name);
    const owners = listParam(req.query.ownerId);
    const types = listParam(req.query.type);
    const matching = [...services.values()]
      .map((r) => r.service)
      .filter((s) => (names.length === 0 || names.includes(s.name)) && (owners.length === 0 || owners.includes(s.ownerId)) && (types.length === 0 || types.includes(s.type)));
    res.json(paginate(req, matching, (s) => s.id, (service, cursor) => ({ service, cursor })));
  });

  api.post('/services', async (req, res) => {
    const body = req.body as Record<string, unknown> | undefined;
    const type = typeof body?.type === 'string' ? body.type : undefined;
    // Every type but static sites needs at least a runtime, so serviceDetails is checked even when absent.
    const detailsSchema = detailsSchemaFor(type);
    if (detailsSchema && (body?.serviceDetails !== undefined || type !== 'static_site')) {
      const exact = validator.validateSchema(detailsSchema.post, body?.serviceDetails ?? {});
      if (!exact.ok) throw new ApiError(400, `serviceDetails (${type}): ${exact.message.replace(/^body/, '').replace(/^: /, '')}`);
    }
    requireValid('post', '/services', body);
    if (typeof body!.name !== 'string' || body!.name.trim() === '') throw new ApiError(400, 'name must not be empty');
    if (body!.ownerId !== owner.id) throw new ApiError(404, 'owner not found');
    if ([...services.values()].some((r) => r.service.name === body!.name)) throw new ApiError(409, 'a service with this name already exists');
    const service = buildService(body!, undefined);
    // Local platform: the service's loopback port is reserved now and kept across deploys.
    if (platform && type === 'web_service') (service.serviceDetails as Details).url = await platform.register(service.id);
    const record: ServiceRecord = {
      service,
      envVars: envVarsFromInput((body!.envVars as Array<Record<string, unknown>> | undefined) ?? []),
      deploys: [],
      queue: [],
      deploying: false,
      customDomains: [],
      deployEnv: new Map(),
    };
    services.set(service.id, record);
    const deploy = createDeploy(record, undefined, 'api');
    res.status(201).json({ service, deployId: deploy.id });
  });

  api.get('/services/:serviceId', (req, res) => {
    res.json(getServiceRecord(req.params.serviceId as string).service);
  });

  api.patch('/services/:serviceId', (req, res) => {
    const record = getServiceRecord(req.params.serviceId as string);
    const body = req.body as Record<string, unknown> | undefined;
    const schemas = detailsSchemaFor(record.service.type);
    if (schemas && body?.serviceDetails !== undefined) {
      const exact = validator.validateSchema(schemas.patch, body.serviceDetails);
      if (!exact.ok) throw new ApiError(400, `serviceDetails (${record.service.type}): ${exact.message.replace(/^body/, '').replace(/^: /, '')}`);
    }
    requireValid('patch', '/services/{serviceId}', body);
    const { serviceDetails, ...top } = body as Record<string, unknown>;
    if (typeof top.name === 'string' && top.name !== record.service.name && [...services.values()].some((r) => r.service.name === top.name)) {
      throw new ApiError(409, 'a service with this name already exists');
    }
    if (typeof top.name === 'string' && top.name.trim() === '') throw new ApiError(400, 'name must not be empty');
    Object.assign(record.service, top);
    if (serviceDetails) {
      record.service.serviceDetails = patchedDetails(
        record.service.type,
        record.service.serviceDetails as Details,
        serviceDetails as Details,
        propertiesOf,
      ) as Service['serviceDetails'];
    }
    record.service.updatedAt = nowIso();
    res.json(record.service);
  });

  api.post('/services/:serviceId/scale', (req, res) => {
    const record = getServiceRecord(req.params.serviceId as string);
    requireValid('post', '/services/{serviceId}/scale', req.body);
    const { numInstances } = req.body as { numInstances: number };
    if (numInstances < 1) throw new ApiError(400, 'numInstances must be at least 1');
    if (record.service.type === 'static_site') throw new ApiError(400, 'static sites cannot be scaled');
    if ((record.service.serviceDetails as Details).disk && numInstances > 1) throw new ApiError(400, 'a service with a disk runs a single instance');
    (record.service.serviceDetails as Details).numInstances = numInstances;
    record.service.updatedAt = nowIso();
    // Like Render, scaling acts on the live deploy (no new deploy); the API answers before instances are up.
    if (platform) void platform.scale(record.service.id, numInstances);
    res.status(202).end();
  });

  // The live deploy's instances. On the local platform they are the real ones (id = RENDER_INSTANCE_ID); otherwise
  // numInstances stand-ins, created when the live deploy finished. Instances of a replaced deploy that are
  // still draining are not listed: Render lists the service's current instances.
  api.get('/services/:serviceId/instances', (req, res) => {
    const record = getServiceRecord(req.params.serviceId as string);
    const local = platform?.info(record.service.id);
    if (local?.liveDeployId !== undefined) {
      const current = local.instances.filter((i) => i.deployId === local.liveDeployId && i.state !== 'draining' && i.state !== 'stopping');
      res.json(current.map((i) => ({ id: i.instanceId, createdAt: i.createdAt })));
      return;
    }
    const live = record.deploys.find((d) => d.status === 'live');
    const count = (record.service.serviceDetails as Details).numInstances;
    if (!live || local || typeof count !== 'number') {
      res.json([]);
      return;
    }
    const createdAt = live.finishedAt ?? live.updatedAt ?? nowIso();
    res.json(Array.from({ length: count }, (_, index) => ({ id: `${record.service.id}-${live.id.slice(-5)}-${index}`, createdAt })));
  });

  api.delete('/services/:serviceId', async (req, res) => {
    const record = getServiceRecord(req.params.serviceId as string);
    services.delete(record.service.id);
    await platform?.remove(record.service.id);
    res.status(204).end();
  });

  api.get('/services/:serviceId/custom-domains', (req, res) => {
    const record = getServiceRecord(req.params.serviceId as string);
    res.json(paginate(req, record.customDomains, (d) => d.id, (customDomain, cursor) => ({ customDomain, cursor })));
  });

  api.post('/services/:serviceId/custom-domains', (req, res) => {
    const record = getServiceRecord(req.params.serviceId as string);
    requireValid('post', '/services/{serviceId}/custom-domains', req.body);
    const name = String((req.body as { name: string }).name).trim().toLowerCase();
    if (!/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/.test(name)) throw new ApiError(400, 'name must be a domain name');
    if ([...services.values()].some((r) => r.customDomains.some((d) => d.name === name))) throw new ApiError(409, 'custom domain already exists');
    const labels = name.split('.');
    const apex = labels.length === 2;
    const domain = (domainName: string, redirectForName: string): CustomDomain => ({
      id: id('cdm'),
      name: domainName,
      domainType: domainName.split('.').length === 2 ? 'apex' : 'subdomain',
      publicSuffix: labels.at(-1)!,
      redirectForName,
      verificationStatus: 'unverified',
      createdAt: nowIso(),
      server: { id: record.service.id, name: record.service.name },
    });
    // Like Render: an apex domain comes with its www subdomain, which redirects to it.
    const created = apex ? [domain(name, ''), domain(`www.${name}`, name)] : [domain(name, '')];
    record.customDomains.push(...created);
    res.status(201).json(created);
  });

  api.get('/services/:serviceId/env-vars', (req, res) => {
    const record = getServiceRecord(req.params.serviceId as string);
    const entries = [...record.envVars.entries()];
    res.json(paginate(req, entries, ([key]) => key, ([key, value], cursor) => ({ envVar: { key, value }, cursor })));
  });

  api.put('/services/:serviceId/env-vars', (req, res) => {
    const record = getServiceRecord(req.params.serviceId as string);
    requireValid('put', '/services/{serviceId}/env-vars', req.body);
    record.envVars = envVarsFromInput(req.body as Array<Record<string, unknown>>);
    record.service.updatedAt = nowIso();
    res.json([...record.envVars.entries()].map(([key, value]) => ({ envVar: { key, value }, cursor: key })));
  });

  api.get('/services/:serviceId/env-vars/:key', (req, res) => {
    const record = getServiceRecord(req.params.serviceId as string);
    const key = req.params.key as string;
    if (!record.envVars.has(key)) throw new ApiError(404, 'env var not found');
    res.json({ key, value: record.envVars.get(key) });
  });

  api.put('/services/:serviceId/env-vars/:key', (req, res) => {
    const record = getServiceRecord(req.params.serviceId as string);
    requireValid('put', '/services/{serviceId}/env-vars/{envVarKey}', req.body);
    const key = req.params.key as string;
    const body = req.body as { value?: string; generateValue?: boolean };
    const value = body.generateValue === true ? randomBytes(24).toString('base64url') : String(body.value ?? '');
    record.envVars.set(key, value);
    res.json({ key, value });
  });

  api.delete('/services/:serviceId/env-vars/:key', (req, res) => {
    const record = getServiceRecord(req.params.serviceId as string);
    if (!record.envVars.delete(req.params.key as string)) throw new ApiError(404, 'env var not found');
    res.status(204).end();
  });

  api.get('/services/:serviceId/deploys', (req, res) => {
    const record = getServiceRecord(req.params.serviceId as string);
    const statuses = listParam(req.query.status);
    const matching = record.deploys.filter((d) => statuses.length === 0 || (d.status !== undefined && statuses.includes(d.status)));
    res.json(paginate(req, matching, (d) => d.id, (deploy, cursor) => ({ deploy, cursor })));
  });

  api.post('/services/:serviceId/deploys', (req, res) => {
    const record = getServiceRecord(req.params.serviceId as string);
    requireValid('post', '/services/{serviceId}/deploys', req.body);
    const body = (req.body ?? {}) as { commitId?: string };
    const deploy = createDeploy(record, body.commitId, 'api');
    if ((faults.emptyDeployResponses ?? 0) > 0) {
      faults.emptyDeployResponses = (faults.emptyDeployResponses ?? 0) - 1;
      res.status(202).end();
      return;
    }
    res.status(201).json(deploy);
  });

  // Roll back: a new deploy (trigger `rollback`) of an earlier deploy's commit with that deploy's env vars;
  // the service's current env vars are left as they are for later deploys (Render's documented behaviour).
  api.post('/services/:serviceId/rollback', (req, res) => {
    const record = getServiceRecord(req.params.serviceId as string);
    requireValid('post', '/services/{serviceId}/rollback', req.body);
    const { deployId } = req.body as { deployId: string };
    const target = record.deploys.find((d) => d.id === deployId);
    if (!target) throw new ApiError(404, 'deploy not found');
    // Only a deploy that went live has a build to return to.
    if (target.status !== 'live' && target.status !== 'deactivated') {
      throw new ApiError(400, `deploy ${deployId} is ${target.status}: only a deploy that went live can be rolled back to`);
    }
    res.status(201).json(createDeploy(record, undefined, 'rollback', target));
  });

  api.get('/services/:serviceId/deploys/:deployId', (req, res) => {
    const record = getServiceRecord(req.params.serviceId as string);
    const deploy = record.deploys.find((d) => d.id === req.params.deployId);
    if (!deploy) throw new ApiError(404, 'deploy not found');
    res.json(deploy);
  });

  api.post('/postgres', (req, res) => {
    requireValid('post', '/postgres', req.body);
    const body = req.body as Record<string, unknown>;
    if (body.ownerId !== owner.id) throw new ApiError(404, 'owner not found');
    const base = databaseBase(body, 'dpg');
    const detail = {
      ...base,
      dashboardUrl: `https://dashboard.render.com/d/${base.id}`,
      databaseName: (body.databaseName as string | undefined) ?? `db_${randomBytes(3).toString('hex')}`,
      databaseUser: (body.databaseUser as string | undefined) ?? `user_${randomBytes(3).toString('hex')}`,
      highAvailabilityEnabled: body.enableHighAvailability === true,
      plan: body.plan,
      version: body.version,
      readReplicas: [],
      role: 'primary',
      suspended: 'not_suspended',
      suspenders: [],
      diskAutoscalingEnabled: body.enableDiskAutoscaling === true,
      ...(typeof body.diskSizeGB === 'number' ? { diskSizeGB: body.diskSizeGB } : {}),
    } as unknown as PostgresDetail;
    postgres.set(detail.id, { detail, password: randomBytes(16).toString('hex') });
    becomeAvailable(detail);
    res.status(201).json(detail);
  });

  // Lists, filtered by name and owner as Render does (used to find a team's existing datastores by name).
  const databaseFilter = (req: Request) => {
    const names = listParam(req.query.name);
    const owners = listParam(req.query.ownerId);
    return (d: { name: string; owner?: { id: string } }) => (names.length === 0 || names.includes(d.name)) && (owners.length === 0 || owners.includes(d.owner?.id ?? ''));
  };
  api.get('/postgres', (req, res) => {
    const matching = [...postgres.values()].map((r) => r.detail).filter(databaseFilter(req));
    sendValid(res, '/postgres', paginate(req, matching, (d) => d.id, (detail, cursor) => ({ postgres: detail, cursor })));
  });
  api.get('/key-value', (req, res) => {
    const matching = [...keyValues.values()].map((r) => r.detail).filter(databaseFilter(req));
    sendValid(res, '/key-value', paginate(req, matching, (d) => d.id, (detail, cursor) => ({
      keyValue: { ...detail, dashboardUrl: `https://dashboard.render.com/r/${detail.id}` },
      cursor,
    })));
  });

  const getPostgresRecord = (postgresId: string) => {
    const record = postgres.get(postgresId);
    if (!record) throw new ApiError(404, 'postgres instance not found');
    return record;
  };
  api.get('/postgres/:postgresId', (req, res) => {
    res.json(getPostgresRecord(req.params.postgresId as string).detail);
  });
  api.delete('/postgres/:postgresId', (req, res) => {
    getPostgresRecord(req.params.postgresId as string);
    postgres.delete(req.params.postgresId as string);
    res.status(204).end();
  });
  api.get('/postgres/:postgresId/connection-info', (req, res) => {
    res.json(postgresConnection(getPostgresRecord(req.params.postgresId as string)));
  });

  api.post('/key-value', (req, res) => {
    requireValid('post', '/key-value', req.body);
    const body = req.body as Record<string, unknown>;
    if (body.ownerId !== owner.id) throw new ApiError(404, 'owner not found');
    const detail = {
      ...databaseBase(body, 'red'),
      plan: body.plan,
      options: { maxmemoryPolicy: (body.maxmemoryPolicy as string | undefined) ?? 'allkeys_lru' },
      version: '8.1.4',
    } as unknown as KeyValueDetail;
    keyValues.set(detail.id, { detail, password: randomBytes(16).toString('hex') });
    becomeAvailable(detail);
    res.status(201).json(detail);
  });

  const getKeyValueRecord = (keyValueId: string) => {
    const record = keyValues.get(keyValueId);
    if (!record) throw new ApiError(404, 'key value instance not found');
    return record;
  };
  api.get('/key-value/:keyValueId', (req, res) => {
    res.json(getKeyValueRecord(req.params.keyValueId as string).detail);
  });
  api.delete('/key-value/:keyValueId', (req, res) => {
    getKeyValueRecord(req.params.keyValueId as string);
    keyValues.delete(req.params.keyValueId as string);
    res.status(204).end();
  });
  api.get('/key-value/:keyValueId/connection-info', (req, res) => {
    res.json(keyValueConnection(getKeyValueRecord(req.params.keyValueId as string)));
  });

  // ------------------------------------------------------------ logs and metrics (local platform measurements)

  /** Every answer of these endpoints is checked against the spec before it leaves: a mismatch is an emulator bug. */
  const sendValid = (res: Response, specPath: string, body: unknown): void => {
    const check = validator.validateResponse('get', specPath, 200, body);
    if (!check.ok) throw new ApiError(500, `emulator answer for GET ${specPath} does not match the spec: ${check.message}`);
    res.json(body);
  };
  const requireValidQuery = (req: Request, specPath: string): void => {
    const check = validator.validateQuery('get', specPath, req.query as Record<string, unknown>);
    if (!check.ok) throw new ApiError(400, check.message);
  };
  const timeRange = (req: Request, defaultSpanMs: number): { startMs: number; endMs: number } => {
    const endMs = typeof req.query.endTime === 'string' ? Date.parse(req.query.endTime) : Date.now();
    const startMs = typeof req.query.startTime === 'string' ? Date.parse(req.query.startTime) : endMs - defaultSpanMs;
    if (startMs > endMs) throw new ApiError(400, 'startTime must not be after endTime');
    return { startMs, endMs };
  };

  // GET /logs: the resources' log lines from the local platform's log files (processes' real output).
  api.get('/logs', (req, res) => {
    requireValidQuery(req, '/logs');
    if (req.query.ownerId !== owner.id) throw new ApiError(404, 'owner not found');
    const { startMs, endMs } = timeRange(req, 60 * 60_000);
    const lines = listParam(req.query.resource).flatMap((resource) => (services.has(resource) ? (platform?.logLines(resource) ?? []) : []));
    lines.sort((a, b) => a.timestamp.localeCompare(b.timestamp) || a.id.localeCompare(b.id));
    const page = queryLogs(lines, {
      startMs,
      endMs,
      direction: req.query.direction === 'forward' ? 'forward' : 'backward',
      limit: req.query.limit === undefined ? 20 : Number(req.query.limit),
      instance: listParam(req.query.instance),
      level: listParam(req.query.level),
      text: Array.isArray(req.query.text) ? req.query.text.map(String) : typeof req.query.text === 'string' ? [req.query.text] : [],
      type: listParam(req.query.type),
    });
    sendValid(res, '/logs', page);
  });

  const metricsResource = (req: Request): string => {
    const resource = typeof req.query.resource === 'string' ? req.query.resource : typeof req.query.service === 'string' ? req.query.service : undefined;
    if (!resource) throw new ApiError(400, 'resource is required');
    return resource;
  };
  const resolution = (req: Request) => (req.query.resolutionSeconds === undefined ? 60 : Number(req.query.resolutionSeconds));

  // GET /metrics/http-requests and /metrics/http-latency: what the service's load balancer answered.
  api.get('/metrics/http-requests', (req, res) => {
    requireValidQuery(req, '/metrics/http-requests');
    const resource = metricsResource(req);
    const { startMs, endMs } = timeRange(req, 60 * 60_000);
    const records = services.has(resource) ? (platform?.requestLog(resource) ?? []) : [];
    sendValid(res, '/metrics/http-requests', httpRequestSeries(records, startMs, endMs, resolution(req), req.query.aggregateBy === 'statusCode'));
  });
  api.get('/metrics/http-latency', (req, res) => {
    requireValidQuery(req, '/metrics/http-latency');
    const resource = metricsResource(req);
    const { startMs, endMs } = timeRange(req, 60 * 60_000);
    const quantile = req.query.quantile === undefined ? 0.95 : Number(req.query.quantile);
    if (!(quantile > 0 && quantile <= 1)) throw new ApiError(400, 'quantile must be in (0, 1]');
    const records = services.has(resource) ? (platform?.requestLog(resource) ?? []) : [];
    sendValid(res, '/metrics/http-latency', httpLatencySeries(records, startMs, endMs, resolution(req), quantile));
  });
  // GET /metrics/memory: each instance's resident memory, sampled from /proc.
  api.get('/metrics/memory', (req, res) => {
    requireValidQuery(req, '/metrics/memory');
    const resource = metricsResource(req);
    const { startMs, endMs } = timeRange(req, 60 * 60_000);
    const samples = services.has(resource) ? (platform?.memorySamples(resource) ?? []) : [];
    const instance = typeof req.query.instance === 'string' ? req.query.instance : undefined;
    sendValid(res, '/metrics/memory', memorySeries(samples, startMs, endMs, resolution(req), instance));
  });

  api.use((req, res) => {
    res.status(404).json({ id: 'not_found', message: `no route for ${req.method} ${req.path} in the emulator` });
  });

  app.use('/v1', api);
  app.use((req, res) => {
    res.status(404).json({ id: 'not_found', message: `no route for ${req.method} ${req.path}` });
  });
  app.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    if (err instanceof ApiError) {
      res.status(err.status).json({ id: randomUUID(), message: err.message });
      return;
    }
    const parseError = err as { type?: string; status?: number };
    if (parseError.type === 'entity.parse.failed') {
      res.status(400).json({ id: randomUUID(), message: 'request body is not valid JSON' });
      return;
    }
    if (typeof parseError.status === 'number' && parseError.status >= 400 && parseError.status < 500) {
      res.status(parseError.status).json({ id: randomUUID(), message: (err as Error).message });
      return;
    }
    res.status(500).json({ id: randomUUID(), message: 'emulator internal error' });
  });

  // ------------------------------------------------------------ lifecycle

  function setFaults(next: EmulatorFaults): void {
    faults = { ...faults, ...structuredClone(next) };
  }

  function resetFaults(): void {
    faults = {};
  }

  function state(): RenderEmulatorState {
    const instances = new Map((platform?.all() ?? []).map((i) => [i.serviceId, i]));
    return structuredClone({
      owner,
      services: [...services.values()].map((r) => {
        const details = r.service.serviceDetails as Details;
        const instance = instances.get(r.service.id);
        return {
          id: r.service.id,
          name: r.service.name,
          type: r.service.type,
          envVars: Object.fromEntries(r.envVars),
          deploys: r.deploys,
          deployEnvVars: Object.fromEntries(r.deployEnv),
          url: typeof details.url === 'string' ? details.url : undefined,
          ...(instance ? { instance } : {}),
        };
      }),
      postgres: [...postgres.values()].map((r) => r.detail),
      keyValue: [...keyValues.values()].map((r) => r.detail),
      faults,
      responses,
    });
  }

  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(options.port ?? 0, '127.0.0.1', (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;

  return {
    url: `${origin}/v1`,
    origin,
    setFaults,
    resetFaults,
    state,
    ...(platform ? { platformSource: platform.describe() } : {}),
    async close() {
      if (closed) return;
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await platform?.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
