/**
 * The synthetic learning probe, judged (pure): runbook Step 5 "Test Post-Call Learning", criteria "Post-call
 * learning saves to Context7" and "Attestation shows correct source". Each run saved one unique pattern in a probe
 * scope and read it back; this module turns the two answers into a run record, and the runs into a judgement
 * (Wilson intervals on each criterion's failure rate, like every other rate the canary judges).
 * A run that could not happen (network, 401/403, a non-200 answer) is a measurement problem, never a failure.
 */
import { z } from 'zod';
import { wilsonInterval } from '../analysis/stats';
import type { Probe } from '../analysis/measurement';

/** Why a run that did happen failed: each kind belongs to one of the two runbook criteria. */
export const PROBE_FAILURE_KINDS = ['not_saved_to_context7', 'wrong_source', 'pattern_missing'] as const;
export type ProbeFailureKind = (typeof PROBE_FAILURE_KINDS)[number];

/** One probe run as recorded in the measurement (state file, report.json): never the probe key. */
export const probeRunSchema = z.object({
  atSeconds: z.number(),
  scopeId: z.string(),
  /** 'ok' | 'failed': judged; 'not_run': a measurement problem (the reason says which) */
  outcome: z.enum(['ok', 'failed', 'not_run']),
  failures: z.array(z.enum(PROBE_FAILURE_KINDS)),
  /** the save's `destinations`, when it answered 200 */
  destinations: z.array(z.string()).nullable(),
  /** the read-back's attestation backend, when it answered 200 */
  source: z.string().nullable(),
  patternFound: z.boolean().nullable(),
  detail: z.string(),
});
export type ProbeRun = z.infer<typeof probeRunSchema>;

export interface ProbePolicy {
  /** each criterion's failure rate significantly above this fails the success criteria */
  maxFailureRate: number;
  /** judged runs below which the probe is reported, not judged */
  minimumProbes: number;
}

/** Read-back sources that show learning reached Context7 (a `database` answer means it did not, or was not asked). */
const CONTEXT7_SOURCES = new Set(['context7', 'hybrid']);

/** Turns the save and read-back answers into a run record. `save`/`read` absent: that call was not made. */
export function classifyProbeRun(input: { atSeconds: number; scopeId: string; content: string; save: Probe; read?: Probe }): ProbeRun {
  const base = { atSeconds: input.atSeconds, scopeId: input.scopeId, destinations: null, source: null, patternFound: null };
  const problem = callProblem('save', input.save);
  if (problem) return { ...base, outcome: 'not_run', failures: [], detail: problem };
  const saveBody = input.save.body as { destinations?: unknown } | undefined;
  const destinations = Array.isArray(saveBody?.destinations) ? saveBody.destinations.map(String) : [];
  const readProblem = input.read ? callProblem('read-back', input.read) : 'read-back: not made';
  if (readProblem) return { ...base, destinations, outcome: 'not_run', failures: [], detail: readProblem };
  const readBody = input.read!.body as { source?: unknown; attestation?: { backend?: unknown }; snippets?: { content?: unknown }[] } | undefined;
  const source = typeof readBody?.attestation?.backend === 'string' ? readBody.attestation.backend : typeof readBody?.source === 'string' ? readBody.source : 'none';
  const patternFound = Array.isArray(readBody?.snippets) && readBody.snippets.some((snippet) => snippet?.content === input.content);

  const failures: ProbeFailureKind[] = [];
  if (!destinations.includes('context7')) failures.push('not_saved_to_context7');
  if (!CONTEXT7_SOURCES.has(source)) failures.push('wrong_source');
  if (!patternFound) failures.push('pattern_missing');
  const detail = failures.length
    ? `save destinations [${destinations.join(', ')}], read-back source ${source}, pattern ${patternFound ? 'present' : 'missing'}`
    : `saved to [${destinations.join(', ')}], read back from ${source}`;
  return { ...base, destinations, source, patternFound, outcome: failures.length ? 'failed' : 'ok', failures, detail };
}

