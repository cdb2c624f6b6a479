/**
 * What the canary records at each poll: the raw HTTP answers, not an interpretation of them, so a
 * recorded run (report.json) and a hand-written timeline replay through exactly the same analysis.
 */
import { z } from 'zod';
import { logReadingSchema } from '../logs/judge-logs';
import { sourceReadingSchema } from './observations';
import { probeRunSchema } from '../probe/judge-probe';
import { syntheticSnapshotSchema } from '../synthetic/snapshot';
import { configResponseSchema, healthResponseSchema, memoryMetricsSchema, type MemoryMetrics } from '../../service/contracts/http';

/** One HTTP GET: its status and parsed JSON body, or why there is none. */
export const probeSchema = z.object({
  status: z.number().int().nullable(),
  body: z.unknown().optional(),
  /** set when there is no usable answer: timeout, connection failure, or a body that is not JSON */
  error: z.enum(['timeout', 'network', 'invalid_json']).optional(),
  message: z.string().optional(),
});
export type Probe = z.infer<typeof probeSchema>;

/** One measurement: the metric samples taken to see every instance, plus health and config. */
export const measurementSchema = z.object({
  /** policy seconds since the analysis started (the deploy went live) */
  atSeconds: z.number().nonnegative(),
  samples: z.array(probeSchema),
  health: probeSchema.optional(),
  config: probeSchema.optional(),
  /** GET /api/admin/sync-context7/status, when the canary follows a backfill (the admin token is never recorded) */
  backfill: probeSchema.optional(),
  /** Render's GET /logs since the previous read, when the canary has the Render API */
  logs: logReadingSchema.optional(),
  /** pluggable metric sources' observations (Render's platform metrics), each read once per measurement */
  sources: z.array(sourceReadingSchema).optional(),
  /** the synthetic learning probe's run, when one ran at this measurement (never the probe key) */
  probe: probeRunSchema.optional(),
  /** the canary's own synthetic traffic (staging), cumulative, as it stood just before this measurement */
  synthetic: syntheticSnapshotSchema.optional(),
});
export type Measurement = z.infer<typeof measurementSchema>;

export type SampleProblem = 'timeout' | 'network' | 'http_status' | 'malformed' | 'wrong_deploy';

export type ClassifiedSample =
  | { ok: true; metrics: MemoryMetrics }
  | { ok: false; problem: SampleProblem; detail: string };

/**
 * Validates a metrics sample against the service contract. `deployId` (the commit) refuses other commits'
 * figures; `deployStartedAfter` (the analysed Render deploy's creation time) refuses fleet figures of a deploy
 * generation that began before it: an older deploy of the same commit and configuration, whose processes the
 * new ones joined (see service/fleet/deploy-generation.ts).
 */
export function classifySample(probe: Probe, deployId: string | undefined, deployStartedAfter?: string): ClassifiedSample {
  if (probe.error === 'timeout') return { ok: false, problem: 'timeout', detail: probe.message ?? 'timed out' };
  if (probe.error === 'network' || probe.status === null) return { ok: false, problem: 'network', detail: probe.message ?? 'no answer' };
  if (probe.status < 200 || probe.status > 299) return { ok: false, problem: 'http_status', detail: `HTTP ${probe.status}` };
  if (probe.error === 'invalid_json') return { ok: false, problem: 'malformed', detail: 'body is not JSON' };
  const parsed = memoryMetricsSchema.safeParse(probe.body);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    return { ok: false, problem: 'malformed', detail: `${first?.path.join('.') || 'body'}: ${first?.message ?? 'invalid'}` };
  }
  const t = parsed.data.totals;
  const inconsistent =
    t.context7Errors > t.context7Requests
      ? 'context7Errors > context7Requests'
      : t.fallbacks > t.requests
        ? 'fallbacks > requests'
        : t.storeErrors > t.storeRequests
          ? 'storeErrors > storeRequests'
          : undefined;
  if (inconsistent) return { ok: false, problem: 'malformed', detail: `totals are inconsistent: ${inconsistent}` };
  if (deployId !== undefined && parsed.data.deployId !== deployId) {
    return { ok: false, problem: 'wrong_deploy', detail: `deployId ${parsed.data.deployId} is not the deploy under analysis (${deployId})` };
  }
  const generationStart = parsed.data.deployStartedAt;
  if (deployStartedAfter !== undefined && generationStart !== undefined && Date.parse(generationStart) < Date.parse(deployStartedAfter)) {
    return {
      ok: false,
      problem: 'wrong_deploy',
      detail:
        `figures of deploy generation ${parsed.data.deployGeneration ?? '?'} started ${generationStart}, before the deploy under analysis ` +
        `(created ${deployStartedAfter}): its processes joined an older deploy of the same commit and configuration (set DEPLOY_NONCE per deploy)`,
    };
  }
  return { ok: true, metrics: parsed.data };
}

