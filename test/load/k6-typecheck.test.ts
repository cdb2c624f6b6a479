import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

// The type check's compiler (npm run load:typecheck): TypeScript 7, see package.json's typecheck.
const tsc = resolve('node_modules/typescript-native/bin/tsc');
const scratch = mkdtempSync(join(resolve('load/k6'), '.typecheck-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function typecheck(project: string) {
  return spawnSync(process.execPath, [tsc, '-p', project], { encoding: 'utf8', timeout: 120_000 });
}

describe('k6 scripts', () => {
  it('type-check against @types/k6 (npm run load:typecheck)', () => {
    const res = typecheck('load/k6/tsconfig.json');
    expect(res.stdout + res.stderr).toBe('');
    expect(res.status).toBe(0);
  }, 120_000);

  it('are checked without Node types, so Node-only code cannot slip into k6', () => {
    writeFileSync(join(scratch, 'uses-node.ts'), "export const home: string = process.env.HOME ?? '';\n");
    writeFileSync(join(scratch, 'tsconfig.json'), JSON.stringify({ extends: '../tsconfig.json', include: ['./*.ts'] }));
    const res = typecheck(join(scratch, 'tsconfig.json'));
    expect(res.status).not.toBe(0);
    expect(res.stdout).toMatch(/Cannot find name 'process'/);
  }, 120_000);
});
