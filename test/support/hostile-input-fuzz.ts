/**
 * A property-based attack on every route of a running memory service, shared by the SQLite and PostgreSQL runs.
 * Bodies are built as JSON *text*, so they can hold what a JS object cannot: duplicated keys, own `__proto__`
 * keys, numbers beyond a double (1e400), lone surrogates, nesting thousands deep. For every request it asserts:
 * no 5xx, an answer within a per-request budget, a JSON error body for every 4xx, no credential in any answer
 * (credentials are planted in content, metadata keys and values, queries) and no memory request carrying one
 * accepted, nothing from another scope in a read or an export, and that an accepted write reads back (via the
 * admin export) exactly as the service parsed it. Memory requests carry a caller credential (valid, wrong,
 * malformed, missing, or a key restricted to one tenant's location): only a valid one is ever answered 200, the
 * restricted key only inside its location, and every refusal outside it is the same 403 body.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import { generateScopeIdSync } from '../../service/domain/scope-id';
import { patternId, sha256Hex } from '../../service/domain/patterns';

export interface FuzzTarget {
  url: string;
  adminToken: string;
  /** A caller key for every location (MEMORY_API_KEYS). */
  callerKey: string;
  /** A caller key restricted to TENANT_LOCATION. */
  restrictedCallerKey: string;
  /** Values no answer may ever contain. */
  credentials: readonly string[];
  /** Waits out background work a request may have started (a backfill) before the run ends. */
  settle?: () => Promise<void>;
}

/** Every request must be answered within this, on a busy 2-core machine; a hang fails the property. */
export const REQUEST_BUDGET_MS = 5_000;

interface FuzzRequest {
  method: string;
  route: string;
  /** JSON text (or not JSON at all); `$SCOPE$` stands for a scope id fresh to this request. */
  body?: string;
  headers: Record<string, string>;
}

interface Answer {
  status: number;
  text: string;
  json: any;
  contentType: string;
}

const FRESH = '$SCOPE$';
/** A scope id fresh to this request in the restricted key's location. */
const TENANT_FRESH = '$TENANT_SCOPE$';
/** The one location the restricted caller key may reach (configure it so: `fuzz-tenant:<key>:fuzz-tenant`). */
export const TENANT_LOCATION = 'fuzz-tenant';
/** Stands for one of the target's credentials, anywhere a string can go (content, metadata keys and values, queries). */
const CREDENTIAL = '$CREDENTIAL$';
const SEEDED_SCOPES = [0, 1, 2].map((n) => generateScopeIdSync({ locationId: 'fuzz', agentId: `seeded-${n}`, promptText: 'hostile input' }));
const SHARED_CONTENT = 'shared memory text';

// ---------------------------------------------------------------------------------------------------- JSON text

const PROTOTYPE_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__'];
const FIELD_KEYS = ['scopeId', 'patterns', 'content', 'metadata', 'query', 'limit', 'expiresAt', '', CREDENTIAL];

const oddText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 24 }),
  fc.string({ unit: 'grapheme', maxLength: 24 }),
  fc.constantFrom('\u0000', 'a\ud800b', '\udc00', '\u2028\u2029', '🚀', 'e\u0301', '\ufeff', '[REDACTED]', '\\', '"', '%00', '${x}', '<script>', SHARED_CONTENT, 'x'.repeat(10_001), CREDENTIAL, `said ${CREDENTIAL} once`),
);
const plainText = fc.string({ minLength: 1, maxLength: 40 });
const stringText = fc.oneof({ weight: 4, arbitrary: plainText }, { weight: 1, arbitrary: oddText }).map((text) => JSON.stringify(text));
const numberText = fc.oneof(
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
  fc.constantFrom('1e400', '-1e400', '1e308', '-0', '0e0', '5e-324', '1.7976931348623157e308', '123456789012345678901234567890', '0.1'),
);
const keyText = fc
  .oneof(
    { weight: 4, arbitrary: fc.string({ maxLength: 10 }) },
    { weight: 1, arbitrary: fc.constantFrom(...PROTOTYPE_KEYS) },
    { weight: 1, arbitrary: fc.constantFrom(...FIELD_KEYS) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 10 }) },
  )
  .map((key) => JSON.stringify(key));
