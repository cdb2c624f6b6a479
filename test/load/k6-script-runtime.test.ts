/**
 * The k6 script bundled with esbuild and run in a bare JavaScript context (no Node globals) with small stand-ins for
 * the k6 modules: fast, and it proves the wiring (options from the policy, requests only to BASE_URL, checks with
 * endpoint tags, handleSummary writing the shared summary shape). The bundle guesses no extension
 * (`resolveExtensions: []`), as k6 does not, but it is still not k6: k6-import-graph.test.ts checks the import
 * graph by k6's rules, and the real binary runs the script in `npm run load:verify` (.ci/checks/k6.sh).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import vm from 'node:vm';
import { build } from 'esbuild';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { driveMix } from '../../load/bench/autocannon-driver';
import { loadSummarySchema } from '../../load/cli/summary-schema';
import { thresholdsFromPolicy } from '../../load/cli/policy-thresholds';

const tmp = mkdtempSync(join(tmpdir(), 'load-k6-runtime-'));
const thresholdsPath = join(tmp, 'thresholds.json');
writeFileSync(thresholdsPath, JSON.stringify(thresholdsFromPolicy('canary/policy.yaml', 'rollout')));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let bundle = '';
beforeAll(async () => {
  const result = await build({
    entryPoints: ['load/k6/memory-api.ts'],
    bundle: true,
    write: false,
    format: 'cjs',
    platform: 'neutral',
    target: 'es2020',
    // k6 opens exact paths only: no extension guessing, no index files.
    resolveExtensions: [],
    logLevel: 'silent',
    plugins: [
      {
        name: 'k6-modules',
        setup(b) {
          b.onResolve({ filter: /^k6(\/.*)?$/ }, (args) => ({ path: args.path, namespace: 'k6' }));
          b.onLoad({ filter: /.*/, namespace: 'k6' }, (args) => ({ contents: `module.exports = globalThis.k6Modules[${JSON.stringify(args.path)}];`, loader: 'js' }));
        },
      },
    ],
  });
  bundle = result.outputFiles[0].text;
});

interface Sent {
  method: string;
  url: string;
  body: string | null;
  tags: Record<string, string>;
  headers: Record<string, string>;
}

/** Valid answers per endpoint, echoing the requested scope like the service does. */
function answer(method: string, url: string, body: string | null): { status: number; body: string } {
  const path = new URL(url).pathname;
  const json = body ? JSON.parse(body) : {};
  switch (`${method} ${path}`) {
    case 'POST /api/memory/snippets':
      return { status: 200, body: JSON.stringify({ snippets: [], source: 'cache', attestation: { backend: 'cache', scopeId: json.scopeId, snippetsApplied: 0 } }) };
    case 'POST /api/memory/patterns':
      return { status: 200, body: JSON.stringify({ saved: json.patterns.length, inserted: 1, patternIds: ['p1'], destinations: ['database'] }) };
    case 'GET /api/memory/health':
      return { status: 200, body: '{"available":true,"provider":"context7"}' };
    case 'GET /api/config':
      return { status: 200, body: '{"enableContext7Memory":true,"context7Available":true}' };
    default:
      return { status: 404, body: '{"error":"not found"}' };
  }
}

function loadScript(env: Record<string, string>, respond: typeof answer = answer) {
  const sent: Sent[] = [];
  const counted: Array<{ name: string; value: number; tags?: Record<string, string> }> = [];
  const checks: Array<{ results: Record<string, boolean>; tags: Record<string, string> }> = [];
  const context = vm.createContext({
    __ENV: env,
    open: (path: string) => {
      if (path !== thresholdsPath) throw new Error(`unexpected open(${path})`);
      return JSON.stringify(thresholdsFromPolicy('canary/policy.yaml', 'rollout'));
    },
    k6Modules: {
      'k6/http': {
        request: (method: string, url: string, body: string | null, params: { tags: Record<string, string>; headers: Record<string, string> }) => {
          sent.push({ method, url, body, tags: params.tags, headers: params.headers });
          return respond(method, url, body);
        },
      },
      k6: {
        check: (_value: unknown, sets: Record<string, () => boolean>, tags: Record<string, string>) => {
          const results: Record<string, boolean> = {};
          for (const name of Object.keys(sets)) results[name] = sets[name]();
          checks.push({ results, tags });
          return Object.values(results).every(Boolean);
        },
      },
      'k6/execution': { vu: { idInTest: 1 }, scenario: { startTime: Date.now() - 61_000 } },
      'k6/crypto': { sha256: (text: string) => createHash('sha256').update(text, 'utf8').digest('hex') },
      'k6/metrics': {
        Counter: class {
          constructor(readonly name: string) {}
          add(value: number, tags?: Record<string, string>) {
            counted.push({ name: this.name, value, tags });
          }
        },
      },
    },
    module: { exports: {} as Record<string, unknown> },
  });
  vm.runInContext(`${bundle}\n;globalThis.script = module.exports;`, context);
  const script = context.script as {
    options: { scenarios: Record<string, { executor: string }>; thresholds: Record<string, unknown[]> };
    setup: () => { runNonce: string };
    default: (data: { runNonce: string }) => void;
    handleSummary: (data: unknown) => Record<string, string>;
  };
  return { script, sent, checks, counted };
}

