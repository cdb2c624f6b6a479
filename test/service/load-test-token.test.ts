/**
 * The load-test token (LOAD_TEST_TOKEN, sent as X-Load-Test-Token) lifts the public rate limit for load-test scopes
 * only: a customer scope, a body-less route or a wrong token are limited exactly as without it. The token is a
 * credential of this service: refused inside learning writes, scrubbed from logs, never echoed by a config error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSecrets, ConfigError, learningForbiddenSecrets, loadConfig } from '../../service/config';
import { LOAD_TEST_LOCATION_PREFIX } from '../../service/domain/scope-id';
import { createDataPlane } from '../../service/fleet/data-plane';
import { loadDataPlaneConfig } from '../../service/fleet/data-plane-config';
import { createServiceLogger, REDACTED } from '../../service/logging';
import { LogCapture, scope, startHarness, type Harness } from './support/harness';

const LOAD_TEST_TOKEN = 'load-test-token-0123456789abcdef';
const LIMIT = 3;

let h: Harness;
let nextClient = 1;
let describedRateLimit = '';

beforeAll(async () => {
  // RENDER=true: behind Render's proxy, one trusted hop (TRUST_PROXY_HOPS' default there), so X-Forwarded-For names the client.
  const env = { LOAD_TEST_TOKEN, LOG_LEVEL: 'trace', RENDER: 'true' };
  // No DATABASE_URL or REDIS_URL: a data plane with only the (per-instance) limiter, as RATE_LIMIT_MAX sets it.
  const dataPlane = createDataPlane({
    config: loadConfig(env),
    dataPlane: loadDataPlaneConfig({ RATE_LIMIT_MAX: String(LIMIT) }),
    logger: createServiceLogger({ level: 'silent', secrets: [] }),
  });
  h = await startHarness({ env, overrides: { dataPlane } });
  describedRateLimit = dataPlane.describe().rateLimit;
});
afterAll(async () => {
  await h?.close();
});

/** A fresh client IP per test (the limiter keys on it; on Render the service trusts one proxy hop). */
function newClient(): string {
  return `203.0.113.${nextClient++}`;
}

const loadTestScope = scope(`${LOAD_TEST_LOCATION_PREFIX}01`, 'agent-1', 'load prompt');
const customerScope = scope('acme-downtown', 'agent-1', 'customer prompt');

async function snippets(client: string, scopeId: string, token?: string): Promise<number> {
  const headers: Record<string, string> = { 'x-forwarded-for': client };
  if (token !== undefined) headers['x-load-test-token'] = token;
  return (await h.request('POST', '/api/memory/snippets', { scopeId }, headers)).status;
}

async function statuses(count: number, send: () => Promise<number>): Promise<number[]> {
  const seen: number[] = [];
  for (let i = 0; i < count; i++) seen.push(await send());
  return seen;
}

