/**
 * Which learned patterns the service acknowledged (a 2xx with their ids), so that after a rollback
 * the demo can prove none was lost: every acknowledged id must be in the service's local store. Pure.
 */

export interface Acknowledgement {
  scopeId: string;
  patternIds: string[];
  /** where the service says they went: ["database","context7"] or ["database"] (outbox) */
  destinations: string[];
}

export interface LedgerTotals {
  acknowledged: number;
  scopes: number;
  /** acknowledged while Context7 did not take them: they wait in the outbox */
  databaseOnly: number;
}

export interface LossCheck {
  acknowledged: number;
  present: number;
  missing: string[];
  scopes: number;
}

export class PatternLedger {
  private readonly byScope = new Map<string, Set<string>>();
  private databaseOnly = 0;

  record(ack: Acknowledgement): void {
    let ids = this.byScope.get(ack.scopeId);
    if (!ids) this.byScope.set(ack.scopeId, (ids = new Set()));
    for (const id of ack.patternIds) ids.add(id);
    if (!ack.destinations.includes('context7')) this.databaseOnly += ack.patternIds.length;
  }

  scopes(): string[] {
    return [...this.byScope.keys()];
  }

  /** scope id -> acknowledged pattern ids, for a file others can check independently */
  toJSON(): Record<string, string[]> {
    return Object.fromEntries([...this.byScope].map(([scopeId, ids]) => [scopeId, [...ids]]));
  }

  totals(): LedgerTotals {
    let acknowledged = 0;
    for (const ids of this.byScope.values()) acknowledged += ids.size;
    return { acknowledged, scopes: this.byScope.size, databaseOnly: this.databaseOnly };
  }

  /** `storedIds(scope)`: the ids the store holds for that scope. */
  compare(storedIds: (scopeId: string) => ReadonlySet<string>): LossCheck {
    const missing: string[] = [];
    let acknowledged = 0;
    for (const [scopeId, ids] of this.byScope) {
      const stored = storedIds(scopeId);
      for (const id of ids) {
        acknowledged++;
        if (!stored.has(id)) missing.push(`${scopeId}/${id}`);
      }
    }
    return { acknowledged, present: acknowledged - missing.length, missing, scopes: this.byScope.size };
  }
}
