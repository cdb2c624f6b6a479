/**
 * Operator requests to a running stepped canary (`canary pause | resume | promote | abort`), kept in a side file of
 * their own beside the canary's state file (`<state file>.operator.json`): the state file's format and binding
 * belong to the canary itself, and a command must never write it.
 *
 * Every change to the side file happens under a cross-process lock (proper-lockfile: an atomic mkdir of
 * `<side file>.lock`, refreshed while held and taken over when stale, so a killed process never wedges it), and
 * is written with write-then-rename, so a reader without the lock (`canary status`) never sees half a file.
 * The canary reads and answers requests at its next look; each request ends answered exactly once: applied,
 * refused (with why) or superseded by the canary's own decision at that look.
 */
import { existsSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
// proper-lockfile is required when the side file is changed, not on import: `status` only reads it.
import { z } from 'zod';
import { writeFileAtomic } from '../actions/atomic-write';

export const OPERATOR_COMMANDS = ['pause', 'resume', 'promote', 'abort'] as const;
export type OperatorCommand = (typeof OPERATOR_COMMANDS)[number];

export const operatorRequestSchema = z.object({
  id: z.string(),
  command: z.enum(OPERATOR_COMMANDS),
  actor: z.string().min(1).max(100),
  reason: z.string().max(500),
  requestedAt: z.string(),
  /** set by the canary when it answered the request, at a look */
  answer: z
    .object({
      at: z.string(),
      /** superseded: the canary's own decision at the same look won (a rollback or an abort, or its own advance) */
      outcome: z.enum(['applied', 'refused', 'superseded']),
      detail: z.string(),
      stepIndex: z.number().int().nonnegative(),
    })
    .optional(),
});
export type OperatorRequest = z.infer<typeof operatorRequestSchema>;

export const operatorFileSchema = z.object({
  version: z.literal(1),
  requests: z.array(operatorRequestSchema),
  /** the operator's hold, as the canary applied it: looks go on, no step advances */
  paused: z.object({ by: z.string(), reason: z.string(), since: z.string(), heldAt: z.string().optional() }).optional(),
  /** a manual gate the canary is stopped at (policy operator.manualGates), until an operator promotes */
  gate: z.object({ stepIndex: z.number().int().nonnegative(), beforePercent: z.number(), since: z.string() }).optional(),
  /** what `canary status` needs of the running canary that the state file does not say */
  canary: z.object({ pid: z.number().int(), timeScale: z.number().positive(), seenAt: z.string() }).optional(),
});
export type OperatorFile = z.infer<typeof operatorFileSchema>;

export class OperatorFileError extends Error {
  override readonly name = 'OperatorFileError';
}

export function operatorFilePath(stateFilePath: string): string {
  return `${stateFilePath}.operator.json`;
}

const EMPTY: OperatorFile = { version: 1, requests: [] };

/** The side file as it is now, without the lock (every write renames a whole file into place). */
export function readOperatorFile(path: string): OperatorFile {
  if (!existsSync(path)) return structuredClone(EMPTY);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new OperatorFileError(`${path} is not valid JSON: move it aside (the canary answers no request until then)`);
  }
  const parsed = operatorFileSchema.safeParse(json);
  if (!parsed.success) throw new OperatorFileError(`${path} is not an operator request file (${parsed.error.issues[0]?.message})`);
  return parsed.data;
}

/**
 * Reads, changes and writes the side file under the lock. `change` runs with the lock held; whatever it returns is
 * returned. Waits up to `waitMs` for another holder; a holder that died is taken over once its lock is stale.
 */
export async function updateOperatorFile<T>(path: string, change: (file: OperatorFile) => T, waitMs = 10_000): Promise<T> {
  const lockfile = require('proper-lockfile') as typeof import('proper-lockfile');
  const release = await lockfile.lock(path, {
    realpath: false,
    stale: 10_000,
    update: 2_000,
    retries: { retries: Math.max(1, Math.ceil(waitMs / 100)), minTimeout: 50, maxTimeout: 200, factor: 1.2 },
    onCompromised: (error) => {
      throw new OperatorFileError(`lost the lock on ${path}: ${error.message}`);
    },
  }).catch((error: Error) => {
    throw new OperatorFileError(`could not lock ${path} within ${waitMs / 1000} s: ${error.message}`);
  });
  try {
    const file = readOperatorFile(path);
    const result = change(file);
    writeFileAtomic(path, JSON.stringify(file, null, 1) + '\n');
    return result;
  } finally {
    await release();
  }
}

/** Queues a request for the canary's next look; its id tells it apart in the answers. */
export function submitRequest(path: string, request: { command: OperatorCommand; actor: string; reason: string; now: Date }): Promise<OperatorRequest> {
  const queued: OperatorRequest = {
    id: `${request.now.toISOString()}-${randomUUID().slice(0, 8)}`,
    command: request.command,
    actor: request.actor,
    reason: request.reason,
    requestedAt: request.now.toISOString(),
  };
  return updateOperatorFile(path, (file) => {
    file.requests.push(queued);
    return queued;
  });
}
