/**
 * The canary policy (canary/policy.yaml): the runbook's checks and thresholds as data.
 * One loader for every reader (the canary and the load scripts), validated with zod, and every
 * error points at the line and column of the offending YAML so a bad edit is found at once.
 */
import { readFileSync } from 'node:fs';
// yaml is required where a policy is parsed, not on import: most canary commands never read one (~0.1 s CPU a start).
import type { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { MAX_HISTORY_DAYS } from '../service/contracts/metrics-history';

/** comparison.preExposureDays when a policy leaves it out (policies built in code included). */
export const DEFAULT_PRE_EXPOSURE_DAYS = 7;

/**
 * The metrics the canary judges, computed from the service's raw counters. storeErrorRate is the
 * local store failing: judged apart (policy `storeErrors`), never in a checkpoint's rollbackIf.
 */
export const RATE_METRICS = ['errorRate', 'fallbackRate', 'cacheHitRate', 'storeErrorRate'] as const;
export const METRIC_NAMES = [...RATE_METRICS, 'avgLatencyMs', 'context7Requests'] as const;
export type RateMetric = (typeof RATE_METRICS)[number];
export type MetricName = (typeof METRIC_NAMES)[number];

const above = z.strictObject({ above: z.number() });
const below = z.strictObject({ below: z.number() });
/** `{ above: x }` or `{ below: x }`: in rollbackIf it describes the bad side, in require the good side. */
export const boundSchema = z.union([above, below]);
export type Bound = z.infer<typeof boundSchema>;

const rateBound = z.union([
  z.strictObject({ above: z.number().min(0).max(1, 'rates are fractions: 0.05 means 5%') }),
  z.strictObject({ below: z.number().min(0).max(1, 'rates are fractions: 0.05 means 5%') }),
]);
const latencyBound = z.union([
  z.strictObject({ above: z.number().nonnegative() }),
  z.strictObject({ below: z.number().nonnegative() }),
]);
const countBound = z.union([
  z.strictObject({ above: z.number().int().nonnegative() }),
  z.strictObject({ below: z.number().int().nonnegative() }),
]);

const metricBounds = z.strictObject({
  errorRate: rateBound.optional(),
  fallbackRate: rateBound.optional(),
  cacheHitRate: rateBound.optional(),
  avgLatencyMs: latencyBound.optional(),
  context7Requests: countBound.optional(),
  // A store breach must not read as a Context7 one (rollbackIf rolls the flag back): say where it goes.
  storeErrorRate: z.never({ error: 'store errors are judged under storeErrors (abortIf, onBreach), not here' }).optional(),
});
export type MetricBounds = z.infer<typeof metricBounds>;

const positiveInt = z.number().int().positive();

/** The runbook's immediate checks: the endpoints the canary probes at every measurement. */
export const IMMEDIATE_CHECK_ENDPOINTS = ['/api/config', '/api/memory/health', '/api/metrics/memory'] as const;
const minutes = z.number().positive();

/** A rate compared treatment against control: one-sided pooled two-proportion z test (canary/exposure/compare.ts). */
const rateComparison = z.strictObject({
  test: z.literal('two-proportion'),
  /** the treatment must be worse by more than this (absolute, 0.01 = one percentage point) to count as worse */
  minimumDifference: z.number().min(0).max(1, 'rates are fractions: 0.01 means 1 percentage point'),
});

/**
 * Progressive exposure (issue 18): the stepped canary's steps and its treatment-versus-control comparison.
 * Read by canary/exposure/analyze-step.ts. Defaulted so policies written before it still load.
 */
export const exposurePolicySchema = z
  .strictObject({
    steps: z
      .array(
        z.strictObject({
          /** the share of scopes exposed to Context7 at this step (0 is the kill switch, never a step) */
          percent: z.number().gt(0).max(100),
          /** policy seconds of observation at this percentage before it may advance */
          analysisSeconds: z.number().positive(),
          /** requests each cohort needs in the step's window before it may advance (the control's is waived at 100%) */
          minimumSamplesPerCohort: positiveInt,
          /**
           * the longest this step may run (clustered method): lengthened for power, or extended once for too little
           * data, never past it; default 3 x analysisSeconds
           */
          maxAnalysisSeconds: z.number().positive().optional(),
        }),
      )
      .min(1),
    comparison: z.strictObject({
      /**
       * clustered (default): scope clusters as the unit, anytime-valid (canary/exposure/clustered.ts), when the
       * service reports cluster tables; per-request: today's pooled z / Mann-Whitney with alpha spent per look
       * (also what a service without cluster tables gets)
       */
      method: z.enum(['clustered', 'per-request']).default('clustered'),
      /** power planning (clustered): the regression each step should catch, and with which probability */
      power: z
        .strictObject({
          level: z.number().gt(0.5).lt(1).default(0.8),
          /** true increase to catch: 5xx rate (absolute, 0.035 = 0.5 % -> 4 %) and mean latency (ms) */
          detect: z.strictObject({ serverErrorRate: z.number().gt(0).max(1).default(0.035), latencyMs: z.number().gt(0).default(500) }).default({ serverErrorRate: 0.035, latencyMs: 500 }),
          /**
           * when no length within the bound reaches `detect` by the plan's model: keep-length (the step keeps its
           * analysisSeconds, says it runs below the target power) or run-to-bound (the most power the bound allows)
           */
          outOfReach: z.enum(['keep-length', 'run-to-bound']).default('keep-length'),
        })
        .default({ level: 0.8, detect: { serverErrorRate: 0.035, latencyMs: 500 }, outOfReach: 'keep-length' }),
      /**
       * CUPED's covariate: each cluster's unexposed figures over this many complete UTC days before the run, read
       * from the metrics history (include=clusters) before the first step; 0, or history unreadable within the
       * measurement deadline: the counters since the instances started (the decision says which)
       */
      preExposureDays: z.number().int('whole days').min(0).max(MAX_HISTORY_DAYS).default(DEFAULT_PRE_EXPOSURE_DAYS),
      /** a sample-ratio mismatch below this p (or cohorts counted in the wrong clusters) holds the step */
      sampleRatioPValue: z.number().gt(0).max(0.05).default(0.001),
      /** Month 1's A/B cost figure: the price of one Context7 call (reported, never acted on) */
      context7PricePerCall: z.number().min(0).default(0.001),
      currency: z.string().min(1).default('USD'),
      /** the false-positive rate allowed per step, over all its looks and all compared figures */
      alpha: z.number().gt(0).max(0.2),
      /**
       * How alpha is spent over a step's looks (each poll is a look), by the fraction of the step's analysis
       * time elapsed: `pocock` alpha * ln(1 + (e - 1) t), `obrien-fleming` 2 - 2 Phi(z(1-alpha/2) / sqrt t)
       * (Lan-DeMets), `bonferroni` alpha / maxLooksPerStep per look. Each look tests at the alpha spent since the
       * previous look, so the per-look levels sum to at most alpha whatever the correlation between looks.
       */
      spending: z.enum(['pocock', 'obrien-fleming', 'bonferroni']),
      /** looks per step that may spend alpha; later looks (a step held past its length) test nothing more */
      maxLooksPerStep: positiveInt,
      /** which figures are compared, with which test; alpha is split equally between them */
      figures: z.strictObject({
        serverErrorRate: rateComparison.optional(),
        fallbackRate: rateComparison.optional(),
        errorRate: rateComparison.optional(),
        latency: z
          .strictObject({
            test: z.literal('mann-whitney'),
            /** the treatment must be slower than the control's latencies times (1 + this); rounded to 5 % bins */
            minimumRelativeDifference: z.number().min(0).max(10),
            /**
             * ...plus this many ms: a Context7 read is a network call and a control read a local one, a fixed
             * difference no relative margin absorbs (a healthy 5 % step rolled back on it, p = 1.5e-19)
             */
            minimumAddedMs: z.number().min(0).max(60_000).default(250),
          })
          .optional(),
      }),
    }),
    /**
     * The control cohort itself failing (it reads the local store, never Context7): a 5xx rate significantly
     * above this (Wilson interval at `confidence`, `minimumSample.memoryRequests`) aborts the stepped canary.
     */
    abortIfControl: z.strictObject({ serverErrorRate: z.strictObject({ above: z.number().min(0).max(1, 'rates are fractions: 0.05 means 5%') }) }),
  })
  .superRefine((exposure, ctx) => {
    exposure.steps.forEach((step, index) => {
      const previous = exposure.steps[index - 1];
      if (previous && step.percent <= previous.percent) {
        ctx.addIssue({ code: 'custom', path: ['steps', index, 'percent'], message: `steps must raise the percentage (${step.percent} <= ${previous.percent})` });
      }
    });
    if (Object.keys(exposure.comparison.figures).length === 0) {
      ctx.addIssue({ code: 'custom', path: ['comparison', 'figures'], message: 'compare at least one figure' });
    }
  });
export type ExposurePolicy = z.infer<typeof exposurePolicySchema>;
export type ExposureStep = ExposurePolicy['steps'][number];
export type ComparedFigure = keyof ExposurePolicy['comparison']['figures'];

export const DEFAULT_EXPOSURE_POLICY: z.input<typeof exposurePolicySchema> = {
  steps: [
    { percent: 5, analysisSeconds: 900, minimumSamplesPerCohort: 100, maxAnalysisSeconds: 5400 },
    { percent: 25, analysisSeconds: 900, minimumSamplesPerCohort: 200 },
    { percent: 50, analysisSeconds: 900, minimumSamplesPerCohort: 200 },
    { percent: 100, analysisSeconds: 900, minimumSamplesPerCohort: 200 },
  ],
  comparison: {
    power: { level: 0.8, detect: { serverErrorRate: 0.035, latencyMs: 500 }, outOfReach: 'run-to-bound' },
    alpha: 0.05,
    spending: 'pocock',
    maxLooksPerStep: 30,
    figures: {
      serverErrorRate: { test: 'two-proportion', minimumDifference: 0.005 },
      latency: { test: 'mann-whitney', minimumRelativeDifference: 0.1, minimumAddedMs: 250 },
    },
  },
  abortIfControl: { serverErrorRate: { above: 0.05 } },
};

export const policySchema = z
  .strictObject({
    version: z.literal(1),
    pollIntervalSeconds: z.number().positive(),
    durationMinutes: minutes,
    confidence: z.number().gt(0.5).lt(1),
    minimumSample: z.strictObject({
      context7Requests: positiveInt,
      memoryRequests: positiveInt,
      cacheLookups: positiveInt,
      /** store requests behind storeErrorRate; defaulted so policies written before it still load */
      storeRequests: positiveInt.default(30),
    }),
    measurement: z.strictObject({
      timeoutSeconds: z.number().positive(),
      maxConsecutiveErrors: positiveInt,
      maxSamplesPerMeasurement: positiveInt,
      stopAfterRepeatSamples: positiveInt,
      serviceDownAfterConsecutive: positiveInt,
    }),
    onInconclusiveAtEnd: z.enum(['hold', 'promote', 'rollback']),
    onFailAtEnd: z.enum(['rollback', 'hold']),
    /**
     * The local store (SQLite/PostgreSQL) failing. Turning Context7 off cannot fix it, and during a
     * store outage Context7 may be the only path still answering reads, so the default is to stop
     * without touching the flag and alert. Defaulted so policies written before it still load.
     */
    storeErrors: z
      .strictObject({
        /** storeErrorRate significantly above this, over a poll window or the checkpoint period, is a store breach */
        abortIf: z.strictObject({ above: z.number().min(0).max(1, 'rates are fractions: 0.05 means 5%') }),
        /** abort: stop, never promote, alert (exit 5). rollback: treat it like a Context7 breach. */
        onBreach: z.enum(['abort', 'rollback']),
      })
      .default({ abortIf: { above: 0.05 }, onBreach: 'abort' }),
    /**
     * Runbook Step 4, "Run Backfill": "Backfill completes without fatal errors", "Sync errors < 5% of total".
     * Judged at the end when the canary followed a backfill; a backfill still running does not block promotion
     * ("Do not wait for completion"), but its error rate so far is judged.
     */
    backfill: z
      .strictObject({
        maxErrorRate: z.number().min(0).max(1, 'rates are fractions: 0.05 means 5%'),
        /** synced + failed items below which the error rate is reported, not judged */
        minimumItems: positiveInt,
      })
      .default({ maxErrorRate: 0.05, minimumItems: 30 }),
    /**
     * Render logs (GET /logs) from the analysed deploy's start: "No startup errors", "watch for [MEMORY_ERROR]",
     * "Render logs clean (no repeated errors)". Counts since the deploy; a log source that cannot be read is a
     * measurement problem, never a breach. Defaulted so policies written before it still load.
     */
    logs: z
      .strictObject({
        /** startup failures above this roll back (and fail the immediate check "No startup errors") */
        maxStartupErrors: z.number().int().nonnegative(),
        /** process crashes above this are a crash loop: roll back */
        maxCrashes: z.number().int().nonnegative(),
        /** [MEMORY_ERROR] lines above this roll back; fewer are reported ("investigate immediately") */
        maxMemoryErrors: z.number().int().nonnegative(),
        /** one error signature seen more often than this is a "repeated error": the logs are not clean at the end */
        maxRepeatsPerSignature: z.number().int().positive(),
        /** GET /logs pages (100 lines each) read per measurement at most: Render's rate limits */
        maxPagesPerMeasurement: positiveInt,
      })
      .default({ maxStartupErrors: 0, maxCrashes: 2, maxMemoryErrors: 50, maxRepeatsPerSignature: 20, maxPagesPerMeasurement: 5 }),
    /**
     * Render's own platform metrics, an independent second source: its load balancer's 5xx rate and p95 latency
     * on the service's routes, and instance memory growth. Judged like the service's figures (Wilson intervals,
     * minimum samples) at every poll on the counts since the deploy. Defaulted so older policies still load.
     */
    platform: z
      .strictObject({
        rollbackIf: z.strictObject({
          http5xxRate: rateBound.optional(),
          p95LatencyMs: latencyBound.optional(),
          memoryGrowthMb: latencyBound.optional(),
        }),
        /** requests through the load balancer behind the 5xx rate and p95 */
        minimumRequests: positiveInt,
        /** memory points per instance behind its growth */
        minimumMemorySamples: positiveInt,
      })
      .default({ rollbackIf: { http5xxRate: { above: 0.05 }, p95LatencyMs: { above: 2000 }, memoryGrowthMb: { above: 256 } }, minimumRequests: 30, minimumMemorySamples: 3 }),
    /**
     * Runbook Step 5 "Test Post-Call Learning": the synthetic learning probe (canary/probe/). Every
     * `everyMeasurements` measurements the canary saves a unique pattern in a probe scope and reads it back, when it
     * has a probe key (CANARY_PROBE_KEY). Judged at the end as success criteria ("Post-call learning saves to
     * Context7", "Attestation shows correct source"): a failure rate significantly above maxFailureRate fails them.
     * A probe that cannot run is a measurement problem, never a failure. Defaulted so older policies still load.
     */
    probe: z
      .strictObject({
        everyMeasurements: positiveInt,
        maxFailureRate: z.number().min(0).max(1, 'rates are fractions: 0.05 means 5%'),
        /** judged probes below which the probe is reported, not judged */
        minimumProbes: positiveInt,
        /** the probe's patterns expire on their own this long after they are saved */
        patternTtlMinutes: z.number().positive(),
      })
      .default({ everyMeasurements: 1, maxFailureRate: 0.15, minimumProbes: 10, patternTtlMinutes: 60 }),
    immediateChecks: z.strictObject({
      withinMinutes: minutes,
      endpoints: z.array(z.enum(IMMEDIATE_CHECK_ENDPOINTS)).min(1),
      requireContext7Available: z.boolean(),
    }),
    checkpoints: z
      .array(
        z.strictObject({
          name: z.string().min(1),
          atMinute: minutes,
          rollbackIf: metricBounds,
        }),
      )
      .min(1),
    successCriteria: z.strictObject({
      atMinute: minutes,
      require: metricBounds,
      requireHealthAvailable: z.boolean(),
    }),
    rollback: z.strictObject({
      deployTimeoutMinutes: minutes,
      verifyWatchSeconds: z.number().nonnegative(),
      verifyPollSeconds: z.number().positive(),
      /** "Rollback Time: < 5 minutes": from the decision to verification passing, in real minutes */
      maxDurationMinutes: z.number().positive().default(5),
    }),
    /**
     * The runbook's "Emergency Contacts" and "Escalation Path", written into incident.md. Contacts are the
     * organisation's, so they live here, never in code; unset ones say so in the incident record.
     */
    escalation: z
      .strictObject({
        contacts: z.record(z.string().min(1), z.string()),
        path: z.array(z.string().min(1)).min(1),
      })
      .default({
        contacts: { 'Context7 Support': '', 'Internal Team Lead': '', 'Render Status': 'https://status.render.com' },
        path: ['Check Render logs and metrics', 'Attempt rollback if critical', 'Contact Context7 if API issue', 'Document incident for postmortem'],
      }),
    exposure: exposurePolicySchema.default(() => exposurePolicySchema.parse(DEFAULT_EXPOSURE_POLICY)),
    /**
     * Operators in the loop of the stepped canary (canary/operator/, `canary pause|resume|promote|abort`).
     * Defaulted so policies written before it still load.
     */
    operator: z
      .strictObject({
        /**
         * Manual gates: the canary stops before each step at one of these percentages, looks going on, until an
         * operator runs `canary promote` (Flagger's confirm-traffic-increase). The webhook names the command.
         */
        manualGatesBeforePercent: z.array(z.number().gt(0).max(100)).default([]),
        /**
         * false: `canary promote` passes a step only once its comparison has concluded (every compared figure not
         * worse at the latest look): it skips the remaining time or sample, never the comparison.
         */
        promoteMaySkipComparison: z.boolean().default(false),
      })
      .default({ manualGatesBeforePercent: [], promoteMaySkipComparison: false }),
    thirtyDayProfile: metricBounds,
    /**
     * `canary evaluate --profile thirty-day`: the profile judged day by day over the service's stored time series.
     * Defaulted so policies written before it still load.
     */
    thirtyDayEvaluation: z
      .strictObject({
        /** the period judged, in complete UTC days ending before today (or --until) */
        days: positiveInt.max(92),
        /** "consistently": these criteria must pass on every day of the period that has the minimum sample */
        everyDay: z.array(z.enum(['errorRate', 'fallbackRate', 'cacheHitRate', 'avgLatencyMs'])),
        /** days below the minimum sample (or with no traffic) a criterion may have before its verdict is inconclusive */
        maxInconclusiveDays: z.number().int().nonnegative(),
      })
      .default({ days: 30, everyDay: ['errorRate'], maxInconclusiveDays: 3 }),
    load: z
      .object({
        httpAvgLatencyMs: latencyBound,
        httpP95LatencyMs: latencyBound,
        httpErrorRate: rateBound,
        checksPassRate: rateBound,
      })
      .catchall(boundSchema),
  })
  .superRefine((policy, ctx) => {
    policy.checkpoints.forEach((checkpoint, index) => {
      const previous = policy.checkpoints[index - 1];
      if (previous && checkpoint.atMinute <= previous.atMinute) {
        ctx.addIssue({
          code: 'custom',
          path: ['checkpoints', index, 'atMinute'],
          message: `checkpoints must be in increasing order of atMinute (${checkpoint.atMinute} <= ${previous.atMinute})`,
        });
      }
      if (checkpoint.atMinute > policy.durationMinutes) {
        ctx.addIssue({
          code: 'custom',
          path: ['checkpoints', index, 'atMinute'],
          message: `checkpoint at minute ${checkpoint.atMinute} is after durationMinutes (${policy.durationMinutes})`,
        });
      }
      if (Object.keys(checkpoint.rollbackIf).length === 0) {
        ctx.addIssue({ code: 'custom', path: ['checkpoints', index, 'rollbackIf'], message: 'rollbackIf needs at least one metric' });
      }
    });
    if (policy.successCriteria.atMinute !== policy.durationMinutes) {
      ctx.addIssue({
        code: 'custom',
        path: ['successCriteria', 'atMinute'],
        message: `successCriteria.atMinute (${policy.successCriteria.atMinute}) must equal durationMinutes (${policy.durationMinutes})`,
      });
    }
    if (policy.immediateChecks.withinMinutes > policy.durationMinutes) {
      ctx.addIssue({ code: 'custom', path: ['immediateChecks', 'withinMinutes'], message: 'must not exceed durationMinutes' });
    }
    if (policy.pollIntervalSeconds > policy.durationMinutes * 60) {
      ctx.addIssue({ code: 'custom', path: ['pollIntervalSeconds'], message: 'must not exceed the analysis duration' });
    }
    // Each poll is a look: a step shorter than a poll would never be looked at within its length. (Fewer
    // maxLooksPerStep than a step's polls only leaves alpha unspent, so it is allowed: older policies with fast
    // polls must still load with the default steps.)
    policy.operator.manualGatesBeforePercent.forEach((percent, index) => {
      const step = policy.exposure.steps.findIndex((candidate) => candidate.percent === percent);
      if (step < 1) {
        ctx.addIssue({
          code: 'custom',
          path: ['operator', 'manualGatesBeforePercent', index],
          message: step === 0 ? `${percent}% is the first step: a gate stops before a later step` : `${percent}% is not one of exposure.steps' percentages`,
        });
      }
    });
    policy.exposure.steps.forEach((step, index) => {
      if (step.analysisSeconds < policy.pollIntervalSeconds) {
        ctx.addIssue({ code: 'custom', path: ['exposure', 'steps', index, 'analysisSeconds'], message: `must be at least pollIntervalSeconds (${policy.pollIntervalSeconds}): each poll is a look` });
      }
    });
  });

export type CanaryPolicy = z.infer<typeof policySchema>;
export type Checkpoint = CanaryPolicy['checkpoints'][number];
export type PlatformMetric = keyof CanaryPolicy['platform']['rollbackIf'];
export const PLATFORM_METRICS: readonly PlatformMetric[] = ['http5xxRate', 'p95LatencyMs', 'memoryGrowthMb'];

export interface PolicyProblem {
  /** dotted path inside the policy, e.g. checkpoints.0.rollbackIf.errorRate.above */
  path: string;
  message: string;
  line?: number;
  column?: number;
}

/** A policy that cannot be used. `exitCode` 64 is what the canary CLI exits with. */
export class PolicyError extends Error {
  readonly exitCode = 64;
  constructor(
    readonly source: string,
    readonly problems: PolicyProblem[],
  ) {
    super(
      `invalid canary policy ${source}:\n` +
        problems.map((p) => `  ${source}${p.line ? `:${p.line}:${p.column}` : ''} ${p.path ? `${p.path}: ` : ''}${p.message}`).join('\n'),
    );
    this.name = 'PolicyError';
  }
}

/** Parses and validates policy text; `source` names it in errors. */
export function parsePolicy(text: string, source = '<policy>'): CanaryPolicy {
  const { LineCounter, parseDocument } = require('yaml') as typeof import('yaml');
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new PolicyError(
      source,
      doc.errors.map((error) => {
        const pos = lineCounter.linePos(error.pos[0]);
        return { path: '', message: error.message.split('\n')[0] ?? error.code, line: pos.line, column: pos.col };
      }),
    );
  }
  const result = policySchema.safeParse(doc.toJS());
  if (result.success) return result.data;

  const problems = result.error.issues.map((issue): PolicyProblem => {
    const path = issue.path.map((segment) => (typeof segment === 'symbol' ? String(segment) : segment));
    const position = positionOf(doc, lineCounter, path);
    return { path: path.join('.'), message: issue.message, ...position };
  });
  throw new PolicyError(source, problems);
}

