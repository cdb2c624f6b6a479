/**
 * The HTTP edge of the exposure cohorts' figures (domain/cohort-metrics.ts): the same measurement for treatment and
 * control. Latency runs from the route's first handler (after the rate limiter, before authentication and body
 * parsing) to the end of the response, with the status the response was given, whichever layer set it. A request
 * counts once its scope id is valid, the caller may use it and it carries no credential of this service; its work
 * then runs inside its cohort, so fallbacks and Context7 calls recorded deep inside know it.
 * Every such request is also counted per exposure cluster (domain/exposure-clusters.ts), in the slot `off` while
 * the flag is off: the figures a cluster had before a step exposed it. One sha256 per request gives the cohort,
 * the cluster and the new-scope bit alike.
 */
import type { RequestHandler, Response } from 'express';
import { withinCohort, type CohortRequestOutcome, type ExposurePercentSource } from '../domain/cohort-metrics';
import { exposureHashes } from '../domain/exposure';
import { clusterOfBucket, type ClusterSlot } from '../domain/exposure-clusters';
import { isProbeScopeId } from '../domain/scope-id';

export interface CohortEdgeDeps {
  /** ENABLE_CONTEXT7_MEMORY: with it off requests count per cluster in the slot `off`, in no cohort. */
  flagOn: boolean;
  exposure: ExposurePercentSource;
  record(slot: ClusterSlot, outcome: CohortRequestOutcome): void;
  /** Monotonic ms. */
  now?: () => number;
}

export interface CohortEdge {
  /** First handler of a measured route: notes when the request arrived. */
  arrival: RequestHandler;
  /** Counts the request in its scope's cohort and cluster (probe scopes: neither) and runs its work inside that cohort. */
  measure<T>(res: Response, scopeId: string, kind: 'read' | 'write', work: () => Promise<T>): Promise<T>;
}

const ARRIVAL = Symbol('cohort-edge arrival');
type Stamped = Response & { [ARRIVAL]?: number };

function snippetCount(result: unknown): number {
  const snippets = (result as { snippets?: unknown } | null | undefined)?.snippets;
  return Array.isArray(snippets) ? snippets.length : 0;
}

export function createCohortEdge(deps: CohortEdgeDeps): CohortEdge {
  const now = deps.now ?? (() => performance.now());
  // Reused for every request (the edge runs synchronously up to withinCohort): no array per request.
  const hashes = new Uint32Array(2);
  return {
    arrival: (_req, res, next) => {
      (res as Stamped)[ARRIVAL] = now();
      next();
    },
    measure(res, scopeId, kind, work) {
      if (isProbeScopeId(scopeId)) return work();
      exposureHashes(scopeId, hashes);
      const bucket = hashes[0]!;
      const scopeHash = hashes[1]!;
      const cluster = clusterOfBucket(bucket);
      const slot: ClusterSlot = !deps.flagOn ? 'off' : bucket < Math.round(deps.exposure.percent() * 100) ? 'treatment' : 'control';
      const arrivedAt = (res as Stamped)[ARRIVAL] ?? now();
      let snippets = 0;
      // 'close' comes once per response: right after 'finish' when it was sent, or when it was cut off. One listener,
      // not one per event plus a guard: this runs on every memory request (issue 29's profile).
      res.on('close', () => deps.record(slot, { read: kind === 'read', status: res.statusCode, latencyMs: now() - arrivedAt, cluster, scopeHash, snippets }));
      const running = slot === 'off' ? work() : withinCohort(slot, work, cluster);
      if (kind !== 'read') return running;
      // A read's snippets are counted (Month 1's A/B figures) once its work returns, before the response closes:
      // one `then` on the work's promise, not another async function around it (issue 29's second profile: the
      // wrapper was an extra promise, two more microtask hops and a named closure per read).
      return running.then((result) => {
        snippets = snippetCount(result);
        return result;
      });
    },
  };
}
