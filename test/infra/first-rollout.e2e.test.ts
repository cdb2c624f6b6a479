/**
 * The first-rollout order of infra/README.md, end to end on the Render emulator, from a team's existing services:
 * adopt staging, adopt production with the flag off (ceiling 5 %), roll out on staging, promote, roll out on
 * production; then a destroy of both stacks leaves every service and datastore standing.
 *
 * There is no Pulumi CLI here. The program (infra/program.ts, the guards included) runs under
 * pulumi.runtime.setMocks, and the mocks' newResource is a small engine: it calls the real providers against the
 * emulator the way `pulumi up` with `refresh: always` does (create for a new resource; read, diff, then update for a
 * recorded one). The destroy calls every provider's delete, as if retainOnDelete were not honoured, to show that the
 * providers themselves leave adopted resources alone. The staging canary itself is not run here (the canary's own
 * e2e tests run it on the emulator): its outcome is the report and the promotion it writes (canary/actions/promote.ts).
 */
import { appendFileSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { getMonitor } from '@pulumi/pulumi/runtime/settings';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promote } from '../../canary/actions/promote';
import { setStackConfig } from '../../canary/actions/stack-file';
import { RenderClient } from '../../render/client';
import { type RenderEmulator, startRenderEmulator } from '../../render/emulator';
import { adopt } from '../../infra/adopt';
import { checkStack, rawConfigFromStackFile } from '../../infra/check';
import type { RawStackConfig } from '../../infra/config';
import type { RenderProviders } from '../../infra/memory-service-stack';
import { defineStack } from '../../infra/program';
import { callerKeysProvider } from '../../infra/providers/caller-keys';
import { createProvider, type ProviderKind } from '../../infra/providers/index';

const REPO = resolve(__dirname, '..', '..');
const API_KEY = 'rnd_first_rollout_key_3c2b1a';
const RUNNING_COMMIT = 'cccccccccccccccccccccccccccccccccccccccc';
const SIG_KEY = '4dabf18193072939515e22adb298388d';
const SECRETS = { context7ApiKey: 'c7-first-rollout-key', adminToken: 'admin-first-rollout-token' };

let emulator: RenderEmulator;
let client: RenderClient;
let dir: string;
const progress: string[] = [];

type Kind = ProviderKind | 'callerKeys';
interface Recorded {
  kind: Kind;
  id: string;
  outs: Record<string, unknown>;
  protect: boolean;
  retainOnDelete: boolean;
}
/** The engine's state, per stack: resource name -> what create/update/read returned. */
const states = new Map<string, Map<string, Recorded>>();

function kindOf(type: string): Kind {
  if (type.endsWith(':WebService')) return 'webService';
  if (type.endsWith(':Postgres')) return 'postgres';
  if (type.endsWith(':KeyValue')) return 'keyValue';
  if (type.endsWith(':CallerKeys')) return 'callerKeys';
  throw new Error(`unexpected resource type ${type}`);
}

