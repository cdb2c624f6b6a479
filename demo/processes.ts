/**
 * Every process group the rehearsal starts (canary runs, and the service instances the Render
 * emulator launches), so the demo can stop them all on any exit path and prove none is left.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface TrackedProcess {
  role: string;
  pid: number;
  /** process group id: each child is started detached, so it leads its own group (pgid = pid) */
  pgid: number;
}

/** Whether any live (non-zombie) process is left in the group. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch {
    return false;
  }
  // Orphans that exited linger as zombies when PID 1 does not reap them: those are gone for good.
  try {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        continue;
      }
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') return true;
    }
    return false;
  } catch {
    return true; // no /proc: trust kill(0)
  }
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
