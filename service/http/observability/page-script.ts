/**
 * The /observability page's own JavaScript, inlined under the response's CSP nonce.
 * Plain DOM, textContent only (never innerHTML: the CSP also requires Trusted Types), same-origin fetches only.
 * Written as a plain string (no template literal) so nothing in it is interpolated on the server.
 */
export const OBSERVABILITY_PAGE_SCRIPT = String.raw`
'use strict';
(() => {
  // ?refresh=<seconds> shortens the poll for tests and impatient operators; never below 1 s.
  const refreshSeconds = Number(new URLSearchParams(location.search).get('refresh'));
  const REFRESH_MS = Number.isFinite(refreshSeconds) && refreshSeconds >= 1 ? refreshSeconds * 1000 : 5000;
  const WINDOW_MS = 5 * 60 * 1000; // "recent" errors and the charts' span
  const SVG_NS = 'http://www.w3.org/2000/svg';

  /** One sample per successful /api/metrics/memory poll; deltas between samples give the trends. */
  let samples = [];
  let counterNote = '';
  let pollsSeen = 0;
  let lastUpdatedAt = null;
  let lastPollFailed = false;
  let serviceStarting = false;
  /** The admin token lives only in this variable: never in storage, cookies, the URL or the DOM. */
  let adminToken = null;
  /** ENABLE_CONTEXT7_MEMORY as /api/config last said (null until it answers): the empty charts explain themselves by it. */
  let flagEnabled = null;

  const byId = (id) => document.getElementById(id);
  const setText = (id, text) => { byId(id).textContent = text; };

  class EndpointProblem extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function fetchFrom(path, headers, method, body) {
    let response;
    try {
      response = await fetch(path, { method: method || 'GET', headers: headers || {}, body, cache: 'no-store', credentials: 'omit' });
    } catch (error) {
      throw new EndpointProblem(0, 'service unreachable');
    }
    if (response.ok) return response;
    if (response.status === 503) throw new EndpointProblem(503, 'service is starting or unavailable (503): retrying');
    let detail = '';
    try { detail = String((await response.json()).error || '').slice(0, 200); } catch (error) { detail = ''; }
    throw new EndpointProblem(response.status, 'HTTP ' + response.status + (detail ? ': ' + detail : ''));
  }
  const fetchJson = async (path, headers) => (await fetchFrom(path, headers)).json();

  // Each panel shows its own error and keeps its last figures, so one failing endpoint never blanks the rest.
  function panelOk(panelId) {
    const panel = byId(panelId);
    panel.dataset.state = 'ok';
    panel.querySelector('.panel-error').hidden = true;
  }
  function panelError(panelId, message) {
    const panel = byId(panelId);
    panel.dataset.state = 'error';
    const line = panel.querySelector('.panel-error');
    line.textContent = message;
    line.hidden = false;
  }

  const fmt = (value, digits) => (Number.isFinite(value) ? value.toFixed(digits === undefined ? 0 : digits) : '–');
  const percent = (part, whole) => (whole > 0 ? fmt((part / whole) * 100, 1) + ' %' : '–');
  function duration(ms) {
    const seconds = Math.round(ms / 1000);
    if (seconds < 60) return seconds + ' s';
    return Math.floor(seconds / 60) + ' min' + (seconds % 60 ? ' ' + (seconds % 60) + ' s' : '');
  }

  function renderAdapter(config, health) {
    flagEnabled = config.enableContext7Memory;
    setText('flag', config.enableContext7Memory ? 'on' : 'off');
    const badge = byId('adapter-badge');
    if (!config.enableContext7Memory) {
      badge.dataset.level = 'off';
      badge.textContent = 'Context7 disabled in environment: the local store serves memory';
    } else if (health.available) {
      badge.dataset.level = 'good';
      badge.textContent = 'Context7 available';
    } else {
      badge.dataset.level = 'bad';
      badge.textContent = 'Context7 unavailable: reads fall back to the local store';
    }
    setText('c7-available', health.available ? 'yes' : 'no');
    setText('c7-provider', health.available ? health.provider : '–');
    setText('c7-reason', health.available ? '–' : health.reason);
  }

  function addSample(metrics) {
    const sample = {
      at: Date.now(),
      instanceId: metrics.instanceId,
      startedAt: metrics.startedAt,
      totals: metrics.totals,
      p95: metrics.p95Latency,
    };
    const previous = samples[samples.length - 1];
    const restarted = previous && (previous.instanceId !== sample.instanceId || previous.startedAt !== sample.startedAt ||
      Object.keys(sample.totals).some((key) => sample.totals[key] < previous.totals[key]));
    if (restarted) {
      // Counters of another instance or a restarted process cannot be subtracted: start the window again.
      samples = [];
      counterNote = 'Counters restarted (instance ' + sample.instanceId + '): recent figures start again.';
    }
    samples.push(sample);
    pollsSeen = restarted ? 1 : pollsSeen + 1;
    while (samples.length > 2 && sample.at - samples[1].at >= WINDOW_MS) samples.shift();
  }

  /** Per-interval points for a chart: value(deltaOf, seconds) returns a number, or null for "no data in this interval". */
  function intervalSeries(value) {
    const points = [];
    for (let i = 1; i < samples.length; i += 1) {
      const before = samples[i - 1];
      const after = samples[i];
      const delta = (key) => after.totals[key] - before.totals[key];
      const v = value(delta, (after.at - before.at) / 1000, after);
      if (v !== null && Number.isFinite(v)) points.push({ at: after.at, v });
    }
    return points;
  }

  function renderMetrics(metrics) {
    const totals = metrics.totals;
    setText('instance', metrics.instanceId + ' (deploy ' + metrics.deployId + ', ' + (metrics.scope || 'instance') + ' counters)');
    setText('started', new Date(metrics.startedAt).toLocaleString());

    // Recent errors: counter deltas across the samples this page has seen (up to WINDOW_MS).
    const first = samples[0];
    const last = samples[samples.length - 1];
    const recent = [
      ['recent-c7-errors', 'context7Errors', 'context7Requests', ' calls'],
      ['recent-store-errors', 'storeErrors', 'storeRequests', ' store requests'],
      ['recent-fallbacks', 'fallbacks', 'requests', ' reads'],
    ];
    if (samples.length < 2) {
      setText('recent-span', 'collecting: needs two polls');
      for (const [id] of recent) setText(id, '–');
    } else {
      const delta = (key) => last.totals[key] - first.totals[key];
      const sincePageOpened = last.at - first.at < WINDOW_MS - 2 * REFRESH_MS && samples.length === pollsSeen;
      setText('recent-span', 'last ' + duration(last.at - first.at) + (sincePageOpened ? ' (since this page opened)' : ''));
      for (const [id, failed, attempted, noun] of recent) {
        setText(id, delta(failed) + ' of ' + delta(attempted) + noun);
        byId(id).dataset.level = delta(failed) > 0 ? 'bad' : 'good';
      }
    }
    setText('counter-note', counterNote);
    setText('total-c7-errors', totals.context7Errors + ' of ' + totals.context7Requests + ' (' + fmt(metrics.errorRatePercent, 2) + ' %)');
    setText('total-store-errors', totals.storeErrors + ' of ' + totals.storeRequests + ' (' + fmt(metrics.storeErrorRatePercent, 2) + ' %)');
    setText('total-fallbacks', totals.fallbacks + ' of ' + totals.requests + ' (' + fmt(metrics.fallbackRatePercent, 2) + ' %)');
    const types = metrics.errorsByType;
    setText('errors-by-type', Object.keys(types).map((type) => type + ' ' + types[type]).join(' · '));

    // Latency: interval mean from the sum/count counters, p95 as the service reports it.
    const avgPoints = intervalSeries((delta) => (delta('latencyCount') > 0 ? delta('latencyMsSum') / delta('latencyCount') : null));
    const p95Points = intervalSeries((delta, seconds, after) => (after.totals.latencyCount > 0 ? after.p95 : null));
    setText('latency-now', totals.latencyCount === 0 ? 'No Context7 calls measured yet'
      : 'avg ' + fmt(metrics.avgLatency) + ' ms · p95 ' + fmt(metrics.p95Latency) + ' ms (' + totals.latencyCount + ' calls)');
    drawChart(byId('chart-latency'), [
      { name: 'avg', className: 'series-a', points: avgPoints },
      { name: 'p95', className: 'series-b', points: p95Points },
    ], { unit: ' ms', empty: totals.latencyCount === 0 ? 'No Context7 calls yet: nothing to chart' : 'Collecting: needs two polls' });

    const hitPoints = intervalSeries((delta) => {
      const lookups = delta('cacheHits') + delta('cacheMisses');
      return lookups > 0 ? (delta('cacheHits') / lookups) * 100 : null;
    });
    setText('cache-hit-rate', fmt(metrics.cacheHitRatePercent, 1) + ' % (' + metrics.cache.hits + ' hits, ' + metrics.cache.misses + ' misses)');
    setText('cache-size', String(metrics.cache.size));
    setText('cache-ttl', duration(metrics.cache.ttlMs));
    drawChart(byId('chart-cache'), [{ name: 'hit rate', className: 'series-a', points: hitPoints }], {
      unit: ' %', max: 100,
      empty: metrics.cache.hits + metrics.cache.misses === 0 ? 'No cache lookups yet: nothing to chart' : 'Collecting: needs two polls',
    });

    // Reads are counted only with the flag on; store requests either way (when the store counts them).
    const perMinute = (value) => intervalSeries((delta, seconds) => (seconds > 0 ? (value(delta) / seconds) * 60 : null));
    const counted = totals.requests + totals.storeRequests + totals.context7Requests;
    drawChart(byId('chart-traffic'), counted === 0 ? [] : [
      { name: 'memory reads', className: 'series-a', points: perMinute((delta) => delta('requests')) },
      { name: 'store requests', className: 'series-d', points: perMinute((delta) => delta('storeRequests')) },
      { name: 'Context7 calls', className: 'series-b', points: perMinute((delta) => delta('context7Requests')) },
      { name: 'errors', className: 'series-c', points: perMinute((delta) => delta('context7Errors') + delta('storeErrors')) },
    ], {
      unit: '/min',
      empty: counted > 0 ? 'Collecting: needs two polls'
        : flagEnabled === false ? 'Context7 disabled: no memory traffic counted yet, nothing to chart' : 'No memory traffic yet: nothing to chart',
    });
  }

  /** Short numbers for axis labels: 950, 1.2k, 35k. */
  const compact = (value) => (value >= 10000 ? fmt(value / 1000) + 'k' : value >= 1000 ? fmt(value / 1000, 1) + 'k' : fmt(value));

  /**
   * A small line chart: one polyline and one circle per point per series. Time runs on x over what this page has
   * seen (at least a few polls, at most WINDOW_MS), so a freshly opened page does not squeeze its points into a corner.
   */
  function drawChart(svg, series, options) {
    const width = 320;
    const height = 120;
    const pad = { left: 44, right: 8, top: 8, bottom: 18 };
    svg.replaceChildren();
    const pointCount = series.reduce((sum, s) => sum + s.points.length, 0);
    svg.dataset.points = String(pointCount);
    const add = (name, attributes, text) => {
      const node = document.createElementNS(SVG_NS, name);
      for (const key of Object.keys(attributes)) node.setAttribute(key, String(attributes[key]));
      if (text !== undefined) node.textContent = text;
      svg.appendChild(node);
      return node;
    };
    add('rect', { class: 'frame', x: pad.left, y: pad.top, width: width - pad.left - pad.right, height: height - pad.top - pad.bottom });
    if (pointCount === 0) {
      // The reason on one line, "nothing to chart" (or what is awaited) on the next, centred in the frame.
      const lines = options.empty.split(': ');
      lines.forEach((line, i) => add('text', {
        class: 'empty', x: (pad.left + width - pad.right) / 2, y: height / 2 + (i - (lines.length - 1) / 2) * 14, 'text-anchor': 'middle',
      }, line + (i < lines.length - 1 ? ':' : '')));
      return;
    }
    const now = Date.now();
    const span = Math.min(WINDOW_MS, Math.max(now - samples[0].at, 6 * REFRESH_MS));
    const values = series.flatMap((s) => s.points.map((p) => p.v));
    const max = options.max || Math.max(1, ...values) * 1.15;
    const x = (at) => pad.left + ((at - (now - span)) / span) * (width - pad.left - pad.right);
    const y = (v) => height - pad.bottom - (v / max) * (height - pad.top - pad.bottom);
    add('text', { class: 'axis', x: pad.left - 4, y: pad.top + 8, 'text-anchor': 'end' }, compact(max) + options.unit);
    add('text', { class: 'axis', x: pad.left - 4, y: height - pad.bottom, 'text-anchor': 'end' }, '0');
    add('text', { class: 'axis', x: pad.left, y: height - 4 }, '−' + duration(span));
    add('text', { class: 'axis', x: width - pad.right, y: height - 4, 'text-anchor': 'end' }, 'now');
    for (const s of series) {
      if (s.points.length === 0) continue;
      add('polyline', { class: 'line ' + s.className, points: s.points.map((p) => fmt(x(p.at), 1) + ',' + fmt(y(p.v), 1)).join(' ') });
      for (const p of s.points) {
        const dot = add('circle', { class: 'dot ' + s.className, cx: fmt(x(p.at), 1), cy: fmt(y(p.v), 1), r: 2.5 });
        const title = document.createElementNS(SVG_NS, 'title');
        title.textContent = s.name + ': ' + fmt(p.v, 1) + options.unit + ' at ' + new Date(p.at).toLocaleTimeString();
        dot.appendChild(title);
      }
    }
  }

  function outboxDepthFrom(prometheusText) {
    const match = /^memory_outbox_depth(?:\{[^}]*\})?\s+(\S+)/m.exec(prometheusText);
    return match ? Number(match[1]) : null;
  }

  // The rollout: what this instance (or the fleet) reports, the cohorts side by side.
  function renderRollout(metrics) {
    const exposure = metrics.exposure;
    if (!exposure || !metrics.cohorts) {
      panelError('panel-rollout', 'This service reports no exposure or cohorts (it predates progressive exposure).');
      return;
    }
    setText('rollout-exposure', exposure.percent + ' % of scopes' + (metrics.scope === 'fleet' ? ' (fleet)' : ' (instance ' + metrics.instanceId + ')'));
    setText('rollout-ceiling', exposure.ceiling + ' %');
    setText('rollout-version', String(exposure.version));
    for (const cohort of ['treatment', 'control']) {
      const figures = metrics.cohorts[cohort];
      const t = figures.totals;
      setText('cohort-' + cohort + '-requests', String(t.requests));
      setText('cohort-' + cohort + '-5xx', t.serverErrors + ' (' + percent(t.serverErrors, t.requests) + ')');
      setText('cohort-' + cohort + '-fallbacks', t.fallbacks + ' (' + percent(t.fallbacks, t.reads) + ' of reads)');
      setText('cohort-' + cohort + '-latency', t.latencyCount > 0 ? fmt(t.latencyMsSum / t.latencyCount, 0) + ' / ' + fmt(figures.p95LatencyMs, 0) + ' ms' : '–');
    }
    panelOk('panel-rollout');
  }

  function listItems(id, lines) {
    const list = byId(id);
    list.replaceChildren(...lines.map((line) => {
      const item = document.createElement('li');
      item.textContent = line;
      return item;
    }));
  }

  function renderRolloutAdmin(state, audit) {
    byId('rollout-admin').hidden = false;
    byId('rollout-admin-note').hidden = true;
    setText('rollout-current', state.percent + ' %' + (state.flagOn ? '' : ' (flag off)') + ', version ' + state.version + (state.updatedBy ? ', set by ' + state.updatedBy : ''));
    const instances = state.instances || [];
    listItems('rollout-instances', instances.length > 0
      ? instances.map((i) => i.instanceId + ': ' + i.percent + ' %, version ' + i.version + (i.version < state.version || i.percent !== state.percent ? ' (LAGGING)' : ''))
      : ['one instance, or no per-instance list (propagation: ' + state.propagation.via + ')']);
    listItems('rollout-history', audit.entries.length > 0
      ? audit.entries.map((e) => new Date(e.at).toLocaleString() + ' · ' + (e.fromPercent === null ? 'ceiling' : e.fromPercent) + ' → ' + e.toPercent + ' % · ' + e.actor + (e.reason ? ' · ' + e.reason : ''))
      : ['no exposure change yet']);
  }

  async function pollRolloutAdmin(tokenUsed) {
    const headers = { Authorization: 'Bearer ' + tokenUsed };
    // One after the other: a rejected token costs one failure, not two.
    const state = await fetchJson('/api/admin/exposure', headers);
    const audit = await fetchJson('/api/admin/exposure/audit?limit=20', headers);
    if (adminToken !== tokenUsed) return;
    renderRolloutAdmin(state, audit);
  }

  byId('kill-switch').addEventListener('click', async () => {
    const tokenUsed = adminToken;
    const actor = byId('kill-actor').value.trim();
    if (tokenUsed === null) return;
    if (actor === '') {
      setText('kill-message', 'Say who you are: the audit records the actor of every change.');
      byId('kill-message').dataset.level = 'bad';
      return;
    }
    if (!window.confirm('Kill switch: set Context7 exposure to 0 % on every instance now? Every scope reads the local store until exposure is raised again.')) {
      setText('kill-message', 'Cancelled: nothing changed.');
      byId('kill-message').dataset.level = 'off';
      return;
    }
    try {
      const response = await fetchFrom('/api/admin/exposure', { Authorization: 'Bearer ' + tokenUsed, 'Content-Type': 'application/json' }, 'PUT',
        JSON.stringify({ percent: 0, actor: actor.slice(0, 100), reason: 'kill switch from /observability' }));
      const state = await response.json();
      setText('kill-message', 'Exposure set to 0 % (version ' + state.version + ') by ' + actor + '; instances apply it within ' + state.propagation.boundMs + ' ms.');
      byId('kill-message').dataset.level = 'good';
      await pollRolloutAdmin(tokenUsed);
    } catch (error) {
      setText('kill-message', 'Kill switch NOT applied: ' + error.message);
      byId('kill-message').dataset.level = 'bad';
    }
  });

  async function pollAdmin() {
    const tokenUsed = adminToken;
    if (tokenUsed === null) return;
    try {
      await pollRolloutAdmin(tokenUsed);
    } catch (error) {
      if (adminToken !== tokenUsed) return;
      if (error.status === 401) {
        // One rejected token costs one failure per poll against the admin limiter: forget it at once.
        forgetAdminToken();
        setText('admin-message', 'That admin token was rejected (401). Enter the service\u2019s ADMIN_TOKEN to see backfill progress.');
        byId('admin-message').dataset.level = 'bad';
        return;
      }
      panelError('panel-rollout', 'Exposure (admin): ' + error.message);
    }
    try {
      const status = await fetchJson('/api/admin/sync-context7/status', { Authorization: 'Bearer ' + tokenUsed });
      if (adminToken !== tokenUsed) return; // cleared or replaced while the request was in flight
      renderBackfill(status);
      panelOk('panel-backfill');
    } catch (error) {
      if (adminToken !== tokenUsed) return;
      if (error.status === 401) {
        forgetAdminToken();
        setText('admin-message', 'That admin token was rejected (401). Enter the service\u2019s ADMIN_TOKEN to see backfill progress.');
        byId('admin-message').dataset.level = 'bad';
        return;
      }
      panelError('panel-backfill', error.status === 403 ? 'Admin endpoints are disabled on this service (403).' : 'Backfill status: ' + error.message);
    }
  }

  function renderBackfill(status) {
    byId('admin-details').hidden = false;
    const job = status.job;
    byId('backfill-progress').value = status.progressPercent;
    setText('backfill-percent', fmt(status.progressPercent, 1) + ' %');
    if (!job) {
      setText('backfill-state', 'no backfill has run on this store');
      for (const id of ['backfill-counts', 'backfill-errors', 'backfill-times']) setText(id, '–');
      return;
    }
    setText('backfill-state', job.status);
    setText('backfill-counts', (job.synced + job.errors) + ' of ' + job.total + ' patterns handled, ' + job.synced + ' synced');
    const handled = job.synced + job.errors;
    setText('backfill-errors', job.errors + ' (' + percent(job.errors, handled) + ' of handled; the runbook allows < 5 %)');
    byId('backfill-errors').dataset.level = handled > 0 && job.errors / handled >= 0.05 ? 'bad' : 'good';
    setText('backfill-times', 'started ' + new Date(job.startedAt).toLocaleString() +
      (job.finishedAt ? ' · finished ' + new Date(job.finishedAt).toLocaleString() : ''));
  }

  function forgetAdminToken() {
    adminToken = null;
    byId('rollout-admin').hidden = true;
    byId('rollout-admin-note').hidden = false;
    byId('admin-details').hidden = true;
    byId('admin-clear').hidden = true;
    byId('panel-backfill').dataset.state = 'locked';
    byId('panel-backfill').querySelector('.panel-error').hidden = true;
  }

  byId('admin-form').addEventListener('submit', (event) => {
    event.preventDefault(); // never submit: the token must not reach a URL or a form post
    const input = byId('admin-token');
    const token = input.value.trim();
    input.value = '';
    if (token === '') return;
    adminToken = token;
    byId('admin-clear').hidden = false;
    setText('admin-message', 'Admin token held in this tab\u2019s memory only; Clear forgets it.');
    byId('admin-message').dataset.level = 'off';
    pollAdmin();
  });
  byId('admin-clear').addEventListener('click', () => {
    forgetAdminToken();
    setText('admin-message', 'Admin token cleared.');
    byId('admin-message').dataset.level = 'off';
  });

  async function poll() {
    const [config, health, metrics, prometheus] = await Promise.allSettled([
      fetchJson('/api/config'),
      fetchJson('/api/memory/health'),
      fetchJson('/api/metrics/memory'),
      fetchFrom('/metrics').then((response) => response.text()),
    ]);
    if (config.status === 'fulfilled' && health.status === 'fulfilled') {
      renderAdapter(config.value, health.value);
      panelOk('panel-adapter');
    } else {
      panelError('panel-adapter', 'Adapter status: ' + (config.status === 'rejected' ? config.reason : health.reason).message);
    }
    const metricPanels = ['panel-errors', 'panel-latency', 'panel-cache', 'panel-traffic'];
    if (metrics.status === 'fulfilled') {
      addSample(metrics.value);
      renderMetrics(metrics.value);
      renderRollout(metrics.value);
      for (const id of metricPanels) panelOk(id);
    } else {
      for (const id of [...metricPanels, 'panel-rollout']) panelError(id, 'Metrics: ' + metrics.reason.message);
    }
    const depth = prometheus.status === 'fulfilled' ? outboxDepthFrom(prometheus.value) : null;
    if (depth !== null) {
      setText('outbox-depth', String(depth));
      panelOk('panel-outbox');
    } else {
      panelError('panel-outbox', prometheus.status === 'rejected' ? 'Prometheus /metrics: ' + prometheus.reason.message : 'memory_outbox_depth missing from /metrics');
    }
    await pollAdmin();
    const results = [config, health, metrics, prometheus];
    lastPollFailed = results.some((result) => result.status === 'rejected');
    serviceStarting = results.every((result) => result.status === 'rejected' && result.reason.status === 503);
    if (results.some((result) => result.status === 'fulfilled')) lastUpdatedAt = Date.now();
    renderUpdated();
  }

  function renderUpdated() {
    const age = lastUpdatedAt === null ? 'not updated yet' : 'updated ' + Math.round((Date.now() - lastUpdatedAt) / 1000) + ' s ago';
    const problem = serviceStarting ? ' · service is starting (503): retrying' : lastPollFailed ? ' · some endpoints failed (see panels)' : '';
    setText('updated', age + problem + ' · refresh every ' + REFRESH_MS / 1000 + ' s');
    byId('updated').dataset.level = lastPollFailed ? 'bad' : 'good';
  }

  async function loop() {
    try { await poll(); } catch (error) { lastPollFailed = true; renderUpdated(); }
    setTimeout(loop, REFRESH_MS);
  }
  for (const chart of document.querySelectorAll('svg.chart')) drawChart(chart, [], { empty: 'Waiting for the first poll' });
  setInterval(renderUpdated, 1000);
  loop();
})();
`;