const env = (scenario: string, extra: Record<string, string> = {}) => ({
  BASE_URL: 'https://staging.example.com',
  SCENARIO: scenario,
  THRESHOLDS_FILE: thresholdsPath,
  REPORT_DIR: '/reports/run',
  ...extra,
});

describe('the k6 script, run without k6', () => {
  it('builds its options from the policy thresholds and the chosen scenario', () => {
    const { script } = loadScript(env('baseline', { RATE: '40', DURATION: '1m' }));
    expect(script.options.scenarios.baseline).toMatchObject({ executor: 'constant-arrival-rate', rate: 40, duration: '1m' });
    expect(script.options.thresholds.http_req_duration).toEqual(['avg<200', 'p(95)<500']);
    expect(script.options.thresholds['http_req_failed{endpoint:snippets}']).toEqual(['rate<0.05']);
  });

  it('sends the mix to BASE_URL only, and checks every response with endpoint tags', () => {
    const { script, sent, checks } = loadScript(env('baseline'));
    const data = script.setup();
    for (let i = 0; i < 300; i++) script.default(data);
    expect(sent).toHaveLength(300);
    expect(sent.every((s) => s.url.startsWith('https://staging.example.com/api/'))).toBe(true);
    expect(new Set(sent.map((s) => s.tags.endpoint))).toEqual(new Set(['snippets', 'patterns', 'health', 'config', 'metrics']));
    expect(sent.filter((s) => s.tags.endpoint === 'snippets').length).toBeGreaterThan(200);
    expect(checks).toHaveLength(300);
    const failed = checks.flatMap((c) => Object.entries(c.results).filter(([, ok]) => !ok).map(([name]) => name));
    // the canned metrics answer is a 404: only those checks may fail
    expect(failed.every((name) => name.startsWith('metrics:'))).toBe(true);
    expect(checks.every((c) => Object.keys(c.results).every((name) => name.startsWith(`${c.tags.endpoint}:`)))).toBe(true);
  });

  it('writes the shared summary and a report from handleSummary', () => {
    const { script } = loadScript(env('baseline', { DURATION: '1m' }));
    const trend = { type: 'trend', values: { avg: 12, min: 1, med: 10, max: 90, 'p(90)': 30, 'p(95)': 40, 'p(99)': 70, count: 1200 }, thresholds: { 'avg<200': { ok: true } } };
    const out = script.handleSummary({
      state: { testRunDurationMs: 60_000 },
      metrics: {
        http_reqs: { type: 'counter', values: { count: 1200, rate: 20 } },
        http_req_duration: trend,
        'http_req_duration{endpoint:snippets}': trend,
        http_req_failed: { type: 'rate', values: { rate: 0 }, thresholds: { 'rate<0.05': { ok: true } } },
        checks: { type: 'rate', values: { rate: 1 } },
      },
    });
    // No `stdout`: that would replace k6's own end-of-test summary.
    expect(Object.keys(out).sort()).toEqual(['/reports/run/report.md', '/reports/run/summary.json']);
    const summary = loadSummarySchema.parse(JSON.parse(out['/reports/run/summary.json']));
    expect(summary).toMatchObject({ tool: 'k6', scenario: 'baseline', target: 'https://staging.example.com', requests: 1200, thresholdsOk: true });
    expect(out['/reports/run/report.md']).toContain('# Load report: baseline (k6)');

    // A direct `k6 run` with credentials in BASE_URL: the reports name the host, never the password.
    const direct = loadScript(env('baseline', { BASE_URL: 'https://load:hunter2@staging.example.com/' })).script;
    const written = direct.handleSummary({ state: { testRunDurationMs: 1_000 }, metrics: { http_req_duration: trend } });
    expect(JSON.parse(written['/reports/run/summary.json']).target).toBe('https://staging.example.com');
    expect(Object.values(written).join('\n')).not.toContain('hunter2');
  });

  it('sends MEMORY_API_KEY as a Bearer header on snippets and patterns only, and no report contains it', () => {
    const key = 'k6-memory-api-key-0123456789abcdef';
    const { script, sent } = loadScript(env('baseline', { MEMORY_API_KEY: key }));
    const data = script.setup();
    for (let i = 0; i < 200; i++) script.default(data);
    for (const request of sent) {
      const memory = request.tags.endpoint === 'snippets' || request.tags.endpoint === 'patterns';
      expect(request.headers.Authorization, request.tags.endpoint).toBe(memory ? `Bearer ${key}` : undefined);
    }
    const written = script.handleSummary({ state: { testRunDurationMs: 1_000 }, metrics: { http_reqs: { type: 'counter', values: { count: 200, rate: 200 } } } });
    expect(Object.values(written).join('\n')).not.toContain(key);
    // Without it the script still runs (the service answers 401, which the checks report).
    const bare = loadScript(env('baseline'));
    bare.script.default(bare.script.setup());
    expect(bare.sent[0]!.headers.Authorization).toBeUndefined();
  });

  /** Per-step metrics of a breakpoint run, 10 to 110 req/s over 100 s in steps of 20: each step as [rate, requests, p95, failRate]. */
  function breakpointMetrics(steps: ReadonlyArray<readonly [number, number, number, number]>): Record<string, unknown> {
    const metrics: Record<string, unknown> = { http_reqs: { type: 'counter', values: { count: 400, rate: 6 } } };
    metrics.http_req_duration = { type: 'trend', values: { avg: 25, min: 1, med: 25, max: 50, 'p(90)': 50, 'p(95)': 50, 'p(99)': 50, count: 400 } };
    for (const [rate, count, p95, failRate] of steps) {
      metrics[`http_req_duration{rate_step:${rate}}`] = { type: 'trend', values: { avg: p95 / 2, min: 1, med: p95 / 2, max: p95, 'p(90)': p95, 'p(95)': p95, 'p(99)': p95, count } };
      metrics[`http_req_failed{rate_step:${rate}}`] = { type: 'rate', values: { rate: failRate } };
    }
    return metrics;
  }

  it('breakpoint: aborts on fail, tags rate steps, reports each step achieved against offered, and the sustainable rate', () => {
    const { script, sent } = loadScript(env('breakpoint', { RATE: '10', MAX_RATE: '110', RAMP_SECONDS: '100', STEP_SIZE: '20' }));
    expect(script.options.thresholds.http_req_failed[0]).toMatchObject({ threshold: 'rate<0.05', abortOnFail: true });
    script.default(script.setup());
    // the scenario started 61 s ago: the ramp is at 10 + 100 * 0.61 = 71 req/s, step 60
    expect(sent[0].tags.rate_step).toBe('60');
    // Step windows (s): 10 [0,10) offers 15 req/s on average, 20 [10,30) 30, 40 [30,50) 50, 60 [50,70) 70; the run ended at 70 s.
    const metrics = breakpointMetrics([[10, 150, 20, 0], [20, 600, 30, 0], [40, 1000, 60, 0], [60, 1400, 700, 0.01]]);
    const out = script.handleSummary({ state: { testRunDurationMs: 70_000 }, metrics });
    const summary = loadSummarySchema.parse(JSON.parse(out['/reports/run/summary.json']));
    expect(summary.breakpoint).toMatchObject({ sustainableRatePerSecond: 40, brokeAtRatePerSecond: 60 });
    expect(summary.breakpoint!.steps.map((s) => [s.rate, s.seconds, s.achievedRatePerSecond])).toEqual([[10, 10, 15], [20, 20, 30], [40, 20, 50], [60, 20, 70]]);
    expect(summary.thresholds.some((t) => t.metric.includes('rate_step'))).toBe(false);
    expect(out['/reports/run/report.md']).toContain('| target rate req/s | achieved req/s |');
    expect(out['/reports/run/report.md']).toContain('| 40 | 50.0 | 1000 |');
  });

  it('breakpoint: a step whose thresholds pass but whose offer was not delivered (dropped iterations) does not hold', () => {
    const { script } = loadScript(env('breakpoint', { RATE: '10', MAX_RATE: '110', RAMP_SECONDS: '100', STEP_SIZE: '20' }));
    // Step 40 offered 50 req/s but only 30 req/s were sent (600 in 20 s): latency fine, capacity not.
    const metrics = breakpointMetrics([[10, 150, 20, 0], [20, 600, 30, 0], [40, 600, 30, 0], [60, 1400, 40, 0]]);
    const summary = JSON.parse(script.handleSummary({ state: { testRunDurationMs: 70_000 }, metrics })['/reports/run/summary.json']);
    expect(summary.breakpoint).toMatchObject({ sustainableRatePerSecond: 20, brokeAtRatePerSecond: 40 });
  });

  it('spike: tags each request with its stage and reports each stage offered against achieved', () => {
    const { script, sent } = loadScript(env('spike', { RATE: '10', PEAK_RATE: '100', DURATION: '260s' }));
    expect(script.options.thresholds['http_req_duration{stage:2}']).toEqual(['avg<200', 'p(95)<500']);
    script.default(script.setup());
    // 61 s in: stage 2, the surge (60 s to 70 s)
    expect(sent[0].tags.stage).toBe('2');
    const trend = (count: number) => ({ type: 'trend', values: { avg: 10, min: 1, med: 9, max: 30, 'p(90)': 20, 'p(95)': 25, 'p(99)': 28, count } });
    const metrics: Record<string, unknown> = { http_reqs: { type: 'counter', values: { count: 8000, rate: 30 } }, http_req_duration: trend(8000) };
    for (const [stage, count] of [[1, 600], [2, 550], [3, 3600], [4, 550], [5, 1200]] as const) metrics[`http_req_duration{stage:${stage}}`] = trend(count);
    const out = script.handleSummary({ state: { testRunDurationMs: 260_000 }, metrics });
    const summary = loadSummarySchema.parse(JSON.parse(out['/reports/run/summary.json']));
    expect(summary.stages!.map((s) => [s.stage, s.fromRatePerSecond, s.toRatePerSecond, s.seconds, s.achievedRatePerSecond])).toEqual([
      [1, 10, 10, 60, 10],
      [2, 10, 100, 10, 55],
      [3, 100, 100, 60, 60],
      [4, 100, 10, 10, 55],
      [5, 10, 10, 120, 10],
    ]);
    expect(summary.thresholds.some((t) => t.metric.includes('stage:'))).toBe(false);
    expect(out['/reports/run/report.md']).toContain('| 3 | 100 over 60 s | 60.0 | 3600 | 60.0 |');
  });

  it('a direct run that ended well short of its plan with its thresholds met reads as interrupted, never PASS', () => {
    const { script } = loadScript(env('baseline', { DURATION: '5m' }));
    const trend = { type: 'trend', values: { avg: 12, min: 1, med: 10, max: 90, 'p(90)': 30, 'p(95)': 40, 'p(99)': 70, count: 100 }, thresholds: { 'avg<200': { ok: true } } };
    const out = script.handleSummary({ state: { testRunDurationMs: 20_000 }, metrics: { http_req_duration: trend } });
    const summary = JSON.parse(out['/reports/run/summary.json']);
    expect(summary.run).toEqual({ outcome: 'interrupted', exitCode: null, plannedDurationSeconds: 300, actualDurationSeconds: 20 });
    expect(summary.thresholdsOk).toBe(false);
    expect(out['/reports/run/report.md']).toContain('**INTERRUPTED**');
    expect(out['/reports/run/report.md']).not.toContain('PASS');
  });

  it('puts dropped iterations in the summary and on the report\'s first lines', () => {
    const { script } = loadScript(env('baseline', { RATE: '600', DURATION: '30s' }));
    const trend = { type: 'trend', values: { avg: 400, min: 1, med: 350, max: 2000, 'p(90)': 900, 'p(95)': 1200, 'p(99)': 1800, count: 11700 } };
    const out = script.handleSummary({
      state: { testRunDurationMs: 30_000 },
      metrics: { http_req_duration: trend, http_reqs: { type: 'counter', values: { count: 11700, rate: 390 } }, iterations: { type: 'counter', values: { count: 11700, rate: 390 } }, dropped_iterations: { type: 'counter', values: { count: 6300, rate: 210 } } },
    });
    expect(JSON.parse(out['/reports/run/summary.json'])).toMatchObject({ iterations: 11700, droppedIterations: 6300 });
    expect(out['/reports/run/report.md'].split('\n')[0]).toBe(
      '> dropped: 6300 of 18000 offered iterations (35.0%): k6 had no free VU to start them, so the service was sent less than the offered rate',
    );
  });
});

