/**
 * k6 cannot import the service's modules, so the load generators keep their own copies of what the service's
 * load-test exemption reads: the header and the scope prefix. These must stay equal, or a load test is limited.
 */
import { describe, expect, it } from 'vitest';
import { LOAD_TEST_LOCATION_PREFIX as LOAD_PREFIX } from '../../load/lib/scope';
import { requestHeaders } from '../../load/lib/credentials';
import { LOAD_TEST_TOKEN_HEADER as LOAD_HEADER } from '../../load/lib/traffic-mix';
import { isLoadTestScopeId, LOAD_TEST_LOCATION_PREFIX as SERVICE_PREFIX } from '../../service/domain/scope-id';
import { LOAD_TEST_TOKEN_HEADER as SERVICE_HEADER } from '../../service/fleet/rate-limit';

describe('what the load generators and the service agree on', () => {
  it('the header the token travels in (HTTP header names are case-insensitive; Node lowercases them)', () => {
    expect(LOAD_HEADER.toLowerCase()).toBe(SERVICE_HEADER);
  });

  it('the location prefix of load-test scopes', () => {
    expect(LOAD_PREFIX).toBe(SERVICE_PREFIX);
    expect(isLoadTestScopeId(`scope:${LOAD_PREFIX}01:agent-1:0123456789abcdef`)).toBe(true);
    expect(isLoadTestScopeId('scope:acme-01:agent-1:0123456789abcdef')).toBe(false);
    expect(isLoadTestScopeId(`scope:${LOAD_PREFIX}01:agent-1:not-a-hash`)).toBe(false);
  });

  it('requestHeaders: JSON for a body, the token only when given', () => {
    const read = { endpoint: 'snippets', method: 'POST', path: '/api/memory/snippets', body: '{}' } as const;
    const poll = { endpoint: 'health', method: 'GET', path: '/api/memory/health' } as const;
    expect(requestHeaders(read)).toEqual({ 'Content-Type': 'application/json' });
    expect(requestHeaders(poll, { loadTestToken: 'tok-0123456789ab' })).toEqual({ 'X-Load-Test-Token': 'tok-0123456789ab' });
    expect(requestHeaders(poll, { loadTestToken: '' })).toEqual({});
  });
});
