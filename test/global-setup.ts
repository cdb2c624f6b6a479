/**
 * Runs once before the suites: node_modules must match the running Node's ABI, and dist/ must be the compiled
 * service of this very source (suites start it with the declared start command, as Render does).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const REPO = path.resolve(__dirname, '..');

export default async function setup(): Promise<void> {
  execFileSync(process.execPath, [path.join(REPO, 'scripts', 'native-abi.cjs'), 'check'], { cwd: REPO, stdio: 'inherit' });
  execFileSync(process.execPath, [path.join(REPO, 'scripts', 'build.mjs')], { cwd: REPO, stdio: 'inherit' });
}
