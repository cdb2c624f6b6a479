import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../service/config';

describe('config', () => {
  it('defaults match the runbook and the decisions (PORT 3000, flag off, 5-minute cache, UTC schedule)', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 3000,
      enableContext7Memory: false,
      context7ApiKey: undefined,
      context7BaseUrl: 'https://context7.com/api',
      context7HttpClient: 'undici',
      memoryCacheTtlMs: 300_000,
      deployId: 'local',
      syncScheduleTz: 'UTC',
      adminToken: undefined,
      shutdownGraceMs: 10_000,
    });
    expect(config.dataDir).toMatch(/data$/);
    expect(config.instanceId).toMatch(/-\d+-[0-9a-f]{6}$/);
  });

  it('CONTEXT7_HTTP_CLIENT picks the library under the Context7 client, in any case', () => {
    expect(loadConfig({ CONTEXT7_HTTP_CLIENT: 'AXIOS' }).context7HttpClient).toBe('axios');
    expect(loadConfig({ CONTEXT7_HTTP_CLIENT: 'undici' }).context7HttpClient).toBe('undici');
  });

  it('reads Render variables: RENDER_GIT_COMMIT over DEPLOY_ID, RENDER_INSTANCE_ID', () => {
    const config = loadConfig({ RENDER_GIT_COMMIT: 'abc123', DEPLOY_ID: 'dep-1', RENDER_INSTANCE_ID: 'srv-1-xyz', ENABLE_CONTEXT7_MEMORY: 'TRUE', CONTEXT7_BASE_URL: 'http://127.0.0.1:4000/' });
    expect(config).toMatchObject({ deployId: 'abc123', instanceId: 'srv-1-xyz', enableContext7Memory: true, context7BaseUrl: 'http://127.0.0.1:4000' });
    expect(loadConfig({ DEPLOY_ID: 'dep-1' }).deployId).toBe('dep-1');
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['ENABLE_CONTEXT7_MEMORY', 'maybe'],
    ['CONTEXT7_BASE_URL', 'ftp://context7.com'],
    ['CONTEXT7_BASE_URL', 'not a url'],
    ['CONTEXT7_TIMEOUT_MS', '-5'],
    ['CONTEXT7_HTTP_CLIENT', 'fetch'],
    ['MEMORY_CACHE_TTL_MS', '0'],
    ['LOG_LEVEL', 'loud'],
    ['SYNC_SCHEDULE_TZ', 'Mars/Olympus_Mons'],
    ['DATABASE_URL', 'mysql://x'],
    ['REDIS_URL', 'http://x'],
    // Render kills the process 30 s after SIGTERM: the HTTP drain must end well before.
    ['SHUTDOWN_GRACE_MS', '30000'],
  ])('%s=%s fails with an error naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`Invalid environment variable ${name}:`));
  });

  it('never echoes a secret in an error', () => {
    try {
      loadConfig({ CONTEXT7_API_KEY: 'sk-super-secret', PORT: 'nope' });
      expect.unreachable();
    } catch (error) {
      expect(String(error)).not.toContain('sk-super-secret');
    }
  });

  it('refuses a short ADMIN_TOKEN without echoing it, and accepts a long one', () => {
    expect(() => loadConfig({ ADMIN_TOKEN: 'abc' })).toThrow(/^Invalid environment variable ADMIN_TOKEN: must be at least 12 characters/);
    try {
      loadConfig({ ADMIN_TOKEN: 'short-tok' });
      expect.unreachable();
    } catch (error) {
      expect(String(error)).not.toContain('short-tok');
    }
    expect(loadConfig({ ADMIN_TOKEN: 'a'.repeat(12) }).adminToken).toBe('a'.repeat(12));
  });

  it('CONTEXT7_EXPOSURE_PERCENT is the exposure ceiling (default 100: today\'s behaviour), refused at start when not a percentage', () => {
    expect(loadConfig({})).toMatchObject({ exposureCeilingPercent: 100, exposurePollIntervalMs: 2_000 });
    expect(loadConfig({ CONTEXT7_EXPOSURE_PERCENT: '12.5', EXPOSURE_POLL_INTERVAL_MS: '500' })).toMatchObject({
      exposureCeilingPercent: 12.5,
      exposurePollIntervalMs: 500,
    });
    expect(loadConfig({ CONTEXT7_EXPOSURE_PERCENT: '0' }).exposureCeilingPercent).toBe(0);
    for (const value of ['101', '-5', '12.345', 'half', '1e2', '0x10']) {
      expect(() => loadConfig({ CONTEXT7_EXPOSURE_PERCENT: value }), value).toThrow(
        /Invalid environment variable CONTEXT7_EXPOSURE_PERCENT: expected a percentage from 0 to 100 in steps of 0.01/,
      );
    }
    expect(() => loadConfig({ EXPOSURE_POLL_INTERVAL_MS: '5' })).toThrow(/EXPOSURE_POLL_INTERVAL_MS/);
  });

  it('empty strings count as unset', () => {
    expect(loadConfig({ CONTEXT7_API_KEY: '', ADMIN_TOKEN: '  ', PORT: '' })).toMatchObject({ context7ApiKey: undefined, adminToken: undefined, port: 3000 });
  });
});
