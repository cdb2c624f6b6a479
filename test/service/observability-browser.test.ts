/**
 * /observability in headless Chromium against a real in-process service (and the Context7 emulator): it renders,
 * its charts fill with data after traffic, the admin panel needs a token held in memory only, and it degrades
 * clearly (Context7 off, service starting, one endpoint failing). No console errors, no CSP violations.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DISABLED_REASON } from '../../service/contracts/http';
import { TEST_ADMIN_TOKEN, TEST_API_KEY, scope, startHarness, waitFor, type Harness } from './support/harness';

const CHROMIUM = '/usr/bin/chromium';
const screenshots = mkdtempSync(join(tmpdir(), 'observability-'));
let browser: Browser;
const harnesses: Harness[] = [];

const MISSING_CHROMIUM = `Chromium not found at ${CHROMIUM}: install it with \`apt-get install -y chromium\` (Debian) to run the /observability browser tests`;

beforeAll(async () => {
  // Never skipped: without Chromium every test below fails with MISSING_CHROMIUM, which says how to fix it.
  if (!existsSync(CHROMIUM)) return;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}, 60_000);

afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
});

afterAll(async () => {
  await browser?.close();
  // The screenshots are for a person looking into a failure: KEEP_OBSERVABILITY_SCREENSHOTS=1 keeps them.
  if (process.env.KEEP_OBSERVABILITY_SCREENSHOTS) console.log(`observability screenshots kept in ${screenshots}`);
  else rmSync(screenshots, { recursive: true, force: true });
});

async function harness(...args: Parameters<typeof startHarness>): Promise<Harness> {
  const h = await startHarness(...args);
  harnesses.push(h);
  return h;
}

interface OpenedPage {
  page: Page;
  /** console errors/warnings, page errors and CSP violations, in order */
  problems: string[];
  requests: { url: string; authorization: string | undefined }[];
}

/** Chromium logs every non-2xx fetch as a console error; a test lists the statuses it provokes on purpose. */
function unexpectedProblems(problems: string[], expectedStatuses: number[] = []): string[] {
  return problems.filter((problem) => !expectedStatuses.some((status) =>
    problem.startsWith(`console.error: Failed to load resource: the server responded with a status of ${status} `)));
}

async function openPage(h: Harness, setup?: (page: Page) => Promise<void>): Promise<OpenedPage> {
  if (!browser) throw new Error(MISSING_CHROMIUM);
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems: string[] = [];
  const requests: OpenedPage['requests'] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') problems.push(`console.${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  page.on('request', (request) => requests.push({ url: request.url(), authorization: request.headers().authorization }));
  // Runs in the page before its own script (a string: the test project has no DOM types).
  await page.addInitScript({
    content: "document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + e.blockedURI));",
  });
  await setup?.(page);
  const response = await page.goto(`${h.url}/observability?refresh=1`);
  expect(response?.status()).toBe(200);
  return { page, problems, requests };
}

const text = async (page: Page, selector: string) => (await page.locator(selector).textContent())?.trim() ?? '';
const points = async (page: Page, chartId: string) => Number(await page.locator(`#${chartId}`).getAttribute('data-points'));

async function traffic(h: Harness, round: number): Promise<void> {
  const scopeId = scope('observability', 'agent-1', `prompt ${round % 3}`);
  const saved = await h.request('POST', '/api/memory/patterns', { scopeId, patterns: [`pattern ${round}`] });
  expect(saved.status).toBe(200);
  for (let i = 0; i < 3; i += 1) {
    expect((await h.request('POST', '/api/memory/snippets', { scopeId, query: `pattern ${round % 2}` })).status).toBe(200);
  }
}

/** Drives traffic while the page polls, until `done` holds. */
async function trafficUntil(h: Harness, what: string, done: () => Promise<boolean>): Promise<void> {
  let round = 0;
  await waitFor(what, async () => {
    await traffic(h, round);
    round += 1;
    await new Promise((resolve) => setTimeout(resolve, 300));
    return done();
  }, 20_000);
}

/** The page polls every second; on a loaded machine a poll, and Chromium, can take several. */
const SLOW = { timeout: 15_000 };