const primitiveText = fc.oneof(stringText, numberText, fc.constantFrom('true', 'false', 'null'));

function objectText(entries: [string, string][]): string {
  return `{${entries.map(([key, value]) => `${key}:${value}`).join(',')}}`;
}

/** Any JSON value as text, with prototype-ish and duplicated keys. */
const jsonTexts = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', maxDepth: 4 }, primitiveText, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }).map((items) => `[${(items as string[]).join(',')}]`),
  object: fc.array(fc.tuple(keyText, tie('value')), { maxLength: 5 }).map((entries) => objectText(entries as [string, string][])),
}));
const anyJsonText = jsonTexts.value as fc.Arbitrary<string>;
const anyObjectText = jsonTexts.object as fc.Arbitrary<string>;

/** Nesting far past what the service keeps (16 levels of metadata) and what a recursive walker survives. */
const deepText = fc.tuple(fc.integer({ min: 15, max: 5_000 }), fc.boolean()).map(([depth, arrays]) =>
  arrays ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`,
);

/** `"scopeId":...` (or nothing): fresh, one of the seeded scopes, a duplicated key, or anything at all. */
const scopeField = fc.oneof(
  { weight: 6, arbitrary: fc.constant(`"scopeId":"${FRESH}"`) },
  { weight: 4, arbitrary: fc.constant(`"scopeId":"${TENANT_FRESH}"`) },
  { weight: 2, arbitrary: fc.constantFrom(...SEEDED_SCOPES).map((id) => `"scopeId":${JSON.stringify(id)}`) },
  { weight: 2, arbitrary: fc.constantFrom('{"toString":1}', '{"valueOf":1,"toString":1}', '{"__proto__":{"toString":1}}', '[]', '""').map((v) => `"scopeId":${v}`) },
  { weight: 1, arbitrary: fc.constant(`"scopeId":"${FRESH}","scopeId":{"toString":1}`) },
  { weight: 1, arbitrary: fc.constant(`"scopeId":{"toString":1},"scopeId":"${FRESH}"`) },
  { weight: 2, arbitrary: anyJsonText.map((v) => `"scopeId":${v}`) },
  { weight: 1, arbitrary: fc.constant('') },
);

function withFields(...fields: (string | null)[]): string {
  return `{${fields.filter((field): field is string => field !== null && field !== '').join(',')}}`;
}
const optional = (arbitrary: fc.Arbitrary<string>) => fc.option(arbitrary, { nil: null, freq: 2 });
/** Present one time in eight: an unknown field makes the whole request a 400, so most requests go without. */
const rarely = <T>(arbitrary: fc.Arbitrary<T>): fc.Arbitrary<T | null> =>
  fc.oneof({ weight: 7, arbitrary: fc.constant(null) }, { weight: 1, arbitrary });

/** Metadata the service should keep: prototype-named keys (not __proto__), unicode, doubles at their limits. */
const keepableMetadataText = fc
  .dictionary(
    fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom(...PROTOTYPE_KEYS.filter((key) => key !== '__proto__')), fc.string({ unit: 'grapheme', maxLength: 6 })),
    fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(Number.MAX_VALUE, Number.MIN_VALUE, -Number.MAX_VALUE, '🚀\u2028e\u0301', null)),
    { maxKeys: 5 },
  )
  .map((value) => JSON.stringify(value));
const metadataText = fc.oneof(
  { weight: 3, arbitrary: keepableMetadataText },
  { weight: 3, arbitrary: anyObjectText },
  { weight: 1, arbitrary: deepText },
  { weight: 1, arbitrary: anyJsonText },
);
const expiresAtText = fc.oneof(
  fc.date({ min: new Date('2000-01-01'), max: new Date('9999-12-31'), noInvalidDate: true }).map((d) => JSON.stringify(d.toISOString())),
  fc.constantFrom('"0000-01-01T00:00:00Z"', '"tomorrow"', '"2999-02-30T00:00:00Z"', '1e400'),
  anyJsonText,
);
const patternText = fc.oneof(
  { weight: 3, arbitrary: stringText },
  {
    weight: 5,
    arbitrary: fc
      .tuple(stringText, fc.option(metadataText, { nil: null, freq: 4 }), rarely(expiresAtText), rarely(fc.tuple(keyText, anyJsonText)))
      .map(([content, metadata, expiresAt, extra]) =>
        withFields(`"content":${content}`, metadata && `"metadata":${metadata}`, expiresAt && `"expiresAt":${expiresAt}`, extra && `${extra[0]}:${extra[1]}`),
      ),
  },
  { weight: 1, arbitrary: anyJsonText },
);
const patternsBody = fc
  .tuple(scopeField, fc.oneof({ weight: 5, arbitrary: fc.array(patternText, { minLength: 1, maxLength: 3 }).map((items) => `[${items.join(',')}]`) }, { weight: 1, arbitrary: anyJsonText }), rarely(fc.tuple(keyText, anyJsonText)))
  .map(([scope, patterns, extra]) => withFields(scope, `"patterns":${patterns}`, extra && `${extra[0]}:${extra[1]}`));
const snippetsBody = fc
  .tuple(scopeField, optional(fc.oneof(stringText, fc.constantFrom('"shared"', '"memory"'), anyJsonText)), rarely(fc.oneof(numberText, anyJsonText)), rarely(fc.tuple(keyText, anyJsonText)))
  .map(([scope, query, limit, extra]) => withFields(scope, query && `"query":${query}`, limit && `"limit":${limit}`, extra && `${extra[0]}:${extra[1]}`));
const notJson = fc.oneof(fc.string({ unit: 'binary', maxLength: 60 }), fc.constantFrom('{"scopeId":', '{"a":1}}', '\u0000', 'scopeId=x&patterns=y'));

// ---------------------------------------------------------------------------------------------------- requests

/** Every UTF-8 byte percent-encoded (encodeURIComponent throws on a lone surrogate; Buffer makes it U+FFFD). */
function percentEncodeBytes(text: string): string {
  return [...Buffer.from(text, 'utf8')].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');
}

const queryPart = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...SEEDED_SCOPES).map((id) => `scopeId=${encodeURIComponent(id)}`) },
  { weight: 2, arbitrary: fc.constantFrom('scopeId[]=x', 'scopeId[toString]=1', 'scopeId[__proto__][a]=1', '__proto__[scopeId]=x', 'scopeId=%E0%A4%A', 'scopeId=', 'scopeId', '&&', '=', '%', 'scopeId=%00') },
  { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom(...'abcs:_-[]%=.0123456789'.split('')), maxLength: 20 }) },
  { weight: 2, arbitrary: oddText.map((text) => `scopeId=${percentEncodeBytes(text.slice(0, 100))}`) },
  // A request line past Node's header limit: answered 431 by the HTTP parser, before the app sees it.
  { weight: 1, arbitrary: fc.constant(`scopeId=${'x'.repeat(20_000)}`) },
);
const queryString = fc.array(queryPart, { maxLength: 3 }).map((parts) => (parts.length === 0 ? '' : `?${parts.join('&')}`));

type Auth = 'none' | 'right' | 'wrong' | 'malformed';
const auth = fc.constantFrom<Auth>('none', 'right', 'wrong', 'malformed');
/** The caller credential of a memory request; mostly valid, so the rest of the property still gets exercised. */
type CallerAuth = 'valid' | 'restricted' | 'wrong' | 'malformed' | 'missing' | 'admin-token';
const callerAuth = fc.oneof(
  { weight: 24, arbitrary: fc.constant<CallerAuth>('valid') },
  { weight: 4, arbitrary: fc.constant<CallerAuth>('restricted') },
  { weight: 1, arbitrary: fc.constantFrom<CallerAuth>('wrong', 'malformed', 'missing', 'admin-token') },
);
const contentType = fc.oneof(
  { weight: 8, arbitrary: fc.constant('application/json') },
  { weight: 1, arbitrary: fc.constantFrom('application/x-www-form-urlencoded', 'text/plain', 'application/json; charset=latin1', 'application/merge-patch+json') },
);

interface RequestShape {
  method: string;
  path: string;
  query: string;
  body?: string;
  auth: Auth;
  /** Memory routes only: which caller credential is sent. */
  caller?: CallerAuth;
  contentType: string;
}

const memoryPost = fc.record({
  method: fc.constant('POST'),
  path: fc.constantFrom('/api/memory/snippets', '/api/memory/patterns'),
  query: fc.constant(''),
  auth: fc.constant<Auth>('none'),
  caller: callerAuth,
  contentType,
});
const requestShape: fc.Arbitrary<RequestShape> = fc.oneof(
  { weight: 10, arbitrary: fc.tuple(memoryPost, patternsBody).map(([r, body]) => ({ ...r, path: '/api/memory/patterns', body })) },
  { weight: 5, arbitrary: fc.tuple(memoryPost, snippetsBody).map(([r, body]) => ({ ...r, path: '/api/memory/snippets', body })) },
  { weight: 2, arbitrary: fc.tuple(memoryPost, fc.oneof(anyJsonText, deepText, notJson)).map(([r, body]) => ({ ...r, body })) },
  {
    weight: 3,
    arbitrary: fc.record({
      method: fc.constant('GET'),
      path: fc.constant('/api/admin/export'),
      query: fc.oneof(queryString, fc.constant(`?scopeId=${FRESH}`)),
      auth,
      contentType: fc.constant('application/json'),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      method: fc.constant('POST'),
      path: fc.constant('/api/admin/sync-context7'),
      query: queryString,
      body: fc.oneof(fc.constant('{}'), anyJsonText, notJson),
      auth,
      contentType,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      method: fc.constantFrom('GET', 'HEAD'),
      path: fc.constantFrom('/healthz', '/readyz', '/api/config', '/api/memory/health', '/api/metrics/memory', '/metrics', '/api/admin/sync-context7/status'),
      query: queryString,
      auth,
      contentType: fc.constant('application/json'),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      method: fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
      path: fc.constantFrom('/api/memory/snippets', '/api/memory/patterns', '/api/admin/export', '/api/nope', '/api/memory/__proto__', '/api/%E0%A4%A', '/api/admin/constructor'),
      query: queryString,
      body: fc.option(anyJsonText, { nil: undefined }),
      auth,
      contentType,
    }),
  },
);

// ---------------------------------------------------------------------------------------------------- the property

function callerAuthorization(kind: CallerAuth | undefined, target: FuzzTarget): Record<string, string> {
  switch (kind) {
    case 'valid':
      return { authorization: `Bearer ${target.callerKey}` };
    case 'restricted':
      return { authorization: `Bearer ${target.restrictedCallerKey}` };
    case 'wrong':
      return { authorization: 'Bearer not-a-memory-api-key-000000000' };
    case 'malformed':
      return { authorization: `Basic ${target.callerKey}` };
    case 'admin-token':
      return { authorization: `Bearer ${target.adminToken}` };
    default:
      return {};
  }
}

function authorization(kind: Auth, token: string): Record<string, string> {
  switch (kind) {
    case 'right':
      return { authorization: `Bearer ${token}` };
    case 'wrong':
      return { authorization: 'Bearer not-the-admin-token-0000' };
    case 'malformed':
      return { authorization: `Basic ${token}` };
    default:
      return {};
  }
}

async function send(target: FuzzTarget, request: FuzzRequest): Promise<Answer> {
  const started = Date.now();
  const response = await fetch(`${target.url}${request.route}`, {
    method: request.method,
    headers: request.headers,
    body: request.body,
    signal: AbortSignal.timeout(REQUEST_BUDGET_MS),
  });
  const text = await response.text();
  expect(Date.now() - started, `${request.method} ${request.route} took too long`).toBeLessThan(REQUEST_BUDGET_MS);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, text, json, contentType: response.headers.get('content-type') ?? '' };
}

/** JSON with keys sorted, so two values compare equal however a store ordered their keys (jsonb sorts them). */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]))
      : v,
  );
}

async function exportScope(target: FuzzTarget, scopeId: string): Promise<{ scopeId: string; content: string; metadata: unknown }[]> {
  const answer = await send(target, { method: 'GET', route: `/api/admin/export?scopeId=${encodeURIComponent(scopeId)}`, headers: authorization('right', target.adminToken) });
  expect(answer.status, answer.text).toBe(200);
  return answer.json.patterns;
}

/** A write the service accepted reads back as exactly what it parsed: first of each content, metadata as sent. */
async function expectReadsBack(target: FuzzTarget, scopeId: string, parsed: { patterns: unknown[] }): Promise<void> {
  const firsts = new Map<string, unknown>();
  for (const input of parsed.patterns) {
    const { content, metadata } = typeof input === 'string' ? { content: input, metadata: undefined } : (input as { content: string; metadata?: unknown });
    if (!firsts.has(content)) firsts.set(content, metadata ?? null);
  }
  const stored = await exportScope(target, scopeId);
  expect(stored.every((pattern) => pattern.scopeId === scopeId)).toBe(true);
  const readBack = new Map(stored.map((pattern) => [pattern.content, canonical(pattern.metadata)]));
  expect([...readBack.keys()].sort()).toEqual([...firsts.keys()].sort());
  for (const [content, metadata] of firsts) expect(readBack.get(content), `metadata of ${JSON.stringify(content).slice(0, 80)}`).toBe(canonical(metadata));
}

/** Seeded scopes share one content, so a read that crossed scopes would return another scope's pattern id. */
export async function seedScopes(target: FuzzTarget): Promise<void> {
  for (const [n, scopeId] of SEEDED_SCOPES.entries()) {
    const body = JSON.stringify({ scopeId, patterns: [SHARED_CONTENT, { content: `memory of scope ${n}`, metadata: { scope: n, constructor: 'plain data' } }] });
    const answer = await send(target, { method: 'POST', route: '/api/memory/patterns', body, headers: { 'content-type': 'application/json', ...callerAuthorization('valid', target) } });
    expect(answer.status, answer.text).toBe(200);
  }
}

export interface FuzzTally {
  byStatus: Record<number, number>;
  acceptedWrites: number;
  /** accepted writes to a fresh scope, whose export was compared with what was sent */
  writesReadBack: number;
  /** of those, writes that carried metadata */
  metadataReadBack: number;
  readsWithSnippets: number;
  /** memory requests that carried a credential (every one refused) */
  credentialsRefused: number;
  /** memory requests refused 401 for a missing, wrong or malformed caller credential */
  callersUnauthenticated: number;
  /** restricted-key requests for a scope outside its location (every one 403) */
  restrictedRefused: number;
  /** restricted-key requests answered 200 (inside its location) */
  restrictedAccepted: number;
}

export async function fuzzEveryRoute(target: FuzzTarget, options: { numRuns: number; seed: number }): Promise<FuzzTally> {
  const tally: FuzzTally = {
    byStatus: {},
    acceptedWrites: 0,
    writesReadBack: 0,
    metadataReadBack: 0,
    readsWithSnippets: 0,
    credentialsRefused: 0,
    callersUnauthenticated: 0,
    restrictedRefused: 0,
    restrictedAccepted: 0,
  };
  let fresh = 0;
  await fc.assert(
    fc.asyncProperty(requestShape, async (shape) => {
      fresh += 1;
      const scopeId = generateScopeIdSync({ locationId: 'fuzz', agentId: `fresh-${options.seed}-${fresh}`, promptText: 'hostile input' });
      const tenantScopeId = generateScopeIdSync({ locationId: TENANT_LOCATION, agentId: `fresh-${options.seed}-${fresh}`, promptText: 'hostile input' });
      const credential = target.credentials[fresh % Math.max(1, target.credentials.length)] ?? 'no-credential-configured';
      const body = shape.body?.split(TENANT_FRESH).join(tenantScopeId).split(FRESH).join(scopeId).split(CREDENTIAL).join(credential);
      const request: FuzzRequest = {
        method: shape.method,
        route: `${shape.path}${shape.query.split(FRESH).join(encodeURIComponent(scopeId)).split(CREDENTIAL).join(credential)}`,
        body: shape.method === 'GET' || shape.method === 'HEAD' ? undefined : body,
        headers: {
          ...authorization(shape.auth, target.adminToken),
          ...callerAuthorization(shape.caller, target),
          ...(body === undefined ? {} : { 'content-type': shape.contentType }),
        },
      };
      const answer = await send(target, request);
      const label = `${request.method} ${request.route} ${(request.body ?? '').slice(0, 300)} -> ${answer.status} ${answer.text.slice(0, 300)}`;
      tally.byStatus[answer.status] = (tally.byStatus[answer.status] ?? 0) + 1;

      expect(answer.status, label).toBeLessThan(500);
      for (const credential of target.credentials) expect(answer.text.includes(credential), `${label}: a credential in the answer`).toBe(false);
      if (answer.status >= 400 && request.method !== 'HEAD' && answer.status !== 431) {
        expect(answer.contentType, label).toMatch(/^application\/json/);
        expect(typeof answer.json?.error, label).toBe('string');
      }
      // A memory request carrying one of the service's credentials is never accepted (stored or sent to Context7).
      if (shape.caller !== undefined) {
        // Credentials are checked before anything else: without a valid key the answer is always the same 401.
        if (shape.caller !== 'valid' && shape.caller !== 'restricted') {
          expect(answer.status, label).toBe(401);
          tally.callersUnauthenticated += 1;
          return;
        }
        const asked = (() => {
          try {
            return JSON.parse(request.body ?? '')?.scopeId as unknown;
          } catch {
            return undefined;
          }
        })();
        const askedLocation = typeof asked === 'string' ? /^scope:([^:]+):/.exec(asked)?.[1] : undefined;
        if (shape.caller === 'restricted') {
          // Never a 200 outside its location; outside it, one body whatever the scope holds (seeded ones included).
          if (answer.status === 200) {
            expect(askedLocation, `${label}: a restricted key reached another location`).toBe(TENANT_LOCATION);
            tally.restrictedAccepted += 1;
          }
          if (answer.status === 403) {
            expect(answer.json, label).toEqual({ error: 'Forbidden: this credential may not access this scope' });
            tally.restrictedRefused += 1;
          }
        }
        if (answer.status === 403) expect(shape.caller === 'restricted' && askedLocation !== TENANT_LOCATION, `${label}: an unexpected 403`).toBe(true);
      }
      if (shape.path.startsWith('/api/memory/') && target.credentials.some((c) => request.body?.includes(c))) {
        expect(answer.status, `${label}: a credential was accepted`).not.toBe(200);
        tally.credentialsRefused += 1;
      }
      if (answer.status !== 200 || request.method === 'HEAD') return;

      const parsed: any = request.body === undefined ? undefined : JSON.parse(request.body);
      if (shape.path === '/api/memory/patterns') {
        tally.acceptedWrites += 1;
        expect(answer.json.saved, label).toBe(parsed.patterns.length);
        if (parsed.scopeId === scopeId) {
          await expectReadsBack(target, scopeId, parsed);
          tally.writesReadBack += 1;
          if (parsed.patterns.some((p: unknown) => typeof p === 'object' && p !== null && 'metadata' in p)) tally.metadataReadBack += 1;
        }
      } else if (shape.path === '/api/memory/snippets' && answer.json.source !== 'disabled') {
        // Every snippet belongs to the scope asked for: its id derives from that scope and its own content.
        const asked: string = parsed.scopeId;
        expect(answer.json.attestation.scopeId, label).toBe(asked);
        for (const snippet of answer.json.snippets) expect(snippet.id, label).toBe(patternId(asked, sha256Hex(snippet.content)));
        if (answer.json.snippets.length > 0) tally.readsWithSnippets += 1;
      } else if (shape.path === '/api/admin/export') {
        const asked = new URLSearchParams(request.route.split('?')[1] ?? '').getAll('scopeId');
        expect(asked, label).toContain(answer.json.scopeId);
        for (const row of [...answer.json.patterns, ...answer.json.history]) expect(row.scopeId, label).toBe(answer.json.scopeId);
      }
    }),
    { numRuns: options.numRuns, seed: options.seed, endOnFailure: true },
  );
  await target.settle?.();
  return tally;
}
