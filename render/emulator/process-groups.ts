/**
 * Process-group liveness, shared by the local platform (which starts services in their own groups) and the demo
 * (which proves none is left behind).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Whether any live (non-zombie) process is left in the group. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch {
    return false;
  }
  // Orphans that exited may linger as zombies when PID 1 does not reap: they do not count.
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
