/**
 * Hostile input that used to reach a 500 or be stored differently from what was sent: objects posing as a
 * scope id (their own toString/valueOf), a duplicated key, query strings that parse to arrays or objects, and
 * metadata with keys JavaScript treats specially or numbers no float can hold.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_ADMIN_TOKEN, scope, startHarness, type Harness } from './support/harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN, ENABLE_CONTEXT7_MEMORY: 'true' } });
});
afterAll(async () => {
  await h?.close();
});

const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

async function exported(scopeId: string): Promise<{ content: string; metadata: unknown }[]> {
  const res = await h.request('GET', `/api/admin/export?scopeId=${encodeURIComponent(scopeId)}`, undefined, admin);
  expect(res.status).toBe(200);
  return res.body.patterns;
}

describe('a scope id is type-checked before anything coerces it', () => {
  const valid = scope('hostile', 'a', 'p');
  it.each([
    ['an object with a non-callable toString', '{"scopeId":{"toString":1}}'],
    ['an object with valueOf and toString', '{"scopeId":{"valueOf":1,"toString":1}}'],
    ['a duplicated key whose last value is such an object', `{"scopeId":"${valid}","scopeId":{"toString":1}}`],
    ['an object with a __proto__ key', '{"scopeId":{"__proto__":{"toString":1}}}'],
  ])('%s: 400 Invalid scopeId format, never a 500', async (_name, json) => {
    for (const [route, extra] of [['/api/memory/snippets', ''], ['/api/memory/patterns', ',"patterns":["x"]']] as const) {
      const body = `${json.slice(0, -1)}${extra}}`;
      const res = await h.request('POST', route, body);
      expect(res.status, `${route} ${body}`).toBe(400);
      expect(res.body).toEqual({ error: 'Invalid scopeId format: an object' });
    }
  });

  it('arrays and other types are named by type', async () => {
    const res = await h.request('POST', '/api/memory/snippets', { scopeId: [valid] });
    expect(res.body).toEqual({ error: 'Invalid scopeId format: an array' });
  });

  it('export: a repeated, bracketed or missing scopeId query parameter is a 400, never a 500', async () => {
    const id = encodeURIComponent(valid);
    for (const query of [`scopeId=${id}&scopeId=${id}`, 'scopeId[toString]=1', `scopeId[]=${id}`, 'scopeId[a][b]=1', '', 'scopeId=', 'scopeId=%E0%A4%A']) {
      const res = await h.request('GET', `/api/admin/export?${query}`, undefined, admin);
      expect(res.status, query).toBe(400);
      expect(res.body.error, query).toMatch(/^Invalid scopeId format: /);
    }
  });
});

describe('metadata is stored exactly as sent, or refused with a 400 naming the key', () => {
  it('keys named after Object.prototype members are plain data: stored and read back exactly', async () => {
    const scopeId = scope('hostile', 'proto-ok', 'p');
    const json = '{"constructor":{"prototype":{"x":1}},"prototype":2,"toString":"s","hasOwnProperty":null,"valueOf":[1],"nested":{"constructor":{"name":"Object"}}}';
    const body = `{"scopeId":"${scopeId}","patterns":[{"content":"c","metadata":${json}}]}`;
    const res = await h.request('POST', '/api/memory/patterns', body);
    expect(res.status, res.text).toBe(200);
    const [stored] = await exported(scopeId);
    expect(JSON.stringify(stored.metadata)).toBe(json);
  });

  it.each([
    ['at the top level', '{"__proto__":{"admin":true},"constructor":{"x":1}}', 'patterns.1.metadata'],
    ['nested', '{"a":{"b":{"__proto__":{"polluted":true}}}}', 'patterns.1.metadata.a.b'],
    ['inside an array', '{"a":[{"__proto__":null}]}', 'patterns.1.metadata.a.0'],
  ])('an own __proto__ key %s is refused, naming it, and nothing is stored', async (_name, json, path) => {
    const scopeId = scope('hostile', 'proto', json);
    const body = `{"scopeId":"${scopeId}","patterns":["kept?",{"content":"c","metadata":${json}}]}`;
    const res = await h.request('POST', '/api/memory/patterns', body);
    expect(res.status, res.text).toBe(400);
    expect(res.body.details).toContainEqual({ path, message: expect.stringContaining('key "__proto__" is not allowed') });
    expect(await exported(scopeId)).toEqual([]);
    expect(({} as { polluted?: unknown; admin?: unknown }).polluted).toBeUndefined();
  });

  it('a __proto__ key beside the pattern fields or the request fields is an unknown field (400)', async () => {
    const scopeId = scope('hostile', 'proto-field', 'p');
    for (const body of [
      `{"scopeId":"${scopeId}","patterns":[{"content":"c","__proto__":{"metadata":{"a":1}}}]}`,
      `{"scopeId":"${scopeId}","patterns":["c"],"__proto__":{"x":1}}`,
    ]) {
      const res = await h.request('POST', '/api/memory/patterns', body);
      expect(res.status, body).toBe(400);
    }
    expect(await exported(scopeId)).toEqual([]);
  });

  it('a number no 64-bit float can hold (it would be stored as null) is refused', async () => {
    const scopeId = scope('hostile', 'huge', 'p');
    const res = await h.request('POST', '/api/memory/patterns', `{"scopeId":"${scopeId}","patterns":[{"content":"c","metadata":{"n":1e400,"m":-1e999}}]}`);
    expect(res.status).toBe(400);
    expect(res.body.details).toContainEqual({ path: 'patterns.0.metadata.n', message: expect.stringContaining('finite') });
    // The largest finite double and the smallest subnormal are kept exactly.
    const ok = await h.request('POST', '/api/memory/patterns', { scopeId, patterns: [{ content: 'c', metadata: { max: Number.MAX_VALUE, min: Number.MIN_VALUE } }] });
    expect(ok.status).toBe(200);
    expect((await exported(scopeId))[0].metadata).toEqual({ max: Number.MAX_VALUE, min: Number.MIN_VALUE });
  });
});
