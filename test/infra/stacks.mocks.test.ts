/**
 * Both stacks under pulumi.runtime.setMocks, configured from the real Pulumi.<stack>.yaml files plus the
 * secrets `pulumi config set --secret` would add: every resource, every env var, secrets marked secret,
 * and the staging/production differences. Also the guards refusing through the real program entry.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RenderProviders } from '../../infra/memory-service-stack';
import { defineStack, readRawStackConfig, type StackOutputs } from '../../infra/program';
import { getMonitor } from '@pulumi/pulumi/runtime/settings';

type RegisterRequest = {
  getName(): string;
  getAdditionalsecretoutputsList(): string[];
  getProtect(): boolean;
  getRetainondelete(): boolean;
};

const COMMIT = '0123456789abcdef0123456789abcdef01234567';
const SECRETS = { context7ApiKey: 'c7-secret-key', adminToken: 'admin-secret-token' };
// rpc's secret signature: how a secret input reaches the engine (and the mock monitor).
const SECRET_SIG = '1b47061264138c4ac30d75fd1eb44270';
const SIG_KEY = '4dabf18193072939515e22adb298388d';

interface Registered {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
  /** As the engine would receive them: outputs it must store encrypted. */
  secretOutputs?: string[];
  /** The engine options `pulumi up` would apply (no CLI here: read off the registration request). */
  protect?: boolean;
  retainOnDelete?: boolean;
}

let reportDir: string;

/** Inert providers: under mocks nothing is created, and vitest cannot serialize the real ones. */
function inertProvider() {
  return {
    async create(): Promise<never> {
      throw new Error('not used under mocks');
    },
  };
}
const INERT: RenderProviders = { webService: inertProvider(), postgres: inertProvider(), keyValue: inertProvider(), callerKeys: inertProvider() };

beforeAll(() => {
  reportDir = mkdtempSync(join(tmpdir(), 'infra-mocks-'));
});
afterAll(() => rmSync(reportDir, { recursive: true, force: true }));

function stackFileConfig(stack: 'staging' | 'production'): Record<string, string> {
  const file = parse(readFileSync(join(__dirname, '..', '..', `Pulumi.${stack}.yaml`), 'utf8')) as { config: Record<string, unknown> };
  return Object.fromEntries(Object.entries(file.config).map(([key, value]) => [key, String(value)]));
}

function isSecretWrapped(value: unknown): boolean {
  return typeof value === 'object' && value !== null && (value as Record<string, unknown>)[SIG_KEY] === SECRET_SIG;
}

function unwrap(value: unknown): unknown {
  return isSecretWrapped(value) ? (value as { value: unknown }).value : value;
}

function settle<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply((v) => resolve(v)));
}

