/** `npm run demo` arguments, checked before anything starts. Pure apart from looking at --run-dir. */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';

export const USAGE = 'usage: npm run demo [-- --healthy | --fleet] [--run-dir DIR] [--time-scale N] [--watchdog-seconds N]';

export interface DemoOptions {
  help: boolean;
  mode: 'healthy' | 'fault';
  /** production-shaped: PostgreSQL + Redis per environment, 2 instances per service, rollback then retry */
  fleet: boolean;
  runDir: string | undefined;
  /** policy seconds per real second; undefined: measured from the machine (demo/clock.ts) */
  timeScale: number | undefined;
  /** undefined: the default, stretched with a clock slower than 60x */
  watchdogSeconds: number | undefined;
}

/** Bounded: a watchdog past setTimeout's ~24.8-day limit would fire at once, and a clock much faster
 * than 600x would shrink the services' cache TTL and the canary's polls to nothing. */
export const MAX_TIME_SCALE = 600;
export const MAX_WATCHDOG_SECONDS = 86_400;

/**
 * The watchdog when none is given: 300 s (the fleet rehearsal, which runs three canaries and waits for the outbox
 * drainers: 420 s) at the 60x clock, stretched in proportion with a slower one, up to an hour.
 */
export function defaultWatchdogSeconds(fleet: boolean, timeScale: number): number {
  return Math.min(3_600, Math.round((fleet ? 420 : 300) * Math.max(1, 60 / timeScale)));
}

function boundedNumber(name: string, raw: string | undefined, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n <= 0 || n > max) {
    throw new Error(`--${name} must be a positive number up to ${max}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

const DEMO_FLAGS = {
  healthy: { type: 'boolean' },
  fleet: { type: 'boolean' },
  'run-dir': { type: 'string' },
  'time-scale': { type: 'string' },
  'watchdog-seconds': { type: 'string' },
  help: { type: 'boolean' },
} as const;

/**
 * `npm run demo --healthy` (no `--`) gives the flag to npm, which only warns and passes it on as
 * npm_config_healthy; the demo would then silently run the default rehearsal. Names the flags caught that way.
 */
export function flagsSwallowedByNpm(env: NodeJS.ProcessEnv): string[] {
  return Object.keys(DEMO_FLAGS)
    .filter((flag) => flag !== 'help') // `npm run demo --help` prints npm's help and never runs the demo
    .flatMap((flag) => {
      const value = env[`npm_config_${flag.replace(/-/g, '_')}`];
      if (value === undefined) return [];
      return DEMO_FLAGS[flag as keyof typeof DEMO_FLAGS].type === 'string' ? [`--${flag} ${value}`] : [`--${flag}`];
    });
}

/** Throws an Error with a message for the user on bad arguments. */
export function parseDemoOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): DemoOptions {
  const swallowed = flagsSwallowedByNpm(env);
  if (swallowed.length > 0) {
    throw new Error(`npm took ${swallowed.join(' ')} as its own option: did you mean \`npm run demo -- ${swallowed.join(' ')}\`?`);
  }
  const { values } = parseArgs({ args: argv, options: DEMO_FLAGS, strict: true });
  // The fleet rehearsal's lifecycle is the incident, the rollback and the retry: there is no healthy variant.
  if (values.fleet && values.healthy) throw new Error('--fleet rehearses the incident, the rollback and the retry: it does not combine with --healthy');
  const runDir = values['run-dir'];
  if (runDir && existsSync(runDir)) {
    if (!statSync(runDir).isDirectory()) throw new Error(`--run-dir must be a directory: ${runDir} is a file`);
    // A finished canary state file in a reused directory would (rightly) refuse to act again.
    if (readdirSync(runDir).length > 0) throw new Error(`--run-dir must be a new or empty directory: ${runDir} holds an earlier run`);
  }
  return {
    help: values.help === true,
    mode: values.healthy ? 'healthy' : 'fault',
    fleet: values.fleet === true,
    runDir,
    timeScale: values['time-scale'] === undefined ? undefined : boundedNumber('time-scale', values['time-scale'], 60, MAX_TIME_SCALE),
    watchdogSeconds: values['watchdog-seconds'] === undefined ? undefined : boundedNumber('watchdog-seconds', values['watchdog-seconds'], 300, MAX_WATCHDOG_SECONDS),
  };
}
