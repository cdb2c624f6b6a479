// Runs the real program entry (infra/index.ts) the way Pulumi's nodejs language host does for a
// `typescript: true` project: ts-node with the project's TypeScript and tsconfig, type-checking on
// (Pulumi's default), under pulumi.runtime.setMocks instead of an engine. Every dynamic resource's
// `__provider` input is therefore serialized for real.
//
// Usage: node run-program.cjs <repoRoot> <stack> <configJson> <secretKeysJson>
// Prints one JSON line: the registered resources and the stack outputs.
'use strict';
const [repoRoot, stack, configJson, secretKeysJson] = process.argv.slice(2);
const { registerTypeScriptLikePulumi } = require('./pulumi-typescript.cjs');
const fromRepo = registerTypeScriptLikePulumi(repoRoot, { transpileOnly: false });

const pulumi = fromRepo('@pulumi/pulumi');
const SIG_KEY = '4dabf18193072939515e22adb298388d';
const unwrap = (v) => (v && typeof v === 'object' && SIG_KEY in v ? v.value : v);
const resources = [];

pulumi.runtime
  .setMocks(
    {
      newResource(args) {
        const provider = unwrap(args.inputs.__provider);
        resources.push({ type: args.type, name: args.name, provider: typeof provider === 'string' ? provider : null });
        const name = String(unwrap(args.inputs.name));
        return {
          id: `${args.name}-id`,
          state: { ...args.inputs, serviceId: `srv-${args.name}`, url: `https://${name}.onrender.com`, dashboardUrl: `https://dashboard.render.com/web/srv-${args.name}` },
        };
      },
      call: (args) => args.inputs,
    },
    'memory-rollout',
    stack,
    true,
  )
  .then(async () => {
    pulumi.runtime.setAllConfig(JSON.parse(configJson), JSON.parse(secretKeysJson));
    let program;
    try {
      program = require(`${repoRoot}/infra/index.ts`);
    } catch (err) {
      process.stdout.write(`${JSON.stringify({ error: String(err && err.message) })}\n`);
      return;
    }
    const settle = (o) => new Promise((resolve) => o.apply(resolve));
    const outputs = {
      serviceUrl: await settle(program.serviceUrl),
      serviceId: await settle(program.serviceId),
      dashboardUrl: await settle(program.dashboardUrl),
      environment: program.environment,
      flagEnabled: program.flagEnabled,
      deployedCommit: program.deployedCommit,
    };
    await pulumi.runtime.disconnect();
    process.stdout.write(`${JSON.stringify({ resources, outputs })}\n`);
  })
  .catch((err) => {
    console.error(err instanceof Error ? err.stack : String(err));
    process.exit(1);
  });
