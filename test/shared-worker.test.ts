import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NOT_SHARED_IF, NOT_SHARED_SERVERS_IF, SHARED_SERVER_FILES, SHARED_WORKER_FILES } from './shared-worker';

const REPO = join(__dirname, '..');

describe('files sharing a worker (test/shared-worker.ts)', () => {
  it('names only test files that exist, each once', () => {
    expect(SHARED_WORKER_FILES.filter((name) => !existsSync(join(REPO, name)))).toEqual([]);
    expect(new Set(SHARED_WORKER_FILES).size).toBe(SHARED_WORKER_FILES.length);
  });

  it('holds no file that starts a server or process, or changes process-wide state', () => {
    const offending = SHARED_WORKER_FILES.flatMap((name) => {
      const text = readFileSync(join(REPO, name), 'utf8');
      return NOT_SHARED_IF.filter((rule) => rule.test(text)).map((rule) => `${name}: ${rule}`);
    });
    expect(offending).toEqual([]);
  });

  it('would catch such a file', () => {
    const caught = (text: string) => NOT_SHARED_IF.some((rule) => rule.test(text));
    for (const text of ["import { spawn } from 'node:child_process';", 'const h = await startHarness();', "process.env.X = '1';", "vi.mock('../x');", 'await fetch(url);', "await runTsx(['load/cli/compare.ts']);", "db = await createTestDatabase('x');"]) {
      expect(caught(text), text).toBe(true);
    }
    expect(caught("import { parsePolicy } from '../../canary/policy';")).toBe(false);
  });
});

/** A test file's text and that of the test modules it imports (relative imports under test/, one level). */
function withTestImports(name: string): { name: string; text: string }[] {
  const text = readFileSync(join(REPO, name), 'utf8');
  const imported = [...text.matchAll(/from '(\.{1,2}\/[^']+)'/g)]
    .map((match) => resolve(dirname(join(REPO, name)), `${match[1]}.ts`))
    .filter((path) => path.startsWith(join(REPO, 'test')) && existsSync(path));
  return [{ name, text }, ...imported.map((path) => ({ name: path.slice(REPO.length + 1), text: readFileSync(path, 'utf8') }))];
}

/** Starts a server (or the harness, an emulator) but never closes or stops anything. */
const startsWithoutStopping = (text: string) => /\blisten\(|\bstart[A-Z]\w*\(|createServer/.test(text) && !/\.(close|stop|drain)\(/.test(text);

describe('files sharing a worker with in-process servers (SHARED_SERVER_FILES)', () => {
  it('names only test files that exist, each once, in no other list', () => {
    expect(SHARED_SERVER_FILES.filter((name) => !existsSync(join(REPO, name)))).toEqual([]);
    expect(new Set(SHARED_SERVER_FILES).size).toBe(SHARED_SERVER_FILES.length);
    expect(SHARED_SERVER_FILES.filter((name) => SHARED_WORKER_FILES.includes(name))).toEqual([]);
  });

  it('holds no file that, or whose test modules, start a process, change process-wide state, mock or reach outside services', () => {
    const offending = SHARED_SERVER_FILES.flatMap((name) => withTestImports(name).flatMap((file) =>
      NOT_SHARED_SERVERS_IF.filter((rule) => rule.test(file.text)).map((rule) => `${name} (${file.name}): ${rule}`)));
    expect(offending).toEqual([]);
  });

  it('holds no file that starts a server and closes nothing', () => {
    expect(SHARED_SERVER_FILES.filter((name) => startsWithoutStopping(readFileSync(join(REPO, name), 'utf8')))).toEqual([]);
  });

  it('would catch such a file', () => {
    const caught = (text: string) => NOT_SHARED_SERVERS_IF.some((rule) => rule.test(text)) || startsWithoutStopping(text);
    for (const text of ["import { spawn } from 'node:child_process';", "process.env.X = '1';", 'process.chdir(dir);', "vi.mock('../x');", "vi.stubEnv('X', '1');", 'vi.useFakeTimers();', "db = await createTestDatabase('x');", 'const h = await startHarness();',
      "emulator = await startRenderEmulator({ apiKey, localPlatform: { source: 'working-tree' } }); afterAll(() => emulator.close());"]) {
      expect(caught(text), text).toBe(true);
    }
    expect(caught('h = await startHarness(); afterAll(() => h.close());')).toBe(false);
    expect(withTestImports('test/service/metrics.test.ts').map((file) => file.name)).toContain('test/service/support/harness.ts');
  });
});