/** Runs the program for `stack` with the given config; returns what was registered and the outputs. */
async function runStack(
  stack: string,
  config: Record<string, string>,
  secretKeys: string[],
): Promise<{ resources: Registered[]; outputs: StackOutputs; urls: string[] }> {
  const resources: Registered[] = [];
  const secretOutputsByName = new Map<string, string[]>();
  const engineOptionsByName = new Map<string, { protect: boolean; retainOnDelete: boolean }>();
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        resources.push({
          type: args.type, name: args.name, inputs: args.inputs, secretOutputs: secretOutputsByName.get(args.name) ?? [],
          ...engineOptionsByName.get(args.name),
        });
        const outs: Record<string, unknown> = { ...args.inputs };
        if (args.type.endsWith(':WebService')) {
          Object.assign(outs, {
            serviceId: `srv-${args.name}`,
            url: `https://${String(unwrap(args.inputs.name))}.onrender.com`,
            dashboardUrl: `https://dashboard.render.com/web/srv-${args.name}`,
          });
        }
        if (args.type.endsWith(':Postgres')) outs.internalConnectionString = `postgresql://memory:pw@${args.name}/memory`;
        if (args.type.endsWith(':KeyValue')) outs.internalConnectionString = `redis://${args.name}:6379`;
        if (args.type.endsWith(':CallerKeys')) {
          // What the provider's create draws (test/infra/caller-keys.test.ts drives the real one).
          const keys = unwrap(args.inputs.keys) as { name: string; locations: string[] }[];
          outs.secrets = Object.fromEntries(keys.map((key) => [key.name, `mock-key-${key.name}`]));
          outs.memoryApiKeys = keys.map((key) => `${key.name}:mock-key-${key.name}`).join(';');
        }
        return { id: `${args.name}-id`, state: outs };
      },
      call: (args) => args.inputs,
    },
    'memory-rollout',
    stack,
    true,
  );
  // The mocks' newResource does not see resource options: read additionalSecretOutputs off the request itself.
  const monitor = getMonitor() as unknown as { registerResource: (req: RegisterRequest, cb: unknown) => unknown };
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, cb) => {
    secretOutputsByName.set(req.getName(), req.getAdditionalsecretoutputsList());
    engineOptionsByName.set(req.getName(), { protect: req.getProtect(), retainOnDelete: req.getRetainondelete() });
    return register(req, cb);
  };
  pulumi.runtime.setAllConfig(config, secretKeys);
  try {
    const outputs = defineStack(readRawStackConfig(), INERT);
    const urls = await Promise.all([settle(outputs.serviceUrl), settle(outputs.serviceId), settle(outputs.dashboardUrl)]);
    return { resources, outputs, urls };
  } finally {
    // Drain this stack's registrations before the next setMocks replaces the mock monitor.
    await pulumi.runtime.disconnect();
  }
}

function withSecrets(config: Record<string, string>): { config: Record<string, string>; secretKeys: string[] } {
  return {
    config: {
      ...config,
      'memory-rollout:context7ApiKey': SECRETS.context7ApiKey,
      'memory-rollout:adminToken': SECRETS.adminToken,
    },
    secretKeys: ['memory-rollout:context7ApiKey', 'memory-rollout:adminToken'],
  };
}

function writeStagingReport(outcome: string, deployId = COMMIT, exposureReachedPercent?: number): string {
  const path = join(reportDir, `report-${outcome}-${deployId.slice(0, 6)}-${exposureReachedPercent ?? 'whole'}.json`);
  writeFileSync(
    path,
    JSON.stringify({
      summary: {
        schemaVersion: 1,
        stack: 'staging',
        deployId,
        serviceId: 'srv-staging',
        outcome,
        startedAt: '2026-11-23T10:00:00.000Z',
        finishedAt: '2026-11-23T11:00:00.000Z',
        ...(exposureReachedPercent !== undefined ? { exposureReachedPercent } : {}),
      },
      polls: [],
    }),
  );
  return path;
}

function byType(resources: Registered[], suffix: string): Registered {
  const found = resources.filter((r) => r.type.endsWith(suffix));
  expect(found, `exactly one ${suffix}`).toHaveLength(1);
  return found[0]!;
}

