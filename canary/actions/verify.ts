/**
 * Proves a rollback the runbook's way: config says the flag is off, health gives the exact
 * disabled reason, snippets answer `disabled`, and a short watch shows no new Context7 errors or
 * fallbacks (with the flag off the service makes no Context7 calls: errors are back to baseline).
 */
import { isDeepStrictEqual } from 'node:util';
import { DISABLED_REASON, memoryMetricsSchema, type MetricTotals } from '../../service/contracts/http';
import { generateScopeIdSync } from '../../service/domain/scope-id';
import type { HttpProbe } from '../sources/http';

export interface VerificationCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface VerificationResult {
  ok: boolean;
  checks: VerificationCheck[];
}

export interface VerifyOptions {
  baseUrl: string;
  probe: HttpProbe;
  timeoutMs: number;
  /** real milliseconds to watch the metrics, and between watch polls */
  watchMs: number;
  watchPollMs: number;
  /** attempts for the endpoint checks (the restarted service may need a moment) */
  attempts?: number;
  sleep: (ms: number) => Promise<void>;
  now?: () => number;
  onProgress?: (message: string) => void;
  /**
   * The caller key (CANARY_MEMORY_API_KEY) the snippets read needs since the service requires caller credentials.
   * Sent as a header only: never in the report (details record status and body, and bodies never echo it).
   */
  memoryApiKey?: string;
}

const MIN_WATCH_POLLS = 2;

/** A fixed, valid scope: verification reads memory, it never writes any. */
const VERIFY_SCOPE = generateScopeIdSync({ locationId: 'canary', agentId: 'rollback-verify', promptText: 'canary rollback verification' });

export async function verifyRollback(options: VerifyOptions): Promise<VerificationResult> {
  const base = options.baseUrl.replace(/\/+$/, '');
  const get = (path: string) => options.probe(`${base}${path}`, { timeoutMs: options.timeoutMs });
  const attempts = options.attempts ?? 5;
  const now = options.now ?? Date.now;

  const endpointChecks = async (): Promise<VerificationCheck[]> => {
    const [config, health, snippets] = await Promise.all([
      get('/api/config'),
      get('/api/memory/health'),
      options.probe(`${base}/api/memory/snippets`, {
        method: 'POST',
        body: { scopeId: VERIFY_SCOPE },
        timeoutMs: options.timeoutMs,
        ...(options.memoryApiKey ? { headers: { authorization: `Bearer ${options.memoryApiKey}` } } : {}),
      }),
    ]);
    const configBody = config.body as { enableContext7Memory?: unknown } | undefined;
    return [
      {
        name: 'config: enableContext7Memory false',
        ok: config.status === 200 && configBody?.enableContext7Memory === false,
        detail: describe(config.status, config.body, config.message),
      },
      {
        name: `health: available false, "${DISABLED_REASON}"`,
        ok: health.status === 200 && isDeepStrictEqual(health.body, { available: false, reason: DISABLED_REASON }),
        detail: describe(health.status, health.body, health.message),
      },
      {
        name: 'snippets: {"snippets":[],"source":"disabled"}',
        ok: snippets.status === 200 && isDeepStrictEqual(snippets.body, { snippets: [], source: 'disabled' }),
        detail:
          snippets.status === 401
            ? `${describe(snippets.status, snippets.body, snippets.message)} (set CANARY_MEMORY_API_KEY to a MEMORY_API_KEYS key of the service)`
            : describe(snippets.status, snippets.body, snippets.message),
      },
    ];
  };

  let checks = await endpointChecks();
  for (let attempt = 1; attempt < attempts && !checks.every((c) => c.ok); attempt++) {
    options.onProgress?.(`verification: ${checks.filter((c) => !c.ok).map((c) => c.name).join(', ')} not yet; retrying`);
    await options.sleep(options.watchPollMs);
    checks = await endpointChecks();
  }

  // The watch: per instance epoch, Context7 errors and fallbacks must not grow.
  const first = new Map<string, MetricTotals>();
  const last = new Map<string, MetricTotals>();
  let readable = 0;
  let polls = 0;
  const deadline = now() + options.watchMs;
  // At least two polls: one reading alone cannot show whether errors are still growing, and a slow
  // first answer must not turn the watch into a single look.
  const enoughPolls = () => now() >= deadline && polls >= MIN_WATCH_POLLS;
  do {
    polls++;
    const sample = await get('/api/metrics/memory');
    const parsed = memoryMetricsSchema.safeParse(sample.body);
    if (sample.status === 200 && parsed.success) {
      readable++;
      const key = `${parsed.data.scope ?? 'instance'}:${parsed.data.instanceId}@${parsed.data.startedAt}`;
      if (!first.has(key)) first.set(key, parsed.data.totals);
      last.set(key, parsed.data.totals);
    }
    options.onProgress?.(`verification watch: ${polls} polls, ${readable} readable`);
    if (enoughPolls()) break;
    const untilDeadline = deadline - now();
    await options.sleep(untilDeadline > 0 ? Math.min(options.watchPollMs, untilDeadline) : options.watchPollMs);
  } while (!enoughPolls());
  let newErrors = 0;
  let newFallbacks = 0;
  for (const [key, start] of first) {
    const end = last.get(key)!;
    newErrors += Math.max(0, end.context7Errors - start.context7Errors);
    newFallbacks += Math.max(0, end.fallbacks - start.fallbacks);
  }
  checks.push({
    name: 'watch: no new Context7 errors or fallbacks',
    ok: readable >= MIN_WATCH_POLLS && newErrors === 0 && newFallbacks === 0,
    detail: `${polls} polls over ${(options.watchMs / 1000).toFixed(1)} s, ${readable} readable; +${newErrors} Context7 errors, +${newFallbacks} fallbacks`,
  });
  return { ok: checks.every((c) => c.ok), checks };
}

function describe(status: number | null, body: unknown, message?: string): string {
  if (status === null) return message ?? 'no answer';
  const text = JSON.stringify(body) ?? '';
  return `HTTP ${status} ${text.length > 160 ? `${text.slice(0, 160)}…` : text}`;
}
