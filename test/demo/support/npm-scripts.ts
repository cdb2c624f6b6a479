/**
 * `npm run X -- ARGS` as npm runs it, for the workflow tests' `npm` stand-ins: package.json's `preX` then `X`, the
 * arguments appended, node_modules/.bin on PATH. The stand-ins run in a scratch checkout whose code is this
 * repository's, so each path the script names under the repository (dist/…, scripts/…, canary/…) is written as
 * $REPO_ROOT/… and the checkout stays the working directory, as it is for npm (the package root).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const REPO = join(__dirname, '..', '..', '..');

function inRepository(script: string): string {
  return script
    .split(' ')
    .map((word) => (/^[\w.-]+\//.test(word) && existsSync(join(REPO, word.split('/')[0]!)) ? `"$REPO_ROOT/${word}"` : word))
    .join(' ');
}

/** A bash line that runs `npm run <name> -- "$@"` as npm would, from package.json's scripts, and exits with its status. */
export function npmRunLine(name: string): string {
  const scripts = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  const script = scripts[name];
  if (!script) throw new Error(`package.json has no script ${name}`);
  const pre = scripts[`pre${name}`];
  return `PATH="$REPO_ROOT/node_modules/.bin:$PATH"; ${pre ? `${inRepository(pre)} || exit $?; ` : ''}${inRepository(script)} "$@"; exit $?`;
}
