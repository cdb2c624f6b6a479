// Drives Pulumi's real dynamic provider host (@pulumi/pulumi/cmd/dynamic-provider, the process behind
// `pulumi-resource-pulumi-nodejs`) over gRPC, the way the Pulumi engine does: Configure with the stack
// config (secrets wrapped), then Check/Create/Diff/Update/Read/Delete with `__provider` = the serialized
// provider text. Prints one JSON line with what each call returned.
//
// Usage: node grpc-drive.cjs <repoRoot> <hostAddress> <serializedFile> <emulatorOrigin> <apiKey>
'use strict';
const fs = require('node:fs');

const [repoRoot, address, serializedFile, emulatorOrigin, apiKey] = process.argv.slice(2);
const pulumiDir = require.resolve('@pulumi/pulumi/package.json', { paths: [repoRoot] }).replace(/package\.json$/, '');
const fromPulumi = (id) => require(require.resolve(id, { paths: [pulumiDir] }));
const grpc = fromPulumi('@grpc/grpc-js');
const provrpc = fromPulumi('@pulumi/pulumi/proto/provider_grpc_pb');
const provproto = fromPulumi('@pulumi/pulumi/proto/provider_pb');
const statusproto = fromPulumi('@pulumi/pulumi/proto/status_pb');
const { Struct } = fromPulumi('google-protobuf/google/protobuf/struct_pb');

const SECRET = { sigKey: '4dabf18193072939515e22adb298388d', sig: '1b47061264138c4ac30d75fd1eb44270' };
const secret = (value) => ({ [SECRET.sigKey]: SECRET.sig, value });
const serialized = JSON.parse(fs.readFileSync(serializedFile, 'utf8'));
const client = new provrpc.ResourceProviderClient(address, grpc.credentials.createInsecure());

function rpc(method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

/** The engine's view of a failed call: message, and the recorded resource if it was created. */
function describeError(err) {
  const out = { message: err.details || err.message };
  const bin = err.metadata && err.metadata.get('grpc-status-details-bin')[0];
  if (bin) {
    const status = statusproto.Status.deserializeBinary(bin);
    for (const detail of status.getDetailsList()) {
      const init = detail.unpack(provproto.ErrorResourceInitFailed.deserializeBinary, 'pulumirpc.ErrorResourceInitFailed');
      if (init) out.initFailed = { id: init.getId(), properties: init.getProperties().toJavaScript(), reasons: init.getReasonsList() };
    }
  }
  return out;
}

const urn = (type, name) => `urn:pulumi:staging::memory-rollout::pulumi-nodejs:dynamic/render:${type}::${name}`;

async function check(type, name, olds, news) {
  const req = new provproto.CheckRequest();
  req.setUrn(urn(type, name));
  req.setOlds(Struct.fromJavaScript(olds));
  req.setNews(Struct.fromJavaScript(news));
  const resp = await rpc('check', req);
  return { inputs: resp.getInputs().toJavaScript(), failures: resp.getFailuresList().map((f) => ({ property: f.getProperty(), reason: f.getReason() })) };
}
async function create(type, name, props) {
  const req = new provproto.CreateRequest();
  req.setUrn(urn(type, name));
  req.setProperties(Struct.fromJavaScript(props));
  const resp = await rpc('create', req);
  return { id: resp.getId(), props: resp.getProperties().toJavaScript() };
}
async function diff(type, name, id, olds, news) {
  const req = new provproto.DiffRequest();
  req.setId(id);
  req.setUrn(urn(type, name));
  req.setOlds(Struct.fromJavaScript(olds));
  req.setNews(Struct.fromJavaScript(news));
  const resp = await rpc('diff', req);
  const changes = { 0: 'unknown', 1: 'none', 2: 'some' }[resp.getChanges()];
  return { changes, replaces: resp.getReplacesList(), deleteBeforeReplace: resp.getDeletebeforereplace() };
}
async function update(type, name, id, olds, news) {
  const req = new provproto.UpdateRequest();
  req.setId(id);
  req.setUrn(urn(type, name));
  req.setOlds(Struct.fromJavaScript(olds));
  req.setNews(Struct.fromJavaScript(news));
  return (await rpc('update', req)).getProperties().toJavaScript();
}
async function read(type, name, id, props, inputs) {
  const req = new provproto.ReadRequest();
  req.setId(id);
  req.setUrn(urn(type, name));
  req.setProperties(Struct.fromJavaScript(props));
  if (inputs) req.setInputs(Struct.fromJavaScript(inputs));
  const resp = await rpc('read', req);
  return { id: resp.getId(), props: resp.getProperties().toJavaScript() };
}
async function remove(type, name, id, props) {
  const req = new provproto.DeleteRequest();
  req.setId(id);
  req.setUrn(urn(type, name));
  req.setProperties(Struct.fromJavaScript(props));
  await rpc('delete', req);
}
async function setFaults(faults) {
  const res = await fetch(`${emulatorOrigin}/__emulator/faults`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(faults) });
  if (!res.ok) throw new Error(`setting faults failed: ${res.status}`);
}

