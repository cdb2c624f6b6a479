/**
 * Preflight: the stack's Context7 key checked through the client's health operation (GET /v1/health, Bearer) with a
 * deadline. A refused key, a provider without the assumed contract (404) and an unreachable Context7 each stop with
 * their own message and exit code; the key never appears in any of them.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { checkContext7Key, PREFLIGHT_EXIT_CODES } from '../../canary/preflight/context7-key';
import { startContext7Emulator } from '../../service/context7/emulator';
import { compiledArgs } from '../../canary/compiled';

const KEY = 'c7-preflight-key-0123456789abcdef';
const servers: Server[] = [];
const sockets = new Set<Socket>();
afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((server) => new Promise<void>((done) => server.close(() => done()))));
});

/** A loopback stand-in for Context7: answers GET /v1/health as told, and records the Authorization it got. */
async function fakeContext7(answer: (res: ServerResponse) => void): Promise<{ url: string; authorizations: (string | undefined)[] }> {
  const authorizations: (string | undefined)[] = [];
  const server = createServer((req, res) => {
    authorizations.push(req.headers.authorization);
    answer(res);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  servers.push(server);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', () => done()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`, authorizations };
}

const json = (status: number, body: unknown) => (res: ServerResponse) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

describe('preflight: the Context7 key through the client health operation', () => {
  it('passes when /v1/health answers 200 to the Bearer key', async () => {
    const c7 = await fakeContext7(json(200, { status: 'ok' }));
    const result = await checkContext7Key({ stack: 'staging', baseUrl: c7.url, apiKey: KEY, timeoutMs: 2_000 });
    expect(result.verdict).toBe('ok');
    expect(c7.authorizations).toEqual([`Bearer ${KEY}`]);
  });

  it.each([401, 403])('a %i names the stack and the fix, and never the key', async (status) => {
    const c7 = await fakeContext7(json(status, { error: 'unauthorized' }));
    const result = await checkContext7Key({ stack: 'production', baseUrl: c7.url, apiKey: KEY, timeoutMs: 2_000 });
    expect(result.verdict).toBe('key_refused');
    expect(result.message).toContain(`refused the API key of the production stack`);
    expect(result.message).toContain('pulumi config set --secret memory-rollout:context7ApiKey <key> -s production');
    expect(result.message).not.toContain(KEY);
  });

  it('a 404 says the provider does not speak the assumed memory contract', async () => {
    const c7 = await fakeContext7(json(404, { error: 'not_found' }));
    const result = await checkContext7Key({ stack: 'staging', baseUrl: c7.url, apiKey: KEY, timeoutMs: 2_000 });
    expect(result.verdict).toBe('contract_mismatch');
    expect(result.message).toMatch(/does not speak the memory contract this project assumes/);
    expect(result.message).toContain('service/context7/client.ts');
  });

  it('nothing listening is unreachable', async () => {
    const c7 = await fakeContext7(json(200, { status: 'ok' }));
    const url = c7.url;
    await Promise.all(servers.splice(0).map((server) => new Promise<void>((done) => server.close(() => done()))));
    const result = await checkContext7Key({ stack: 'staging', baseUrl: url, apiKey: KEY, timeoutMs: 2_000 });
    expect(result.verdict).toBe('unreachable');
    expect(result.message).toMatch(/unreachable from this runner \(no connection/);
  });

  it('a Context7 that never answers is unreachable once the deadline passes, not a hang', async () => {
    const c7 = await fakeContext7(() => undefined); // accepts, never answers
    const result = await checkContext7Key({ stack: 'staging', baseUrl: c7.url, apiKey: KEY, timeoutMs: 300 });
    expect(result.verdict).toBe('unreachable');
    expect(result.message).toMatch(/no answer within 0\.3 s/);
  });

  it('a 5xx is unhealthy', async () => {
    const c7 = await fakeContext7(json(503, { error: 'unavailable' }));
    const result = await checkContext7Key({ stack: 'staging', baseUrl: c7.url, apiKey: KEY, timeoutMs: 2_000 });
    expect(result.verdict).toBe('unhealthy');
  });

  it('the Context7 emulator (the contract) accepts its key and refuses another', async () => {
    const emulator = await startContext7Emulator({ apiKey: KEY, seed: 1 });
    try {
      expect((await checkContext7Key({ stack: 'staging', baseUrl: emulator.url, apiKey: KEY, timeoutMs: 2_000 })).verdict).toBe('ok');
      expect((await checkContext7Key({ stack: 'staging', baseUrl: emulator.url, apiKey: `${KEY}-wrong`, timeoutMs: 2_000 })).verdict).toBe('key_refused');
    } finally {
      await emulator.close();
    }
  });

  it('`canary preflight` exits with the verdict\'s own code and prints no key', async () => {
    const c7 = await fakeContext7(json(401, { error: 'unauthorized' }));
    const run = (env: Record<string, string>) =>
      new Promise<{ code: number | null; output: string }>((done) => {
        const child = spawn(process.execPath, [...compiledArgs('canary/main.ts'), 'preflight', '--stack', 'staging', '--timeout-seconds', '2'], {
          env: { PATH: process.env.PATH ?? '', ...env },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let output = '';
        child.stdout.on('data', (c: Buffer) => (output += c.toString()));
        child.stderr.on('data', (c: Buffer) => (output += c.toString()));
        child.on('exit', (code) => done({ code, output }));
      });
    const refused = await run({ CONTEXT7_API_KEY: KEY, CONTEXT7_BASE_URL: c7.url });
    expect(refused.code).toBe(PREFLIGHT_EXIT_CODES.key_refused);
    expect(refused.output).toMatch(/refused the API key of the staging stack/);
    expect(refused.output).not.toContain(KEY);
    const missing = await run({ CONTEXT7_BASE_URL: c7.url });
    expect(missing.code).toBe(PREFLIGHT_EXIT_CODES.key_refused);
    expect(missing.output).toMatch(/no Context7 API key for the staging stack/);
  }, 60_000);
});
