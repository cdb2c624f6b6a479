/**
 * The synthetic learning probe's I/O (runbook Step 5, "Test Post-Call Learning"): save one unique pattern in the
 * run's probe scope with the dedicated probe key, then read it back with a query that matches it. The answers are
 * classified by judge-probe.ts (pure) and recorded in the measurement; the key itself is never recorded.
 *
 * The probe scope's location starts with PROBE_LOCATION_PREFIX (service/domain/scope-id.ts): never a customer's,
 * counted apart by the service (totals.probeRequests), and the only location the probe key may be allowed.
 */
import { randomBytes } from 'node:crypto';
import { generateScopeIdSync, PROBE_LOCATION_PREFIX } from '../../service/domain/scope-id';
import type { Measurement } from '../analysis/measurement';
import type { HttpProbe } from '../sources/http';
import type { MetricSource } from '../sources/metrics-poller';
import { classifyProbeRun, type ProbeRun } from './judge-probe';

/** The location the probe key is restricted to (MEMORY_API_KEYS entry `canary-probe:<secret>:canaryprobe-canary`). */
export const PROBE_LOCATION = `${PROBE_LOCATION_PREFIX}canary`;

/** One scope per canary run and stack: a run's probes never meet another run's (or its cache). */
export function probeScopeId(stack: string, runId: string): string {
  return generateScopeIdSync({ locationId: PROBE_LOCATION, agentId: `probe-${stack}`, promptText: `canary learning probe ${runId}` });
}

export interface LearningProbeOptions {
  baseUrl: string;
  /** the dedicated probe caller key (CANARY_PROBE_KEY): a secret, never an admin token, never recorded */
  probeKey: string;
  scopeId: string;
  http: HttpProbe;
  timeoutMs: number;
  /** probe patterns expire on their own this long after they are saved */
  patternTtlMs: number;
  now: () => number;
  /** a token no other pattern contains (random by default) */
  uniqueToken?: () => string;
}

export interface LearningProbe {
  run(atSeconds: number): Promise<ProbeRun>;
}

export function createLearningProbe(o: LearningProbeOptions): LearningProbe {
  const base = o.baseUrl.replace(/\/+$/, '');
  const headers = { authorization: `Bearer ${o.probeKey}` };
  const token = o.uniqueToken ?? (() => `probe${randomBytes(8).toString('hex')}`);
  return {
    async run(atSeconds) {
      const unique = token();
      const content = `canary learning probe ${unique}`;
      const save = await o.http(`${base}/api/memory/patterns`, {
        method: 'POST',
        timeoutMs: o.timeoutMs,
        headers,
        body: { scopeId: o.scopeId, patterns: [{ content, expiresAt: new Date(o.now() + o.patternTtlMs).toISOString(), metadata: { canaryProbe: true } }] },
      });
      // Without a saved pattern there is nothing to read back: the run is classified on the save alone.
      const read =
        save.status === 200
          ? await o.http(`${base}/api/memory/snippets`, { method: 'POST', timeoutMs: o.timeoutMs, headers, body: { scopeId: o.scopeId, query: unique, limit: 10 } })
          : undefined;
      return classifyProbeRun({ atSeconds, scopeId: o.scopeId, content, save, ...(read ? { read } : {}) });
    },
  };
}

/**
 * Runs the probe beside every `everyMeasurements`-th measurement (the first included) and records its run there.
 * A probe that throws anyway is recorded as one that could not run: a measurement problem, never a failure.
 */
export function withLearningProbe(base: MetricSource, probe: LearningProbe, everyMeasurements: number): MetricSource {
  let measured = 0;
  return {
    async measure(atSeconds): Promise<Measurement> {
      const due = measured % everyMeasurements === 0;
      measured += 1;
      const [measurement, run] = await Promise.all([base.measure(atSeconds), due ? probe.run(atSeconds).catch((error: unknown) => notRun(atSeconds, error)) : undefined]);
      return run ? { ...measurement, probe: run } : measurement;
    },
  };
}

function notRun(atSeconds: number, error: unknown): ProbeRun {
  return { atSeconds, scopeId: '', outcome: 'not_run', failures: [], destinations: null, source: null, patternFound: null, detail: `probe error: ${String((error as Error)?.message ?? error).slice(0, 200)}` };
}
