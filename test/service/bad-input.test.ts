/**
 * Bad input always gets a 4xx JSON error, never a 5xx or a crash: malformed JSON, wrong types, unknown
 * fields, oversized bodies, wrong content types, and a fast-check fuzz of every endpoint's body.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorResponseSchema } from '../../service/contracts/http';
import { BODY_LIMIT_BYTES } from '../../service/http/app';
import { TEST_ADMIN_TOKEN, scope, startHarness, type Harness } from './support/harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ emulator: {}, env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN } });
});
afterAll(async () => {
  await h?.close();
});

const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
const POST_ROUTES = ['/api/memory/snippets', '/api/memory/patterns', '/api/admin/sync-context7'];

describe('bad input gets a clear 4xx', () => {
  it.each([
    ['malformed JSON', '{"scopeId":', 400],
    ['a JSON string, not an object', '"scope:a:b:0123456789abcdef"', 400],
    ['null', 'null', 400],
    ['an array', '[]', 400],
  ])('%s', async (_name, body, status) => {
    for (const route of POST_ROUTES) {
      // Each route with its own credential (the caller key is the harness default on /api/memory/*).
      const res = await h.request('POST', route, body, route.startsWith('/api/admin/') ? admin : {});
      expect(res.status).toBe(status);
      errorResponseSchema.parse(res.body);
    }
  });

  it('wrong types and unknown fields (strict schemas)', async () => {
    const scopeId = scope();
    const cases: [string, unknown][] = [
      ['/api/memory/snippets', { scopeId, limit: 0 }],
      ['/api/memory/snippets', { scopeId, limit: 51 }],
      ['/api/memory/snippets', { scopeId, limit: 2.5 }],
      ['/api/memory/snippets', { scopeId, query: { $ne: '' } }],
      ['/api/memory/snippets', { scopeId, extra: true }],
      ['/api/memory/patterns', { scopeId, patterns: [] }],
      ['/api/memory/patterns', { scopeId, patterns: [''] }],
      ['/api/memory/patterns', { scopeId, patterns: [{ content: 'x', unknown: 1 }] }],
      ['/api/memory/patterns', { scopeId, patterns: [{ content: 'x', expiresAt: 'tomorrow' }] }],
      ['/api/memory/patterns', { scopeId, patterns: Array.from({ length: 101 }, (_, i) => `p${i}`) }],
      ['/api/memory/patterns', { scopeId, patterns: 'not-an-array' }],
    ];
    for (const [route, body] of cases) {
      const res = await h.request('POST', route, body);
      expect(res.status, `${route} ${JSON.stringify(body)}`).toBe(400);
      expect(res.body.error).toBe('Invalid request body');
      expect(Array.isArray(res.body.details)).toBe(true);
    }
  });

  it('values a store cannot keep get 400, not a 500 (PostgreSQL refuses NUL, lone surrogates and year 0)', async () => {
    const scopeId = scope();
    const depth = 20_000;
    const deep = `${'['.repeat(depth)}${']'.repeat(depth)}`;
    const cases: [string, string, string][] = [
      ['/api/memory/patterns', `{"scopeId":"${scopeId}","patterns":[{"content":"x","metadata":{"a":${deep}}}]}`, 'patterns.0.metadata.a.0.0'],
      ['/api/memory/patterns', JSON.stringify({ scopeId, patterns: ['ok', 'a\u0000b'] }), 'patterns.1'],
      ['/api/memory/patterns', JSON.stringify({ scopeId, patterns: [{ content: 'lone \ud800 surrogate' }] }), 'patterns.0.content'],
      ['/api/memory/patterns', JSON.stringify({ scopeId, patterns: [{ content: 'x', metadata: { note: 'nul\u0000' } }] }), 'patterns.0.metadata.note'],
      ['/api/memory/patterns', JSON.stringify({ scopeId, patterns: [{ content: 'x', metadata: { 'k\u0000': 1 } }] }), 'patterns.0.metadata'],
      ['/api/memory/patterns', JSON.stringify({ scopeId, patterns: [{ content: 'x', expiresAt: '0000-01-01T00:00:00Z' }] }), 'patterns.0.expiresAt'],
      ['/api/memory/snippets', JSON.stringify({ scopeId, query: 'a\u0000' }), 'query'],
    ];
    for (const [route, body, path] of cases) {
      const res = await h.request('POST', route, body);
      expect(res.status, `${route} ${body.slice(0, 120)}`).toBe(400);
      expect(res.body.error).toBe('Invalid request body');
      const paths: string[] = res.body.details.map((d: { path: string }) => d.path);
      expect(paths.some((p) => p === path || p.startsWith(`${path}.`)), paths.join(' ')).toBe(true);
    }
    // Well-formed astral characters (paired surrogates) and shallow metadata are fine.
    const ok = await h.request('POST', '/api/memory/patterns', { scopeId, patterns: [{ content: 'emoji 🚀', metadata: { a: [[{ b: 1 }]] }, expiresAt: '9999-12-31T00:00:00Z' }] });
    expect(ok.status).toBe(200);
  });

  it("a snippet read's query text checks answer as they always did, alone or beside the contract's own issues", async () => {
    const scopeId = scope();
    const nul = 'must not contain NUL (\\u0000) characters';
    const cases: [unknown, { path: string; message: string }[]][] = [
      [{ scopeId, query: 'a\u0000' }, [{ path: 'query', message: nul }]],
      [{ scopeId, query: 'lone \ud800' }, [{ path: 'query', message: 'must be well-formed Unicode (no unpaired surrogates)' }]],
      // zod runs the text check beside these issues: the read's faster path must keep listing both.
      [{ scopeId, query: 'a\u0000', limit: 0 }, [{ path: 'limit', message: 'Too small: expected number to be >=1' }, { path: 'query', message: nul }]],
      [{ scopeId, query: 'a\u0000', extra: 1 }, [{ path: '', message: 'Unrecognized key(s): "extra"' }, { path: 'query', message: nul }]],
    ];
    for (const [body, details] of cases) {
      const res = await h.request('POST', '/api/memory/snippets', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body).toEqual({ error: 'Invalid request body', details });
    }
  });

  it('bodies over the limit get 413', async () => {
    const res = await h.request('POST', '/api/memory/patterns', { scopeId: scope(), patterns: ['x'.repeat(BODY_LIMIT_BYTES)] });
    expect(res.status).toBe(413);
    errorResponseSchema.parse(res.body);
  });

  it('non-JSON content types get 415; a missing body on the admin route is accepted as {}', async () => {
    for (const type of ['text/plain', 'multipart/form-data; boundary=x', 'application/xml']) {
      const res = await h.request('POST', '/api/memory/snippets', JSON.stringify({ scopeId: scope() }), { 'content-type': type });
      expect(res.status).toBe(415);
    }
    const res = await fetch(`${h.url}/api/admin/sync-context7`, { method: 'POST', headers: admin });
    expect(res.status).toBe(202);
    await h.service.backfill!.current();
  });

  it('unknown routes get a JSON 404', async () => {
    const res = await h.request('GET', '/api/nope');
    expect(res.status).toBe(404);
    errorResponseSchema.parse(res.body);
  });
});

describe('fuzz: no body ever yields a 5xx', () => {
  const json = fc.jsonValue({ maxDepth: 3 });
  const scopeish = fc.oneof(fc.constant(scope()), fc.string({ maxLength: 80 }), fc.constant('scope:a:b:0123456789abcdef'));
  const bodies = fc.oneof(
    json,
    fc.record({ scopeId: scopeish, query: fc.oneof(fc.string({ maxLength: 300 }), json), limit: fc.oneof(fc.integer(), fc.double(), json) }, { requiredKeys: [] }),
    fc.record({ scopeId: scopeish, patterns: fc.oneof(fc.array(fc.oneof(fc.string({ maxLength: 50 }), fc.record({ content: fc.string({ maxLength: 50 }), metadata: json, expiresAt: fc.oneof(fc.string(), fc.date({ noInvalidDate: true }).map((d) => d.toISOString())) }, { requiredKeys: [] })), { maxLength: 5 }), json) }, { requiredKeys: [] }),
  );
  it.each(POST_ROUTES)('%s', async (route) => {
    await fc.assert(
      fc.asyncProperty(bodies, async (body) => {
        const res = await h.request('POST', route, body, admin);
        expect(res.status).toBeLessThan(500);
        expect(res.body).toBeTypeOf('object');
      }),
      { numRuns: 120, seed: 2026 },
    );
    // An admin route that started a sync leaves it to finish before the next case.
    await h.service.backfill!.current();
  });

  it('raw bytes that are not JSON at all', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 200 }), async (text) => {
        const res = await h.request('POST', '/api/memory/snippets', text);
        expect(res.status).toBeLessThan(500);
      }),
      { numRuns: 80, seed: 99 },
    );
  });
});
