/**
 * The kill switch cannot be locked by its own operators (issue 22 §3): only a completed authentication failure
 * counts, caller-key failures are limited in every mode, and the limiter's client is an address the client cannot
 * choose (TRUST_PROXY_HOPS: 0 unless on Render, where its one proxy appends the client's address).
 */
import http from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../service/config';
import { ADMIN_AUTH_MAX_FAILURES } from '../../service/http/admin-auth';
import { createHttpApp, type HttpAppDeps } from '../../service/http/app';
import { CALLER_AUTH_MAX_FAILURES } from '../../service/http/caller-auth';
import { createServiceLogger } from '../../service/logging';
import { CALLER_AUTH, TEST_ADMIN_TOKEN, scope, startHarness, type Harness } from './support/harness';

const ADMIN = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
const WRONG_ADMIN = { authorization: `Bearer ${TEST_ADMIN_TOKEN}-guess` };

const harnesses: Harness[] = [];
const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
  await Promise.all(servers.splice(0).map((server) => new Promise((done) => server.close(done))));
});

async function harness(env: Record<string, string> = {}): Promise<Harness> {
  const h = await startHarness({ env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN, ...env } });
  harnesses.push(h);
  return h;
}

/** Sends a request with the correct token and part of its body, then closes: the server never finishes an answer. */
async function sendPartOfABodyAndClose(baseUrl: string, path: string): Promise<void> {
  const { hostname, port } = new URL(baseUrl);
  const socket = connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  // Expect: 100-continue: Node answers "100 Continue" once it has handed the request to the app, so the headers
  // (and the token) have been seen before the body is cut short.
  const continued = new Promise<void>((resolve) => socket.once('data', () => resolve()));
  socket.write(
    `PUT ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAuthorization: Bearer ${TEST_ADMIN_TOKEN}\r\n` +
      'Content-Type: application/json\r\nContent-Length: 40\r\nExpect: 100-continue\r\n\r\n',
  );
  await continued;
  socket.write('{"percent":0,');
  socket.destroy();
  await closed;
}