export type HealthState = 'available' | 'unavailable' | 'down' | 'unknown';

/** "down" means the service itself did not answer well; "unavailable" is a live service without Context7. */
export function classifyHealth(probe: Probe | undefined): { state: HealthState; detail: string } {
  if (!probe) return { state: 'unknown', detail: 'not probed' };
  if (probe.error || probe.status === null) return { state: 'down', detail: probe.message ?? probe.error ?? 'no answer' };
  if (probe.status < 200 || probe.status > 299) return { state: 'down', detail: `HTTP ${probe.status}` };
  const parsed = healthResponseSchema.safeParse(probe.body);
  if (!parsed.success) return { state: 'down', detail: 'health body does not match the contract' };
  return parsed.data.available
    ? { state: 'available', detail: 'available:true' }
    : { state: 'unavailable', detail: `available:false (${parsed.data.reason})` };
}

export function classifyConfig(probe: Probe | undefined): { ok: boolean; enabled?: boolean; context7Available?: boolean; detail: string } {
  if (!probe) return { ok: false, detail: 'not probed' };
  if (probe.error || probe.status === null || probe.status < 200 || probe.status > 299) {
    return { ok: false, detail: probe.status ? `HTTP ${probe.status}` : (probe.message ?? 'no answer') };
  }
  const parsed = configResponseSchema.safeParse(probe.body);
  if (!parsed.success) return { ok: false, detail: 'config body does not match the contract' };
  return { ok: true, enabled: parsed.data.enableContext7Memory, context7Available: parsed.data.context7Available, detail: JSON.stringify(parsed.data) };
}

export type BackfillState = 'running' | 'completed' | 'failed' | 'interrupted' | 'none' | 'unreadable';

export interface BackfillStatus {
  state: BackfillState;
  total: number;
  synced: number;
  errors: number;
  progressPercent: number;
  detail: string;
}

const backfillStatusSchema = z.object({
  running: z.boolean(),
  progressPercent: z.number().min(0).max(100),
  job: z
    .object({
      status: z.enum(['running', 'completed', 'failed', 'interrupted']),
      total: z.number().int().nonnegative(),
      synced: z.number().int().nonnegative(),
      errors: z.number().int().nonnegative(),
    })
    .passthrough()
    .nullable(),
});

/** The backfill's status endpoint answer: a job's progress, no job yet, or an unreadable answer (never a breach). */
export function classifyBackfill(probe: Probe): BackfillStatus {
  const empty = { total: 0, synced: 0, errors: 0, progressPercent: 0 };
  if (probe.error || probe.status === null || probe.status < 200 || probe.status > 299) {
    return { state: 'unreadable', ...empty, detail: probe.status ? `HTTP ${probe.status}` : (probe.message ?? 'no answer') };
  }
  const parsed = backfillStatusSchema.safeParse(probe.body);
  if (!parsed.success) return { state: 'unreadable', ...empty, detail: 'status body does not match the contract' };
  const job = parsed.data.job;
  if (!job) return { state: 'none', ...empty, detail: 'no backfill has run' };
  return {
    state: job.status,
    total: job.total,
    synced: job.synced,
    errors: job.errors,
    progressPercent: parsed.data.progressPercent,
    detail: `${job.status}: ${job.synced} synced, ${job.errors} errors of ${job.total} (${parsed.data.progressPercent}%)`,
  };
}
