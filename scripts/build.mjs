#!/usr/bin/env node
// `npm run build`: compiles the memory service to JavaScript in dist/ (Render's buildCommand runs it).
//
// An esbuild bundle of the service's own code per entry point, with packages left to node_modules
// (`packages: 'external'`): ~140 KB of CommonJS plus a source map, no TypeScript loader at run time.
// Measured against a tsc build and a bundle that inlines every package: it starts fastest, and inlining
// the packages only grows the file (4 MB) and the source map --enable-source-maps parses at boot.
//
// Skips the work when dist/ was built from the same inputs (a sha256 of service/, tsconfig.json, this file
// and esbuild's version, kept in dist/.build.json); otherwise builds and replaces each file by rename, so a
// process starting meanwhile reads either the old file or the new one, never half of one. The stamp is
// written last: an interrupted build is rebuilt next time.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'dist');
const STAMP = path.join(OUT, '.build.json');
export const ENTRY_POINTS = ['service/main.ts', 'service/cli/migrate.ts'];
/** Files the service reads at run time next to its code (path.join(__dirname, ...)): copied beside the bundle. */
const ASSETS = [{ from: 'service/context7/openapi.yaml', to: 'service/openapi.yaml' }];

/**
 * How the service is compiled: also used by `npm run bench:service` to compile its service process the same way,
 * so the bench measures the code Render runs, not the tsx loader's output.
 */
export const BUNDLE_OPTIONS = {
  absWorkingDir: ROOT,
  outbase: '.',
  bundle: true,
  packages: 'external',
  platform: 'node',
  target: 'node24',
  format: 'cjs',
  sourcemap: 'linked',
  // Paths in the map are relative to the output, so stack traces name ../../service/*.ts, resolved to the sources.
  sourcesContent: false,
  logLevel: 'warning',
};

function filesUnder(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(full) : [full];
  });
}

function inputHash() {
  const hash = createHash('sha256');
  hash.update(`esbuild ${esbuild.version}\n`);
  const files = [...filesUnder(path.join(ROOT, 'service')), path.join(ROOT, 'tsconfig.json'), fileURLToPath(import.meta.url)];
  for (const file of files.sort()) {
    hash.update(`${path.relative(ROOT, file)}\n`);
    hash.update(readFileSync(file));
  }
  return hash.digest('hex');
}

function writeAtomically(file, contents) {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, contents);
  renameSync(tmp, file);
}

export async function build({ force = false, quiet = false } = {}) {
  const started = Date.now();
  const hash = inputHash();
  const say = (line) => quiet || process.stderr.write(`build: ${line}\n`);
  if (!force && existsSync(STAMP)) {
    try {
      if (JSON.parse(readFileSync(STAMP, 'utf8')).inputs === hash && ENTRY_POINTS.every((entry) => existsSync(outputOf(entry)))) {
        say(`dist/ is up to date with service/ (${hash.slice(0, 12)}), nothing to do`);
        return { built: false, hash };
      }
    } catch {
      // An unreadable stamp means: build.
    }
  }
  const result = await esbuild.build({ ...BUNDLE_OPTIONS, entryPoints: ENTRY_POINTS, outdir: 'dist', write: false });
  for (const file of result.outputFiles) writeAtomically(file.path, file.contents);
  for (const asset of ASSETS) {
    const target = path.join(OUT, asset.to);
    mkdirSync(path.dirname(target), { recursive: true });
    const tmp = `${target}.${process.pid}.tmp`;
    copyFileSync(path.join(ROOT, asset.from), tmp);
    renameSync(tmp, target);
  }
  writeAtomically(STAMP, `${JSON.stringify({ inputs: hash, esbuild: esbuild.version, entryPoints: ENTRY_POINTS, builtAt: new Date().toISOString() }, null, 2)}\n`);
  say(`compiled ${ENTRY_POINTS.join(', ')} to dist/ in ${Date.now() - started} ms (${hash.slice(0, 12)})`);
  return { built: true, hash };
}

export function outputOf(entry) {
  return path.join(OUT, entry.replace(/\.ts$/, '.js'));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  build({ force: process.argv.includes('--force') }).catch((error) => {
    process.stderr.write(`build: failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