describe('what only the real binary showed (issue: load)', () => {
  const trend = { type: 'trend', values: { avg: 12, min: 1, med: 10, max: 90, 'p(90)': 30, 'p(95)': 40, 'p(99)': 70, count: 100 } };

  it('without REPORT_DIR returns nothing from handleSummary, so k6 prints its own end-of-test summary (how the wrapper runs it)', () => {
    const { REPORT_DIR: _omitted, ...direct } = env('baseline');
    const out = loadScript(direct).script.handleSummary({ state: { testRunDurationMs: 1_000 }, metrics: { http_req_duration: trend } });
    expect(out).toBeUndefined();
  });

  it('every run writes new patterns (one nonce per run, in setup) to load-test scopes, and the summary records nonce, seed and offer', () => {
    const first = loadScript(env('baseline', { RATE: '40', DURATION: '2m' }));
    const second = loadScript(env('baseline', { RATE: '40', DURATION: '2m' }));
    const nonces = [first.script.setup().runNonce, second.script.setup().runNonce];
    expect(nonces[0]).not.toBe(nonces[1]);
    for (let i = 0; i < 200; i++) first.script.default({ runNonce: nonces[0]! });
    const writes = first.sent.filter((s) => s.tags.endpoint === 'patterns').map((s) => JSON.parse(s.body!));
    expect(writes.length).toBeGreaterThan(5);
    for (const write of writes) {
      expect(write.scopeId).toMatch(/^scope:loadtest-/);
      expect(write.patterns[0].content).toContain(`load run ${nonces[0]}`);
      expect(Date.parse(write.patterns[0].expiresAt)).toBeGreaterThan(Date.now() + 23 * 3_600_000);
    }
    const out = first.script.handleSummary({ state: { testRunDurationMs: 120_000 }, metrics: { http_req_duration: trend }, setup_data: { runNonce: nonces[0] } });
    const summary = loadSummarySchema.parse(JSON.parse(out['/reports/run/summary.json']));
    expect(summary.traffic).toEqual({ seed: 20261123, runNonce: nonces[0], scopePrefix: 'loadtest-' });
    expect(summary.offered).toEqual({ model: 'open', ratePerSecond: 40, plannedDurationSeconds: 120 });
    // The wrapper's own nonce wins, so the summary and the wrapper agree.
    expect(loadScript(env('baseline', { RUN_NONCE: 'wrapper123' })).script.setup().runNonce).toBe('wrapper123');
  });

  it('counts 429s, and the report says "limited" in its first line', () => {
    const limited = (method: string, url: string, body: string | null) =>
      new URL(url).pathname.startsWith('/api/memory/') ? { status: 429, body: '{"error":"Too many requests"}' } : answer(method, url, body);
    const { script, counted } = loadScript(env('baseline'), limited);
    const data = script.setup();
    for (let i = 0; i < 50; i++) script.default(data);
    expect(counted.filter((c) => c.name === 'rate_limited').length).toBeGreaterThan(30);
    const out = script.handleSummary({
      state: { testRunDurationMs: 1_000 },
      metrics: { http_req_duration: trend, rate_limited: { type: 'counter', values: { count: 44, rate: 44 } } },
    });
    expect(out['/reports/run/report.md'].split('\n')[0]).toMatch(/^> limited: 44 × 429/);
    expect(JSON.parse(out['/reports/run/summary.json']).rateLimited).toBe(44);
  });

  it('refuses at init what it cannot honour: DURATION on a breakpoint, a bad PATTERN_TTL_HOURS', () => {
    expect(() => loadScript(env('breakpoint', { DURATION: '1m' }))).toThrow(/RAMP_SECONDS/);
    expect(() => loadScript(env('baseline', { PATTERN_TTL_HOURS: '-1' }))).toThrow(/PATTERN_TTL_HOURS/);
  });
});

