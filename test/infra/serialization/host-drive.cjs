// Loads serialized providers the way Pulumi's dynamic provider host does (@pulumi/pulumi/cmd/dynamic-provider:
// requireFromString(text).handler(), then configure({ config }) with the stack config), in a plain Node
// process with no TypeScript loader, and drives create/diff/update/read/delete against a Render API.
//
// Usage: RENDER_EMULATOR_URL=... RENDER_TEST_KEY=... node host-drive.cjs <repoRoot> <serializedFile>
// Prints one JSON line with what each step returned.
'use strict';
const fs = require('node:fs');

const [repoRoot, serializedFile] = process.argv.slice(2);
// The dynamic provider host runs in the program directory; serialized `require`s resolve from there.
process.chdir(repoRoot);
const fromRepo = (id) => require(require.resolve(id, { paths: [repoRoot] }));
const requireFromString = fromRepo('require-from-string');
const { Config } = fromRepo('@pulumi/pulumi/cmd/dynamic-provider/config');

const serialized = JSON.parse(fs.readFileSync(serializedFile, 'utf8'));
const rawConfig = {
  'memory-rollout:renderApiKey': process.env.RENDER_TEST_KEY,
  'memory-rollout:renderApiUrl': process.env.RENDER_EMULATOR_URL,
};

async function load(name) {
  const provider = requireFromString(serialized[name].text).handler();
  if (provider.configure) await provider.configure({ config: new Config(rawConfig, 'memory-rollout') });
  return provider;
}

const webInputs = {
  name: 'memory-rollout-roundtrip',
  region: 'oregon',
  plan: 'starter',
  instances: 1,
  runtime: 'node',
  repo: 'https://github.com/acme/memory',
  branch: 'main',
  autoDeploy: false,
  buildCommand: 'npm ci',
  startCommand: 'npm start',
  healthCheckPath: '/readyz',
  preDeployCommand: 'npm run migrate',
  maxShutdownDelaySeconds: 30,
  envVars: { ENABLE_CONTEXT7_MEMORY: 'true', NODE_ENV: 'production', PORT: '3000' },
  deployCommit: '1111111111111111111111111111111111111111',
  waitForLive: true,
  deployTimeoutMinutes: 1,
};

(async () => {
  // A plain Node process, like `pulumi-resource-pulumi-nodejs`: no TypeScript loader installed.
  const result = { methods: {}, steps: {}, tsLoaderBeforeLoad: Boolean(require.extensions['.ts']) };
  for (const name of Object.keys(serialized)) {
    const provider = await load(name);
    result.methods[name] = ['check', 'diff', 'create', 'read', 'update', 'delete'].filter((m) => typeof provider[m] === 'function');
  }

  const kv = await load('keyValueFast');
  const kvCreated = await kv.create({ name: 'memory-rollout-roundtrip-kv', region: 'oregon', plan: 'starter', maxmemoryPolicy: 'noeviction', availableTimeoutMinutes: 1 });
  result.steps.keyValueCreate = { id: kvCreated.id, status: kvCreated.outs.status, hasUrl: /^rediss?:\/\//.test(kvCreated.outs.internalConnectionString) };

  const pg = await load('postgresFast');
  const pgCreated = await pg.create({ name: 'memory-rollout-roundtrip-db', region: 'oregon', plan: 'basic_256mb', version: '16', databaseName: 'memory', databaseUser: 'memory', highAvailability: false, availableTimeoutMinutes: 1 });
  result.steps.postgresCreate = { id: pgCreated.id, status: pgCreated.outs.status, hasUrl: /^postgres(ql)?:\/\//.test(pgCreated.outs.internalConnectionString) };

  const web = await load('webServiceFast');
  const inputs = { ...webInputs, envVars: { ...webInputs.envVars, DATABASE_URL: pgCreated.outs.internalConnectionString, REDIS_URL: kvCreated.outs.internalConnectionString } };
  const created = await web.create(inputs);
  result.steps.webCreate = { id: created.id, lastDeployStatus: created.outs.lastDeployStatus, lastDeployId: created.outs.lastDeployId, url: created.outs.url };
  result.steps.webDiffSame = await web.diff(created.id, created.outs, inputs);
  const flagOff = { ...inputs, envVars: { ...inputs.envVars, ENABLE_CONTEXT7_MEMORY: 'false' } };
  result.steps.webDiffFlagOff = await web.diff(created.id, created.outs, flagOff);
  try {
    result.steps.webDiffRegion = await web.diff(created.id, created.outs, { ...inputs, region: 'frankfurt' });
  } catch (err) {
    result.steps.webDiffRegion = { isError: err instanceof Error, message: String(err && err.message) };
  }
  result.steps.webDiffRegionAllowed = await web.diff(created.id, created.outs, { ...inputs, region: 'frankfurt', allowReplace: true });
  const updated = await web.update(created.id, created.outs, flagOff);
  result.steps.webUpdate = { lastDeployStatus: updated.outs.lastDeployStatus, lastDeployId: updated.outs.lastDeployId };
  const read = await web.read(created.id, updated.outs);
  result.steps.webRead = { id: read.id, envKeys: Object.keys(read.props.envVarDigests).sort() };
  result.steps.webDiffAfterRead = await web.diff(created.id, read.props, flagOff);
  await web.delete(created.id, updated.outs);
  try {
    await web.update(created.id, updated.outs, inputs);
  } catch (err) {
    result.steps.updateDeleted = { isError: err instanceof Error, message: String(err && err.message) };
  }
  await pg.delete(pgCreated.id, pgCreated.outs);
  await kv.delete(kvCreated.id, kvCreated.outs);
  result.steps.deleted = true;

  // Failures reach Pulumi as real Errors with their message (Pulumi prints e.message).
  try {
    await web.create({ ...inputs, instances: 0 });
  } catch (err) {
    result.steps.badCreate = { isError: err instanceof Error, message: String(err && err.message) };
  }
  // Started outside the project, a fresh provider says where it looked and what to do.
  process.chdir(require('node:os').tmpdir());
  try {
    await (await load('webService')).diff('srv-x', {}, {});
  } catch (err) {
    result.steps.outsideProject = String(err && err.message);
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
})().catch((err) => {
  console.error(err instanceof Error ? err.stack : require('node:util').inspect(err, { depth: 4 }));
  process.exit(1);
});
