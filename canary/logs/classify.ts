/**
 * What one Render log line means to the canary, as a pure function of its text and labels: a `[MEMORY_ERROR]`
 * line, a startup failure, a process crash, some other error, or nothing to judge. Also the line's "signature":
 * its error text with numbers, ids and times normalised, so the runbook's "repeated errors" group together.
 */
import { z } from 'zod';

/** One log line as recorded in a measurement (Render's GET /logs item, its labels flattened). */
export const logLineSchema = z.object({
  id: z.string(),
  timestamp: z.string(),
  message: z.string(),
  level: z.string().optional(),
  instance: z.string().optional(),
});
export type LogLine = z.infer<typeof logLineSchema>;

export type LogKind = 'memory_error' | 'startup_failure' | 'crash' | 'error';

export interface ClassifiedLogLine {
  /** every kind the line is: a fatal "[MEMORY_ERROR] Startup failed" is a memory error and a startup failure */
  kinds: LogKind[];
  /** the normalised error text, for "repeated errors"; undefined for lines that are not errors */
  signature?: string;
}

// The service's fatal startup line, and what Node prints when a process cannot start at all.
const STARTUP_FAILURE = /startup failed|failed to start|cannot find module|EADDRINUSE|exited before passing its health check/i;
// A process exiting on its own with a failure: Render's "Exited with status 1", the local platform's "exited (code 1".
const CRASH = /exited with status [1-9]|exited \(code [1-9]|exited \(code none, signal SIG(KILL|SEGV|ABRT|BUS)|crashed/i;
const ERROR_TEXT = /(error|exception)\b|\b(uncaught|unhandled)\b/i;

/** The message and level inside a pino JSON line, when the line is one. */
export function parseStructured(message: string): { level?: string; msg?: string; time?: string } | undefined {
  const text = message.trim();
  if (!text.startsWith('{')) return undefined;
  try {
    const value = JSON.parse(text) as Record<string, unknown>;
    if (!value || typeof value !== 'object') return undefined;
    const level = typeof value.level === 'string' ? value.level : typeof value.level === 'number' ? pinoLevel(value.level) : undefined;
    const time = typeof value.time === 'string' ? value.time : typeof value.time === 'number' ? new Date(value.time).toISOString() : undefined;
    return {
      ...(level ? { level } : {}),
      ...(typeof value.msg === 'string' ? { msg: value.msg } : {}),
      ...(time ? { time } : {}),
    };
  } catch {
    return undefined;
  }
}

function pinoLevel(level: number): string {
  return level >= 60 ? 'fatal' : level >= 50 ? 'error' : level >= 40 ? 'warn' : level >= 30 ? 'info' : 'debug';
}

export function classifyLogLine(line: LogLine): ClassifiedLogLine {
  const structured = parseStructured(line.message);
  const level = (line.level ?? structured?.level ?? '').toLowerCase();
  const text = structured?.msg ?? line.message;
  const kinds: LogKind[] = [];
  if (text.includes('[MEMORY_ERROR]')) kinds.push('memory_error');
  if (STARTUP_FAILURE.test(text) || (level === 'fatal' && !CRASH.test(text))) kinds.push('startup_failure');
  if (CRASH.test(text)) kinds.push('crash');
  // A line with a level says what it is (a warning that mentions an error is a warning); plain lines are read.
  const isError = kinds.length > 0 || level === 'error' || level === 'fatal' || (level === '' && ERROR_TEXT.test(text));
  if (!isError) return { kinds };
  if (kinds.length === 0) kinds.push('error');
  return { kinds, signature: errorSignature(text) };
}

/**
 * Normalises an error message so the same error from different requests, instances and times reads the same:
 * times, UUIDs, Render-style ids (srv-..., dep-...), long hex and every number become placeholders.
 */
export function errorSignature(text: string): string {
  return text
    .replace(/^\[render-emulator [^\]]*\]\s*/, '')
    .replace(/\d{4}-\d{2}-\d{2}T[\d:.]+Z?/g, '<time>')
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, '<id>')
    .replace(/\b[a-z]{2,5}-[0-9a-z]{8,}(?:-[0-9a-z]+)*\b/gi, '<id>')
    .replace(/\b[0-9a-f]{12,}\b/gi, '<hex>')
    // standalone numbers only: "Context7" stays a name
    .replace(/\b\d+(\.\d+)?\b/g, '<n>')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 200);
}
