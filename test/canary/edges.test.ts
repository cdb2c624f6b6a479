import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLAG_KEY, PINNED_COMMIT_KEY, readStackConfig, setStackConfig } from '../../canary/actions/stack-file';
import { StateFile } from '../../canary/actions/state-file';
import { verifyRollback } from '../../canary/actions/verify';
import { createWebhookNotifier } from '../../canary/actions/webhook';
import { loadPolicy } from '../../canary/policy';
import { httpProbe } from '../../canary/sources/http';
import { createHttpMetricSource } from '../../canary/sources/metrics-poller';
import { canaryCli } from '../support/tsx-cli';

const REPO = join(__dirname, '../..');
const policy = loadPolicy(join(REPO, 'canary/policy.yaml'));
const dir = mkdtempSync(join(tmpdir(), 'canary-edges-'));

/** A loopback server whose handler each test swaps in. */
let handler: (req: IncomingMessage, res: ServerResponse, body: string) => void = (_q, res) => res.end();
let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => handler(req, res, body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

function json(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

describe('stack file edits', () => {
  it('latches and promotes with yaml’s Document API, keeping comments and other keys', () => {
    const path = join(dir, 'Pulumi.production.yaml');
    writeFileSync(path, readFileSync(join(REPO, 'Pulumi.production.yaml'), 'utf8'));
    const before = readFileSync(path, 'utf8');
    expect(setStackConfig(path, { [PINNED_COMMIT_KEY]: 'abc123', [FLAG_KEY]: true })).toEqual([PINNED_COMMIT_KEY, FLAG_KEY]);
    expect(setStackConfig(path, { [FLAG_KEY]: true })).toEqual([]);
    const after = readFileSync(path, 'utf8');
    for (const line of before.split('\n')) {
      if (!line.includes('enableContext7Memory:')) expect(after).toContain(line);
    }
    expect(readStackConfig(path, PINNED_COMMIT_KEY)).toBe('abc123');
    setStackConfig(path, { [FLAG_KEY]: false });
    expect(readStackConfig(path, FLAG_KEY)).toBe(false);
    expect(() => setStackConfig(join(dir, 'missing.yaml'), { [FLAG_KEY]: false })).toThrow(/does not exist/);
  });
});

describe('state file', () => {
  it('refuses a file that is not a canary state instead of acting on it', () => {
    const path = join(dir, 'bad-state.json');
    writeFileSync(path, JSON.stringify({ version: 1, stack: 'production' }));
    expect(() => new StateFile(path).load()).toThrow(/not a canary state/);
    writeFileSync(path, '{"version": 1, "stack": "produ');
    expect(() => new StateFile(path).load()).toThrow(/bad-state\.json is not a canary state \(not valid JSON\)/);
  });
});

describe('HTTP metric source', () => {
  it('samples until every instance behind the balancer is seen, then stops', async () => {
    let hits = 0;
    const instances = ['srv-a', 'srv-a', 'srv-b', 'srv-a', 'srv-b', 'srv-b', 'srv-b'];
    handler = (req, res) => {
      if (req.url === '/api/metrics/memory') return json(res, 200, { instanceId: instances[hits++ % instances.length] });
      if (req.url === '/api/config') return json(res, 200, { enableContext7Memory: true, context7Available: true });
      return json(res, 200, { available: true, provider: 'context7' });
    };
    const measurement = await createHttpMetricSource({ baseUrl: base, policy }).measure(120);
    // a, a, b, then a and b repeat: stops after stopAfterRepeatSamples (3) samples without a new one.
    expect(measurement.samples.map((s) => (s.body as { instanceId: string }).instanceId)).toEqual(['srv-a', 'srv-a', 'srv-b', 'srv-a', 'srv-b', 'srv-b']);
    expect(measurement.health).toMatchObject({ status: 200, body: { available: true } });
    expect(measurement.atSeconds).toBe(120);

    hits = 0;
    const known = await createHttpMetricSource({ baseUrl: base, policy, expectedInstances: 2 }).measure(0);
    expect(known.samples).toHaveLength(3);
  });

  it('takes one sample when the service already reports fleet-wide figures', async () => {
    handler = (_req, res) => json(res, 200, { instanceId: 'srv-a', scope: 'fleet' });
    expect((await createHttpMetricSource({ baseUrl: base, policy }).measure(0)).samples).toHaveLength(1);
  });

  it('turns timeouts, refused connections and non-JSON bodies into probe errors, never exceptions', async () => {
    handler = (req, res) => {
      if (req.url === '/slow') return setTimeout(() => json(res, 200, {}), 500);
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>502</html>');
    };
    expect(await httpProbe(`${base}/slow`, { timeoutMs: 50 })).toMatchObject({ status: null, error: 'timeout' });
    expect(await httpProbe(`${base}/html`, { timeoutMs: 10_000 })).toMatchObject({ status: 200, error: 'invalid_json' });
    expect(await httpProbe('http://127.0.0.1:1/x', { timeoutMs: 10_000 })).toMatchObject({ status: null, error: 'network' });
  });
});

describe('rollback verification', () => {
  const metrics = (errors: number) => ({
    errorRate: 0, errorRatePercent: 0, fallbackRate: 0, fallbackRatePercent: 0, avgLatency: 0, p95Latency: 0,
    cacheHitRate: 0, cacheHitRatePercent: 0, context7Requests: 0,
    errorsByType: { network: 0, timeout: 0, api_error: 0, rate_limited: 0 },
    cache: { hits: 0, misses: 0, size: 0, ttlMs: 1 },
    instanceId: 'srv-a', deployId: 'abc', startedAt: '2026-11-20T10:00:00.000Z',
    totals: { requests: 10, fallbacks: errors, context7Requests: 10, context7Errors: errors, cacheHits: 0, cacheMisses: 0, latencyMsSum: 0, latencyCount: 0 },
  });
  const serve = (flagOff: boolean, errorsGrow: boolean) => {
    let polls = 0;
    handler = (req, res) => {
      if (req.url === '/api/config') return json(res, 200, { enableContext7Memory: !flagOff, context7Available: false });
      if (req.url === '/api/memory/health') return json(res, 200, flagOff ? { available: false, reason: 'Context7 disabled in environment' } : { available: true, provider: 'context7' });
      if (req.url === '/api/memory/snippets') return json(res, 200, flagOff ? { snippets: [], source: 'disabled' } : { snippets: [], source: 'database' });
      return json(res, 200, metrics(errorsGrow ? polls++ : 0));
    };
  };
  /** A clock that only the watch's sleeps move, so a slow machine cannot shorten the watch. */
  const verify = (options: { slowFirstAnswer?: boolean } = {}) => {
    let clockMs = 0;
    let probes = 0;
    return verifyRollback({
      baseUrl: base,
      probe: async (url, init) => {
        // A first metrics answer that takes longer than the whole watch.
        if (options.slowFirstAnswer && url.endsWith('/api/metrics/memory') && probes++ === 0) clockMs += 10_000;
        return httpProbe(url, init);
      },
      timeoutMs: 10_000,
      watchMs: 60,
      watchPollMs: 20,
      attempts: 2,
      now: () => clockMs,
      sleep: async (ms) => {
        clockMs += ms;
      },
    });
  };

  it('passes only when config, health, snippets and the watch all say the flag is off', async () => {
    serve(true, false);
    const ok = await verify();
    expect(ok.ok).toBe(true);
    expect(ok.checks).toHaveLength(4);

    serve(false, false);
    const stillOn = await verify();
    expect(stillOn.ok).toBe(false);
    expect(stillOn.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual([
      'config: enableContext7Memory false',
      'health: available false, "Context7 disabled in environment"',
      'snippets: {"snippets":[],"source":"disabled"}',
    ]);

    serve(true, true);
    const errorsGrowing = await verify();
    expect(errorsGrowing.checks.at(-1)).toMatchObject({ ok: false, name: 'watch: no new Context7 errors or fallbacks' });
  });

  it('watches with at least two polls even when the first answer outlasts the watch', async () => {
    serve(true, true);
    const slow = await verify({ slowFirstAnswer: true });
    expect(slow.checks.at(-1)).toMatchObject({ ok: false, detail: expect.stringContaining('+1 Context7 errors') });
    serve(true, false);
    expect((await verify({ slowFirstAnswer: true })).ok).toBe(true);
  });
});

describe('webhook', () => {
  it('posts Slack-compatible JSON and survives a failing endpoint without echoing the URL', async () => {
    const received: unknown[] = [];
    handler = (req, res, body) => {
      if (req.url === '/hook') {
        received.push(JSON.parse(body));
        return json(res, 200, { ok: true });
      }
      json(res, 500, { error: 'down' });
    };
    const warnings: string[] = [];
    await createWebhookNotifier(`${base}/hook`, (m) => warnings.push(m)).notify('rollback', 'rolled back and verified', { stack: 'production' });
    expect(received).toEqual([
      expect.objectContaining({ text: expect.stringContaining('rolled back and verified'), blocks: expect.arrayContaining([expect.objectContaining({ type: 'section' })]) }),
    ]);
    await createWebhookNotifier(`${base}/secret-token-path`, (m) => warnings.push(m)).notify('hold', 'held', {});
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).not.toContain('secret-token-path');
  });
});

describe('CLI', () => {
  const cli = (...args: string[]) => canaryCli(args, { env: { ...process.env, RENDER_API_KEY: '' } });

  // Six independent runs of the CLI, two at a time: their start-up overlaps (test/support/tsx-cli.ts).
  it('exits 64 on bad arguments or a bad policy, and replays a timeline with its decision’s exit code', async () => {
    const brokenState = join(dir, 'broken-state.json');
    writeFileSync(brokenState, '{"version": 1, "sta');
    const badPolicy = join(dir, 'bad-policy.yaml');
    writeFileSync(badPolicy, readFileSync(join(REPO, 'canary/policy.yaml'), 'utf8').replace('confidence: 0.95', 'confidence: 95'));
    const [badStack, unknownCommand, refused, bad, replay, storeOutage] = await Promise.all([
      cli('run', '--stack', 'qa', '--base-url', 'http://127.0.0.1:1'),
      cli('frobnicate'),
      cli('run', '--stack', 'production', '--base-url', 'http://127.0.0.1:1', '--state-file', brokenState, '--report-dir', join(dir, 'reports')),
      cli('replay', '--timeline', 'canary/timelines/slow-drift.json', '--policy', badPolicy),
      cli('replay', '--timeline', 'canary/timelines/slow-drift.json'),
      cli('replay', '--timeline', 'canary/timelines/store-outage.json'),
    ]);
    expect(badStack.status).toBe(64);
    expect(unknownCommand.status).toBe(64);
    expect(refused.status).toBe(64);
    expect(refused.stderr).toContain('is not a canary state (not valid JSON); move it aside');
    expect(bad.status).toBe(64);
    expect(bad.stderr).toMatch(/bad-policy\.yaml:\d+:\d+ confidence/);
    expect(replay.status).toBe(1);
    expect(replay.stdout).toContain('DECISION: ROLLBACK');
    expect(replay.stdout).toContain('expected: rollback -> MATCH');
    expect(storeOutage.status).toBe(5);
    expect(storeOutage.stdout).toContain('DECISION: ABORT at minute 22.0 (store_errors): the local store is failing; turning Context7 off cannot fix it');
  }, 240_000);
});