describe('the load-test token (LOAD_TEST_TOKEN, from the environment)', () => {
  const TOKEN = 'load-test-token-k6-0123456789';
  const trend = { type: 'trend', values: { avg: 12, min: 1, med: 10, max: 90, 'p(90)': 30, 'p(95)': 40, 'p(99)': 70, count: 100 } };

  it('goes on every request as X-Load-Test-Token, and nowhere else: not in tags, the summary or the report', () => {
    const { script, sent, checks } = loadScript(env('baseline', { LOAD_TEST_TOKEN: TOKEN }));
    const data = script.setup();
    for (let i = 0; i < 100; i++) script.default(data);
    expect(sent.every((s) => s.headers['X-Load-Test-Token'] === TOKEN)).toBe(true);
    expect(JSON.stringify(sent.map((s) => [s.url, s.body, s.tags]))).not.toContain(TOKEN);
    expect(JSON.stringify(checks)).not.toContain(TOKEN);
    const out = script.handleSummary({ state: { testRunDurationMs: 1_000 }, metrics: { http_req_duration: trend }, setup_data: data });
    for (const text of Object.values(out)) expect(text).not.toContain(TOKEN);
    expect(JSON.parse(out['/reports/run/summary.json']).environment.loadTestToken).toBe('sent');
  });

  it('without one, no request carries the header and the summary says none was sent', () => {
    const { script, sent } = loadScript(env('baseline'));
    const data = script.setup();
    for (let i = 0; i < 50; i++) script.default(data);
    expect(sent.some((s) => 'X-Load-Test-Token' in s.headers)).toBe(false);
    const out = script.handleSummary({ state: { testRunDurationMs: 1_000 }, metrics: { http_req_duration: trend } });
    expect(JSON.parse(out['/reports/run/summary.json']).environment.loadTestToken).toBe('none');
  });
});