/** Reads, parses and validates a policy file. Throws PolicyError (exit code 64) on any problem. */
export function loadPolicy(path: string): CanaryPolicy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new PolicyError(path, [{ path: '', message: `cannot read the policy file: ${(error as Error).message}` }]);
  }
  return parsePolicy(text, path);
}

/** The deepest existing YAML node on the issue's path: a missing key points at its parent map. */
function positionOf(
  doc: ReturnType<typeof parseDocument>,
  lineCounter: LineCounter,
  path: (string | number)[],
): { line?: number; column?: number } {
  const { isNode } = require('yaml') as typeof import('yaml');
  for (let depth = path.length; depth >= 0; depth--) {
    const node = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth), true);
    if (isNode(node) && node.range) {
      const pos = lineCounter.linePos(node.range[0]);
      return { line: pos.line, column: pos.col };
    }
  }
  return {};
}

/** The thresholds in force at `minute`: the first checkpoint not yet passed, else the last. */
export function activeCheckpoint(policy: CanaryPolicy, minute: number): Checkpoint {
  const checkpoints = policy.checkpoints;
  return checkpoints.find((checkpoint) => minute <= checkpoint.atMinute) ?? checkpoints[checkpoints.length - 1]!;
}

/** "5%" for rates, "1000 ms" for latency, plain for counts: for humans reading reports. */
export function formatMetric(metric: MetricName, value: number): string {
  if ((RATE_METRICS as readonly string[]).includes(metric)) return `${(value * 100).toFixed(value < 0.1 ? 2 : 1)}%`;
  if (metric === 'avgLatencyMs') return `${value.toFixed(0)} ms`;
  return String(value);
}

export function describeBound(metric: MetricName, bound: Bound): string {
  return 'above' in bound ? `> ${formatMetric(metric, bound.above)}` : `< ${formatMetric(metric, bound.below)}`;
}
