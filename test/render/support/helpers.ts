import { readFileSync } from 'node:fs';
import type { Clock, Sleep } from '../../../render/pacing';

/** A clock that only moves when the code under test sleeps: retries and pacing cost no real time. */
export function fakeTime(start = 1_800_000_000_000): { clock: Clock; sleep: Sleep; sleeps: number[]; advance(ms: number): void } {
  let now = start;
  const sleeps: number[] = [];
  return {
    clock: { now: () => now },
    sleep: async (ms: number) => {
      sleeps.push(ms);
      now += ms;
    },
    sleeps,
    advance(ms: number) {
      now += ms;
    },
  };
}

/** Collects every log call, to check that no secret reaches a log line. */
export function captureLogger(): { logger: { debug(o: object, m?: string): void; info(o: object, m?: string): void; warn(o: object, m?: string): void }; lines: string[] } {
  const lines: string[] = [];
  const record = (level: string) => (obj: object, msg?: string) => {
    lines.push(`${level} ${msg ?? ''} ${JSON.stringify(obj)}`);
  };
  return { logger: { debug: record('debug'), info: record('info'), warn: record('warn') }, lines };
}

/** True when the process exists and is not a zombie (containers may not reap orphans). */
export function isAlive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Process group id from /proc (Linux). */
export function processGroupOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return undefined;
  }
}