(async () => {
  const steps = {};
  // The engine configures the provider with the stack config; secret values arrive wrapped.
  const configure = new provproto.ConfigureRequest();
  configure.setArgs(Struct.fromJavaScript({
    'memory-rollout:renderApiKey': secret(apiKey),
    'memory-rollout:renderApiUrl': `${emulatorOrigin}/v1`,
  }));
  await rpc('configure', configure);

  const kvProvider = serialized.keyValueFast.text;
  const kvInputs = { name: 'memory-rollout-grpc-kv', region: 'oregon', plan: 'starter', maxmemoryPolicy: 'noeviction', availableTimeoutMinutes: 1, __provider: kvProvider };
  const kv = await create('KeyValue', 'kv', kvInputs);
  steps.kvCreate = { id: kv.id, status: kv.props.status, providerKept: kv.props.__provider === kvProvider };

  const webProvider = serialized.webServiceFast.text;
  const inputs = {
    name: 'memory-rollout-grpc', region: 'oregon', plan: 'starter', instances: 1, runtime: 'node',
    repo: 'https://github.com/acme/memory', branch: 'main', autoDeploy: true, buildCommand: 'npm ci',
    startCommand: 'npm start', healthCheckPath: '/readyz', preDeployCommand: 'npm run migrate', maxShutdownDelaySeconds: 30,
    envVars: { ENABLE_CONTEXT7_MEMORY: 'true', REDIS_URL: kv.props.internalConnectionString, PORT: '3000' },
    waitForLive: true, deployTimeoutMinutes: 1, __provider: webProvider,
  };
  steps.checkBad = await check('WebService', 'web', {}, { ...inputs, instances: 0 });
  const web = await create('WebService', 'web', inputs);
  steps.webCreate = { id: web.id, lastDeployStatus: web.props.lastDeployStatus, providerKept: web.props.__provider === webProvider };
  steps.diffSame = await diff('WebService', 'web', web.id, web.props, inputs);
  const flagOff = { ...inputs, envVars: { ...inputs.envVars, ENABLE_CONTEXT7_MEMORY: 'false' } };
  steps.diffFlagOff = await diff('WebService', 'web', web.id, web.props, flagOff);
  // A replace fails the preview: the diff's error reaches the engine as the failed call's message.
  try {
    steps.diffRegion = await diff('WebService', 'web', web.id, web.props, { ...inputs, region: 'ohio' });
  } catch (err) {
    steps.diffRegion = { refused: describeError(err).message };
  }
  steps.diffRegionAllowed = await diff('WebService', 'web', web.id, web.props, { ...inputs, region: 'ohio', allowReplace: true });
  const updated = await update('WebService', 'web', web.id, web.props, flagOff);
  steps.update = { lastDeployStatus: updated.lastDeployStatus, newDeploy: updated.lastDeployId !== web.props.lastDeployId };

  // A failed build: the engine gets the error message and the resource to record.
  await setFaults({ failBuilds: 1 });
  try {
    await update('WebService', 'web', web.id, updated, inputs);
    steps.failedBuild = 'no error';
  } catch (err) {
    const described = describeError(err);
    steps.failedBuild = {
      message: described.message,
      initFailedId: described.initFailed && described.initFailed.id,
      recordedStatus: described.initFailed && described.initFailed.properties.lastDeployStatus,
      providerKept: Boolean(described.initFailed) && described.initFailed.properties.__provider === webProvider,
    };
  }
  const refreshed = await read('WebService', 'web', web.id, updated);
  steps.read = { id: refreshed.id, flag: refreshed.props.envVarDigests.ENABLE_CONTEXT7_MEMORY, liveCommit: refreshed.props.liveCommit };

  // Drift: a deploy made straight through the Render API (dashboard, auto-deploy), then a refresh (Read with the state).
  const outside = '2222222222222222222222222222222222222222';
  const api = (path, init = {}) => fetch(`${emulatorOrigin}/v1${path}`, { ...init, headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' } });
  const made = await (await api(`/services/${web.id}/deploys`, { method: 'POST', body: JSON.stringify({ commitId: outside }) })).json();
  for (let i = 0; i < 400; i++) {
    const d = await (await api(`/services/${web.id}/deploys/${made.id}`)).json();
    if (d.status === 'live') break;
    await new Promise((r) => setTimeout(r, 25));
  }
  const drifted = await read('WebService', 'web', web.id, refreshed.props);
  steps.refreshAfterOutsideDeploy = { liveCommit: drifted.props.liveCommit, providerKept: drifted.props.__provider === webProvider };

  // What `.get(name, id)` sends: no state, only the program's inputs (with the serialized provider): works.
  const got = await read('WebService', 'web', web.id, {}, { __provider: webProvider });
  steps.getWithInputs = { id: got.id, name: got.props.name, liveCommit: got.props.liveCommit };
  // What an `import` sends: an id and nothing else. The host cannot find the provider to call.
  try {
    const imported = await read('WebService', 'web', web.id, {});
    steps.importById = { id: imported.id };
  } catch (err) {
    steps.importById = { failed: describeError(err).message };
  }
  await remove('WebService', 'web', web.id, refreshed.props);
  await remove('KeyValue', 'kv', kv.id, kv.props);
  try {
    await update('WebService', 'web', web.id, refreshed.props, inputs);
  } catch (err) {
    steps.updateGone = describeError(err).message;
  }
  process.stdout.write(`${JSON.stringify(steps)}\n`);
  client.close();
})().catch((err) => {
  console.error(err instanceof Error ? err.stack : require('node:util').inspect(err, { depth: 4 }));
  process.exit(1);
});
