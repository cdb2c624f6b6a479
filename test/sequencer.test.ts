import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LONGEST_FIRST, longestFirst } from './sequencer';

describe('test file order (test/sequencer.ts)', () => {
  it('starts the listed files first, in the list order, and keeps the others in the order given', () => {
    const given = ['/r/test/a.test.ts', '/r/test/slow-2.test.ts', '/r/test/b.test.ts', '/r/test/slow-1.test.ts', '/r/test/c.test.ts'];
    expect(longestFirst(given, (f) => f, ['test/slow-1.test.ts', 'test/slow-2.test.ts', 'test/gone.test.ts'])).toEqual([
      '/r/test/slow-1.test.ts', '/r/test/slow-2.test.ts', '/r/test/a.test.ts', '/r/test/b.test.ts', '/r/test/c.test.ts',
    ]);
    // Only a whole path component matches: "other-slow-1" is not "slow-1".
    expect(longestFirst(['/r/test/other-slow-1.test.ts', '/r/test/slow-1.test.ts'], (f) => f, ['slow-1.test.ts'])).toEqual([
      '/r/test/slow-1.test.ts', '/r/test/other-slow-1.test.ts',
    ]);
  });

  it('names only test files that exist, each once (a renamed file would silently start late)', () => {
    const repo = join(__dirname, '..');
    expect(LONGEST_FIRST.filter((name) => !existsSync(join(repo, name)))).toEqual([]);
    expect(new Set(LONGEST_FIRST).size).toBe(LONGEST_FIRST.length);
  });
});