describe('k6 and bench:load send the same mix', () => {
  let server: Server;
  let url = '';
  const received: string[] = [];
  const receivedTokens: Array<string | string[] | undefined> = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        received.push(`${req.method} ${req.url} ${body}`);
        receivedTokens.push(req.headers['x-load-test-token']);
        const { status, body: answerBody } = answer(req.method!, `http://x${req.url}`, body || null);
        res.writeHead(status, { 'content-type': 'application/json' }).end(answerBody);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** The request as sent, without the one field that depends on the clock (a write's expiresAt). */
  const normalise = (method: string, path: string, body: string | null) => {
    const parsed = body ? JSON.parse(body) : null;
    for (const pattern of parsed?.patterns ?? []) delete pattern.expiresAt;
    return `${method} ${path} ${parsed ? JSON.stringify(parsed) : ''}`;
  };

  it('the same seed, writer and run nonce give the same requests in the same order through both drivers', async () => {
    const runNonce = 'samemix001';
    // k6: VU 1 draws from SEED + 1.
    const loadTestToken = 'same-mix-load-test-token-01';
    const k6 = loadScript(env('baseline', { SEED: '4242', LOAD_TEST_TOKEN: loadTestToken }));
    for (let i = 0; i < 400; i++) k6.script.default({ runNonce });
    const k6Requests = k6.sent.map((s) => normalise(s.method, new URL(s.url).pathname, s.body));

    // bench:load: one connection, so requests arrive in the order the generator made them.
    await driveMix({ baseUrl: url, connections: 1, durationSeconds: 1, seed: 4243, writerId: 'k6-vu1', runNonce, loadTestToken });
    const benchRequests = received.map((line) => {
      const [method, path, ...rest] = line.split(' ');
      return normalise(method!, path!, rest.join(' ') || null);
    });
    expect(benchRequests.length).toBeGreaterThanOrEqual(400);
    expect(benchRequests.slice(0, 400)).toEqual(k6Requests);
    // Both send the load-test token on every request, in the same header.
    expect(k6.sent.every((s) => s.headers['X-Load-Test-Token'] === loadTestToken)).toBe(true);
    expect(receivedTokens.every((token) => token === loadTestToken)).toBe(true);
    expect(new Set(k6Requests.map((r) => r.split(' ')[1]))).toEqual(new Set(['/api/memory/snippets', '/api/memory/patterns', '/api/memory/health', '/api/config', '/api/metrics/memory']));
  });
});
