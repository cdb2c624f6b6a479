/**
 * The fleet rehearsal's "no pattern lost" proof, from the outside: every pattern a service acknowledged is a row
 * in its environment's PostgreSQL database, and reaches the Context7 emulator once Context7 is healthy again
 * (written through, or sent later by an outbox drainer).
 */
import type { PatternLedger } from './ledger';
import { patternIdsInDatabase } from './fleet-backing';

export interface FleetPatternCheck {
  acknowledged: number;
  foundInPostgres: number;
  deliveredToContext7: number;
  /** scope/id, first few only */
  missingInPostgres: string[];
  undelivered: string[];
  /** how long the drainers took to deliver what waited in the outbox */
  deliveryWaitMs: number;
}

const SHOWN = 10;

function acknowledgedIds(ledger: PatternLedger): { scopeId: string; id: string }[] {
  return Object.entries(ledger.toJSON()).flatMap(([scopeId, ids]) => ids.map((id) => ({ scopeId, id })));
}

/** Ids (of `ledger`) the database at `databaseUrl` does not hold. */
export async function missingFromDatabase(databaseUrl: string, ledger: PatternLedger): Promise<{ acknowledged: number; missing: string[] }> {
  const all = acknowledgedIds(ledger);
  const found = await patternIdsInDatabase(databaseUrl, all.map((p) => p.id));
  return { acknowledged: all.length, missing: all.filter((p) => !found.has(p.id)).map((p) => `${p.scopeId}/${p.id}`) };
}

/**
 * Polls Context7's store (`storedIds(scope)`) until every acknowledged id is there or `timeoutMs` passes; the
 * drainers retry with backoff, so delivery after an incident takes a while. Returns the ids still missing.
 */
export async function waitForDelivery(
  ledger: PatternLedger,
  storedIds: (scopeId: string) => ReadonlySet<string>,
  options: { timeoutMs: number; pollMs?: number; onProgress?: (delivered: number, total: number) => void },
): Promise<{ delivered: number; undelivered: string[]; waitedMs: number }> {
  const all = acknowledgedIds(ledger);
  const started = Date.now();
  for (;;) {
    const undelivered = all.filter((p) => !storedIds(p.scopeId).has(p.id)).map((p) => `${p.scopeId}/${p.id}`);
    const delivered = all.length - undelivered.length;
    options.onProgress?.(delivered, all.length);
    if (undelivered.length === 0 || Date.now() - started >= options.timeoutMs) return { delivered, undelivered, waitedMs: Date.now() - started };
    await new Promise((r) => setTimeout(r, options.pollMs ?? 500));
  }
}

export function firstFew(ids: string[]): string[] {
  return ids.slice(0, SHOWN);
}
