/**
 * The HTTP edge of the exposure cohorts' figures (domain/cohort-metrics.ts): the same measurement for treatment and
 * control. Latency runs from the route's first handler (after the rate limiter, before authentication and body
 * parsing) to the end of the response, with the status the response was given, whichever layer set it. A request
 * counts once its scope id is valid, the caller may use it and it carries no credential of this service; its work
 * then runs inside its cohort, so fallbacks and Context7 calls recorded deep inside know it.
 */
import type { RequestHandler, Response } from 'express';
import { cohortOfRequest, withinCohort, type CohortRequestOutcome, type ExposurePercentSource } from '../domain/cohort-metrics';
import type { Cohort } from '../domain/exposure';

export interface CohortEdgeDeps {
  /** ENABLE_CONTEXT7_MEMORY: with it off nothing is measured. */
  flagOn: boolean;
  exposure: ExposurePercentSource;
  record(cohort: Cohort, outcome: CohortRequestOutcome): void;
  /** Monotonic ms. */
  now?: () => number;
}

export interface CohortEdge {
  /** First handler of a measured route: notes when the request arrived. */
  arrival: RequestHandler;
  /** Counts the request in its scope's cohort (when it has one) and runs its work inside that cohort. */
  measure<T>(res: Response, scopeId: string, kind: 'read' | 'write', work: () => Promise<T>): Promise<T>;
}

const ARRIVAL = Symbol('cohort-edge arrival');
type Stamped = Response & { [ARRIVAL]?: number };

export function createCohortEdge(deps: CohortEdgeDeps): CohortEdge {
  const now = deps.now ?? (() => performance.now());
  return {
    arrival: (_req, res, next) => {
      (res as Stamped)[ARRIVAL] = now();
      next();
    },
    measure(res, scopeId, kind, work) {
      const cohort = cohortOfRequest(scopeId, deps.flagOn, deps.exposure);
      if (!cohort) return work();
      const arrivedAt = (res as Stamped)[ARRIVAL] ?? now();
      // 'close' comes once per response: right after 'finish' when it was sent, or when it was cut off. One listener,
      // not one per event plus a guard: this runs on every memory request (issue 29's profile).
      res.on('close', () => deps.record(cohort, { read: kind === 'read', status: res.statusCode, latencyMs: now() - arrivedAt }));
      return withinCohort(cohort, work);
    },
  };
}
