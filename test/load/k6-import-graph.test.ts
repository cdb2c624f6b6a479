/**
 * The k6 script's runtime import graph, resolved by k6's rules rather than a bundler's: k6 loads a specifier only
 * as `k6` / `k6/...` (built-in modules) or as an exact relative path. It guesses no extension and opens no
 * `index` file, and a bare npm name or a URL would not load here (or would add a host). `import type` and
 * `export type` lines are erased before k6 runs the file, so they do not count. esbuild (k6-script-runtime.test.ts)
 * and tsc with `moduleResolution: bundler` both guess extensions, which is how `./traffic-mix` once passed them and
 * died in the real binary (issue 24).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';

const K6_SCRIPT = resolve('load/k6/memory-api.ts');

/** Specifiers a file loads at run time: every import/export-from that is not type-only, and import('...'). */
export function runtimeSpecifiers(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2020, true, ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      if (!node.importClause?.isTypeOnly) found.push(node.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      if (!node.isTypeOnly) found.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      found.push(arg && ts.isStringLiteralLike(arg) ? arg.text : '<computed dynamic import>');
    } else if (ts.isImportEqualsDeclaration(node) && !node.isTypeOnly) {
      found.push('<import = require()>');
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** Walks the graph from `entry`; returns the files loaded and every specifier k6 would refuse, with where it is. */
export function resolveK6Graph(entry: string): { files: string[]; builtins: string[]; problems: string[] } {
  const files: string[] = [];
  const builtins = new Set<string>();
  const problems: string[] = [];
  const pending = [entry];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (files.includes(file)) continue;
    files.push(file);
    for (const specifier of runtimeSpecifiers(file)) {
      const where = `${relative(process.cwd(), file)} imports ${JSON.stringify(specifier)}`;
      if (specifier === 'k6' || specifier.startsWith('k6/')) {
        builtins.add(specifier);
      } else if (specifier.startsWith('./') || specifier.startsWith('../')) {
        const target = resolve(dirname(file), specifier);
        if (!existsSync(target)) problems.push(`${where}: no file at that exact path (k6 guesses no extension)`);
        else if (statSync(target).isDirectory()) problems.push(`${where}: a directory (k6 opens no index file)`);
        else pending.push(target);
      } else {
        problems.push(`${where}: only k6 built-ins (k6, k6/...) and relative paths load in k6 here`);
      }
    }
  }
  return { files: files.map((f) => relative(process.cwd(), f)), builtins: [...builtins].sort(), problems };
}

describe('the k6 script loads by k6 rules', () => {
  it('so does every k6 entry script in load/k6/ (any added later included)', () => {
    const entries = readdirSync('load/k6').filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
    expect(entries).toContain('memory-api.ts');
    for (const entry of entries) expect(resolveK6Graph(resolve('load/k6', entry)).problems, entry).toEqual([]);
  });

  it('every runtime import of load/k6/memory-api.ts, transitively, is a k6 built-in or an exact relative path', () => {
    const graph = resolveK6Graph(K6_SCRIPT);
    expect(graph.problems).toEqual([]);
    // The graph really was walked: the script and the lib modules it runs with.
    expect(graph.files).toEqual(expect.arrayContaining(['load/k6/memory-api.ts', 'load/lib/credentials.ts', 'load/lib/traffic-mix.ts', 'load/lib/summary.ts']));
    expect(graph.builtins).toEqual(expect.arrayContaining(['k6', 'k6/http']));
  });
});

describe('the guard itself', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'k6-import-graph-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    mkdirSync(dirname(join(tmp, name)), { recursive: true });
    writeFileSync(join(tmp, name), text);
    return join(tmp, name);
  };

  it('refuses what a bundler would guess: an extensionless path, an index directory, a bare name, a URL', () => {
    write('lib/a.ts', 'export const a = 1;\n');
    write('lib/index.ts', 'export const i = 1;\n');
    const entry = write(
      'entry.ts',
      [
        "import http from 'k6/http';",
        "import { a } from './lib/a';",
        "import { i } from './lib';",
        "import { z } from 'zod';",
        "import { textSummary } from 'https://jslib.k6.io/k6-summary/0.0.4/index.js';",
        'export default () => [http, a, i, z, textSummary];',
      ].join('\n'),
    );
    const problems = resolveK6Graph(entry).problems.join('\n');
    expect(problems).toMatch(/"\.\/lib\/a": no file at that exact path/);
    expect(problems).toMatch(/"\.\/lib": a directory/);
    expect(problems).toMatch(/"zod": only k6 built-ins/);
    expect(problems).toMatch(/"https:\/\/jslib\.k6\.io[^"]*": only k6 built-ins/);
  });

  it('follows exact .ts paths transitively, finds a bad import two levels down, and ignores type-only imports', () => {
    write('deep/b.ts', "import type { T } from './types';\nexport type { U } from './types';\nimport { c } from './c';\nexport const b = c;\n");
    write('deep/c.ts', 'export const c = 1;\n');
    const entry = write('deep/entry.ts', "import { b } from './b.ts';\nexport default () => b;\n");
    expect(resolveK6Graph(entry).problems).toEqual([`${relative(process.cwd(), join(tmp, 'deep/b.ts'))} imports "./c": no file at that exact path (k6 guesses no extension)`]);
    expect(runtimeSpecifiers(join(tmp, 'deep/b.ts'))).toEqual(['./c']);
  });
});
