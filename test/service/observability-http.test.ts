/**
 * GET /observability over plain HTTP: a public HTML page with strict security headers and nothing secret in it.
 * (The page's behaviour in a browser is tested in observability-browser.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_ADMIN_TOKEN, TEST_API_KEY, startHarness, type Harness } from './support/harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ emulator: {}, env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN } });
});
afterAll(async () => {
  await h?.close();
});

function cspDirectives(header: string | null): Map<string, string> {
  const directives = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const [name, ...values] = part.trim().split(/\s+/);
    if (name) directives.set(name, values.join(' '));
  }
  return directives;
}

describe('GET /observability', () => {
  it('is HTML under a strict CSP whose nonce covers exactly the inline style and script', async () => {
    const res = await h.request('GET', '/observability');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('cache-control')).toBe('no-store');

    const csp = res.headers.get('content-security-policy');
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    const directives = cspDirectives(csp);
    expect(directives.get('default-src')).toBe("'none'");
    expect(directives.get('connect-src')).toBe("'self'");
    expect(directives.get('frame-ancestors')).toBe("'none'");
    expect(directives.get('base-uri')).toBe("'none'");
    expect(directives.get('form-action')).toBe("'none'");
    const nonce = /^'nonce-([A-Za-z0-9+/=]{24})'$/.exec(directives.get('script-src') ?? '')?.[1];
    expect(nonce, `script-src should be a single nonce, got ${directives.get('script-src')}`).toBeDefined();
    expect(directives.get('style-src')).toBe(`'nonce-${nonce}'`);

    // Every inline block carries the nonce, and nothing is loaded from elsewhere.
    const html = res.text;
    expect(html.match(/<script\b[^>]*>/g)).toEqual([`<script nonce="${nonce}">`]);
    expect(html.match(/<style\b[^>]*>/g)).toEqual([`<style nonce="${nonce}">`]);
    expect(html).not.toMatch(/\b(src|href)=/);
    expect(html).not.toMatch(/\sstyle=|\son[a-z]+=/i);
    // The SVG namespace is a name, not a fetch.
    expect(html.replaceAll('http://www.w3.org/2000/svg', '')).not.toMatch(/https?:\/\//);
  });

  it('uses a fresh nonce per response', async () => {
    const nonces = await Promise.all([1, 2, 3].map(async () => {
      const res = await h.request('GET', '/observability');
      return /'nonce-([^']+)'/.exec(res.headers.get('content-security-policy') ?? '')?.[1];
    }));
    expect(new Set(nonces).size).toBe(3);
  });

  it('contains no secret: neither the Context7 API key nor the admin token', async () => {
    const res = await h.request('GET', '/observability');
    expect(res.text).not.toContain(TEST_API_KEY);
    expect(res.text).not.toContain(TEST_ADMIN_TOKEN);
    expect(res.text).not.toContain(h.emulator!.url);
    expect(res.text).not.toContain(h.dataDir);
  });

  it('is served while the API still answers, with the endpoints it reads all public', async () => {
    for (const route of ['/api/config', '/api/memory/health', '/api/metrics/memory', '/metrics']) {
      expect((await h.request('GET', route)).status, route).toBe(200);
    }
    expect((await h.request('GET', '/metrics')).text).toMatch(/^memory_outbox_depth \d+$/m);
    expect((await h.request('GET', '/api/admin/sync-context7/status')).status).toBe(401);
    expect((await h.request('HEAD', '/observability')).status).toBe(200);
  });
});
