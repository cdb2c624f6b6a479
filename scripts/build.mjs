#!/usr/bin/env node
// `npm run build`: compiles the memory service to JavaScript in dist/ (Render's buildCommand runs it).
// `node scripts/build.mjs cli test`: the TypeScript commands started over and over (the canary CLI; the e2e's pulumi
// stand-in), so that a start-up costs Node's, not tsx compiling ~100 modules again (canary/README.md, "How the
// canary starts"). No target given: the service only, as Render builds it.
//
// An esbuild bundle of the project's own code per entry point, with packages left to node_modules
// (`packages: 'external'`): ~140 KB of CommonJS plus a source map, no TypeScript loader at run time.
// Measured against a tsc build and a bundle that inlines every package: it starts fastest, and inlining
// the packages only grows the file (4 MB) and the source map --enable-source-maps parses at boot.
//
// Skips the work when a target was built from the same inputs: a sha256 of every file the last build of it read
// (esbuild's metafile), the names in their folders (a new file could change what an import resolves to),
// tsconfig.json, this file and esbuild's version, kept in dist/.build*.json. Otherwise builds and replaces each file
// by rename, so a process starting meanwhile reads either the old file or the new one, never half of one. The stamp
// is written last: an interrupted build is rebuilt next time. The check reads only those files and never loads
// esbuild: it is what `npm run canary` pays before each run.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'dist');

/**
 * What can be built. `sourcePaths`: the commands run from a checkout and find files next to their sources
 * (canary/policy.yaml, load/k6/, the repository root), so in their bundles `__dirname`/`__filename` are the
 * source file's, and only the entry point's `require.main === module` holds (a bundled module's would be the
 * bundle's: load/cli/run.ts's main would run inside verify.js). The service instead reads its one asset from
 * beside dist/ (copied), as Render runs it.
 */
export const TARGETS = {
  service: {
    label: 'service/',
    entryPoints: ['service/main.ts', 'service/cli/migrate.ts'],
    /** Files the service reads at run time next to its code (path.join(__dirname, ...)): copied beside the bundle. */
    assets: [{ from: 'service/context7/openapi.yaml', to: 'service/openapi.yaml' }],
    stamp: '.build.json',
  },
  cli: {
    label: 'canary/',
    // The commands started over and over (counted over the test files that start them): `canary status` alone is
    // polled every few seconds by the demo. scope-id and load/cli/* start once or twice a run: they stay on tsx.
    entryPoints: ['canary/main.ts'],
    sourcePaths: true,
    stamp: '.build-cli.json',
  },
  demo: {
    label: 'demo/',
    // `npm run demo` and the demo e2e tests (~10 starts a test run): under tsx each start compiled its modules again.
    // A target of its own so that `npm run canary`'s up-to-date check does not hash the demo's sources too.
    entryPoints: ['demo/main.ts'],
    sourcePaths: true,
    stamp: '.build-demo.json',
  },
  test: {
    label: 'the tests\' commands',
    entryPoints: ['test/demo/support/pulumi-stand-in.ts'],
    sourcePaths: true,
    stamp: '.build-test.json',
  },
};
/** The service's entry points (bench/service.ts and the tests name them). */
export const ENTRY_POINTS = TARGETS.service.entryPoints;

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

export function outputOf(entry) {
  return path.join(OUT, entry.replace(/\.ts$/, '.js'));
}

const rel = (file) => path.relative(ROOT, file).split(path.sep).join('/');

/** The hash of what a build read: each file's name and bytes, the names in its folder, and the build's own inputs. */
function inputHash(files) {
  const hash = createHash('sha256');
  const esbuildVersion = JSON.parse(readFileSync(path.join(ROOT, 'node_modules', 'esbuild', 'package.json'), 'utf8')).version;
  hash.update(`esbuild ${esbuildVersion}\n`);
  const all = [...new Set([...files, 'tsconfig.json', rel(fileURLToPath(import.meta.url))])].sort();
  for (const file of all) {
    hash.update(`${file}\n`);
    hash.update(readFileSync(path.join(ROOT, file)));
  }
  for (const dir of [...new Set(all.map((file) => path.posix.dirname(file)))].sort()) {
    hash.update(`${dir}/: ${readdirSync(path.join(ROOT, dir)).sort().join(' ')}\n`);
  }
  return hash.digest('hex');
}

/** The stamp's hash if it still matches the sources and every output is there, else undefined (build). */
function freshHash(target) {
  try {
    const stamp = JSON.parse(readFileSync(path.join(OUT, target.stamp), 'utf8'));
    if (!Array.isArray(stamp.files) || !target.entryPoints.every((entry) => stamp.entryPoints?.includes(entry) && existsSync(outputOf(entry)))) return undefined;
    const hash = inputHash(stamp.files);
    return hash === stamp.inputs ? hash : undefined;
  } catch {
    return undefined; // no stamp, an unreadable one, or an input gone: build
  }
}

