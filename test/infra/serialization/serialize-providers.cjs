// Serializes the Render dynamic providers exactly as `pulumi up` does, in a plain Node process.
//
// 1. TypeScript is loaded the way Pulumi's nodejs language host loads a `typescript: true` program
//    (@pulumi/pulumi/cmd/run): ts-node (the project's, else Pulumi's vendored one) with the project's
//    TypeScript and tsconfig, CommonJS output.
// 2. Each provider goes through runtime.serializeFunction(() => provider, { allowSecrets: true }),
//    the call pulumi.dynamic.Resource makes for its `__provider` input.
//
// Usage: node serialize-providers.cjs <repoRoot> <outFile>
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const [repoRoot, outFile] = process.argv.slice(2);
if (!repoRoot || !outFile) {
  console.error('usage: serialize-providers.cjs <repoRoot> <outFile>');
  process.exit(64);
}
const { registerTypeScriptLikePulumi } = require('./pulumi-typescript.cjs');
const fromRepo = registerTypeScriptLikePulumi(repoRoot, { transpileOnly: true });

const pulumi = fromRepo('@pulumi/pulumi');
const resources = require(path.join(repoRoot, 'infra/resources.ts'));
const { shippedProvider } = require(path.join(repoRoot, 'infra/providers/shipped.ts'));

// What ships (the providers infra/resources.ts gives each resource) and the same shims with a short
// poll interval, so driving them against the emulator takes seconds.
const fast = { pollIntervalMs: 25 };
const providers = {
  webService: resources.webServiceProvider,
  postgres: resources.postgresProvider,
  keyValue: resources.keyValueProvider,
  webServiceFast: shippedProvider('webService', fast),
  postgresFast: shippedProvider('postgres', fast),
  keyValueFast: shippedProvider('keyValue', fast),
};

(async () => {
  const out = {};
  for (const [name, provider] of Object.entries(providers)) {
    const started = Date.now();
    const serialized = await pulumi.runtime.serializeFunction(() => provider, { allowSecrets: true });
    out[name] = { text: serialized.text, exportName: serialized.exportName, containsSecrets: serialized.containsSecrets };
    process.stderr.write(`serialized ${name}: ${serialized.text.length} chars in ${Date.now() - started} ms\n`);
  }
  fs.writeFileSync(outFile, JSON.stringify(out));
})().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
