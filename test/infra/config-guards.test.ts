import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { judgedExposurePercent, type CanaryReportSummary } from '../../canary/report-summary';
import {
  DEFAULT_EXPOSURE_PERCENT,
  parseStackConfig,
  RATE_LIMIT_MAX_BOUNDS,
  RATE_LIMIT_WINDOW_MS_BOUNDS,
  type RawStackConfig,
  StackConfigError,
} from '../../infra/config';
import { exposureGuard, guardNotices, guardViolations, judgedStagingReportLine, readStagingCanaryReport, type StagingReportLookup } from '../../infra/guards';
import { ConfigError, loadConfig } from '../../service/config';
import { isValidExposurePercent } from '../../service/domain/exposure';
import { loadDataPlaneConfig } from '../../service/fleet/data-plane-config';
import { PROBE_LOCATION } from '../../canary/probe/learning-probe';
import { SYNTHETIC_LOCATION } from '../../canary/synthetic/plan';

const COMMIT = 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';

function raw(stack: string, values: Record<string, string>, secretKeys: string[] = ['context7ApiKey', 'adminToken']): RawStackConfig {
  return {
    stack,
    values: { repo: 'https://github.com/acme/memory', context7ApiKey: 'c7-key-123', adminToken: 'admin-tok-456', ...values },
    secretKeys: new Set(secretKeys),
  };
}

function summary(overrides: Partial<CanaryReportSummary> = {}): CanaryReportSummary {
  return {
    schemaVersion: 1,
    stack: 'staging',
    deployId: COMMIT,
    serviceId: 'srv-123',
    outcome: 'promoted',
    startedAt: '2026-11-23T10:00:00.000Z',
    finishedAt: '2026-11-23T11:00:00.000Z',
    ...overrides,
  };
}

const found = (s: CanaryReportSummary): StagingReportLookup => ({ found: true, path: 'reports/staging/report.json', summary: s });

