/**
 * Every process group the rehearsal starts (canary runs, and the service instances the Render
 * emulator launches), so the demo can stop them all on any exit path and prove none is left.
 */
import { groupAlive } from '../render/emulator/process-groups';

export { groupAlive };

export interface TrackedProcess {
  role: string;
  pid: number;
  /** process group id: each child is started detached, so it leads its own group (pgid = pid) */
  pgid: number;
}

export class ProcessRegistry {
  private readonly tracked = new Map<number, TrackedProcess>();

  /** Records a group leader once; returns whether it was new. */
  record(role: string, pid: number): boolean {
    if (this.tracked.has(pid)) return false;
    this.tracked.set(pid, { role, pid, pgid: pid });
    return true;
  }

  all(): TrackedProcess[] {
    return [...this.tracked.values()];
  }

  alive(which: (p: TrackedProcess) => boolean = () => true): TrackedProcess[] {
    return this.all().filter((p) => which(p) && groupAlive(p.pgid));
  }

  /** Synchronous, so it also works from an 'exit' handler. */
  signalAll(signal: NodeJS.Signals, which: (p: TrackedProcess) => boolean = () => true): void {
    for (const p of this.all().filter(which)) {
      try {
        process.kill(-p.pgid, signal);
      } catch {
        // already gone
      }
    }
  }

  /** SIGTERM every (chosen) group, wait up to graceMs, then SIGKILL what is left and wait for it to go. */
  async stopAll(graceMs: number, which: (p: TrackedProcess) => boolean = () => true): Promise<TrackedProcess[]> {
    if (this.alive(which).length === 0) return [];
    this.signalAll('SIGTERM', which);
    await waitUntil(() => this.alive(which).length === 0, graceMs);
    if (this.alive(which).length > 0) {
      this.signalAll('SIGKILL', which);
      await waitUntil(() => this.alive(which).length === 0, 5_000);
    }
    return this.alive(which);
  }
}

async function waitUntil(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}
