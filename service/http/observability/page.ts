/**
 * The /observability page: one self-contained HTML document (inline CSS and JS, no external assets).
 * It holds no figures and no configuration: everything shown comes from the service's own endpoints at run time,
 * so nothing secret can be rendered into it on the server.
 */
import { OBSERVABILITY_PAGE_SCRIPT } from './page-script';

const STYLE = `
:root { color-scheme: light; --ink: #1f2933; --muted: #616e7c; --line: #d9e2ec; --good: #1e7b45; --bad: #b42318; --off: #7b5e00;
  --a: #2563eb; --b: #d97706; --c: #b42318; --d: #0f766e; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: #f5f7fa; }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 16px; padding: 14px 20px; background: #fff; border-bottom: 1px solid var(--line); }
h1 { margin: 0; font-size: 18px; }
h2 { margin: 0 0 8px; font-size: 15px; }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 14px; padding: 16px 20px; }
.panel { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.panel[data-state="error"] { border-color: var(--bad); }
.panel-error { margin: 0 0 8px; padding: 6px 8px; border-radius: 4px; background: #fdecea; color: var(--bad); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 3px 12px; margin: 0; }
table.cohorts { border-collapse: collapse; margin-top: 8px; width: 100%; }
table.cohorts th, table.cohorts td { text-align: right; padding: 2px 6px; border-bottom: 1px solid var(--line); }
table.cohorts th:first-child, table.cohorts td:first-child { text-align: left; }
#panel-rollout h3 { font-size: 0.95em; margin: 10px 0 4px; }
#rollout-history, #rollout-instances { margin: 0; padding-left: 18px; max-height: 10em; overflow-y: auto; }
#kill-switch { background: #b3261e; color: #fff; border: 0; border-radius: 4px; padding: 4px 10px; }
dt { color: var(--muted); }
dd { margin: 0; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; margin: 0 0 8px; padding: 3px 8px; border-radius: 12px; font-weight: 600; background: #eef2f6; }
[data-level="good"] { color: var(--good); }
[data-level="bad"] { color: var(--bad); }
[data-level="off"] { color: var(--off); }
.note { color: var(--muted); font-size: 12px; margin: 6px 0 0; }
.big { font-size: 28px; font-weight: 600; margin: 0; }
svg.chart { display: block; width: 100%; height: auto; margin-top: 8px; }
svg .frame { fill: #fbfcfd; stroke: var(--line); }
svg .axis { fill: var(--muted); font-size: 9px; }
svg .empty { fill: var(--muted); font-size: 11px; }
svg .line { fill: none; stroke-width: 1.6; }
svg .line.series-a { stroke: var(--a); } svg .dot.series-a { fill: var(--a); }
svg .line.series-b { stroke: var(--b); } svg .dot.series-b { fill: var(--b); }
svg .line.series-c { stroke: var(--c); } svg .dot.series-c { fill: var(--c); }
svg .line.series-d { stroke: var(--d); } svg .dot.series-d { fill: var(--d); }
.legend { display: flex; flex-wrap: wrap; gap: 2px 12px; white-space: nowrap; font-size: 12px; color: var(--muted); margin-top: 4px; }
.legend span::before { content: ""; display: inline-block; width: 10px; height: 3px; margin-right: 4px; vertical-align: middle; }
.legend .key-a::before { background: var(--a); } .legend .key-b::before { background: var(--b); } .legend .key-c::before { background: var(--c); } .legend .key-d::before { background: var(--d); }
form { display: flex; gap: 6px; flex-wrap: wrap; margin-bottom: 8px; }
input[type="password"] { flex: 1; min-width: 160px; padding: 5px 8px; border: 1px solid var(--line); border-radius: 4px; }
button { padding: 5px 10px; border: 1px solid var(--line); border-radius: 4px; background: #f0f4f8; cursor: pointer; }
progress { width: 100%; height: 12px; }
footer { padding: 0 20px 20px; color: var(--muted); font-size: 12px; }
`;