describe('parseStackConfig', () => {
  it('applies the defaults and derives the environment from the stack name', () => {
    const config = parseStackConfig(raw('staging', {}));
    expect(config).toMatchObject({
      environment: 'staging',
      serviceName: 'memory-rollout-staging',
      plan: 'starter',
      instances: 1,
      region: 'oregon',
      enableContext7Memory: false,
      context7BaseUrl: 'https://context7.com/api',
      branch: 'main',
      waitForLive: true,
      maxShutdownDelaySeconds: 30,
      stagingCanaryReport: 'reports/staging/report.json',
      plaintextSecretKeys: [],
    });
    expect(config.context7ApiKey?.reveal()).toBe('c7-key-123');
  });

  it('parses the string forms Pulumi stores numbers and booleans in', () => {
    const config = parseStackConfig(raw('production', { instances: '3', enableContext7Memory: 'true', pinnedCommit: COMMIT }));
    expect(config.instances).toBe(3);
    expect(config.enableContext7Memory).toBe(true);
    expect(config.pinnedCommit).toBe(COMMIT);
  });

  it('reports every problem at once, naming each key', () => {
    let error: unknown;
    try {
      parseStackConfig(raw('staging', { instances: 'two', region: 'mars', enableContext7Memory: 'yes', pinnedCommit: 'HEAD', colour: 'blue' }));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(StackConfigError);
    const message = (error as Error).message;
    for (const key of ['instances', 'region', 'enableContext7Memory', 'pinnedCommit', 'colour']) {
      expect(message).toContain(`memory-rollout:${key}`);
    }
  });

  it('requires the repo and, for other stack names, an explicit environment', () => {
    expect(() => parseStackConfig({ stack: 'staging', values: {}, secretKeys: new Set() })).toThrow(/memory-rollout:repo is required/);
    expect(() => parseStackConfig(raw('dev-alice', {}))).toThrow(/memory-rollout:environment is required/);
    expect(parseStackConfig(raw('dev-alice', { environment: 'staging' })).serviceName).toBe('memory-rollout-dev-alice');
  });

  it('notes secrets stored in plaintext and never prints their values', () => {
    const config = parseStackConfig(raw('staging', {}, ['adminToken']));
    expect(config.plaintextSecretKeys).toEqual(['context7ApiKey']);
    const printed = `${JSON.stringify(config)} ${inspect(config)} ${String(config.context7ApiKey)}`;
    expect(printed).not.toContain('c7-key-123');
    expect(printed).not.toContain('admin-tok-456');
    expect(printed).toContain('[secret]');
  });

  it('accepts the provider keys, and notes a Render API key kept in plaintext', () => {
    const plain = parseStackConfig(raw('staging', { renderApiKey: 'rnd_plain', renderApiUrl: 'http://127.0.0.1:9/v1', renderOwnerId: 'tea-1' }));
    expect(plain.plaintextSecretKeys).toEqual(['renderApiKey']);
    expect(guardViolations(plain, undefined).join('\n')).toMatch(/renderApiKey is stored in plaintext.*or drop it and export RENDER_API_KEY/);
    expect(JSON.stringify(plain)).not.toContain('rnd_plain');
    const secret = parseStackConfig(raw('staging', { renderApiKey: 'rnd_x' }, ['context7ApiKey', 'adminToken', 'renderApiKey']));
    expect(guardViolations(secret, undefined)).toEqual([]);
  });
});

describe('guardViolations', () => {
  const production = (values: Record<string, string> = {}, secretKeys?: string[]) =>
    parseStackConfig(raw('production', { instances: '2', pinnedCommit: COMMIT, ...values }, secretKeys));

  it('lets a well-formed staging and production stack through', () => {
    expect(guardViolations(parseStackConfig(raw('staging', { enableContext7Memory: 'true' })), undefined)).toEqual([]);
    expect(guardViolations(production(), undefined)).toEqual([]);
    expect(guardViolations(production({ enableContext7Memory: 'true' }), found(summary()))).toEqual([]);
  });

  it("refuses an emulator-measured staging report for a production on Render, and takes it for a production on an emulator", () => {
    const onEmulator = found(summary({ measuredOnKind: 'emulator' }));
    const flagOn = production({ enableContext7Memory: 'true' });
    // No renderApiUrl and no RENDER_API_URL: the providers call Render's own API.
    const refused = guardViolations(flagOn, onEmulator, {});
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatch(/only be true in production on Render \(api\.render\.com\).*measured on an emulator.*canary -- run/);
    expect(guardViolations(flagOn, onEmulator, { RENDER_API_URL: 'https://api.render.com/v1' })).toEqual(refused);
    // Production itself on an emulator (a rehearsal), by config or by environment: the report fits.
    expect(guardViolations(production({ enableContext7Memory: 'true', renderApiUrl: 'http://127.0.0.1:9/v1' }), onEmulator, {})).toEqual([]);
    expect(guardViolations(flagOn, onEmulator, { RENDER_API_URL: 'http://127.0.0.1:9/v1' })).toEqual([]);
    // The stack's setting wins over the environment, as in the providers.
    expect(guardViolations(production({ enableContext7Memory: 'true', renderApiUrl: 'https://api.render.com/v1' }), onEmulator, { RENDER_API_URL: 'http://127.0.0.1:9/v1' })).toEqual(refused);
    // Measured on Render, or with no Render API (only the service was measured), or an older report that does not say.
    expect(guardViolations(flagOn, found(summary({ measuredOnKind: 'render' })), {})).toEqual([]);
    expect(guardViolations(flagOn, found(summary({ measuredOnKind: 'none' })), {})).toEqual([]);
    expect(guardViolations(flagOn, found(summary()), {})).toEqual([]);
    // With the flag off production needs no report, so where one was measured does not matter.
    expect(guardViolations(production(), onEmulator, {})).toEqual([]);
  });

  it('refuses production with fewer than 2 instances', () => {
    const violations = guardViolations(production({ instances: '1' }), undefined);
    expect(violations).toHaveLength(1);
    expect(violations[0]).toMatch(/production needs at least 2 instances.*instances is 1.*pulumi config set memory-rollout:instances 2 -s production/);
  });

  it('refuses credentials kept in plaintext and says how to store them as secrets', () => {
    const violations = guardViolations(production({}, ['adminToken']), undefined);
    expect(violations).toHaveLength(1);
    expect(violations[0]).toMatch(/context7ApiKey is stored in plaintext.*pulumi config set --secret memory-rollout:context7ApiKey/);
    expect(violations.join('\n')).not.toContain('c7-key-123');
  });

  it('refuses an admin token shorter than the service accepts, without printing it', () => {
    const violations = guardViolations(production({ adminToken: 'short-tok' }), undefined);
    expect(violations).toHaveLength(1);
    expect(violations[0]).toMatch(/adminToken is shorter than 12 characters.*pulumi config set --secret memory-rollout:adminToken/);
    expect(violations[0]).not.toContain('short-tok');
  });

  it('refuses the flag on without a Context7 key, and a stack without an admin token', () => {
    const noKey = parseStackConfig({ stack: 'staging', values: { repo: 'https://github.com/acme/memory', enableContext7Memory: 'true' }, secretKeys: new Set() });
    const violations = guardViolations(noKey, undefined);
    expect(violations.some((v) => v.includes('context7ApiKey is not set'))).toBe(true);
    expect(violations.some((v) => v.includes('adminToken is not set'))).toBe(true);
  });

  it('caller keys (issue 13): names and locations from config; agents, canary, the probe key and the synthetic traffic key (each held to its reserved location) by default; open refused in production only', () => {
    expect(production().callerKeys).toEqual([
      { name: 'agents', locations: [] },
      { name: 'canary', locations: [] },
      { name: 'canary-probe', locations: [PROBE_LOCATION] },
      { name: 'canary-loadtest', locations: [SYNTHETIC_LOCATION] },
    ]);
    expect(production({ callerKeys: 'agents;tenant-eu:loc-berlin,loc-paris' }).callerKeys).toEqual([
      { name: 'agents', locations: [] },
      { name: 'tenant-eu', locations: ['loc-berlin', 'loc-paris'] },
    ]);
    expect(() => production({ callerKeys: 'a;a' })).toThrow(/callerKeys names must be unique/);
    expect(() => production({ callerKeys: 'a:loc*' })).toThrow(/callerKeys must be name\[:location,location\]/);
    expect(() => production({ memoryAuth: 'maybe' })).toThrow(/memoryAuth must be keys or open/);
    const open = guardViolations(production({ memoryAuth: 'open' }), undefined);
    expect(open).toEqual([expect.stringMatching(/memoryAuth is open.*production requires caller keys.*pulumi config rm memory-rollout:memoryAuth -s production/)]);
    expect(guardViolations(parseStackConfig(raw('staging', { memoryAuth: 'open' })), undefined)).toEqual([]);
  });

  it('refuses production without a pinned commit', () => {
    const config = parseStackConfig(raw('production', { instances: '2' }));
    expect(guardViolations(config, undefined).join('\n')).toMatch(/pinnedCommit is not set/);
  });

  it('refuses the flag on in production without a staging canary report, saying how to get one', () => {
    const [violation] = guardViolations(production({ enableContext7Memory: 'true' }), {
      found: false,
      path: 'reports/staging/report.json',
      reason: 'the file does not exist',
    });
    expect(violation).toMatch(/only be true in production for a commit whose staging canary passed/);
    expect(violation).toMatch(/reports\/staging\/report.json: the file does not exist/);
    expect(violation).toContain('npm run canary -- run --stack staging');
  });

  it.each([
    ['a rolled-back staging run', summary({ outcome: 'rolled_back' }), /outcome is "rolled_back"/],
    ['a held staging run', summary({ outcome: 'held' }), /outcome is "held"/],
    ['a different commit', summary({ deployId: 'ffffffffffffffffffffffffffffffffffffffff' }), /judged commit f{40}, but production is pinned to a1b2/],
    ['a production report', summary({ stack: 'production' }), /it is a production report/],
  ])('refuses the flag on in production for %s', (_name, report, reason) => {
    const violations = guardViolations(production({ enableContext7Memory: 'true' }), found(report));
    expect(violations).toHaveLength(1);
    expect(violations[0]).toMatch(reason);
    expect(violations[0]).toContain('npm run canary -- run --stack staging');
  });

  it('refuses Postgres high availability on a plan that has none', () => {
    expect(guardViolations(production({ postgresHighAvailability: 'true' }), undefined).join('\n')).toMatch(
      /postgresHighAvailability needs a Pro or Accelerated Postgres plan \(memory-rollout:postgresPlan is basic_256mb\)/,
    );
    expect(guardViolations(production({ postgresHighAvailability: 'true', postgresPlan: 'pro_4gb' }), undefined)).toEqual([]);
  });

  it('does not need a staging report to keep the flag off in production', () => {
    expect(guardViolations(production({ enableContext7Memory: 'false' }), undefined)).toEqual([]);
  });
});

describe('readStagingCanaryReport', () => {
  const read = (files: Record<string, string>) => (path: string) => files[path];

  it('reads the summary embedded in the canary report, or a bare summary', () => {
    const embedded = JSON.stringify({ summary: summary(), polls: [], judgements: [] });
    expect(readStagingCanaryReport('r.json', read({ 'r.json': embedded }))).toEqual({ found: true, path: 'r.json', summary: summary() });
    expect(readStagingCanaryReport('r.json', read({ 'r.json': JSON.stringify(summary()) })).found).toBe(true);
  });

  it('explains a missing, unreadable or invalid report', () => {
    expect(readStagingCanaryReport('r.json', read({}))).toMatchObject({ found: false, reason: 'the file does not exist' });
    expect(readStagingCanaryReport('r.json', read({ 'r.json': '{not json' }))).toMatchObject({ found: false, reason: 'it is not valid JSON' });
    const invalid = readStagingCanaryReport('r.json', read({ 'r.json': JSON.stringify({ summary: { ...summary(), outcome: 'great' } }) }));
    expect(invalid).toMatchObject({ found: false });
    expect(!invalid.found && invalid.reason).toMatch(/no valid canary summary \(outcome/);
    const throwing = readStagingCanaryReport('r.json', () => {
      throw new Error('EACCES');
    });
    expect(throwing).toMatchObject({ found: false, reason: 'it could not be read (EACCES)' });
  });
});

describe('the rate limit and the load-test token as stack config', () => {
  const problemsOf = (values: Record<string, string>, secretKeys?: string[]): string => {
    try {
      parseStackConfig(raw('staging', values, secretKeys));
    } catch (err) {
      expect(err).toBeInstanceOf(StackConfigError);
      return (err as Error).message;
    }
    return '';
  };

  it('parses rateLimitMax and rateLimitWindowMs, and leaves them unset (the service default) when absent', () => {
    const config = parseStackConfig(raw('staging', { rateLimitMax: '20000', rateLimitWindowMs: '1000' }));
    expect([config.rateLimitMax, config.rateLimitWindowMs]).toEqual([20_000, 1_000]);
    const unset = parseStackConfig(raw('staging', {}));
    expect([unset.rateLimitMax, unset.rateLimitWindowMs]).toEqual([undefined, undefined]);
  });

  it('refuses bad values, naming the key', () => {
    expect(problemsOf({ rateLimitMax: 'lots' })).toMatch(/memory-rollout:rateLimitMax must be a whole number/);
    expect(problemsOf({ rateLimitMax: '-1' })).toMatch(/memory-rollout:rateLimitMax must be a whole number/);
    expect(problemsOf({ rateLimitWindowMs: '999' })).toMatch(/memory-rollout:rateLimitWindowMs must be at least 1000/);
    expect(problemsOf({ rateLimitMax: '10000001' })).toMatch(/memory-rollout:rateLimitMax must be at most 10000000/);
  });

  it('accepts exactly what the service accepts for RATE_LIMIT_MAX and RATE_LIMIT_WINDOW_MS', () => {
    const cases = [
      ['rateLimitMax', 'RATE_LIMIT_MAX', RATE_LIMIT_MAX_BOUNDS],
      ['rateLimitWindowMs', 'RATE_LIMIT_WINDOW_MS', RATE_LIMIT_WINDOW_MS_BOUNDS],
    ] as const;
    for (const [key, variable, bounds] of cases) {
      for (const value of [bounds.min, bounds.max]) {
        expect(problemsOf({ [key]: String(value) }), `${key}=${value}`).toBe('');
        expect(() => loadDataPlaneConfig({ [variable]: String(value) }), `${variable}=${value}`).not.toThrow();
      }
      for (const value of [bounds.min - 1, bounds.max + 1].filter((v) => v >= 0)) {
        expect(problemsOf({ [key]: String(value) }), `${key}=${value}`).toContain(`memory-rollout:${key}`);
        expect(() => loadDataPlaneConfig({ [variable]: String(value) }), `${variable}=${value}`).toThrow(ConfigError);
      }
    }
  });

  it('takes loadTestToken as a secret: refused in plaintext, never printed', () => {
    const token = 'load-test-token-0123456789';
    const secret = parseStackConfig(raw('staging', { loadTestToken: token }, ['context7ApiKey', 'adminToken', 'loadTestToken']));
    expect(secret.loadTestToken?.reveal()).toBe(token);
    expect(`${JSON.stringify(secret)} ${inspect(secret)}`).not.toContain(token);
    expect(guardViolations(secret, undefined)).toEqual([]);
    const plain = parseStackConfig(raw('staging', { loadTestToken: token }));
    const violations = guardViolations(plain, undefined);
    expect(violations).toHaveLength(1);
    expect(violations[0]).toMatch(/loadTestToken is stored in plaintext.*pulumi config set --secret memory-rollout:loadTestToken/);
    expect(violations[0]).not.toContain(token);
  });

  it('refuses a load-test token shorter than the service accepts, without printing it', () => {
    const config = parseStackConfig(raw('staging', { loadTestToken: 'short-tok' }, ['context7ApiKey', 'adminToken', 'loadTestToken']));
    const violations = guardViolations(config, undefined);
    expect(violations).toHaveLength(1);
    expect(violations[0]).toMatch(/loadTestToken is shorter than 12 characters.*pulumi config set --secret memory-rollout:loadTestToken/);
    expect(violations[0]).not.toContain('short-tok');
    // The service would refuse it at start: the guard refuses it before a deploy that could never go live.
    expect(() => loadConfig({ LOAD_TEST_TOKEN: 'short-tok' })).toThrow(ConfigError);
  });

  it('refuses turning the limit off in production, pointing at the load-test token; staging may', () => {
    const production = parseStackConfig(raw('production', { instances: '2', pinnedCommit: COMMIT, rateLimitMax: '0' }));
    const violations = guardViolations(production, undefined);
    expect(violations).toHaveLength(1);
    expect(violations[0]).toMatch(/rateLimitMax is 0.*memory-rollout:loadTestToken/);
    expect(guardViolations(parseStackConfig(raw('production', { instances: '2', pinnedCommit: COMMIT, rateLimitMax: '50000' })), undefined)).toEqual([]);
    expect(guardViolations(parseStackConfig(raw('staging', { rateLimitMax: '0' })), undefined)).toEqual([]);
  });
});

describe('the exposure percentage (memory-rollout:context7ExposurePercent)', () => {
  const problemsOf = (stack: string, values: Record<string, string>): string[] => {
    try {
      parseStackConfig(raw(stack, { ...(stack === 'production' ? { instances: '2', pinnedCommit: COMMIT } : {}), ...values }));
    } catch (err) {
      expect(err).toBeInstanceOf(StackConfigError);
      return [...(err as StackConfigError).problems];
    }
    return [];
  };

  it('defaults to 100 (the flag on exposes every scope, as before) in both stacks', () => {
    expect(parseStackConfig(raw('staging', {})).context7ExposurePercent).toBe(DEFAULT_EXPOSURE_PERCENT);
    expect(parseStackConfig(raw('production', { instances: '2', pinnedCommit: COMMIT })).context7ExposurePercent).toBe(100);
  });

  it('accepts 0..100 in steps of 0.01, as Pulumi stores them', () => {
    for (const [text, value] of [['0', 0], ['0.01', 0.01], ['5', 5], ['12.5', 12.5], ['33.33', 33.33], ['100', 100], ['100.00', 100]] as const) {
      const config = parseStackConfig(raw('staging', { context7ExposurePercent: text }));
      expect(config.context7ExposurePercent, text).toBe(value);
      expect(isValidExposurePercent(config.context7ExposurePercent), `${text} is what the service accepts`).toBe(true);
    }
  });

  it('refuses anything else with one clear message naming the key', () => {
    for (const text of ['101', '100.01', '-1', '12.345', 'abc', '1e2', '', ' 5', '5%', '0x10']) {
      const problems = problemsOf('staging', { context7ExposurePercent: text });
      expect(problems, JSON.stringify(text)).toEqual([
        'memory-rollout:context7ExposurePercent must be a percentage from 0 to 100 in steps of 0.01 (e.g. 5, 25, 12.5)',
      ]);
    }
  });

  it('takes an override only as a percentage and a reason together', () => {
    expect(problemsOf('production', { context7ExposureOverridePercent: '50' }).join('\n')).toMatch(
      /context7ExposureOverridePercent is set without memory-rollout:context7ExposureOverrideReason.*pulumi config set memory-rollout:context7ExposureOverrideReason/,
    );
    expect(problemsOf('production', { context7ExposureOverrideReason: 'approved by alice for incident 12' }).join('\n')).toMatch(
      /context7ExposureOverrideReason is set without memory-rollout:context7ExposureOverridePercent/,
    );
    expect(problemsOf('production', { context7ExposureOverridePercent: '50', context7ExposureOverrideReason: 'because' })).toEqual([
      'memory-rollout:context7ExposureOverrideReason must say why and who approved it (at least 10 characters)',
    ]);
    expect(problemsOf('production', { context7ExposureOverridePercent: '150', context7ExposureOverrideReason: 'approved by alice, incident 12' }).join('\n')).toMatch(
      /context7ExposureOverridePercent must be a percentage from 0 to 100/,
    );
  });
});

describe('the exposure guard: production never exceeds what the staging canary judged', () => {
  const production = (values: Record<string, string>) =>
    parseStackConfig(raw('production', { instances: '2', pinnedCommit: COMMIT, enableContext7Memory: 'true', ...values }));
  const judgedAt = (reached: number | undefined) => found(summary(reached === undefined ? {} : { exposureReachedPercent: reached }));
  const OVERRIDE = { context7ExposureOverridePercent: '50', context7ExposureOverrideReason: 'incident 4711, approved by alice' };

  it('refuses a ceiling above the judged percentage, saying how to fix it', () => {
    const violations = guardViolations(production({ context7ExposurePercent: '50' }), judgedAt(25));
    expect(violations).toHaveLength(1);
    const [refusal] = violations as [string];
    expect(refusal).toMatch(/context7ExposurePercent is 50 in production, above the 25% the staging canary reached and judged for commit a1b2c3d4/);
    expect(refusal).toContain('pulumi config set memory-rollout:context7ExposurePercent 25 -s production');
    // The canary that judges exposure is the stepped one, so that is the command it shows.
    expect(refusal).toContain('npm run canary -- stepped --stack staging');
    expect(refusal).toContain("CANARY_ADMIN_TOKEN set to staging's adminToken");
    expect(refusal).toContain('pulumi config set memory-rollout:context7ExposureOverridePercent 50 -s production');
    expect(refusal).toContain('memory-rollout:context7ExposureOverrideReason "<why, and who approved it>"');
    expect(exposureGuard(production({ context7ExposurePercent: '25.01' }), judgedAt(25)).kind).toBe('refused');
  });

  it('lets the judged percentage through, and anything lower, down to 0', () => {
    for (const ceiling of ['25', '24.99', '5', '0']) {
      const config = production({ context7ExposurePercent: ceiling });
      expect(guardViolations(config, judgedAt(25)), ceiling).toEqual([]);
      expect(guardNotices(config, judgedAt(25)), ceiling).toEqual([]);
      expect(exposureGuard(config, judgedAt(25))).toEqual({ kind: 'within', ceiling: Number(ceiling), judged: 25 });
    }
  });

  it('reads a report without exposureReachedPercent as judging the whole flag: every scope, 100', () => {
    expect(judgedExposurePercent(summary())).toBe(100);
    expect(guardViolations(production({}), judgedAt(undefined))).toEqual([]);
    expect(exposureGuard(production({ context7ExposurePercent: '100' }), judgedAt(undefined))).toMatchObject({ kind: 'within', judged: 100 });
  });

  it('without a report authorising the commit there is nothing to compare with: the flag guard refuses, once, and an override does not get around it', () => {
    const missing: StagingReportLookup = { found: false, path: 'reports/staging/report.json', reason: 'the file does not exist' };
    for (const report of [missing, undefined, found(summary({ exposureReachedPercent: 100, deployId: 'f'.repeat(40) }))]) {
      const violations = guardViolations(production({ context7ExposurePercent: '50', ...OVERRIDE }), report);
      expect(violations).toHaveLength(1);
      expect(violations[0]).toMatch(/enableContext7Memory can only be true in production for a commit whose staging canary passed/);
    }
  });

  it('an override up to the ceiling lets it through and says so loudly; a smaller one does not', () => {
    const overridden = production({ context7ExposurePercent: '50', ...OVERRIDE });
    expect(guardViolations(overridden, judgedAt(25))).toEqual([]);
    expect(guardNotices(overridden, judgedAt(25))).toEqual([
      expect.stringMatching(/^EXPOSURE OVERRIDE: memory-rollout:context7ExposurePercent is 50 in production, above the 25%.*reason: "incident 4711, approved by alice"/),
    ]);
    const tooSmall = production({ context7ExposurePercent: '60', ...OVERRIDE });
    const [refusal] = guardViolations(tooSmall, judgedAt(25));
    expect(refusal).toMatch(/the override in this stack, memory-rollout:context7ExposureOverridePercent 50, allows only up to 50%/);
  });

  it('points out an override that allows nothing the judgement does not, so it gets removed', () => {
    const [notice] = guardNotices(production({ context7ExposurePercent: '25', ...OVERRIDE }), judgedAt(25));
    expect(notice).toMatch(/context7ExposureOverridePercent 50 is set in production but allows nothing.*pulumi config rm memory-rollout:context7ExposureOverridePercent/);
  });

  it('does not bound staging (its ceiling is the stepped canary\'s target) nor production with the flag off (nothing is exposed)', () => {
    expect(exposureGuard(parseStackConfig(raw('staging', { enableContext7Memory: 'true', context7ExposurePercent: '100' })), undefined).kind).toBe('unbounded');
    expect(guardViolations(production({ enableContext7Memory: 'false', context7ExposurePercent: '100' }), undefined)).toEqual([]);
  });
});

describe('the canary report summary\'s exposureReachedPercent', () => {
  const read = (s: unknown) => readStagingCanaryReport('r.json', () => JSON.stringify({ summary: s }));

  it('is optional, and when present a percentage in steps of 0.01', () => {
    expect(read(summary())).toMatchObject({ found: true });
    expect(read({ ...summary(), exposureReachedPercent: 12.5 })).toMatchObject({ found: true, summary: { exposureReachedPercent: 12.5 } });
    for (const bad of [101, -1, 12.345, '25']) {
      const lookup = read({ ...summary(), exposureReachedPercent: bad });
      expect(lookup.found, String(bad)).toBe(false);
      expect(!lookup.found && lookup.reason).toMatch(/no valid canary summary \(exposureReachedPercent/);
    }
  });
});

describe('the production guard says which kind of staging report it judged (issue 25)', () => {
  const production = parseStackConfig(raw('production', { instances: '2', enableContext7Memory: 'true', pinnedCommit: COMMIT }));
  it('a stepped report, with the exposure it reached', () => {
    expect(judgedStagingReportLine(production, found(summary({ exposureReachedPercent: 100 })))).toMatch(
      /^production guard judged a stepped report \(canary stepped: exposure reached 100 %\) at reports\/staging\/report\.json: staging promoted for commit /,
    );
  });
  it('a whole-flag report', () => {
    expect(judgedStagingReportLine(production, found(summary()))).toMatch(/judged a whole-flag report \(canary run: the flag judged as a whole, 100 % of scopes\)/);
  });
  it('nothing for staging, or with the flag off', () => {
    expect(judgedStagingReportLine(parseStackConfig(raw('staging', {})), found(summary()))).toBeUndefined();
    expect(judgedStagingReportLine(parseStackConfig(raw('production', { instances: '2' })), found(summary()))).toBeUndefined();
  });
});
