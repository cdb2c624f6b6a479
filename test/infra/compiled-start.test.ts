/**
 * Render runs compiled JavaScript: the build command compiles dist/ (scripts/build.mjs), the start and pre-deploy
 * commands run it with no TypeScript loader, and source maps stay on, so a stack trace names the .ts line.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SERVICE_RUNTIME } from '../../infra/service-runtime';

const REPO = path.resolve(__dirname, '..', '..');
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'compiled-start-'));
  dirs.push(dir);
  return dir;
}
function sh(command: string, env: Record<string, string>) {
  return spawnSync('sh', ['-c', command], { cwd: REPO, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env }, encoding: 'utf8', timeout: 60_000 });
}

describe('the compiled service', () => {
  it('start and pre-deploy run dist/ JavaScript with source maps, never a TypeScript loader', () => {
    for (const command of [SERVICE_RUNTIME.startCommand, SERVICE_RUNTIME.preDeployCommand]) {
      expect(command).toMatch(/^(exec )?node --enable-source-maps dist\/service\/\S+\.js$/);
      expect(command).not.toMatch(/tsx|ts-node|--import|--loader/);
    }
    expect(SERVICE_RUNTIME.buildCommand).toContain('npm run build');
  });

  it('dist/ is built from this source: building again has nothing to do', () => {
    const result = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: REPO, encoding: 'utf8' });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/dist\/ is up to date with service\//);
  });

  it('a startup failure prints a stack whose frames are the .ts lines, not dist/', () => {
    const notADir = path.join(tempDir(), 'file');
    writeFileSync(notADir, '');
    const result = sh(SERVICE_RUNTIME.startCommand, { HOST: '127.0.0.1', PORT: '0', DATA_DIR: path.join(notADir, 'data') });
    expect(result.status).toBe(1);
    const fatal = result.stderr.split('\n').find((line) => line.includes('Startup failed'));
    expect(fatal, result.stderr).toBeDefined();
    const stack = (JSON.parse(fatal!) as { stack: string }).stack;
    expect(stack).not.toContain('dist/service');
    const frame = /\((\S+\/service\/data-access\/sqlite-store\.ts):(\d+):\d+\)/.exec(stack);
    expect(frame, stack).not.toBeNull();
    // The mapped line is the mkdir that failed.
    const line = readFileSync(frame![1]!, 'utf8').split('\n')[Number(frame![2]) - 1];
    expect(line).toContain('mkdirSync(options.dataDir');
    expect(stack).toMatch(/\(\S+\/service\/main\.ts:\d+:\d+\)/);
  });

  it('the pre-deploy migration runs from dist/', () => {
    const result = sh(SERVICE_RUNTIME.preDeployCommand, { DATA_DIR: tempDir() });
    expect(result.status, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/SQLite/i);
  });
});