/** A call that did not produce a judgeable answer: the probe could not run. */
function callProblem(what: string, answer: Probe): string | null {
  if (answer.error && answer.status === null) return `${what}: no answer (${answer.error}${answer.message ? `: ${answer.message.slice(0, 120)}` : ''})`;
  if (answer.status === 401 || answer.status === 403) return `${what}: HTTP ${answer.status}, the probe key was refused`;
  if (answer.status !== 200) return `${what}: HTTP ${answer.status ?? 'no answer'}`;
  if (answer.error) return `${what}: ${answer.error}`;
  return null;
}

export type ProbeVerdict = 'pass' | 'fail' | 'inconclusive' | 'not_run';

export interface ProbeCriterion {
  verdict: ProbeVerdict;
  failures: number;
  judged: number;
  reason: string;
}

export interface ProbeJudgement {
  runs: number;
  /** runs that happened and were judged (not measurement problems) */
  judged: number;
  notRun: number;
  failuresByKind: Record<ProbeFailureKind | 'not_run', number>;
  /** "Post-call learning saves to Context7": the save's destinations include context7 */
  savesToContext7: ProbeCriterion;
  /** "Attestation shows correct source": read back from context7 or hybrid, with the pattern present */
  attestation: ProbeCriterion;
  /** the worse of the two; only `fail` blocks promotion */
  verdict: ProbeVerdict;
  lastResult: ProbeRun | null;
}

/** Judges every run so far; `confidence` is the policy's. */
export function judgeProbe(policy: ProbePolicy, confidence: number, runs: readonly ProbeRun[]): ProbeJudgement {
  const judgedRuns = runs.filter((run) => run.outcome !== 'not_run');
  const failuresByKind = { not_saved_to_context7: 0, wrong_source: 0, pattern_missing: 0, not_run: runs.length - judgedRuns.length };
  for (const run of judgedRuns) for (const kind of run.failures) failuresByKind[kind] += 1;
  const criterion = (failed: (run: ProbeRun) => boolean): ProbeCriterion =>
    judgeCriterion(policy, confidence, judgedRuns.filter(failed).length, judgedRuns.length, runs.length);
  const savesToContext7 = criterion((run) => run.failures.includes('not_saved_to_context7'));
  const attestation = criterion((run) => run.failures.includes('wrong_source') || run.failures.includes('pattern_missing'));
  return {
    runs: runs.length,
    judged: judgedRuns.length,
    notRun: runs.length - judgedRuns.length,
    failuresByKind,
    savesToContext7,
    attestation,
    verdict: worse(savesToContext7.verdict, attestation.verdict),
    lastResult: runs.at(-1) ?? null,
  };
}

function judgeCriterion(policy: ProbePolicy, confidence: number, failures: number, judged: number, runs: number): ProbeCriterion {
  const bound = `${(policy.maxFailureRate * 100).toFixed(1)}%`;
  if (runs === 0) return { verdict: 'not_run', failures, judged, reason: 'no probe ran' };
  if (judged === 0) return { verdict: 'not_run', failures, judged, reason: `none of ${runs} probe(s) could run (measurement problems)` };
  const shown = `${failures} of ${judged} probe(s) failed`;
  if (judged < policy.minimumProbes) return { verdict: 'inconclusive', failures, judged, reason: `${shown}: fewer than ${policy.minimumProbes} to judge` };
  const interval = wilsonInterval(failures, judged, confidence);
  if (interval.lower > policy.maxFailureRate) return { verdict: 'fail', failures, judged, reason: `${shown}, significantly above ${bound}` };
  if (interval.upper <= policy.maxFailureRate) return { verdict: 'pass', failures, judged, reason: `${shown}, below ${bound}` };
  return { verdict: 'inconclusive', failures, judged, reason: `${shown}: too close to ${bound} to tell` };
}

const SEVERITY: Record<ProbeVerdict, number> = { pass: 0, not_run: 1, inconclusive: 2, fail: 3 };
function worse(a: ProbeVerdict, b: ProbeVerdict): ProbeVerdict {
  return SEVERITY[a] >= SEVERITY[b] ? a : b;
}