/** The page for one response; `nonce` is that response's CSP nonce for the inline style and script. */
export function renderObservabilityPage(nonce: string): string {
  if (!/^[A-Za-z0-9+/=]+$/.test(nonce)) throw new Error('CSP nonce must be base64');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Memory service · Observability</title>
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<header>
  <h1>Memory service · Observability</h1>
  <span id="updated" aria-live="polite">loading…</span>
</header>
<main>
  <section class="panel" id="panel-adapter" data-state="loading">
    <h2>Memory adapter</h2>
    <p class="panel-error" hidden></p>
    <p class="badge" id="adapter-badge">loading…</p>
    <dl>
      <dt>ENABLE_CONTEXT7_MEMORY</dt><dd id="flag">–</dd>
      <dt>Context7 available</dt><dd id="c7-available">–</dd>
      <dt>Provider</dt><dd id="c7-provider">–</dd>
      <dt>Reason</dt><dd id="c7-reason">–</dd>
      <dt>Instance</dt><dd id="instance">–</dd>
      <dt>Counters since</dt><dd id="started">–</dd>
    </dl>
  </section>

  <section class="panel" id="panel-rollout" data-state="loading">
    <h2>Rollout (progressive exposure)</h2>
    <p class="panel-error" hidden></p>
    <dl>
      <dt>Exposure applied</dt><dd id="rollout-exposure">–</dd>
      <dt>Ceiling</dt><dd id="rollout-ceiling">–</dd>
      <dt>Version</dt><dd id="rollout-version">–</dd>
    </dl>
    <table class="cohorts" id="rollout-cohorts" aria-label="Treatment and control cohorts since the counters started">
      <thead><tr><th>since start</th><th>treatment (Context7)</th><th>control (local)</th></tr></thead>
      <tbody>
        <tr><td>requests</td><td id="cohort-treatment-requests">–</td><td id="cohort-control-requests">–</td></tr>
        <tr><td>5xx</td><td id="cohort-treatment-5xx">–</td><td id="cohort-control-5xx">–</td></tr>
        <tr><td>fallbacks</td><td id="cohort-treatment-fallbacks">–</td><td id="cohort-control-fallbacks">–</td></tr>
        <tr><td>latency avg / p95</td><td id="cohort-treatment-latency">–</td><td id="cohort-control-latency">–</td></tr>
      </tbody>
    </table>
    <p class="note" id="rollout-admin-note">With the admin token (below): every instance's exposure, the history and the kill switch.</p>
    <div id="rollout-admin" hidden>
      <h3>Every instance</h3>
      <ul id="rollout-instances"></ul>
      <h3>Exposure history (audit, newest first)</h3>
      <ol id="rollout-history"></ol>
      <h3>Kill switch</h3>
      <p>Current percentage: <strong id="rollout-current">–</strong></p>
      <input type="text" id="kill-actor" autocomplete="off" spellcheck="false" placeholder="your name (recorded in the audit)" aria-label="Actor">
      <button type="button" id="kill-switch">Set exposure to 0 %</button>
      <p class="note" id="kill-message" aria-live="polite"></p>
    </div>
  </section>

  <section class="panel" id="panel-errors" data-state="loading">
    <h2>Recent errors <span class="note" id="recent-span"></span></h2>
    <p class="panel-error" hidden></p>
    <dl>
      <dt>Context7 errors</dt><dd id="recent-c7-errors">–</dd>
      <dt>Store errors</dt><dd id="recent-store-errors">–</dd>
      <dt>Fallbacks</dt><dd id="recent-fallbacks">–</dd>
    </dl>
    <h2 class="note">Totals since the counters started</h2>
    <dl>
      <dt>Context7 errors</dt><dd id="total-c7-errors">–</dd>
      <dt>Store errors</dt><dd id="total-store-errors">–</dd>
      <dt>Fallbacks</dt><dd id="total-fallbacks">–</dd>
      <dt>By type</dt><dd id="errors-by-type">–</dd>
    </dl>
    <p class="note">Store errors are the local store failing: turning Context7 off does not fix them.</p>
    <p class="note" id="counter-note"></p>
  </section>

  <section class="panel" id="panel-latency" data-state="loading">
    <h2>Context7 latency</h2>
    <p class="panel-error" hidden></p>
    <p id="latency-now">–</p>
    <svg class="chart" id="chart-latency" viewBox="0 0 320 120" role="img" aria-label="Context7 latency over time"></svg>
    <div class="legend"><span class="key-a">avg per poll</span><span class="key-b">p95 (recent calls)</span></div>
  </section>

  <section class="panel" id="panel-cache" data-state="loading">
    <h2>Cache</h2>
    <p class="panel-error" hidden></p>
    <dl>
      <dt>Hit rate</dt><dd id="cache-hit-rate">–</dd>
      <dt>Size</dt><dd id="cache-size">–</dd>
      <dt>TTL</dt><dd id="cache-ttl">–</dd>
    </dl>
    <svg class="chart" id="chart-cache" viewBox="0 0 320 120" role="img" aria-label="Cache hit rate over time"></svg>
    <div class="legend"><span class="key-a">hit rate per poll</span></div>
  </section>

  <section class="panel" id="panel-traffic" data-state="loading">
    <h2>Traffic (per minute)</h2>
    <p class="panel-error" hidden></p>
    <svg class="chart" id="chart-traffic" viewBox="0 0 320 120" role="img" aria-label="Requests per minute over time"></svg>
    <div class="legend"><span class="key-a">memory reads</span><span class="key-d">store requests</span><span class="key-b">Context7 calls</span><span class="key-c">errors</span></div>
  </section>

  <section class="panel" id="panel-outbox" data-state="loading">
    <h2>Outbox</h2>
    <p class="panel-error" hidden></p>
    <p class="big" id="outbox-depth">–</p>
    <p class="note">Patterns saved locally and waiting to reach Context7.</p>
  </section>

  <section class="panel" id="panel-backfill" data-state="locked">
    <h2>Backfill (admin)</h2>
    <p class="panel-error" hidden></p>
    <form id="admin-form" autocomplete="off">
      <input type="password" id="admin-token" name="admin-token" autocomplete="off" spellcheck="false" placeholder="ADMIN_TOKEN" aria-label="Admin token">
      <button type="submit">Show backfill</button>
      <button type="button" id="admin-clear" hidden>Clear token</button>
    </form>
    <p class="note" id="admin-message" aria-live="polite">The token stays in this tab's memory and is sent only to the admin endpoints (backfill status, exposure).</p>
    <div id="admin-details" hidden>
      <progress id="backfill-progress" max="100" value="0"></progress>
      <dl>
        <dt>Progress</dt><dd id="backfill-percent">–</dd>
        <dt>State</dt><dd id="backfill-state">–</dd>
        <dt>Patterns</dt><dd id="backfill-counts">–</dd>
        <dt>Sync errors</dt><dd id="backfill-errors">–</dd>
        <dt>Time</dt><dd id="backfill-times">–</dd>
      </dl>
    </div>
  </section>
</main>
<footer>Built from this service's endpoints: /api/config, /api/memory/health, /api/metrics/memory, /metrics and, with a token, /api/admin/sync-context7/status and /api/admin/exposure (and its audit).</footer>
<script nonce="${nonce}">${OBSERVABILITY_PAGE_SCRIPT}</script>
</body>
</html>
`;
}
