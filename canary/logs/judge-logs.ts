/**
 * The runbook's log checks as a pure function of the policy and the log lines read since the analysed deploy
 * started: startup failures, crash loops, [MEMORY_ERROR] lines, and repeated error signatures.
 */
import { z } from 'zod';
import type { CanaryPolicy } from '../policy';
import type { Verdict } from '../analysis/judge';
import { classifyLogLine, logLineSchema, type LogKind, type LogLine } from './classify';

/** One read of Render's GET /logs in a measurement: the lines worth judging, and how many were read in all. */
export const logReadingSchema = z.object({
  /** the time range read: [from, to) */
  from: z.string(),
  to: z.string(),
  linesRead: z.number().int().nonnegative(),
  /** lines that classify as errors of some kind (others are counted, not kept) */
  entries: z.array(logLineSchema),
  /** more lines than the page budget: the rest are read at the next measurement */
  truncated: z.boolean().optional(),
  /** the logs could not be read: a measurement problem, never a breach */
  error: z.string().optional(),
});
export type LogReading = z.infer<typeof logReadingSchema>;

export interface LogSignature {
  signature: string;
  count: number;
  kinds: LogKind[];
  firstAt: string;
  lastAt: string;
  instances: string[];
  example: string;
}

export interface LogJudgement {
  /** whether any read succeeded: unread logs are not judged */
  readable: boolean;
  readErrors: string[];
  linesRead: number;
  memoryErrors: number;
  startupFailures: number;
  crashes: number;
  otherErrors: number;
  /** error signatures, most frequent first */
  signatures: LogSignature[];
  /** signatures seen more often than policy.logs.maxRepeatsPerSignature */
  repeated: LogSignature[];
  /** a reason to roll back now: startup failures, a crash loop, a flood of [MEMORY_ERROR] */
  breach: { check: 'startup_errors' | 'crash_loop' | 'memory_errors'; reason: string } | undefined;
  /** "Render logs clean (no repeated errors)": inconclusive when the logs were never read */
  clean: Verdict;
  /** the last error lines, for the report and the incident record */
  excerpt: LogLine[];
}

const EXCERPT_LINES = 20;

export function judgeLogs(policy: CanaryPolicy, readings: LogReading[]): LogJudgement {
  const limits = policy.logs;
  const seen = new Set<string>();
  const lines: LogLine[] = [];
  // A resumed run reads the same range again: a line counts once, by Render's log id.
  for (const reading of readings) {
    for (const line of reading.entries) {
      if (seen.has(line.id)) continue;
      seen.add(line.id);
      lines.push(line);
    }
  }
  lines.sort((a, b) => a.timestamp.localeCompare(b.timestamp));
  const ok = readings.filter((r) => !r.error);
  const counts = { memory_error: 0, startup_failure: 0, crash: 0, error: 0 } satisfies Record<LogKind, number>;
  const bySignature = new Map<string, LogSignature>();
  const errorLines: LogLine[] = [];
  for (const line of lines) {
    const classified = classifyLogLine(line);
    if (!classified.signature) continue;
    errorLines.push(line);
    for (const kind of classified.kinds) counts[kind]++;
    const entry = bySignature.get(classified.signature) ?? {
      signature: classified.signature,
      count: 0,
      kinds: classified.kinds,
      firstAt: line.timestamp,
      lastAt: line.timestamp,
      instances: [],
      example: line.message.slice(0, 300),
    };
    entry.count++;
    entry.lastAt = line.timestamp;
    if (line.instance && !entry.instances.includes(line.instance)) entry.instances.push(line.instance);
    bySignature.set(classified.signature, entry);
  }
  const signatures = [...bySignature.values()].sort((a, b) => b.count - a.count || a.firstAt.localeCompare(b.firstAt));
  const repeated = signatures.filter((s) => s.count > limits.maxRepeatsPerSignature);
  const breach =
    counts.startup_failure > limits.maxStartupErrors
      ? { check: 'startup_errors' as const, reason: `${counts.startup_failure} startup error(s) in the Render logs (limit ${limits.maxStartupErrors}): ${firstOf(signatures, 'startup_failure')}` }
      : counts.crash > limits.maxCrashes
        ? { check: 'crash_loop' as const, reason: `crash loop: ${counts.crash} process crashes in the Render logs (limit ${limits.maxCrashes}): ${firstOf(signatures, 'crash')}` }
        : counts.memory_error > limits.maxMemoryErrors
          ? { check: 'memory_errors' as const, reason: `${counts.memory_error} [MEMORY_ERROR] lines in the Render logs (limit ${limits.maxMemoryErrors}): ${firstOf(signatures, 'memory_error')}` }
          : undefined;
  return {
    readable: ok.length > 0,
    readErrors: readings.flatMap((r) => (r.error ? [r.error] : [])),
    linesRead: ok.reduce((sum, r) => sum + r.linesRead, 0),
    memoryErrors: counts.memory_error,
    startupFailures: counts.startup_failure,
    crashes: counts.crash,
    otherErrors: counts.error,
    signatures,
    repeated,
    breach,
    clean: ok.length === 0 ? 'inconclusive' : repeated.length > 0 || breach ? 'fail' : 'pass',
    excerpt: errorLines.slice(-EXCERPT_LINES),
  };
}

function firstOf(signatures: LogSignature[], kind: LogKind): string {
  const match = signatures.find((s) => s.kinds.includes(kind));
  // Quoted into decisions, Markdown and webhooks: the service's text keeps no backticks.
  return match ? `"${match.example.slice(0, 160).replace(/`/g, "'")}"` : '';
}

/** "3 [MEMORY_ERROR], 0 startup errors, 1 crash; 2 repeated errors" for reports. */
export function describeLogJudgement(logs: LogJudgement): string {
  if (!logs.readable) return logs.readErrors.length ? `not read (${logs.readErrors.at(-1)})` : 'not read';
  const repeated = logs.repeated.length ? `; ${logs.repeated.length} repeated error(s), most frequent ${logs.repeated[0]!.count}x "${logs.repeated[0]!.signature.slice(0, 120)}"` : '; no repeated errors';
  return `${logs.linesRead} lines read: ${logs.memoryErrors} [MEMORY_ERROR], ${logs.startupFailures} startup error(s), ${logs.crashes} crash(es), ${logs.otherErrors} other error(s)${repeated}`;
}