describe('staging stack (Pulumi.staging.yaml)', () => {
  let run: Awaited<ReturnType<typeof runStack>>;
  beforeAll(async () => {
    const { config, secretKeys } = withSecrets(stackFileConfig('staging'));
    run = await runStack('staging', config, secretKeys);
  });

  it('declares the component with its Postgres, Key Value and web service', () => {
    expect(run.resources.map((r) => r.type).sort()).toEqual([
      'memory-rollout:index:MemoryServiceStack',
      'pulumi-nodejs:dynamic/memory:CallerKeys',
      'pulumi-nodejs:dynamic/render:KeyValue',
      'pulumi-nodejs:dynamic/render:Postgres',
      'pulumi-nodejs:dynamic/render:WebService',
    ]);
  });

  it('configures the web service as the runbook and the service contract require', () => {
    const web = byType(run.resources, ':WebService').inputs;
    expect(web).toMatchObject({
      name: 'memory-rollout-staging',
      region: 'oregon',
      plan: 'starter',
      instances: 1,
      runtime: 'node',
      repo: 'https://github.com/your-org/context7-memory-rollout',
      branch: 'main',
      autoDeploy: true,
      buildCommand: 'npm ci --include=dev && npm run build',
      startCommand: 'exec node --enable-source-maps dist/service/main.js',
      healthCheckPath: '/readyz',
      preDeployCommand: 'node --enable-source-maps dist/service/cli/migrate.js',
      maxShutdownDelaySeconds: 30,
      waitForLive: true,
    });
    expect(web.deployCommit).toBeUndefined();
    // The provider travels with the resource, serialized; Render credentials are never inputs.
    expect(unwrap(web.__provider)).toMatch(/exports\.handler/);
    expect(Object.keys(web).filter((k) => /key|token|owner/i.test(k))).toEqual([]);
  });

  it('sets every env var, with credentials and connection strings as secrets', async () => {
    const env = unwrap(byType(run.resources, ':WebService').inputs.envVars) as Record<string, unknown>;
    expect(Object.keys(env).sort()).toEqual([
      'ADMIN_TOKEN', 'CONTEXT7_API_KEY', 'CONTEXT7_BASE_URL', 'CONTEXT7_EXPOSURE_PERCENT', 'DATABASE_URL', 'ENABLE_CONTEXT7_MEMORY', 'MEMORY_API_KEYS', 'NODE_ENV', 'NODE_VERSION', 'PORT',
      'RATE_LIMIT_MAX', 'RATE_LIMIT_WINDOW_MS', 'REDIS_URL',
    ]);
    expect(env).toEqual({
      NODE_ENV: 'production',
      NODE_VERSION: '24.21.0',
      PORT: '3000',
      ENABLE_CONTEXT7_MEMORY: 'true',
      CONTEXT7_EXPOSURE_PERCENT: '100',
      CONTEXT7_BASE_URL: 'https://context7.com/api',
      CONTEXT7_API_KEY: SECRETS.context7ApiKey,
      ADMIN_TOKEN: SECRETS.adminToken,
      DATABASE_URL: 'postgresql://memory:pw@memory-rollout-staging-db/memory',
      REDIS_URL: 'redis://memory-rollout-staging-kv:6379',
      // Generated per stack by the CallerKeys resource (issue 13).
      MEMORY_API_KEYS: 'agents:mock-key-agents;canary:mock-key-canary;canary-probe:mock-key-canary-probe;canary-loadtest:mock-key-canary-loadtest',
      RATE_LIMIT_MAX: '3000',
      RATE_LIMIT_WINDOW_MS: '60000',
    });
    // The mock monitor folds nested secrets into one; what the engine receives is secret per variable.
    const wire = (await pulumi.runtime.serializeProperty('envVars', run.outputs.component.envVars)) as Record<string, unknown>;
    for (const key of ['CONTEXT7_API_KEY', 'ADMIN_TOKEN', 'DATABASE_URL', 'REDIS_URL', 'MEMORY_API_KEYS']) {
      expect(isSecretWrapped(wire[key]), `${key} is secret`).toBe(true);
    }
    for (const key of ['ENABLE_CONTEXT7_MEMORY', 'CONTEXT7_EXPOSURE_PERCENT', 'CONTEXT7_BASE_URL', 'NODE_ENV', 'NODE_VERSION', 'PORT', 'RATE_LIMIT_MAX', 'RATE_LIMIT_WINDOW_MS']) {
      expect(isSecretWrapped(wire[key]), `${key} stays readable`).toBe(false);
    }
  });

  it('generates the caller keys per stack, stored as secrets, and exports their names (keys only as a secret)', async () => {
    const keys = byType(run.resources, ':CallerKeys');
    expect(unwrap(keys.inputs.keys)).toEqual([
      { name: 'agents', locations: [] },
      { name: 'canary', locations: [] },
      // The probe and the staging canary's synthetic traffic, each restricted to its reserved location (issue 25).
      { name: 'canary-probe', locations: ['canaryprobe-canary'] },
      { name: 'canary-loadtest', locations: ['loadtest-canary'] },
    ]);
    expect(keys.secretOutputs).toEqual(['secrets', 'memoryApiKeys']);
    expect(run.outputs.callerKeyNames).toEqual(['agents', 'canary', 'canary-probe', 'canary-loadtest']);
    expect(await settle(run.outputs.callerKeySecrets!)).toEqual({ agents: 'mock-key-agents', canary: 'mock-key-canary', 'canary-probe': 'mock-key-canary-probe', 'canary-loadtest': 'mock-key-canary-loadtest' });
    expect(await run.outputs.callerKeySecrets!.isSecret).toBe(true);
  });

  it('declares the datastores in the service region, unprotected, with connection strings secret', () => {
    const pg = byType(run.resources, ':Postgres').inputs;
    const kv = byType(run.resources, ':KeyValue').inputs;
    expect(pg).toMatchObject({ name: 'memory-rollout-staging-db', region: 'oregon', plan: 'basic_256mb', version: '16', highAvailability: false });
    expect(kv).toMatchObject({ name: 'memory-rollout-staging-kv', region: 'oregon', plan: 'starter', maxmemoryPolicy: 'noeviction' });
    for (const type of [':Postgres', ':KeyValue']) {
      expect(byType(run.resources, type).secretOutputs).toEqual(expect.arrayContaining(['internalConnectionString', 'externalConnectionString']));
    }
  });

  it('stores the web service\'s env var digests encrypted: unsalted hashes of credentials stay out of plaintext state', () => {
    expect(byType(run.resources, ':WebService').secretOutputs).toEqual(['envVarDigests']);
  });

  it('exports the service URL, id and dashboard URL', () => {
    expect(run.urls).toEqual([
      'https://memory-rollout-staging.onrender.com',
      'srv-memory-rollout-staging-web',
      'https://dashboard.render.com/web/srv-memory-rollout-staging-web',
    ]);
    expect(run.outputs.environment).toBe('staging');
    expect(run.outputs.flagEnabled).toBe(true);
  });
});

