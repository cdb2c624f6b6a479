/** Reads the service's daily counters (GET /api/metrics/memory/history), retried a few times, validated. */
import { metricsHistoryResponseSchema, type MetricsHistoryResponse } from '../../service/contracts/metrics-history';
import type { HttpProbe } from '../sources/http';

/** The history could not be read: a measurement error (exit 3), never a failing verdict. */
export class HistoryUnreadableError extends Error {}

export async function readDailyHistory(
  probe: HttpProbe,
  options: { baseUrl: string; from: string; to: string; timeoutMs: number; includeClusters?: boolean; attempts?: number; sleep?: (ms: number) => Promise<void> },
): Promise<MetricsHistoryResponse> {
  const url = `${options.baseUrl.replace(/\/+$/, '')}/api/metrics/memory/history?from=${options.from}&to=${options.to}&bucket=day${options.includeClusters ? '&include=clusters' : ''}`;
  const attempts = options.attempts ?? 3;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((done) => setTimeout(done, ms)));
  let problem = '';
  for (let attempt = 1; attempt <= attempts; attempt += 1) {
    // Per-cluster tables: up to ~85 KB a day (every cluster of all three slots), so a month can pass 1 MB.
    const answer = await probe(url, { timeoutMs: options.timeoutMs, ...(options.includeClusters ? { maxBodyBytes: 16_000_000 } : {}) });
    if (answer.error || answer.status !== 200) {
      problem = answer.error ? `${answer.error}: ${answer.message ?? ''}` : `HTTP ${answer.status}: ${JSON.stringify(answer.body).slice(0, 200)}`;
      // A 4xx will not change on retry.
      if (answer.status !== null && answer.status >= 400 && answer.status < 500) break;
      if (attempt < attempts) await sleep(1_000 * attempt);
      continue;
    }
    const parsed = metricsHistoryResponseSchema.safeParse(answer.body);
    if (!parsed.success) throw new HistoryUnreadableError(`${url}: unexpected payload: ${parsed.error.issues[0]?.message ?? ''}`);
    const expected = (Date.parse(`${options.to}T00:00:00Z`) - Date.parse(`${options.from}T00:00:00Z`)) / 86_400_000;
    if (parsed.data.days.length !== expected) {
      throw new HistoryUnreadableError(`${url}: ${parsed.data.days.length} day(s) returned, ${expected} asked for`);
    }
    return parsed.data;
  }
  throw new HistoryUnreadableError(`${url}: ${problem}`);
}
