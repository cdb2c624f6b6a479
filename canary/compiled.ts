/**
 * Starting a command that scripts/build.mjs compiles to dist/ (the canary CLI; the e2e's pulumi stand-in): node on
 * the bundle, source maps on so a stack trace names the .ts lines. Whoever starts them over and over (the demo, the
 * tests) starts these instead of `node --import tsx X.ts`, which compiles ~100 modules again at every start-up
 * (canary/README.md, "How the canary starts").
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const REPO = join(__dirname, '..');

/** Node's arguments that run `entry` (a path from the repository root, e.g. canary/main.ts) compiled. */
export function compiledArgs(entry: string): string[] {
  return ['--enable-source-maps', join(REPO, 'dist', entry.replace(/\.ts$/, '.js'))];
}

/**
 * The build's deadline: a full compile takes under a second quiet and some 10 s at load 20; a build stuck past this
 * (a hung file system, a wedged esbuild service) is killed rather than holding its caller forever.
 */
export const BUILD_DEADLINE_MS = 120_000;

/**
 * Compiles the build's targets (scripts/build.mjs: cli, test) unless dist/ is up to date, which costs about 0.2 s of
 * CPU to check. Throws when the build fails or passes `deadlineMs` (then killed); its own lines go to stderr.
 */
export function buildIfNeeded(targets: string[], { deadlineMs = BUILD_DEADLINE_MS, script = join(REPO, 'scripts', 'build.mjs') } = {}): void {
  const result = spawnSync(process.execPath, [script, ...targets, '--quiet'], { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'], timeout: deadlineMs, killSignal: 'SIGKILL' });
  const timedOut = (result.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  if (timedOut) throw new Error(`scripts/build.mjs ${targets.join(' ')} passed its ${deadlineMs} ms deadline and was killed`);
  if (result.status !== 0) throw new Error(`scripts/build.mjs ${targets.join(' ')} failed (${result.error?.message ?? `exit ${result.status ?? result.signal}`})`);
}
