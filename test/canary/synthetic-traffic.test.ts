/**
 * The staging canary's own traffic (canary/synthetic/): its rate is sized from the policy, its requests stay in the
 * reserved load-test scopes with their own caller key, its writes expire at the run's end, and it stops cleanly.
 * The end-to-end proof (a silent staging promoting on it) is test/demo/rollout-workflow-e2e.test.ts.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { wilsonInterval } from '../../canary/analysis/stats';
import { loadPolicy } from '../../canary/policy';
import { SYNTHETIC_LOCATION, SYNTHETIC_MARGIN, syntheticRate, syntheticRequest, syntheticScopes, zeroEventSample } from '../../canary/synthetic/plan';
import { createSyntheticTraffic } from '../../canary/synthetic/traffic';
import { syntheticHtmlSection, syntheticSignoffLines, syntheticSummary } from '../../canary/report/synthetic';
import { isLoadTestScopeId, isValidScopeId } from '../../service/domain/scope-id';
import { canaryCli } from '../support/tsx-cli';

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
const committed = loadPolicy(join(__dirname, '../../canary/policy.yaml'));
const demo = loadPolicy(join(__dirname, '../../demo/policy.yaml'));

describe('synthetic traffic: the plan', () => {
  it('the zero-failure sample is the smallest n whose Wilson upper limit is under the bound', () => {
    const n = zeroEventSample(0.05, 0.95);
    expect(wilsonInterval(0, n, 0.95).upper).toBeLessThan(0.05);
    expect(wilsonInterval(0, n - 1, 0.95).upper).toBeGreaterThanOrEqual(0.05);
    expect(n).toBe(73);
  });

  it.each([
    ['canary/policy.yaml at real time', committed, 1],
    ['demo/policy.yaml at 30x', demo, 30],
  ])('sizes the rate from %s so the needed reads and Context7 calls arrive twice over in the window', (_name, policy, timeScale) => {
    const rate = syntheticRate(policy, timeScale);
    expect(rate.windowSeconds).toBe((policy.successCriteria.atMinute * 60) / timeScale);
    const requests = rate.ratePerSecond * rate.windowSeconds;
    // Context7 calls counted from the writes alone (every fifth request), reads from the other four fifths.
    expect(requests * 0.2).toBeGreaterThanOrEqual(rate.needs.context7Calls * SYNTHETIC_MARGIN);
    expect(requests * 0.8).toBeGreaterThanOrEqual(rate.needs.reads * SYNTHETIC_MARGIN);
    expect(rate.needs.context7Calls).toBeGreaterThanOrEqual(policy.minimumSample.context7Requests);
    expect(rate.needs.reads).toBeGreaterThanOrEqual(Math.max(policy.minimumSample.memoryRequests, policy.minimumSample.cacheLookups));
    expect(rate.basis).toContain(`${rate.ratePerSecond} req/s`);
  });

  it('a faster clock needs a proportionally faster rate, within its floor and cap', () => {
    // 730 requests over an hour (0.203 req/s), rounded up to the next 0.1
    expect(syntheticRate(committed, 1).ratePerSecond).toBe(0.3);
    expect(syntheticRate(demo, 10).ratePerSecond).toBeCloseTo(syntheticRate(demo, 20).ratePerSecond / 2, 0);
    const capped = syntheticRate(demo, 1000);
    expect(capped.ratePerSecond).toBe(100);
    expect(capped.basis).toMatch(/capped/);
  });

  it('reads and writes stay in the reserved load-test location, in separate scopes, every fifth request a write that expires at the end', () => {
    const scopes = syntheticScopes(sha256);
    const all = [...scopes.reads, ...scopes.writes];
    for (const scopeId of all) {
      expect(isValidScopeId(scopeId)).toBe(true);
      expect(isLoadTestScopeId(scopeId)).toBe(true);
      expect(scopeId.startsWith(`scope:${SYNTHETIC_LOCATION}:`)).toBe(true);
    }
    expect(new Set(scopes.reads).size + new Set(scopes.writes).size).toBe(new Set(all).size);
    const plans = Array.from({ length: 100 }, (_, n) => syntheticRequest(n, scopes, 'nonce1', '2030-01-01T00:00:00.000Z'));
    const writes = plans.filter((p) => p.endpoint === 'patterns');
    expect(writes).toHaveLength(20);
    for (const w of writes) {
      expect(scopes.writes).toContain(w.scopeId);
      const body = JSON.parse(w.body!) as { patterns: { content: string; expiresAt: string }[] };
      expect(body.patterns[0]!.expiresAt).toBe('2030-01-01T00:00:00.000Z');
      expect(body.patterns[0]!.content).toContain('nonce1');
    }
    for (const r of plans.filter((p) => p.endpoint === 'snippets')) expect(scopes.reads).toContain(r.scopeId);
    // Few read keys, so a cache has something to hit.
    expect(new Set(plans.filter((p) => p.endpoint === 'snippets').map((p) => p.body)).size).toBeLessThanOrEqual(12);
  });
});

describe('synthetic traffic: the driver', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise<void>((done) => (server ? server.close(() => done()) : done()));
    server = undefined;
  });

  async function fakeService(answer: (req: IncomingMessage, body: string) => { status: number; body: unknown }) {
    const seen: { path: string; authorization: string | undefined; body: string }[] = [];
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ path: req.url ?? '', authorization: req.headers.authorization, body });
        const a = answer(req, body);
        res.writeHead(a.status, { 'content-type': 'application/json' }).end(JSON.stringify(a.body));
      });
    });
    await new Promise<void>((done) => server!.listen(0, '127.0.0.1', () => done()));
    return { url: `http://127.0.0.1:${(server!.address() as AddressInfo).port}`, seen };
  }

  const until = async (ok: () => boolean) => {
    while (!ok()) await new Promise((r) => setTimeout(r, 20));
  };

  it('sends with the load-test key only, counts what was answered, and stops with nothing in flight', async () => {
    const service = await fakeService((req, body) => {
      const scopeId = (JSON.parse(body) as { scopeId: string }).scopeId;
      if (req.url === '/api/memory/patterns') return { status: 201, body: { saved: 1, destinations: ['database', 'context7'], patterns: [{ id: 'p1', destinations: ['database', 'context7'] }] } };
      return { status: 200, body: { snippets: [], source: 'context7', attestation: { backend: 'context7', scopeId, snippetsApplied: 0 } } };
    });
    const traffic = createSyntheticTraffic({ baseUrl: service.url, apiKey: 'k'.repeat(32), ratePerSecond: 50, expiresAt: '2030-01-01T00:00:00.000Z', timeoutMs: 5_000 });
    traffic.start();
    await until(() => traffic.snapshot().sent >= 20);
    const done = await traffic.stop();
    const afterStop = service.seen.length;
    expect(done.sent).toBe(afterStop);
    expect(done.readsAnswered + done.writesAnswered).toBe(done.sent);
    expect(done.transportErrors + done.unauthorized).toBe(0);
    for (const request of service.seen) expect(request.authorization).toBe(`Bearer ${'k'.repeat(32)}`);
    await new Promise((r) => setTimeout(r, 100));
    expect(service.seen.length).toBe(afterStop);
  });

  it('a refused key is counted, not hidden', async () => {
    const service = await fakeService(() => ({ status: 401, body: { error: 'unauthorized' } }));
    const traffic = createSyntheticTraffic({ baseUrl: service.url, apiKey: 'wrong-key-wrong-key-wrong-key', ratePerSecond: 50, expiresAt: '2030-01-01T00:00:00.000Z', timeoutMs: 5_000 });
    traffic.start();
    await until(() => traffic.snapshot().unauthorized >= 5);
    const done = await traffic.stop();
    expect(done.readsAnswered).toBe(0);
    expect(done.failedChecks).toBe(done.sent);
  });
});

describe('synthetic traffic: the report', () => {
  it('says what share of the judged reads was synthetic, at the last measured poll', () => {
    const snapshot = { ratePerSecond: 5, sent: 100, skipped: 0, readsAnswered: 76, writesAnswered: 20, failedChecks: 0, transportErrors: 0, unauthorized: 0, readsAnsweredAfter: 80 };
    const summary = syntheticSummary(
      { ratePerSecond: 5, basis: 'b', location: SYNTHETIC_LOCATION, patternsExpireAt: '2030-01-01T00:00:00.000Z' },
      [{ atSeconds: 0, samples: [], synthetic: snapshot }],
      { steps: [{ index: 0, status: 'measured', cumulative: { counts: { requests: 100 } } }] } as never,
    );
    expect(summary?.shareOfJudgedReads).toBe(0.8);
    expect(summary?.shareAtLeast).toBe(0.76);
    expect(syntheticSignoffLines(summary)[0]).toMatch(/80\.0 % of the judged memory reads \(80 of 100; at least 76\.0 %\)/);
    expect(syntheticSignoffLines(null)[0]).toMatch(/none/);
    const html = syntheticHtmlSection(summary, (t) => t);
    expect(html).toContain('<b>80.0 %</b> of the judged memory reads (80 of 100; at least 76.0 %)');
    expect(html).toMatch(/<svg width="400"[^>]*><rect x="0" y="0" width="320"/);
  });
});

// The CLI's refusals are independent runs: the two tests run at once, and so do the runs inside the first, so their
// start-up overlaps (test/support/tsx-cli.ts). Each test asserts with its own `expect`, as concurrent tests must.
describe.concurrent('synthetic traffic: the CLI', () => {
  const canary = async (args: string[], env: Record<string, string>) => {
    const result = await canaryCli(args, { env: { PATH: process.env.PATH ?? '', ...env } });
    return { code: result.status, output: result.output };
  };
  const base = ['run', '--base-url', 'http://127.0.0.1:9', '--stack', 'staging', '--dry-run'];

  it('refuses --synthetic-traffic on without its key, and a key that is another credential, before doing anything', async ({ expect }) => {
    const [missing, reused, bad] = await Promise.all([
      canary([...base, '--synthetic-traffic', 'on'], {}),
      canary([...base, '--synthetic-traffic', 'on'], { CANARY_LOADTEST_KEY: 'same-secret-0123456789abcdef', CANARY_PROBE_KEY: 'same-secret-0123456789abcdef' }),
      canary([...base, '--synthetic-traffic', 'maybe'], {}),
    ]);
    expect(missing.code).toBe(64);
    expect(missing.output).toMatch(/--synthetic-traffic on needs CANARY_LOADTEST_KEY/);
    expect(reused.code).toBe(64);
    expect(reused.output).toMatch(/must be a dedicated caller key/);
    expect(reused.output).not.toContain('same-secret');
    expect(bad.code).toBe(64);
    expect(bad.output).toMatch(/--synthetic-traffic must be on or off/);
  }, 180_000);

  it('the stepped canary takes no synthetic traffic', async ({ expect }) => {
    const stepped = await canary(['stepped', '--base-url', 'http://127.0.0.1:9', '--stack', 'production', '--dry-run', '--synthetic-traffic', 'on'], {});
    expect(stepped.code).toBe(64);
  }, 180_000);
});
