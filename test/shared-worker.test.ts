import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NOT_SHARED_IF, SHARED_WORKER_FILES } from './shared-worker';

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