describe('only a completed authentication failure counts', () => {
  it(`${ADMIN_AUTH_MAX_FAILURES + 1} kill-switch requests with the correct token, abandoned halfway through their body, never lock the operator out`, async () => {
    const h = await harness();
    for (let n = 0; n < ADMIN_AUTH_MAX_FAILURES + 1; n++) await sendPartOfABodyAndClose(h.url, '/api/admin/exposure');
    const kill = await h.request('PUT', '/api/admin/exposure', { percent: 0, actor: 'on-call' }, ADMIN);
    expect(kill.status).toBe(200);
    expect(kill.headers.get('retry-after')).toBeNull();
  });

  it('requests with the correct token that the client abandons before the answer (a hung store) never count', async () => {
    let arrived = 0;
    let arrivedNow: () => void = () => undefined;
    let hang = true;
    const deps = {
      enableContext7Memory: false,
      adminToken: TEST_ADMIN_TOKEN,
      // The status route reads the job state: hung until the store "recovers".
      store: {
        loadJobState: () => {
          arrived++;
          arrivedNow();
          return hang ? new Promise(() => undefined) : Promise.resolve(null);
        },
      },
      lifecycle: () => 'ready',
      log: createServiceLogger({ level: 'silent', secrets: [] }),
      clock: () => new Date(),
      ownCredentials: [],
      adminAuthLimit: { maxFailures: 3, windowMs: 60_000 },
    } as unknown as HttpAppDeps;
    const server = http.createServer(createHttpApp(deps));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/admin/sync-context7/status`;
    for (let n = 0; n < 10; n++) {
      const controller = new AbortController();
      const reached = new Promise<void>((resolve) => (arrivedNow = resolve));
      const request = fetch(url, { headers: ADMIN, signal: controller.signal }).catch(() => 'abandoned');
      await reached;
      controller.abort();
      expect(await request).toBe('abandoned');
    }
    expect(arrived).toBe(10);
    hang = false;
    const recovered = await fetch(url, { headers: ADMIN });
    expect(recovered.status).toBe(200);
    server.closeAllConnections();
  });

  it('wrong tokens still lock a guesser out, and a correct token then learns nothing (429 like a wrong one)', async () => {
    const h = await harness();
    for (let n = 0; n < ADMIN_AUTH_MAX_FAILURES; n++) expect((await h.request('GET', '/api/admin/exposure', undefined, WRONG_ADMIN)).status).toBe(401);
    expect((await h.request('GET', '/api/admin/exposure', undefined, ADMIN)).status).toBe(429);
    expect((await h.request('GET', '/api/admin/exposure', undefined, WRONG_ADMIN)).status).toBe(429);
  });
});

describe('caller-key failures are limited in every mode', () => {
  it(`SQLite mode: after ${CALLER_AUTH_MAX_FAILURES} wrong keys a client gets 429 with Retry-After, its correct key included`, async () => {
    const h = await harness();
    const body = { scopeId: scope('limiter', 'a'), query: 'x' };
    for (let n = 0; n < CALLER_AUTH_MAX_FAILURES; n++) {
      expect((await h.request('POST', '/api/memory/snippets', body, { authorization: `Bearer wrong-key-${n}` })).status).toBe(401);
    }
    for (const headers of [{ authorization: 'Bearer wrong-key-again' }, CALLER_AUTH]) {
      const limited = await h.request('POST', '/api/memory/snippets', body, headers);
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(limited.body.error).toMatch(/Too many failed caller authentications/);
    }
    // The health routes are not limited.
    expect((await h.request('GET', '/api/config')).status).toBe(200);
  });

  it('correct keys never count, however many', async () => {
    const h = await harness();
    const body = { scopeId: scope('limiter', 'b'), query: 'x' };
    for (let n = 0; n < CALLER_AUTH_MAX_FAILURES + 5; n++) expect((await h.request('POST', '/api/memory/snippets', body, CALLER_AUTH)).status).toBe(200);
  });
});

describe('who the client is: TRUST_PROXY_HOPS', () => {
  it('defaults to 0 off Render and to 1 on Render (RENDER=true); an explicit value wins', () => {
    expect(loadConfig({}).trustProxyHops).toBe(0);
    expect(loadConfig({ RENDER: 'true' }).trustProxyHops).toBe(1);
    expect(loadConfig({ RENDER: 'true', TRUST_PROXY_HOPS: '0' }).trustProxyHops).toBe(0);
    expect(loadConfig({ TRUST_PROXY_HOPS: '2' }).trustProxyHops).toBe(2);
  });

  it('a client that reaches the service directly cannot buy fresh guesses by rotating X-Forwarded-For', async () => {
    const h = await harness();
    const statuses: number[] = [];
    for (let n = 0; n < 50; n++) {
      statuses.push((await h.request('GET', '/api/admin/exposure', undefined, { ...WRONG_ADMIN, 'x-forwarded-for': `198.51.100.${n + 1}` })).status);
    }
    expect(statuses.slice(0, ADMIN_AUTH_MAX_FAILURES)).toEqual(Array(ADMIN_AUTH_MAX_FAILURES).fill(401));
    expect(new Set(statuses.slice(ADMIN_AUTH_MAX_FAILURES))).toEqual(new Set([429]));
  });

  it('behind Render\'s proxy the client is the address the proxy appended: forged entries in front change nothing, another client has its own count', async () => {
    const h = await harness({ RENDER: 'true' });
    const from = (client: string, forged: number) => ({ 'x-forwarded-for': `203.0.113.${forged}, ${client}` });
    for (let n = 0; n < ADMIN_AUTH_MAX_FAILURES; n++) {
      expect((await h.request('GET', '/api/admin/exposure', undefined, { ...WRONG_ADMIN, ...from('198.51.100.7', n) })).status).toBe(401);
    }
    expect((await h.request('GET', '/api/admin/exposure', undefined, { ...ADMIN, ...from('198.51.100.7', 99) })).status).toBe(429);
    // The operator, from another address, is not locked out by someone else's guesses.
    expect((await h.request('GET', '/api/admin/exposure', undefined, { ...ADMIN, ...from('198.51.100.8', 1) })).status).toBe(200);
  });
});