describe('production stack (Pulumi.production.yaml after a staging promotion)', () => {
  let run: Awaited<ReturnType<typeof runStack>>;
  let staging: Awaited<ReturnType<typeof runStack>>;
  beforeAll(async () => {
    // What the staging canary writes when it promotes: the commit it judged, and the flag on.
    const promoted = {
      ...stackFileConfig('production'),
      'memory-rollout:pinnedCommit': COMMIT,
      'memory-rollout:enableContext7Memory': 'true',
      'memory-rollout:stagingCanaryReport': writeStagingReport('promoted'),
    };
    const { config, secretKeys } = withSecrets(promoted);
    run = await runStack('production', config, secretKeys);
    const stagingConfig = withSecrets(stackFileConfig('staging'));
    staging = await runStack('staging', stagingConfig.config, stagingConfig.secretKeys);
  });

  it('differs from staging only where an environment should', () => {
    const prod = byType(run.resources, ':WebService').inputs;
    const stag = byType(staging.resources, ':WebService').inputs;
    expect(prod).toMatchObject({ name: 'memory-rollout-production', plan: 'standard', instances: 2, autoDeploy: false, deployCommit: COMMIT });
    expect(stag).toMatchObject({ plan: 'starter', instances: 1, autoDeploy: true });
    const same = ['region', 'runtime', 'repo', 'branch', 'buildCommand', 'startCommand', 'healthCheckPath', 'preDeployCommand', 'maxShutdownDelaySeconds'];
    for (const key of same) expect(prod[key], key).toEqual(stag[key]);
    const prodEnv = unwrap(prod.envVars) as Record<string, unknown>;
    const stagEnv = unwrap(stag.envVars) as Record<string, unknown>;
    expect(prodEnv.ENABLE_CONTEXT7_MEMORY).toBe('true');
    expect(prodEnv.DATABASE_URL).toBe('postgresql://memory:pw@memory-rollout-production-db/memory');
    expect(Object.keys(prodEnv).sort()).toEqual(Object.keys(stagEnv).sort());
  });

  it('gives production bigger datastore plans', () => {
    expect(byType(run.resources, ':Postgres').inputs).toMatchObject({ plan: 'basic_1gb', highAvailability: false });
    expect(byType(run.resources, ':KeyValue').inputs).toMatchObject({ plan: 'standard' });
  });

  it('exports production outputs', () => {
    expect(run.urls[0]).toBe('https://memory-rollout-production.onrender.com');
    expect(run.outputs.deployedCommit).toBe(COMMIT);
  });
});