function writeAtomically(file, contents) {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, contents);
  renameSync(tmp, file);
}

/**
 * Replaces, in a bundled source file, what names the file's own location (see TARGETS). `__sourceRoot` is the
 * repository root, which each bundle's banner computes from its own place in dist/.
 */
function sourcePathsPlugin(entryPoints) {
  const entries = new Set(entryPoints.map((entry) => path.join(ROOT, entry)));
  return {
    name: 'source-paths',
    setup(build) {
      build.onLoad({ filter: /\.ts$/ }, (args) => {
        const source = readFileSync(args.path, 'utf8');
        if (!/__dirname|__filename|require\.main/.test(source)) return undefined;
        const at = (p) => `require("node:path").join(__sourceRoot, ${JSON.stringify(rel(p))})`;
        const contents = source
          .replace(/(?<![\w$.])__dirname(?![\w$])/g, at(path.dirname(args.path)))
          .replace(/(?<![\w$.])__filename(?![\w$])/g, at(args.path))
          .replace(/require\.main\s*===\s*module(?![\w$])/g, entries.has(args.path) ? '$&' : 'false');
        return { contents, loader: 'ts' };
      });
    },
  };
}

async function compile(target) {
  const esbuild = await import('esbuild');
  // With sourcePaths each entry is a build of its own: its banner names its own depth in dist/, and a module that
  // is an entry point elsewhere (load/cli/run.ts inside verify.js) must not keep its `require.main === module`.
  const builds = target.sourcePaths ? target.entryPoints.map((entry) => [entry]) : [target.entryPoints];
  const outputs = [];
  const inputs = new Set();
  for (const entryPoints of builds) {
    const up = path.relative(path.dirname(outputOf(entryPoints[0])), ROOT).split(path.sep).join('/');
    const result = await esbuild.build({
      ...BUNDLE_OPTIONS,
      entryPoints,
      outdir: 'dist',
      write: false,
      metafile: true,
      ...(target.sourcePaths
        ? { banner: { js: `var __sourceRoot = require("node:path").join(__dirname, ${JSON.stringify(up)});` }, plugins: [sourcePathsPlugin(entryPoints)] }
        : {}),
    });
    outputs.push(...result.outputFiles);
    for (const input of Object.keys(result.metafile.inputs)) inputs.add(input);
  }
  return { outputs, inputs: [...inputs, ...(target.assets ?? []).map((asset) => asset.from)] };
}

/** Builds the named targets that are not up to date (all of them with force). */
export async function build({ targets = ['service'], force = false, quiet = false } = {}) {
  const results = {};
  for (const name of targets) {
    const target = TARGETS[name];
    if (!target) throw new Error(`unknown target ${name} (known: ${Object.keys(TARGETS).join(', ')})`);
    const started = Date.now();
    const fresh = force ? undefined : freshHash(target);
    if (fresh) {
      if (!quiet) process.stderr.write(`build: dist/ is up to date with ${target.label} (${fresh.slice(0, 12)}), nothing to do\n`);
      results[name] = { built: false, hash: fresh };
      continue;
    }
    const { outputs, inputs } = await compile(target);
    for (const file of outputs) writeAtomically(file.path, file.contents);
    for (const asset of target.assets ?? []) {
      const dest = path.join(OUT, asset.to);
      mkdirSync(path.dirname(dest), { recursive: true });
      const tmp = `${dest}.${process.pid}.tmp`;
      copyFileSync(path.join(ROOT, asset.from), tmp);
      renameSync(tmp, dest);
    }
    const files = [...new Set(inputs)].sort();
    const hash = inputHash(files);
    const { version } = await import('esbuild');
    writeAtomically(path.join(OUT, target.stamp), `${JSON.stringify({ inputs: hash, esbuild: version, entryPoints: target.entryPoints, files, builtAt: new Date().toISOString() }, null, 2)}\n`);
    // Said even when quiet: a build is worth a line in any log.
    process.stderr.write(`build: compiled ${target.entryPoints.join(', ')} to dist/ in ${Date.now() - started} ms (${hash.slice(0, 12)})\n`);
    results[name] = { built: true, hash };
  }
  return results;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const targets = args.filter((arg) => !arg.startsWith('--'));
  build({ targets: targets.length > 0 ? targets : undefined, force: args.includes('--force'), quiet: args.includes('--quiet') }).catch((error) => {
    process.stderr.write(`build: failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
