// Loads TypeScript the way Pulumi's nodejs language host does for a `typescript: true` project
// (@pulumi/pulumi/cmd/run): ts-node (the project's, else Pulumi's vendored one) with the project's
// TypeScript and tsconfig, CommonJS output. Shared by the serialization scripts beside it.
'use strict';

/** Registers ts-node from repoRoot; returns a require that resolves packages from the repo. */
function registerTypeScriptLikePulumi(repoRoot, { transpileOnly }) {
  process.chdir(repoRoot);
  const fromRepo = (id) => require(require.resolve(id, { paths: [repoRoot] }));
  const tsutils = fromRepo('@pulumi/pulumi/tsutils');
  const { tsnodeRequire, typescriptRequire } = tsutils.typeScriptRequireStrings();
  const tsconfigOptions = tsutils.loadTypeScriptCompilerOptions('tsconfig.json');
  require(tsnodeRequire).register({
    compiler: typescriptRequire,
    // Pulumi type-checks unless PULUMI_NODEJS_TRANSPILE_ONLY=true; the emitted JavaScript is the same.
    transpileOnly,
    project: 'tsconfig.json',
    skipProject: false,
    compilerOptions: { target: 'ES2020', module: 'nodenext', moduleResolution: 'nodenext', sourceMap: 'true', ...tsconfigOptions },
  });
  return fromRepo;
}

module.exports = { registerTypeScriptLikePulumi };
