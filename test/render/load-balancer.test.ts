import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LoadBalancer } from '../../render/emulator/load-balancer';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length > 0) await closers.pop()!();
});

interface Upstream {
  port: number;
  seen: Array<{ method: string; url: string; xff: string | undefined }>;
}

/** An in-process upstream: /echo streams the body back, /slow waits, /hang never answers, /cookies sets two. */
async function upstream(name: string, behaviour: 'ok' | 'reset' = 'ok'): Promise<Upstream> {
  const seen: Upstream['seen'] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, xff: req.headers['x-forwarded-for'] as string | undefined });
    if (behaviour === 'reset') {
      req.socket.destroy(); // dies before answering, like a crashed instance
      return;
    }
    if (req.url === '/echo') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-upstream': name });
      req.pipe(res);
      return;
    }
    if (req.url === '/hang') return;
    if (req.url === '/half') {
      res.writeHead(200, { 'content-length': '100' });
      res.write('only part of it');
      setTimeout(() => req.socket.destroy(), 20);
      return;
    }
    if (req.url?.startsWith('/slow')) {
      setTimeout(() => res.end(name), 150);
      return;
    }
    if (req.url === '/teapot') {
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.writeHead(418, 'I am a teapot', { 'x-upstream': name });
      res.end('short and stout');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': name });
    res.end(name);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as AddressInfo).port, seen };
}

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function balancer(options: ConstructorParameters<typeof LoadBalancer>[0] = {}): Promise<{ lb: LoadBalancer; url: string }> {
  const lb = new LoadBalancer(options);
  const port = await lb.listen();
  closers.push(() => lb.close());
  return { lb, url: `http://127.0.0.1:${port}` };
}

describe('the local platform load balancer', () => {
  it('answers 503 JSON when no instance is routable', async () => {
    const { lb, url } = await balancer();
    const res = await fetch(`${url}/anything`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: 'no_healthy_instance' });
    expect(lb.snapshot()).toMatchObject({ requests: 1, unavailable: 1, responses: { '5xx': 1 } });
  });

  it('spreads requests round robin, preserves status, reason and repeated headers, and appends X-Forwarded-For', async () => {
    const a = await upstream('a');
    const b = await upstream('b');
    const { lb, url } = await balancer();
    lb.route([{ key: 'a', port: a.port }, { key: 'b', port: b.port }]);
    const names: string[] = [];
    for (let i = 0; i < 6; i += 1) names.push(await (await fetch(`${url}/who`)).text());
    expect(names.sort()).toEqual(['a', 'a', 'a', 'b', 'b', 'b']);

    const teapot = await new Promise<http.IncomingMessage>((resolve, reject) => http.get(`${url}/teapot`, resolve).on('error', reject));
    teapot.resume();
    expect(teapot.statusCode).toBe(418);
    expect(teapot.statusMessage).toBe('I am a teapot');
    expect(teapot.headers['set-cookie']).toEqual(['a=1', 'b=2']);

    await fetch(`${url}/who`, { headers: { 'x-forwarded-for': '203.0.113.9' } });
    const xffs = [...a.seen, ...b.seen].map((r) => r.xff);
    expect(xffs[0]).toBe('127.0.0.1');
    expect(xffs.at(-1)).toBe('203.0.113.9, 127.0.0.1');
  });

  it('streams request and response bodies both ways', async () => {
    const a = await upstream('a');
    const { lb, url } = await balancer();
    lb.route([{ key: 'a', port: a.port }]);
    const chunk = Buffer.alloc(64 * 1024, 7);
    const echoed = await new Promise<Buffer>((resolve, reject) => {
      const req = http.request(`${url}/echo`, { method: 'POST' }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve(Buffer.concat(parts)));
      });
      req.on('error', reject);
      // Chunked, written over time: the LB must not wait for the whole body.
      let sent = 0;
      const writeMore = () => {
        if (sent === 16) return req.end();
        sent += 1;
        req.write(chunk);
        setTimeout(writeMore, 2);
      };
      writeMore();
    });
    expect(echoed.length).toBe(16 * chunk.length);
    expect(echoed.every((byte) => byte === 7)).toBe(true);
  });

  it('retries an idempotent request on another instance when one fails before answering, never a POST', async () => {
    const dead = await upstream('dead', 'reset');
    const good = await upstream('good');
    const { lb, url } = await balancer();
    lb.route([{ key: 'dead', port: dead.port }, { key: 'good', port: good.port }]);
    for (let i = 0; i < 4; i += 1) expect(await (await fetch(`${url}/who`)).text()).toBe('good');
    expect(lb.snapshot().retries).toBeGreaterThanOrEqual(1);

    const statuses: number[] = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await fetch(`${url}/write`, { method: 'POST', body: 'x' })).status);
    // Every POST the dead instance took is a 502; none of them reached the good one a second time.
    const deadPosts = dead.seen.filter((r) => r.method === 'POST').length;
    expect(deadPosts).toBeGreaterThan(0);
    expect(statuses.filter((s) => s === 502)).toHaveLength(deadPosts);
    expect(good.seen.filter((r) => r.method === 'POST')).toHaveLength(4 - deadPosts);
    expect(lb.snapshot().badGateway).toBe(deadPosts);
  });

  it('cuts the client connection when the upstream dies mid-body, rather than passing a short answer as whole', async () => {
    const a = await upstream('a');
    const { lb, url } = await balancer();
    lb.route([{ key: 'a', port: a.port }]);
    const outcome = await new Promise<string>((resolve) => {
      http
        .get(`${url}/half`, (res) => {
          res.resume();
          res.on('end', () => resolve('complete'));
          res.on('error', () => resolve('cut'));
          res.on('aborted', () => resolve('cut'));
        })
        .on('error', () => resolve('cut'));
    });
    expect(outcome).toBe('cut');
    expect(lb.snapshot()).toMatchObject({ truncated: 1, retries: 0 });
  });

  it('gives every upstream call a deadline (504) and counts in-flight requests per instance', async () => {
    const a = await upstream('a');
    const { lb, url } = await balancer({ upstreamTimeoutMs: 1_000 });
    lb.route([{ key: 'a', port: a.port }]);
    const hung = fetch(`${url}/hang`);
    await until(() => lb.inFlightTo('a') === 1);
    expect(await lb.idle('a', 20)).toBe(false);
    const res = await hung;
    expect(res.status).toBe(504);
    expect(await res.json()).toMatchObject({ error: 'upstream_timeout' });
    expect(lb.inFlightTo('a')).toBe(0);
    const slow = fetch(`${url}/slow`);
    await until(() => lb.inFlightTo('a') === 1);
    expect(await lb.idle('a', 2_000)).toBe(true);
    expect((await slow).status).toBe(200);
    expect(lb.snapshot()).toMatchObject({ timeouts: 1, inFlight: 0 });
  });
});