describe('the public rate limit and the load-test token', () => {
  it('is named in the startup description of the rate limit', () => {
    expect(describedRateLimit).toBe('3/60000ms per client, per instance, load-test scopes exempt with LOAD_TEST_TOKEN');
  });

  it('limits a client without the token, and lets the same client through with it for a load-test scope', async () => {
    const client = newClient();
    expect(await statuses(LIMIT + 1, () => snippets(client, loadTestScope))).toEqual([200, 200, 200, 429]);
    expect(await statuses(LIMIT * 3, () => snippets(client, loadTestScope, LOAD_TEST_TOKEN))).toEqual(Array(LIMIT * 3).fill(200));
  });

  it('exempts learning writes to load-test scopes, which are still validated', async () => {
    const client = newClient();
    const headers = { 'x-forwarded-for': client, 'x-load-test-token': LOAD_TEST_TOKEN };
    for (let i = 0; i < LIMIT + 2; i++) {
      const res = await h.request('POST', '/api/memory/patterns', { scopeId: loadTestScope, patterns: [`load pattern ${i}`] }, headers);
      expect(res.status).toBe(200);
    }
    const invalid = await h.request('POST', '/api/memory/patterns', { scopeId: loadTestScope, patterns: 'not a list' }, headers);
    expect(invalid.status).toBe(400);
  });

  it('does not exempt a customer scope, even with the right token', async () => {
    const client = newClient();
    expect(await statuses(LIMIT + 1, () => snippets(client, customerScope, LOAD_TEST_TOKEN))).toEqual([200, 200, 200, 429]);
    // The same client, over its limit, still runs its load test.
    expect(await snippets(client, loadTestScope, LOAD_TEST_TOKEN)).toBe(200);
  });

  it('treats a wrong token exactly like no token (no oracle): limited, with the same answer', async () => {
    const client = newClient();
    for (const wrong of ['', 'x', LOAD_TEST_TOKEN.slice(0, -1), `${LOAD_TEST_TOKEN}0`, LOAD_TEST_TOKEN.toUpperCase()]) {
      await snippets(client, loadTestScope, wrong);
    }
    const wrong = await h.request('POST', '/api/memory/snippets', { scopeId: loadTestScope }, { 'x-forwarded-for': client, 'x-load-test-token': 'wrong-token-0123456789abcdef' });
    const none = await h.request('POST', '/api/memory/snippets', { scopeId: loadTestScope }, { 'x-forwarded-for': client });
    expect([wrong.status, none.status]).toEqual([429, 429]);
    expect(wrong.text).toBe(none.text);
    expect(await snippets(client, loadTestScope, LOAD_TEST_TOKEN)).toBe(200);
  });

  it('exempts nothing without a load-test scope in the body: body-less routes and malformed bodies are limited', async () => {
    const client = newClient();
    const headers = { 'x-forwarded-for': client, 'x-load-test-token': LOAD_TEST_TOKEN };
    // Under the limit a malformed body is answered as usual; it still counts.
    const malformed = await h.request('POST', '/api/memory/snippets', '{"scopeId": ', headers);
    expect([malformed.status, malformed.body.error]).toEqual([400, 'Malformed JSON body']);
    const seen: number[] = [];
    for (let i = 1; i < LIMIT; i++) seen.push((await h.request('GET', '/api/memory/health', undefined, headers)).status);
    expect(seen).toEqual([200, 200]);
    expect((await h.request('GET', '/api/memory/health', undefined, headers)).status).toBe(429);
    expect((await h.request('POST', '/api/memory/snippets', '{"scopeId": "scope:loadtest-01', headers)).status).toBe(429);
    expect(await snippets(client, loadTestScope, LOAD_TEST_TOKEN)).toBe(200);
  });
});

describe('the load-test token is a credential of this service', () => {
  it('is refused inside a learning write, to a load-test scope too', async () => {
    const client = newClient();
    const res = await h.request(
      'POST',
      '/api/memory/patterns',
      { scopeId: loadTestScope, patterns: [`the load token is ${LOAD_TEST_TOKEN}`] },
      { 'x-forwarded-for': client, 'x-load-test-token': LOAD_TEST_TOKEN },
    );
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/credential of this service/);
    expect(res.text).not.toContain(LOAD_TEST_TOKEN);
  });

  it('joins learningForbiddenSecrets and configSecrets, and is scrubbed from every log line', () => {
    const config = loadConfig({ LOAD_TEST_TOKEN });
    expect(learningForbiddenSecrets(config)).toEqual([LOAD_TEST_TOKEN]);
    expect(configSecrets(config)).toContain(LOAD_TEST_TOKEN);
    const logs = new LogCapture();
    const logger = createServiceLogger({ level: 'info', secrets: configSecrets(config), destination: logs });
    logger.memoryError.warn(`header was ${LOAD_TEST_TOKEN}`, { sent: LOAD_TEST_TOKEN });
    logger.flush();
    expect(logs.text()).not.toContain(LOAD_TEST_TOKEN);
    expect(logs.text()).toContain(REDACTED);
    // Nothing the service logged while these tests sent the token in headers and bodies carries it either.
    expect(h.logs.raw.length).toBeGreaterThan(0);
    expect(h.logs.text()).not.toContain(LOAD_TEST_TOKEN);
  });

  it('must be long enough, and a config error never echoes it', () => {
    let error: unknown;
    try {
      loadConfig({ LOAD_TEST_TOKEN: 'short-tok' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe('LOAD_TEST_TOKEN');
    expect((error as Error).message).not.toContain('short-tok');
  });
});