describe('the rate limit and the load-test token, per stack', () => {
  const LOAD_TEST_TOKEN = 'load-test-secret-token-0123';
  let run: Awaited<ReturnType<typeof runStack>>;
  beforeAll(async () => {
    const { config, secretKeys } = withSecrets({
      ...stackFileConfig('staging'),
      'memory-rollout:rateLimitMax': '20000',
      'memory-rollout:rateLimitWindowMs': '1000',
      'memory-rollout:loadTestToken': LOAD_TEST_TOKEN,
    });
    run = await runStack('staging', config, [...secretKeys, 'memory-rollout:loadTestToken']);
  });

  it('hands the stack\'s limit to the service, readable, and the load-test token as a secret', async () => {
    const env = unwrap(byType(run.resources, ':WebService').inputs.envVars) as Record<string, unknown>;
    expect(env).toMatchObject({ RATE_LIMIT_MAX: '20000', RATE_LIMIT_WINDOW_MS: '1000', LOAD_TEST_TOKEN: LOAD_TEST_TOKEN });
    const wire = (await pulumi.runtime.serializeProperty('envVars', run.outputs.component.envVars)) as Record<string, unknown>;
    expect(isSecretWrapped(wire.LOAD_TEST_TOKEN), 'LOAD_TEST_TOKEN is secret').toBe(true);
    expect(isSecretWrapped(wire.RATE_LIMIT_MAX), 'RATE_LIMIT_MAX stays readable').toBe(false);
  });

  it('sets neither the token nor the limit when the stack does not', async () => {
    const { config, secretKeys } = withSecrets({ ...stackFileConfig('staging') });
    delete config['memory-rollout:rateLimitMax'];
    delete config['memory-rollout:rateLimitWindowMs'];
    const bare = await runStack('staging', config, secretKeys);
    const env = unwrap(byType(bare.resources, ':WebService').inputs.envVars) as Record<string, unknown>;
    expect(Object.keys(env).filter((key) => /RATE_LIMIT|LOAD_TEST/.test(key))).toEqual([]);
  });
});