describe('/observability: the rollout in headless Chromium', () => {
  it('shows exposure and the cohorts side by side; behind the token every instance, the audit history and a confirmed kill switch', async () => {
    const h = await harness({ emulator: { faults: { latencyMs: 5 } }, env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN } });
    const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
    expect((await h.request('PUT', '/api/admin/exposure', { percent: 50, actor: 'canary', reason: 'stepped canary: step 3 of 4' }, admin)).status).toBe(200);
    const { page, problems, requests } = await openPage(h);

    // Public: the exposure this instance applies, and both cohorts with traffic.
    await expect.poll(() => text(page, '#rollout-exposure'), SLOW).toBe('50 % of scopes (instance test-instance)');
    expect(await text(page, '#rollout-ceiling')).toBe('100 %');
    expect(await text(page, '#rollout-version')).toBe('1');
    await trafficUntil(h, 'both cohorts to have requests', async () =>
      Number(await text(page, '#cohort-treatment-requests')) > 0 && Number(await text(page, '#cohort-control-requests')) > 0);
    expect(await text(page, '#cohort-treatment-5xx')).toMatch(/^0 \(0\.0 %\)$/);
    expect(await text(page, '#cohort-control-fallbacks')).toMatch(/^0 \(/);
    expect(await text(page, '#cohort-treatment-latency')).toMatch(/^\d+ \/ \d+ ms$/);
    expect(await page.locator('#rollout-admin').isVisible()).toBe(false);
    expect(requests.some((r) => r.url.includes('/api/admin/'))).toBe(false);

    // Behind the token: every instance's exposure, the audit, the current percentage.
    await page.fill('#admin-token', TEST_ADMIN_TOKEN);
    await page.click('#admin-form button[type="submit"]');
    await expect.poll(() => text(page, '#rollout-current'), SLOW).toBe('50 %, version 1, set by canary');
    expect(await page.locator('#rollout-history li').allTextContents()).toEqual([expect.stringMatching(/ceiling → 50 % · canary · stepped canary: step 3 of 4$/)]);
    expect(await text(page, '#rollout-instances')).toContain('propagation');

    // The kill switch: refused without an actor, nothing changed when the confirmation is dismissed, then applied.
    await page.click('#kill-switch');
    await expect.poll(() => text(page, '#kill-message'), SLOW).toContain('Say who you are');
    await page.fill('#kill-actor', 'oncall-amy');
    const dialogs: string[] = [];
    page.once('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    await page.click('#kill-switch');
    await expect.poll(() => text(page, '#kill-message'), SLOW).toBe('Cancelled: nothing changed.');
    expect((await h.request('GET', '/api/admin/exposure', undefined, admin)).body.percent).toBe(50);
    page.once('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.accept();
    });
    await page.click('#kill-switch');
    await expect.poll(() => text(page, '#kill-message'), SLOW).toMatch(/^Exposure set to 0 % \(version 2\) by oncall-amy/);
    expect(dialogs).toHaveLength(2);
    expect(dialogs[0]).toContain('set Context7 exposure to 0 %');
    const state = (await h.request('GET', '/api/admin/exposure', undefined, admin)).body;
    expect(state).toMatchObject({ percent: 0, version: 2, updatedBy: 'oncall-amy' });
    await expect.poll(() => text(page, '#rollout-exposure'), SLOW).toBe('0 % of scopes (instance test-instance)');
    expect((await page.locator('#rollout-history li').allTextContents())[0]).toMatch(/50 → 0 % · oncall-amy · kill switch from \/observability$/);
    expect(await page.content()).not.toContain(TEST_ADMIN_TOKEN);
    await page.screenshot({ path: join(screenshots, 'observability-rollout.png'), fullPage: true });
    expect(unexpectedProblems(problems)).toEqual([]);
    await page.close();
  }, 90_000);
});