/** What a provider receives from the engine: plain values (secrets unwrapped), no engine-private keys. */
function plain(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    if (record[SIG_KEY] !== undefined) return plain(record.value);
    return Object.fromEntries(Object.entries(record).filter(([k, v]) => !k.startsWith('__') && v !== undefined).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function provider(kind: Kind): Promise<pulumi.dynamic.ResourceProvider<any, any>> {
  if (kind === 'callerKeys') return callerKeysProvider;
  const made = createProvider(kind, { pollIntervalMs: 10, progress: (line) => progress.push(line) });
  const values: Record<string, string> = { 'memory-rollout:renderApiKey': API_KEY, 'memory-rollout:renderApiUrl': emulator.url };
  await made.configure!({ config: { get: (k: string) => values[k], require: (k: string) => values[k] ?? '' } } as never);
  return made;
}

function stackRaw(stack: string): RawStackConfig {
  const raw = rawConfigFromStackFile(stack, readFileSync(join(dir, `Pulumi.${stack}.yaml`), 'utf8'));
  return {
    stack,
    values: { ...raw.values, ...SECRETS },
    secretKeys: new Set([...raw.secretKeys, ...Object.keys(SECRETS)]),
  };
}

const INERT = { async create(): Promise<never> { throw new Error('the test engine calls the real providers'); } };
const INERT_PROVIDERS: RenderProviders = { webService: INERT, postgres: INERT, keyValue: INERT, callerKeys: INERT };

/** `pulumi up -s <stack>` (with refresh: always), as far as these resources need. */
async function up(stack: string): Promise<void> {
  const state = states.get(stack) ?? new Map<string, Recorded>();
  states.set(stack, state);
  const options = new Map<string, { protect: boolean; retainOnDelete: boolean }>();
  let failed: (err: unknown) => void = () => undefined;
  const failure = new Promise<never>((_, reject) => {
    failed = reject;
  });
  await pulumi.runtime.setMocks(
    {
      async newResource(args) {
        if (!args.custom) return { id: '', state: {} }; // the component
        try {
          return await step(args);
        } catch (err) {
          failed(err);
          throw err;
        }
      },
      call: (args) => args.inputs,
    },
    'memory-rollout',
    stack,
    false,
  );
  async function step(args: { type: string; name: string; inputs: Record<string, unknown> }) {
        const kind = kindOf(args.type);
        const impl = await provider(kind);
        const inputs = plain(args.inputs) as Record<string, unknown>;
        const engineOptions = options.get(args.name) ?? { protect: false, retainOnDelete: false };
        const known = state.get(args.name);
        if (!known) {
          const created = await impl.create(inputs);
          state.set(args.name, { kind, id: created.id, outs: created.outs, ...engineOptions });
          return { id: created.id, state: created.outs };
        }
        const refreshed = impl.read ? (await impl.read(known.id, known.outs)).props : known.outs;
        const diff = impl.diff ? await impl.diff(known.id, refreshed, inputs) : { changes: false };
        let outs = refreshed;
        if (diff.changes) outs = (await impl.update!(known.id, refreshed, inputs)).outs ?? refreshed;
        state.set(args.name, { ...known, outs, ...engineOptions });
        return { id: known.id, state: outs };
  }
  const monitor = getMonitor() as unknown as { registerResource: (req: { getName(): string; getProtect(): boolean; getRetainondelete(): boolean }, cb: unknown) => unknown };
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, cb) => {
    options.set(req.getName(), { protect: req.getProtect(), retainOnDelete: req.getRetainondelete() });
    return register(req, cb);
  };
  try {
    const outputs = defineStack(stackRaw(stack), INERT_PROVIDERS);
    await Promise.race([new Promise((done) => outputs.serviceId.apply(done)), failure]);
  } finally {
    await pulumi.runtime.disconnect();
  }
}

/** `pulumi destroy`, calling every provider's delete (even where retainOnDelete would spare the call). */
async function destroy(stack: string): Promise<void> {
  const state = states.get(stack)!;
  for (const [name, recorded] of [...state.entries()].reverse()) {
    const impl = await provider(recorded.kind);
    await impl.delete?.(recorded.id, recorded.outs as never);
    state.delete(name);
  }
}

/** Runs `pulumi config set` lines (as infra:adopt prints them) against the stack files. */
function runConfigLines(lines: readonly string[]): string[] {
  const ran: string[] = [];
  for (const line of lines) {
    const match = /^pulumi config set (memory-rollout:\S+) (\S+) -s (\S+)$/.exec(line);
    if (!match) continue;
    setStackConfig(join(dir, `Pulumi.${match[3]!}.yaml`), { [match[1]!]: match[2]! });
    ran.push(line);
  }
  return ran;
}

function service(name: string) {
  const found = emulator.state().services.find((s) => s.name === name);
  if (!found) throw new Error(`no service ${name}`);
  return found;
}

/** The team's existing resources, made through the Render API: one stack's service, database and Key Value. */
async function existing(stack: 'staging' | 'production', plans: { web: string; instances: number; pg: string; kv: string }) {
  const [owner] = await client.listOwners();
  const name = `memory-rollout-${stack}`;
  await client.createPostgres({ name: `${name}-db`, ownerId: owner!.id, plan: plans.pg, version: '16', region: 'oregon', databaseName: 'memory', databaseUser: 'memory' } as never);
  await client.createKeyValue({ name: `${name}-kv`, ownerId: owner!.id, plan: plans.kv, region: 'oregon', maxmemoryPolicy: 'noeviction' } as never);
  const created = await client.createService({
    type: 'web_service', name, ownerId: owner!.id, repo: 'https://github.com/your-org/context7-memory-rollout', branch: 'main', autoDeploy: 'yes',
    envVars: [{ key: 'ENABLE_CONTEXT7_MEMORY', value: 'false' }, { key: 'TEAM_OWN_SETTING', value: 'kept' }],
    serviceDetails: {
      runtime: 'node', plan: plans.web, region: 'oregon', numInstances: plans.instances, healthCheckPath: '/readyz',
      envSpecificDetails: { buildCommand: 'npm ci --include=dev && npm run build', startCommand: 'npm start' },
    },
  } as never);
  const first = await client.waitForDeploy(created.service!.id, created.deployId!, { pollIntervalMs: 10, timeoutMs: 30_000 });
  if (stack === 'production') {
    // Production runs a commit it was deployed with by hand, not its branch head.
    const pinned = await client.triggerDeploy(created.service!.id, { commitId: RUNNING_COMMIT });
    await client.waitForDeploy(created.service!.id, pinned.id, { pollIntervalMs: 10, timeoutMs: 30_000 });
  }
  return { id: created.service!.id, first };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'infra-first-rollout-'));
  for (const stack of ['staging', 'production']) {
    const file = join(dir, `Pulumi.${stack}.yaml`);
    copyFileSync(join(REPO, `Pulumi.${stack}.yaml`), file);
    // What `pulumi config set --secret` leaves in the file (ciphertext); the engine hands the values (SECRETS) to the program.
    appendFileSync(file, Object.keys(SECRETS).map((key) => `  memory-rollout:${key}:\n    secure: v1:c2VjcmV0:${key}\n`).join(''));
  }
  emulator = await startRenderEmulator({ port: 0, apiKey: API_KEY, deployStepMs: 5 });
  client = new RenderClient({ apiKey: API_KEY, baseUrl: emulator.url });
});
afterAll(async () => {
  await emulator?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the first rollout, from existing services (infra/README.md, "First rollout on services you already have")', () => {
  it('adopt staging, adopt production with the flag off, roll out on staging, promote, roll out on production; destroy leaves everything standing', async () => {
    const env = { RENDER_API_KEY: API_KEY, RENDER_API_URL: emulator.url };
    await existing('staging', { web: 'starter', instances: 1, pg: 'basic_256mb', kv: 'starter' });
    const prod = await existing('production', { web: 'standard', instances: 1, pg: 'basic_1gb', kv: 'standard' });

    // 1. Adopt staging: infra:adopt prints the lines; the first `pulumi up` records the resources, changing nothing.
    const stagingAdopt = await adopt('staging', dir, env);
    expect(stagingAdopt.code).toBe(0);
    expect(runConfigLines(stagingAdopt.lines)).toHaveLength(3);
    const stagingDeploysBefore = service('memory-rollout-staging').deploys.length;
    await up('staging');
    expect(service('memory-rollout-staging').deploys).toHaveLength(stagingDeploysBefore);
    // The next `pulumi up` applies what the stack manages: the flag on in staging, following its branch.
    await up('staging');
    const staging = service('memory-rollout-staging');
    expect(staging.envVars).toMatchObject({ ENABLE_CONTEXT7_MEMORY: 'true', TEAM_OWN_SETTING: 'kept' });
    expect(staging.deploys[0]).toMatchObject({ status: 'live' });
    const stagingCommit = staging.deploys[0]!.commit!.id!;

    // 2. Adopt production with the flag off, its exposure ceiling at the first step (5 %), no pinned commit yet.
    const productionAdopt = await adopt('production', dir, env);
    expect(productionAdopt.code).toBe(0);
    expect(productionAdopt.lines.join('\n')).toContain('instances 1 -> 2; autoDeploy yes -> no; CONTEXT7_EXPOSURE_PERCENT (unset) -> 100');
    runConfigLines([...productionAdopt.lines, 'pulumi config set memory-rollout:context7ExposurePercent 5 -s production']);
    const checked = checkStack('production', dir);
    expect(checked.ok).toBe(true);
    expect(checked.lines.join('\n')).toMatch(/adopts \(never deletes or replaces\): web service srv-\w+, Postgres dpg-\w+, Key Value red-\w+/);
    await up('production');
    await up('production');
    const adopted = service('memory-rollout-production');
    // Settings changed, code did not: the redeploy is of the commit production already ran, not the branch head.
    expect(adopted.envVars).toMatchObject({ ENABLE_CONTEXT7_MEMORY: 'false', CONTEXT7_EXPOSURE_PERCENT: '5', TEAM_OWN_SETTING: 'kept' });
    expect(adopted.deploys[0]).toMatchObject({ status: 'live', commit: { id: RUNNING_COMMIT } });
    expect((await client.getService(prod.id))).toMatchObject({ autoDeploy: 'no', serviceDetails: { numInstances: 2 } });

    // 3. Roll out on staging: the staging canary judged stagingCommit at 5 % and promotes (report + production stack file).
    const report = join(dir, 'staging-report.json');
    writeFileSync(report, JSON.stringify({
      summary: {
        schemaVersion: 1, stack: 'staging', deployId: stagingCommit, serviceId: staging.id, outcome: 'promoted',
        startedAt: '2026-12-07T01:00:00.000Z', finishedAt: '2026-12-07T01:45:00.000Z', exposureReachedPercent: 5,
      },
      polls: [],
    }));
    runConfigLines([`pulumi config set memory-rollout:stagingCanaryReport ${report} -s production`]);
    // 4. Promote.
    expect(promote('staging', stagingCommit, join(dir, 'Pulumi.production.yaml'), false, 5)).toMatchObject({ outcome: 'promoted' });
    expect(checkStack('production', dir)).toMatchObject({ ok: true });

    // 5. Roll out on production: the pinned commit, the flag on, the ceiling at 5 %.
    const before = service('memory-rollout-production').deploys.length;
    await up('production');
    const promoted = service('memory-rollout-production');
    expect(promoted.deploys[0]).toMatchObject({ status: 'live', commit: { id: stagingCommit } });
    expect(promoted.envVars).toMatchObject({ ENABLE_CONTEXT7_MEMORY: 'true', CONTEXT7_EXPOSURE_PERCENT: '5' });
    // Nothing but the pinned commit ever ran in production with the flag on.
    const flagOn = promoted.deploys.filter((d) => promoted.deployEnvVars[d.id]?.ENABLE_CONTEXT7_MEMORY === 'true');
    expect(flagOn.map((d) => d.commit!.id)).toEqual([stagingCommit]);
    expect(promoted.deploys.length).toBe(before + 1);

    // The engine options the program set: production protected, everything adopted retained on delete.
    for (const recorded of states.get('production')!.values()) {
      if (recorded.kind !== 'callerKeys') expect(recorded).toMatchObject({ protect: true, retainOnDelete: true });
    }
    for (const recorded of states.get('staging')!.values()) {
      if (recorded.kind !== 'callerKeys') expect(recorded).toMatchObject({ protect: false, retainOnDelete: true });
    }

    // A destroy of both stacks: every provider's delete is called, and every service and datastore stays.
    progress.length = 0;
    await destroy('staging');
    await destroy('production');
    const left = emulator.state();
    expect(left.services.map((s) => s.name).sort()).toEqual(['memory-rollout-production', 'memory-rollout-staging']);
    expect(left.postgres).toHaveLength(2);
    expect(left.keyValue).toHaveLength(2);
    expect(progress.filter((line) => /was adopted by this stack \(not created by it\): not deleting it/.test(line))).toHaveLength(6);
  }, 120_000);
});
