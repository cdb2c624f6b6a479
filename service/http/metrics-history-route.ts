/** `GET /api/metrics/memory/history`: validated query, bounded range, 400 on bad input, 503 if the store fails. */
import type { RequestHandler } from 'express';
import { metricsHistoryQuerySchema, type MetricsHistoryQuery, type MetricsHistoryResponse } from '../contracts/metrics-history';
import { describeError, type ServiceLogger } from '../logging';

export function metricsHistoryHandler(
  read: (query: MetricsHistoryQuery) => Promise<MetricsHistoryResponse>,
  log: ServiceLogger,
): RequestHandler {
  return async (req, res) => {
    const parsed = metricsHistoryQuerySchema.safeParse(req.query);
    if (!parsed.success) {
      const details = parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }));
      res.status(400).json({ error: 'Invalid history query: from=YYYY-MM-DD&to=YYYY-MM-DD[&bucket=day]', details });
      return;
    }
    try {
      res.json(await read(parsed.data));
    } catch (error) {
      log.memoryError.warn('Metrics history read failed', describeError(error));
      res.status(503).setHeader('Retry-After', '5').json({ error: 'Metrics history is unavailable: the store did not answer' });
    }
  };
}