describe('/observability in headless Chromium', () => {
  it('has Chromium to run in', () => {
    expect(existsSync(CHROMIUM), MISSING_CHROMIUM).toBe(true);
  });

  it('with Context7 on: status, charts with data after traffic, outbox, and backfill only behind the admin token', async () => {
    const h = await harness({ emulator: { faults: { latencyMs: 15 } }, env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN } });
    const { page, problems, requests } = await openPage(h);

    await expect.poll(() => text(page, '#adapter-badge'), SLOW).toBe('Context7 available');
    expect(await text(page, '#flag')).toBe('on');
    expect(await text(page, '#c7-provider')).toBe('context7');

    await trafficUntil(h, 'latency, cache and traffic charts to have data', async () =>
      (await points(page, 'chart-latency')) >= 4 && (await points(page, 'chart-cache')) >= 2 && (await points(page, 'chart-traffic')) >= 6);
    expect(await page.locator('#chart-latency polyline').count()).toBe(2);
    expect(await page.locator('#chart-cache circle').count()).toBeGreaterThanOrEqual(2);
    expect(await text(page, '#latency-now')).toMatch(/^avg \d+ ms · p95 \d+ ms \(\d+ calls\)$/);
    expect(await text(page, '#cache-hit-rate')).toMatch(/^\d+\.\d % \(\d+ hits, \d+ misses\)$/);
    expect(await text(page, '#cache-ttl')).not.toBe('–');
    await expect.poll(() => text(page, '#recent-span'), SLOW).toMatch(/^last \d+ s \(since this page opened\)$/);
    expect(await text(page, '#recent-c7-errors')).toMatch(/^0 of \d+ calls$/);
    expect(await text(page, '#recent-store-errors')).toMatch(/^0 of \d+ store requests$/);
    expect(await text(page, '#recent-fallbacks')).toMatch(/^0 of [1-9]\d* reads$/);
    const readRates = await page.$$eval('#chart-traffic circle.series-a title', (titles) => titles.map((t) => Number(/: ([\d.]+)/.exec(t.textContent ?? '')?.[1])));
    expect(Math.max(...readRates)).toBeGreaterThan(0);
    expect(await text(page, '#outbox-depth')).toMatch(/^\d+$/);
    await expect.poll(() => text(page, '#updated'), SLOW).toMatch(/^updated \d+ s ago · refresh every 1 s$/);

    // Admin details stay hidden, and the admin endpoint untouched, until a token is typed in.
    expect(await page.locator('#admin-details').isVisible()).toBe(false);
    expect(requests.some((r) => r.url.includes('/api/admin/'))).toBe(false);
    const started = await h.request('POST', '/api/admin/sync-context7', {}, { authorization: `Bearer ${TEST_ADMIN_TOKEN}` });
    expect(started.status).toBe(202);

    // A wrong token: a clear 401 message, no details, and the token is not echoed anywhere.
    const wrongToken = 'not-the-admin-token-123456';
    await page.fill('#admin-token', wrongToken);
    await page.click('#admin-form button[type="submit"]');
    await expect.poll(() => text(page, '#admin-message'), SLOW).toContain('rejected (401)');
    expect(await page.locator('#admin-details').isVisible()).toBe(false);
    expect(await page.content()).not.toContain(wrongToken);
    expect(await page.inputValue('#admin-token')).toBe('');

    // The right token: backfill progress appears and follows the job to completion.
    await page.fill('#admin-token', TEST_ADMIN_TOKEN);
    await page.press('#admin-token', 'Enter');
    await expect.poll(() => page.locator('#admin-details').isVisible(), SLOW).toBe(true);
    await expect.poll(() => text(page, '#backfill-state'), { timeout: 15_000 }).toBe('completed');
    expect(await text(page, '#backfill-percent')).toBe('100.0 %');
    expect(await page.locator('#backfill-progress').getAttribute('value')).toBe('100');
    expect(await text(page, '#backfill-counts')).toMatch(/^(\d+) of \1 patterns handled, \1 synced$/);
    expect(await text(page, '#backfill-errors')).toMatch(/^0 \(0\.0 % of handled/);

    // The token lives in a JS variable only: not in the DOM, storage, cookies or the URL, and only the admin endpoint gets it.
    expect(await page.content()).not.toContain(TEST_ADMIN_TOKEN);
    expect(await page.evaluate('[localStorage.length, sessionStorage.length, document.cookie]')).toEqual([0, 0, '']);
    expect((await page.context().cookies()).length).toBe(0);
    expect(page.url()).toBe(`${h.url}/observability?refresh=1`);
    const authorized = requests.filter((r) => r.authorization !== undefined);
    expect(authorized.length).toBeGreaterThan(0);
    expect(new Set(authorized.map((r) => new URL(r.url).pathname))).toEqual(new Set(['/api/admin/sync-context7/status', '/api/admin/exposure', '/api/admin/exposure/audit']));
    expect(new Set(authorized.map((r) => r.authorization))).toEqual(new Set([`Bearer ${wrongToken}`, `Bearer ${TEST_ADMIN_TOKEN}`]));
    expect(requests.every((r) => r.url.startsWith(h.url))).toBe(true);

    const screenshot = join(screenshots, 'observability-context7-on.png');
    await page.screenshot({ path: screenshot, fullPage: true });

    // Clear forgets the token: the details hide and no further admin request is made.
    await page.click('#admin-clear');
    expect(await page.locator('#admin-details').isVisible()).toBe(false);
    const adminRequestsAtClear = requests.filter((r) => r.url.includes('/api/admin/')).length;
    const pollsAtClear = requests.filter((r) => r.url.endsWith('/api/config')).length;
    await expect.poll(() => requests.filter((r) => r.url.endsWith('/api/config')).length, { timeout: 5_000 }).toBeGreaterThan(pollsAtClear + 1);
    expect(requests.filter((r) => r.url.includes('/api/admin/')).length).toBe(adminRequestsAtClear);

    expect(unexpectedProblems(problems, [401])).toEqual([]);
    expect(problems.filter((p) => p.includes('status of 401')).length).toBe(1);
    expect(await page.content()).not.toContain(TEST_API_KEY);
    await page.close();
  }, 60_000);

  it('with the flag off: says Context7 is disabled and that its charts have nothing to chart', async () => {
    const h = await harness();
    const { page, problems } = await openPage(h);
    await expect.poll(() => text(page, '#adapter-badge'), SLOW).toBe('Context7 disabled in environment: the local store serves memory');
    expect(await text(page, '#flag')).toBe('off');
    expect(await text(page, '#c7-available')).toBe('no');
    expect(await text(page, '#c7-reason')).toBe(DISABLED_REASON);

    // Flag-off traffic is not counted by the Context7 counters (latency and cache say there is nothing to chart),
    // but it still needs the local store, whose requests are counted flag on or off: the traffic chart draws them.
    let polls = 0;
    await trafficUntil(h, 'a few polls with traffic', async () => (await text(page, '#recent-span')).startsWith('last') && ++polls >= 3);
    expect(await points(page, 'chart-latency')).toBe(0);
    expect(await text(page, '#chart-latency')).toBe('No Context7 calls yet:nothing to chart');
    expect(await text(page, '#latency-now')).toBe('No Context7 calls measured yet');
    expect(await text(page, '#chart-cache')).toBe('No cache lookups yet:nothing to chart');
    expect(await points(page, 'chart-traffic')).toBeGreaterThan(0);
    expect(await text(page, '#chart-traffic')).toContain('memory reads: 0.0/min');
    expect(await text(page, '#recent-c7-errors')).toBe('0 of 0 calls');
    expect(await text(page, '#outbox-depth')).toMatch(/^\d+$/);
    for (const panel of ['adapter', 'errors', 'latency', 'cache', 'traffic', 'outbox']) {
      expect(await page.locator(`#panel-${panel}`).getAttribute('data-state'), panel).toBe('ok');
    }
    await page.screenshot({ path: join(screenshots, 'observability-flag-off.png'), fullPage: true });
    expect(unexpectedProblems(problems)).toEqual([]);

    // The policy is live and the violation detector works: an inline style attribute is refused and reported,
    // and Trusted Types refuse an HTML string sink.
    await page.evaluate("document.body.setAttribute('style', 'color: red')");
    await expect.poll(() => problems.some((p) => p.startsWith('console.error: CSP violation: style-src-attr')), SLOW).toBe(true);
    await expect(page.evaluate("document.body.innerHTML = '<b>injected</b>'")).rejects.toThrow(/TrustedHTML/);
    await page.close();
  }, 60_000);

  it('while the service is starting (503 everywhere): every panel says so, and recovers when it is ready', async () => {
    const h = await harness({ emulator: {} });
    let starting = true;
    const { page, problems } = await openPage(h, async (page) => {
      await page.route((url) => url.pathname.startsWith('/api/') || url.pathname === '/metrics', (route) =>
        starting
          ? route.fulfill({ status: 503, contentType: 'application/json', body: '{"error":"Service is starting: the store is not migrated yet"}' })
          : route.continue());
    });
    for (const panel of ['adapter', 'errors', 'latency', 'cache', 'traffic', 'outbox']) {
      await expect.poll(() => page.locator(`#panel-${panel}`).getAttribute('data-state'), { ...SLOW, message: panel }).toBe('error');
      expect(await text(page, `#panel-${panel} .panel-error`)).toContain('starting or unavailable (503): retrying');
    }
    await expect.poll(() => text(page, '#updated'), SLOW).toBe('not updated yet · service is starting (503): retrying · refresh every 1 s');
    await page.screenshot({ path: join(screenshots, 'observability-starting.png'), fullPage: true });

    starting = false;
    await expect.poll(() => text(page, '#adapter-badge'), SLOW).toBe('Context7 available');
    await expect.poll(() => page.locator('#panel-outbox').getAttribute('data-state'), SLOW).toBe('ok');
    expect(unexpectedProblems(problems, [503])).toEqual([]);
    await page.close();
  }, 60_000);

  it('when one endpoint fails: only its panel shows the error, the rest keeps working', async () => {
    const h = await harness({ emulator: {} });
    const { page, problems } = await openPage(h, async (page) => {
      await page.route((url) => url.pathname === '/metrics', (route) =>
        route.fulfill({ status: 500, contentType: 'application/json', body: '{"error":"Internal server error"}' }));
    });
    await expect.poll(() => page.locator('#panel-outbox').getAttribute('data-state'), SLOW).toBe('error');
    expect(await text(page, '#panel-outbox .panel-error')).toBe('Prometheus /metrics: HTTP 500: Internal server error');
    await trafficUntil(h, 'the latency chart to have data', async () => (await points(page, 'chart-latency')) >= 2);
    for (const panel of ['adapter', 'errors', 'latency', 'cache', 'traffic']) {
      expect(await page.locator(`#panel-${panel}`).getAttribute('data-state'), panel).toBe('ok');
    }
    expect(await text(page, '#updated')).toMatch(/some endpoints failed/);
    expect(unexpectedProblems(problems, [500])).toEqual([]);
    await page.close();
  }, 60_000);
});
