/**
 * Render runs compiled JavaScript: the build command compiles dist/ (scripts/build.mjs), the start and pre-deploy
 * commands run it with no TypeScript loader, and source maps stay on, so a stack trace names the .ts line.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SERVICE_RUNTIME } from '../../infra/service-runtime';
import { buildIfNeeded } from '../../canary/compiled';

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

  it('the build is skipped only while service/ is unchanged: an edit rebuilds', () => {
    // A copy of what the build reads, so the test never touches this checkout's dist/.
    const root = tempDir();
    mkdirSync(path.join(root, 'scripts'));
    cpSync(path.join(REPO, 'scripts', 'build.mjs'), path.join(root, 'scripts', 'build.mjs'));
    cpSync(path.join(REPO, 'service'), path.join(root, 'service'), { recursive: true });
    cpSync(path.join(REPO, 'tsconfig.json'), path.join(root, 'tsconfig.json'));
    symlinkSync(path.join(REPO, 'node_modules'), path.join(root, 'node_modules'));
    const build = () => {
      const result = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: root, encoding: 'utf8' });
      expect(result.status, result.stderr).toBe(0);
      return result.stderr;
    };
    expect(build()).toMatch(/compiled service\/main\.ts, service\/cli\/migrate\.ts to dist\//);
    expect(existsSync(path.join(root, 'dist', 'service', 'main.js'))).toBe(true);
    expect(existsSync(path.join(root, 'dist', 'service', 'main.js.map'))).toBe(true);
    expect(existsSync(path.join(root, 'dist', 'service', 'openapi.yaml'))).toBe(true);
    expect(build()).toMatch(/up to date/);
    appendFileSync(path.join(root, 'service', 'config.ts'), '\n// edited\n');
    expect(build()).toMatch(/compiled/);
    rmSync(path.join(root, 'dist', 'service', 'cli', 'migrate.js'));
    expect(build()).toMatch(/compiled/); // a missing output is rebuilt whatever the stamp says
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

/**
 * The commands the tests and the demo start over and over (scripts/build.mjs's `cli` target: canary/main.ts) run
 * compiled from a checkout, as they ran under tsx: in a fixture checkout, a bundled module's `__dirname` is its source
 * folder, only the entry point's `require.main === module` holds, a stack trace names the .ts line, and the stamp
 * rebuilds on an edit or a new file next to an input.
 */
describe('the compiled commands (build target cli)', () => {
  it('behave as their sources: source folders, one main, .ts stack frames; rebuilt when an input or its folder changes', () => {
    const root = tempDir();
    mkdirSync(path.join(root, 'scripts'));
    cpSync(path.join(REPO, 'scripts', 'build.mjs'), path.join(root, 'scripts', 'build.mjs'));
    cpSync(path.join(REPO, 'tsconfig.json'), path.join(root, 'tsconfig.json'));
    symlinkSync(path.join(REPO, 'node_modules'), path.join(root, 'node_modules'));
    mkdirSync(path.join(root, 'canary', 'sub'), { recursive: true });
    writeFileSync(
      path.join(root, 'canary', 'sub', 'helper.ts'),
      ['export const HELPER_DIR = __dirname;', 'export const HELPER_FILE = __filename;', "if (require.main === module) console.log('helper ran as main');", ''].join('\n'),
    );
    writeFileSync(
      path.join(root, 'canary', 'main.ts'),
      [
        "import { HELPER_DIR, HELPER_FILE } from './sub/helper';",
        'console.log(JSON.stringify({ main: __dirname, helper: HELPER_DIR, helperFile: HELPER_FILE, isMain: require.main === module }));',
        "if (process.argv[2] === 'throw') throw new Error('thrown on purpose');",
        '',
      ].join('\n'),
    );
    const build = () => {
      const result = spawnSync(process.execPath, ['scripts/build.mjs', 'cli'], { cwd: root, encoding: 'utf8' });
      expect(result.status, result.stderr).toBe(0);
      return result.stderr;
    };
    expect(build()).toMatch(/compiled canary\/main\.ts to dist\//);
    expect(build()).toMatch(/up to date with canary\//);
    const run = spawnSync(process.execPath, ['--enable-source-maps', path.join(root, 'dist', 'canary', 'main.js')], { cwd: tempDir(), encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).not.toContain('helper ran as main');
    expect(JSON.parse(run.stdout)).toEqual({
      main: path.join(root, 'canary'),
      helper: path.join(root, 'canary', 'sub'),
      helperFile: path.join(root, 'canary', 'sub', 'helper.ts'),
      isMain: true,
    });
    const thrown = spawnSync(process.execPath, ['--enable-source-maps', path.join(root, 'dist', 'canary', 'main.js'), 'throw'], { encoding: 'utf8' });
    expect(thrown.status).toBe(1);
    expect(thrown.stderr).toContain(`${path.join(root, 'canary', 'main.ts')}:3:`);

    appendFileSync(path.join(root, 'canary', 'sub', 'helper.ts'), '// edited\n');
    expect(build()).toMatch(/compiled/);
    // A new file beside an input can change what an import resolves to (./sub/helper: helper.ts or helper/index.ts).
    writeFileSync(path.join(root, 'canary', 'sub', 'other.ts'), 'export {};\n');
    expect(build()).toMatch(/compiled/);
    expect(build()).toMatch(/up to date/);
  });

  it('a build past its deadline is killed and named, not waited on', () => {
    // A stand-in build that never ends (a wedged compiler): the caller gets an error within the deadline.
    const script = path.join(tempDir(), 'hung-build.mjs');
    writeFileSync(script, 'setInterval(() => {}, 1000);\n');
    expect(() => buildIfNeeded(['cli'], { script, deadlineMs: 300 })).toThrow(/cli passed its 300 ms deadline and was killed/);
    // A build that fails says so with its exit status.
    writeFileSync(script, 'process.exit(3);\n');
    expect(() => buildIfNeeded(['cli'], { script })).toThrow(/failed \(exit 3\)/);
  });
});