describe('the exposure percentage (CONTEXT7_EXPOSURE_PERCENT), per stack', () => {
  const envOf = (run: Awaited<ReturnType<typeof runStack>>) => unwrap(byType(run.resources, ':WebService').inputs.envVars) as Record<string, unknown>;
  /** Pulumi.production.yaml after a stepped staging canary promoted COMMIT at `reached` (what promote() writes). */
  const steppedPromotion = (reached: number, ceiling: string) => ({
    ...stackFileConfig('production'),
    'memory-rollout:pinnedCommit': COMMIT,
    'memory-rollout:enableContext7Memory': 'true',
    'memory-rollout:context7ExposurePercent': ceiling,
    'memory-rollout:stagingCanaryReport': writeStagingReport('promoted', COMMIT, reached),
  });

  it('staging hands its ceiling to the service as given, in steps of 0.01', async () => {
    const { config, secretKeys } = withSecrets({ ...stackFileConfig('staging'), 'memory-rollout:context7ExposurePercent': '12.5' });
    const run = await runStack('staging', config, secretKeys);
    expect(envOf(run).CONTEXT7_EXPOSURE_PERCENT).toBe('12.5');
    expect(run.outputs.exposureCeilingPercent).toBe(12.5);
  });

  it('production runs at the percentage the staging canary judged, with nothing to report', async () => {
    const { config, secretKeys } = withSecrets(steppedPromotion(25, '25'));
    const run = await runStack('production', config, secretKeys);
    expect(envOf(run)).toMatchObject({ ENABLE_CONTEXT7_MEMORY: 'true', CONTEXT7_EXPOSURE_PERCENT: '25' });
    expect(run.outputs.guardNotices).toEqual([]);
  });

  it('production above what the staging canary judged is refused before anything is declared', async () => {
    const { config, secretKeys } = withSecrets(steppedPromotion(25, '50'));
    const attempt = runStack('production', config, secretKeys);
    await expect(attempt).rejects.toBeInstanceOf(pulumi.RunError);
    expect(await attempt.catch((err: Error) => err.message)).toMatch(/context7ExposurePercent is 50 in production, above the 25% the staging canary reached and judged/);
  });

  it('the audited override lets it through, reported as a notice and kept in the stack outputs', async () => {
    const { config, secretKeys } = withSecrets({
      ...steppedPromotion(25, '50'),
      'memory-rollout:context7ExposureOverridePercent': '50',
      'memory-rollout:context7ExposureOverrideReason': 'incident 4711: control cohort too small, approved by alice',
    });
    const warn = vi.spyOn(pulumi.log, 'warn');
    let run: Awaited<ReturnType<typeof runStack>>;
    let warnings: string[];
    try {
      run = await runStack('production', config, secretKeys);
    } finally {
      warnings = warn.mock.calls.map(([message]) => message);
      warn.mockRestore();
    }
    expect(envOf(run).CONTEXT7_EXPOSURE_PERCENT).toBe('50');
    expect(run.outputs.guardNotices).toEqual([expect.stringMatching(/^EXPOSURE OVERRIDE: .*above the 25%.*reason: "incident 4711/)]);
    // What `pulumi up` prints as a warning on every preview.
    expect(warnings).toEqual(run.outputs.guardNotices);
  });
});

describe('the program refuses what the guards refuse, before declaring anything', () => {
  const refused = async (stack: string, config: Record<string, string>, secretKeys: string[]) => {
    const attempt = runStack(stack, config, secretKeys);
    await expect(attempt).rejects.toBeInstanceOf(pulumi.RunError);
    return attempt.catch((err: Error) => err.message);
  };

  it('production with one instance', async () => {
    const { config, secretKeys } = withSecrets({ ...stackFileConfig('production'), 'memory-rollout:instances': '1', 'memory-rollout:pinnedCommit': COMMIT });
    expect(await refused('production', config, secretKeys)).toMatch(/production needs at least 2 instances/);
  });

  it('an API key set without --secret', async () => {
    const { config } = withSecrets(stackFileConfig('staging'));
    expect(await refused('staging', config, ['memory-rollout:adminToken'])).toMatch(/context7ApiKey is stored in plaintext/);
  });

  it('the flag on in production without a passing staging canary for the pinned commit', async () => {
    const base = { ...stackFileConfig('production'), 'memory-rollout:pinnedCommit': COMMIT, 'memory-rollout:enableContext7Memory': 'true' };
    const missing = withSecrets({ ...base, 'memory-rollout:stagingCanaryReport': join(reportDir, 'absent.json') });
    expect(await refused('production', missing.config, missing.secretKeys)).toMatch(/the file does not exist.*npm run canary -- run --stack staging/s);
    const rolledBack = withSecrets({ ...base, 'memory-rollout:stagingCanaryReport': writeStagingReport('rolled_back') });
    expect(await refused('production', rolledBack.config, rolledBack.secretKeys)).toMatch(/outcome is "rolled_back"/);
    const otherCommit = withSecrets({ ...base, 'memory-rollout:stagingCanaryReport': writeStagingReport('promoted', 'f'.repeat(40)) });
    expect(await refused('production', otherCommit.config, otherCommit.secretKeys)).toMatch(/but production is pinned to 0123456/);
  });

  it('production with memoryAuth open (the local-development escape hatch)', async () => {
    const { config, secretKeys } = withSecrets({ ...stackFileConfig('production'), 'memory-rollout:pinnedCommit': COMMIT, 'memory-rollout:memoryAuth': 'open' });
    expect(await refused('production', config, secretKeys)).toMatch(/memoryAuth is open/);
  });

  it('a bad rate limit, naming the key', async () => {
    const { config, secretKeys } = withSecrets({ ...stackFileConfig('staging'), 'memory-rollout:rateLimitMax': '3k' });
    expect(await refused('staging', config, secretKeys)).toMatch(/memory-rollout:rateLimitMax must be a whole number/);
  });

  it('a load-test token set without --secret', async () => {
    const { config, secretKeys } = withSecrets({ ...stackFileConfig('staging'), 'memory-rollout:loadTestToken': 'load-test-plain-token-0123' });
    const message = await refused('staging', config, secretKeys);
    expect(message).toMatch(/loadTestToken is stored in plaintext/);
    expect(message).not.toContain('load-test-plain-token-0123');
  });

  it('production with its rate limit turned off', async () => {
    const { config, secretKeys } = withSecrets({ ...stackFileConfig('production'), 'memory-rollout:pinnedCommit': COMMIT, 'memory-rollout:rateLimitMax': '0' });
    expect(await refused('production', config, secretKeys)).toMatch(/production keeps its rate limit/);
  });

  it('the committed production file as is: no pinned commit yet, and no existing service to adopt', async () => {
    const { config, secretKeys } = withSecrets(stackFileConfig('production'));
    expect(await refused('production', config, secretKeys)).toMatch(/pinnedCommit is not set.*adopt it with the flag off first: pulumi config set memory-rollout:existingServiceId <srv-id> -s production/);
  });

  it('production adopting an existing service with the flag on but no pinned commit', async () => {
    const { config, secretKeys } = withSecrets({
      ...stackFileConfig('production'),
      'memory-rollout:existingServiceId': 'srv-team0001',
      'memory-rollout:enableContext7Memory': 'true',
      'memory-rollout:stagingCanaryReport': writeStagingReport('promoted'),
    });
    expect(await refused('production', config, secretKeys)).toMatch(/pinnedCommit is not set/);
  });
});

describe('adoption and protection (engine options, read off the registration as the engine gets them)', () => {
  const refused = async (stack: string, config: Record<string, string>, secretKeys: string[]) => {
    const attempt = runStack(stack, config, secretKeys);
    await expect(attempt).rejects.toBeInstanceOf(pulumi.RunError);
    return attempt.catch((err: Error) => err.message);
  };
  const ADOPTED = {
    'memory-rollout:existingServiceId': 'srv-team0001',
    'memory-rollout:existingPostgresId': 'dpg-team0002',
    'memory-rollout:existingKeyValueId': 'red-team0003',
  };

  it('production adopting its existing resources with the flag off (the committed file plus the adoption lines) passes the guards; all three are protected and retained on delete', async () => {
    const { config, secretKeys } = withSecrets({ ...stackFileConfig('production'), ...ADOPTED });
    const run = await runStack('production', config, secretKeys);
    const web = byType(run.resources, ':WebService');
    expect(web.inputs).toMatchObject({ adoptServiceId: 'srv-team0001', autoDeploy: false, stack: 'production', allowReplace: false });
    expect(web.inputs.deployCommit).toBeUndefined();
    expect(byType(run.resources, ':Postgres').inputs).toMatchObject({ adoptId: 'dpg-team0002' });
    expect(byType(run.resources, ':KeyValue').inputs).toMatchObject({ adoptId: 'red-team0003' });
    for (const type of [':WebService', ':Postgres', ':KeyValue']) {
      expect(byType(run.resources, type), type).toMatchObject({ protect: true, retainOnDelete: true });
    }
  });

  it('production creating its resources: all protected (the web service too), none retained: a deliberate destroy deletes what the stack made', async () => {
    const { config, secretKeys } = withSecrets({ ...stackFileConfig('production'), 'memory-rollout:pinnedCommit': COMMIT });
    const run = await runStack('production', config, secretKeys);
    for (const type of [':WebService', ':Postgres', ':KeyValue']) {
      expect(byType(run.resources, type), type).toMatchObject({ protect: true, retainOnDelete: false });
    }
    // Created with a pinned commit, the service runs with the flag off until that commit is live.
    expect(byType(run.resources, ':WebService').inputs).toMatchObject({ deployCommit: COMMIT, envVarsUntilPinnedLive: { ENABLE_CONTEXT7_MEMORY: 'false' } });
  });

  it('staging: adopted resources are retained, not protected; allowServiceReplacement reaches the provider', async () => {
    const { config, secretKeys } = withSecrets({ ...stackFileConfig('staging'), ...ADOPTED, 'memory-rollout:allowServiceReplacement': 'true' });
    const run = await runStack('staging', config, secretKeys);
    for (const type of [':WebService', ':Postgres', ':KeyValue']) {
      expect(byType(run.resources, type), type).toMatchObject({ protect: false, retainOnDelete: true });
    }
    expect(byType(run.resources, ':WebService').inputs).toMatchObject({ allowReplace: true });
  });

  it('an adoption id that is not a Render id is refused, saying where to get one', async () => {
    const { config, secretKeys } = withSecrets({ ...stackFileConfig('staging'), 'memory-rollout:existingServiceId': 'memory-rollout-staging' });
    expect(await refused('staging', config, secretKeys)).toMatch(/existingServiceId must be a Render id starting with srv- \(npm run infra:adopt prints it\)/);
  });
});

describe('the committed stack files', () => {
  it('Pulumi.yaml runs infra/index.ts as TypeScript and refreshes before every operation', () => {
    const project = parse(readFileSync(join(__dirname, '..', '..', 'Pulumi.yaml'), 'utf8')) as Record<string, unknown>;
    expect(project).toMatchObject({
      name: 'memory-rollout',
      runtime: { name: 'nodejs', options: { typescript: true } },
      main: 'infra/index.ts',
      options: { refresh: 'always' },
    });
  });

  it('hold no credentials and keep the canary-latched keys as plain top-level entries', () => {
    for (const stack of ['staging', 'production'] as const) {
      const text = readFileSync(join(__dirname, '..', '..', `Pulumi.${stack}.yaml`), 'utf8');
      const config = stackFileConfig(stack);
      expect(Object.keys(config).some((k) => /ApiKey|Token/.test(k)), stack).toBe(false);
      expect(config['memory-rollout:enableContext7Memory']).toMatch(/^(true|false)$/);
      expect(text).toMatch(/^ {2}memory-rollout:enableContext7Memory: (true|false)$/m);
    }
  });

  it('state each stack\'s exposure ceiling as a plain entry the promotion edits in place, with a comment saying what it is', () => {
    for (const stack of ['staging', 'production'] as const) {
      const text = readFileSync(join(__dirname, '..', '..', `Pulumi.${stack}.yaml`), 'utf8');
      expect(text, stack).toMatch(/^ {2}memory-rollout:context7ExposurePercent: 100$/m);
      expect(text, stack).toMatch(/^ {2}# CONTEXT7_EXPOSURE_PERCENT/m);
    }
  });

  it('state each stack\'s rate limit, and say how to set the load-test token as a secret', () => {
    for (const stack of ['staging', 'production'] as const) {
      const config = stackFileConfig(stack);
      expect(config['memory-rollout:rateLimitMax'], stack).toMatch(/^\d+$/);
      expect(config['memory-rollout:rateLimitWindowMs'], stack).toMatch(/^\d+$/);
      const text = readFileSync(join(__dirname, '..', '..', `Pulumi.${stack}.yaml`), 'utf8');
      expect(text).toContain(`pulumi config set --secret memory-rollout:loadTestToken`);
    }
  });
});
